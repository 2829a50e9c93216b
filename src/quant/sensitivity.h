// The sensitivity of each quantized Linear of a decoder block to each candidate scheme, for
// the mixed-bits allocation (AutoScheme): SignRoundV2's DeltaLoss on the block loss. With
// every listed layer of the block at its round-to-nearest W^ under the scheme, the block
// loss L (the MSE of the block's output against `fp_out`) is run forward and backward per
// batch of `x`, and layer l scores sum_batches sum |dL/dW^_l * (W_l - W^_l)|: the
// first-order change of the loss from quantizing the layer, by element.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "src/model/block_registry.h"
#include "src/model/block_weights.h"
#include "src/quant/qdq.h"

namespace signround {

struct SensitivityOptions {
  int64_t batch_size = 8;
  at::ScalarType compute_dtype = at::kFloat;  // the block's forward
  at::ScalarType weight_dtype = at::kFloat;   // W^ is rounded to it, as exported
};

// scores[l][s]: layer `layers[l]` (a name inside the block) under `schemes[s]`.
// `original` holds fp32 weights; `x` and `fp_out` are [N, T, hidden] on the compute device.
// INVALID_ARGUMENT for a layer the block does not have; LibTorch errors become INTERNAL.
absl::StatusOr<std::vector<std::vector<double>>> BlockSensitivity(
    const ModelConfig& config, BlockForwardFn forward, const BlockWeights& original,
    const RopeTables& rope, const std::vector<std::string>& layers,
    const std::vector<QuantScheme>& schemes, const at::Tensor& x, const at::Tensor& fp_out,
    const SensitivityOptions& options);

}  // namespace signround
