// One decoder block's weights, whatever the family: its Linears and its other
// tensors (norms, the MoE router) by module name inside the block, loaded as
// the family's block layout (src/model/family.h) lists them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/model/checkpoint.h"
#include "src/model/config.h"

namespace signround {

// One nn.Linear: y = x W^T + b.
struct LinearWeights {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out]; undefined when the layer has none
};

struct BlockWeights {
  int64_t layer = 0;
  // By module name inside the block ("input_layernorm", "mlp.gate"), in layout order.
  std::vector<std::pair<std::string, at::Tensor>> params;
  // By module name inside the block ("self_attn.q_proj"), in layout order.
  std::vector<std::pair<std::string, LinearWeights>> linears;

  // The Linear named `name`, or nullptr. A tuner swaps `weight` for a
  // fake-quantized tensor and runs the forward pass again.
  LinearWeights* FindLinear(absl::string_view name);
  const LinearWeights* FindLinear(absl::string_view name) const;
  bool HasLinear(absl::string_view name) const { return FindLinear(name) != nullptr; }
  // The Linear or tensor named `name`; throws c10::Error when there is none
  // (weights that do not match the forward pass: a bug, caught at the engine edge).
  const LinearWeights& linear(absl::string_view name) const;
  const at::Tensor& param(absl::string_view name) const;
  at::Tensor& param(absl::string_view name);
};

// Loads tensor `name` of `ckpt` as an owned copy (not aliasing the
// memory-mapped file) in `dtype` on `device`. The weight of a packed Linear
// ("P.weight" stored as P.qweight, ...) is dequantized.
absl::StatusOr<at::Tensor> LoadCheckpointTensor(const Checkpoint& ckpt, const std::string& name,
                                                at::ScalarType dtype, at::Device device);

// The LibTorch dtype of Linear `linear`'s weight in the checkpoint (what W^ is rounded to).
absl::StatusOr<at::ScalarType> WeightDType(const Checkpoint& ckpt, const std::string& linear);

// Loads decoder block `layer` from `ckpt`, converted to `dtype` on `device`.
// The tensors are copies (they do not alias the memory-mapped file), so they
// may be modified. INVALID_ARGUMENT for a layer out of range.
absl::StatusOr<BlockWeights> LoadBlockWeights(const Checkpoint& ckpt, int64_t layer,
                                              at::ScalarType dtype, at::Device device);

}  // namespace signround
