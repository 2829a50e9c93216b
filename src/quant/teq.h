// TEQ, trainable equivalent transformation (arXiv 2310.10944), for one decoder
// block: each sublayer input x (the output of the norm in front of the attention,
// and of the one in front of the MLP) is divided channel-wise by trainable scales
// s, folded into the norm's weight, and every matrix that reads x is multiplied
// by s column-wise: (W diag(s)) (x / s) = W x, so in exact arithmetic the block
// computes the same function, but W diag(s) quantizes differently. s is
// trained with Adam on the block loss of the quantized block (W s rounded to
// nearest under its scheme, straight-through), starting from 1 (plain RTN), and
// kept only when it lowers that loss over all the calibration samples.
// The exported model keeps the original architecture and tensor names: the norms,
// and the 16-bit matrices that read a scaled input (an MoE router, a Linear kept
// 16-bit), are changed tensors; the quantized Linears are quantized from W s.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "src/model/block_registry.h"
#include "src/model/block_weights.h"
#include "src/model/family.h"
#include "src/quant/signround_tuner.h"

namespace signround {

// One sublayer input and what reads it, by module name inside the block.
struct TeqGroup {
  std::string norm;                  // the norm that makes the input (its weight takes 1 / s)
  std::vector<std::string> linears;  // the Linears that read it (their columns take s)
  std::vector<std::string> params;   // other [rows, hidden] matrices that read it (MoE router)
};

// The groups of a block layout: one per sublayer input with a norm making it
// (BlockParam::makes) and something reading it.
std::vector<TeqGroup> TeqGroups(const BlockLayout& layout);

// Adam's step size on log s, decayed linearly to 0 over the iterations. At W3G32, RTN after
// 100 steps: 0.1 beat plain RTN on stories260k, gemma3-tiny and qwen3-tiny (0.01 and 0.03
// did as well on two of them, about as much, and lost on the third).
inline constexpr double kTeqLr = 0.1;

struct TeqOptions {
  int iters = 100;  // Adam steps; 0 leaves the block as it is
  int64_t batch_size = 8;
  bool loss_filter = false;  // BlockLoss's filter, as the tuning uses it
  // Gemma's norms compute x * (1 + w): w' = (1 + w) / s - 1.
  double norm_shift = 0;
  // The block forward's dtype, and the checkpoint's weight dtype W^ is rounded to.
  at::ScalarType compute_dtype = at::kFloat;
  at::ScalarType weight_dtype = at::kFloat;
  // The checkpoint dtype of a changed tensor ("input_layernorm.weight"): the changed
  // tensors are rounded to it, and the quantized Linears' scales compensate that rounding.
  std::function<at::ScalarType(const std::string& tensor)> stored_dtype;
};

struct TeqResult {
  // `original` with the scales folded in (fp32): the quantized Linears hold W s.
  BlockWeights weights;
  // What the exported model holds instead of the checkpoint's tensors, by tensor name inside
  // the block ("input_layernorm.weight", "mlp.gate.weight"), in their stored dtypes, on the CPU.
  std::vector<std::pair<std::string, at::Tensor>> changed;
  // The block loss over every sample with s = 1 (rounding to nearest), and with the scales
  // folded (the trained ones when they gave less, else s = 1 again: `kept` false).
  double loss_iter0 = 0;
  double loss_best = 0;
  bool kept = false;
};

// Trains the scales of `groups` for the block `original` (fp32) whose quantized Linears are
// `layers`, on the quantized-input chain `q_in` against `fp_out`, and folds them when they
// lower the block loss over all of `q_in`. Batches are drawn as TuneBlock draws them, from
// `block_seed`.
absl::StatusOr<TeqResult> TrainTeq(const ModelConfig& config, BlockForwardFn forward,
                                   const BlockWeights& original, const RopeTables& rope,
                                   const std::vector<TeqGroup>& groups,
                                   const std::vector<LayerToQuantize>& layers,
                                   const at::Tensor& q_in, const at::Tensor& fp_out,
                                   const TeqOptions& options, uint64_t block_seed);

// `weights` with the changed tensors (TeqResult::changed, as stored) put in, as fp32:
// INTERNAL when one names nothing of the block.
absl::StatusOr<BlockWeights> WithChangedTensors(
    const BlockWeights& weights, const std::vector<std::pair<std::string, at::Tensor>>& changed);

}  // namespace signround
