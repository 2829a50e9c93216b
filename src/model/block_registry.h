// Decoder block forward passes keyed by config.json's `model_type`, so a new
// model family slots in here without touching the callers (evaluation,
// tuning). The block's weights are loaded generically from the family's layout
// (LoadBlockWeights).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/model/block_ops.h"
#include "src/model/block_weights.h"
#include "src/model/checkpoint.h"
#include "src/model/config.h"

namespace signround {

// Forward pass of one decoder block on x [B, T, hidden]. An MoE block adds
// each expert's token count to `expert_tokens` when it is not null.
using BlockForwardFn = at::Tensor (*)(const ModelConfig& config, const BlockWeights& weights,
                                      const RopeTables& rope, const at::Tensor& x,
                                      std::vector<int64_t>* expert_tokens);
// forward(x) for every row of x, in batches of `batch`, without gradients; an MoE block
// adds each expert's token count to `expert_tokens` when it is not null.
at::Tensor ForwardAll(const ModelConfig& config, BlockForwardFn forward,
                      const BlockWeights& weights, const RopeTables& rope, const at::Tensor& x,
                      int64_t batch, std::vector<int64_t>* expert_tokens = nullptr);

// Loads one decoder block's weights.
using BlockLoadFn = absl::StatusOr<BlockWeights> (*)(const Checkpoint& ckpt, int64_t layer,
                                                     at::ScalarType dtype, at::Device device);

struct BlockImpl {
  absl::string_view model_type;
  BlockForwardFn forward;
  BlockLoadFn load = &LoadBlockWeights;
};

// The implementation for `model_type`; INVALID_ARGUMENT naming the
// supported types when there is none.
absl::StatusOr<const BlockImpl*> FindBlockImpl(absl::string_view model_type);

// FindBlockImpl(model_type)->forward.
absl::StatusOr<BlockForwardFn> FindBlockForward(absl::string_view model_type);

// "llama, mistral, qwen2, ...": the model types with a block implementation.
std::string BlockModelTypes();

}  // namespace signround
