// SignRound tuning of one decoder block (ALGORITHM.md section 3): V, alpha and
// beta per quantized Linear, trained with signed gradient descent on the MSE
// between the quantized block's output on the quantized-input chain and the
// original block's output, keeping the best parameters seen.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "src/model/block_registry.h"
#include "src/model/block_weights.h"
#include "src/quant/qdq.h"

namespace signround {

struct TuneOptions {
  int iters = 200;       // 0: RTN
  double lr = 0;         // 0: 1 / iters
  double minmax_lr = 0;  // 0: lr
  int64_t batch_size = 8;
  int gradient_accumulate_steps = 1;
  bool enable_minmax_tuning = true;
  uint64_t seed = 42;
  // dtype of the block forward (weights and activations); tuning parameters
  // and the loss stay fp32. fp32 on CPU, bf16 on CUDA.
  at::ScalarType compute_dtype = at::kFloat;
  // The checkpoint's weight dtype: W^ is rounded to it (as the exported
  // model will hold it) before every forward.
  at::ScalarType weight_dtype = at::kFloat;
  // Integer layers start from the importance-weighted scale search (IntSearchRange in
  // src/quant/scale_search.h) instead of the full range; k-quant layers always do.
  bool scale_search = false;
  // The block loss leaves out the largest kLossFilterFraction of its squared errors.
  bool loss_filter = false;
};

// The share of a micro-batch's squared errors the loss filter leaves out (SignRoundV2's 0.1%).
inline constexpr double kLossFilterFraction = 0.001;

// The block loss: the mean squared error of `out` against `target` (both fp32); with
// `filter` the largest floor(kLossFilterFraction * numel) squared errors are left out of
// the sum and the mean is over the rest, so a few outlier activations do not steer the
// block (SignRoundV2's loss filter). Below 1000 elements it is the plain mean.
at::Tensor BlockLoss(const at::Tensor& out, const at::Tensor& target, bool filter);

// The rows `idx` of x (a sampled micro-batch), on x's device.
at::Tensor SampleRows(const at::Tensor& x, const std::vector<int64_t>& idx);

// The learning rates in effect: lr defaults to 1 / iters, minmax_lr to lr.
double EffectiveLr(const TuneOptions& options);
double EffectiveMinmaxLr(const TuneOptions& options);

struct LayerToQuantize {
  std::string name;  // inside the block, e.g. "self_attn.q_proj"
  QuantScheme scheme;
  // Rounded to nearest and held fixed while the block's other layers are tuned
  // (an MoE expert with too few calibration tokens).
  bool round_only = false;
};

struct QuantizedLinear {
  std::string name;
  QuantScheme scheme;
  at::Tensor dequant;  // W^, [out, in], in the checkpoint's weight dtype
  IntegerWeight integer;
};

struct BlockTuneResult {
  std::vector<QuantizedLinear> layers;
  double loss_iter0 = 0;  // loss with RTN parameters on the first batch
  double loss_best = 0;
  int best_iter = 0;
};

// Tunes `layers` of the block whose original weights are `original` (fp32).
// `q_in` and `fp_out` are [N, T, hidden] on the compute device. `block_seed`
// seeds batch sampling (the pipeline derives it from the seed and block index).
// A GGUF k-quant layer (and with options.scale_search an integer one) starts from the scale
// search weighted by the mean square of its inputs on `q_in` (src/quant/scale_search.h),
// also with iters = 0.
absl::StatusOr<BlockTuneResult> TuneBlock(const ModelConfig& config, BlockForwardFn forward,
                                          const BlockWeights& original, const RopeTables& rope,
                                          const std::vector<LayerToQuantize>& layers,
                                          const at::Tensor& q_in, const at::Tensor& fp_out,
                                          const TuneOptions& options, uint64_t block_seed);

// `weights` with each layer's weight replaced by its W^ (cast to `dtype`).
BlockWeights WithQuantizedWeights(const BlockWeights& weights,
                                  const std::vector<QuantizedLinear>& layers, at::ScalarType dtype);

}  // namespace signround
