// Decoder block implementations keyed by config.json's `model_type`, so a new
// model family slots in here without touching the callers (evaluation,
// tuning). llama, mistral and qwen2 all use the Llama block.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/model/checkpoint.h"
#include "src/model/config.h"
#include "src/model/llama_block.h"

namespace signround {

// Forward pass of one decoder block on x [B, T, hidden].
using BlockForwardFn = at::Tensor (*)(const ModelConfig& config, const BlockWeights& weights,
                                      const RopeTables& rope, const at::Tensor& x);
// Loads one decoder block's weights.
using BlockLoadFn = absl::StatusOr<BlockWeights> (*)(const Checkpoint& ckpt, int64_t layer,
                                                     at::ScalarType dtype, at::Device device);

struct BlockImpl {
  absl::string_view model_type;
  BlockForwardFn forward;
  BlockLoadFn load;
};

// The implementation for `model_type`; INVALID_ARGUMENT naming the
// supported types when there is none.
absl::StatusOr<const BlockImpl*> FindBlockImpl(absl::string_view model_type);

// FindBlockImpl(model_type)->forward.
absl::StatusOr<BlockForwardFn> FindBlockForward(absl::string_view model_type);

// "llama, mistral, qwen2": the model types with a block implementation.
std::string BlockModelTypes();

}  // namespace signround
