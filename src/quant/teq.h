// TEQ, trainable equivalent transformation (arXiv 2310.10944), for one decoder
// block. Each input that some matrices read channel for channel is divided by
// trainable scales s where it is made, and every matrix that reads it is
// multiplied by s column-wise: (W diag(s)) (x / s) = W x, so in exact arithmetic
// the block computes the same function, but W diag(s) quantizes differently.
// The inputs: the two sublayer inputs (s folded into the norm that makes each),
// and the rows one Linear makes for another (v_proj's values for o_proj, up_proj's
// for down_proj: s folded into those rows). s is trained with Adam on the block
// loss of the quantized block (rounded to nearest under each Linear's scheme,
// straight-through), starting from 1 (plain RTN); each unit of scales (the
// attention's input, the MLP's, the values, the MLP's hidden units) is kept only
// when it lowers that loss on the judging samples: a held-out quarter of the
// calibration samples when the block is then rounded to nearest, all of them
// when SignRound's tuning follows (TeqOptions::hold_out).
// The exported model keeps the original architecture and tensor names: the norms,
// and the 16-bit matrices that read a scaled input (an MoE router, a Linear kept
// 16-bit), are changed tensors; the quantized Linears are quantized from the
// scaled weights.
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

// One input and what reads it, by module name inside the block.
struct TeqGroup {
  // What divides the input by s: a norm's weight (`norm`), or the rows
  // [row_begin, row_begin + channels) of a quantized Linear (`rows_of`; its other
  // rows are left alone).
  std::string norm;
  std::string rows_of;
  int64_t row_begin = 0;
  int64_t channels = 0;  // the size of s
  // The readers' column c takes s[(c / (head_dim * repeat)) * head_dim + c % head_dim]
  // (LinearFeed's grouped-query mapping; head_dim = channels and repeat 1 otherwise).
  int64_t head_dim = 0;
  int64_t repeat = 1;
  std::vector<std::string> linears;  // the Linears that read it (their columns take s)
  std::vector<std::string> params;   // other [rows, channels] matrices that read it (MoE router)
  // Groups of one unit are kept or left out together: the norm's name, the reader's
  // ("self_attn.o_proj"), or "experts" for every expert's hidden units.
  std::string unit;
};

// The groups of a block layout: one per sublayer input with a norm making it
// (BlockParam::makes) and something reading it, then one per Linear whose rows
// another reads (BlockLinear::feeds).
std::vector<TeqGroup> TeqGroups(const BlockLayout& layout);

// Adam's step size on log s, decayed linearly to 0 over the iterations. At W3G32, RTN after
// 100 steps: 0.1 beat plain RTN on stories260k, gemma3-tiny and qwen3-tiny (0.01 and 0.03
// did as well on two of them, about as much, and lost on the third).
inline constexpr double kTeqLr = 0.1;

// How many of `n` calibration samples (the last ones) judge the trained scales instead of
// training them, with TeqOptions::hold_out: a quarter, or 0 below 4 samples (then all of
// them do both).
inline int64_t TeqHeldOut(int64_t n) { return n >= 4 ? n / 4 : 0; }

struct TeqOptions {
  int iters = 100;  // Adam steps; 0 leaves the block as it is
  int64_t batch_size = 8;
  bool loss_filter = false;  // BlockLoss's filter, as the tuning uses it
  // Train on all samples but TeqHeldOut's, and judge on those. Followed by rounding to
  // nearest, scales judged on the samples they were trained on lowered the block loss and the
  // calibration rows' perplexity and raised the evaluation set's (qwen3-tiny W3G32); held out,
  // they beat RTN on all 7 tiny models at W3G32 (5 before). Followed by SignRound's tuning,
  // which fits all the samples anyway, they did worse held out (TEQ + v2's perplexity 0.17%
  // above v2's on average over 14 cells, against 0.02% judged on all), so the pipeline holds
  // out only for RTN.
  bool hold_out = true;
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
  // The block loss over the judging samples (hold_out: TeqHeldOut's; else all) with s = 1
  // (rounding to nearest), and with the scales folded (the trained ones of each unit that lowered
  // it; `kept` false when none did).
  double loss_iter0 = 0;
  double loss_best = 0;
  bool kept = false;
  std::vector<std::string> kept_units;  // TeqGroup::unit, in the groups' order
};

// Trains the scales of `groups` for the block `original` (fp32) whose quantized Linears are
// `layers`, on the quantized-input chain `q_in` against `fp_out`, and folds each unit's
// when it lowers the block loss over the judging samples of `q_in` (units tried in order,
// each left out when the loss is lower without it). A group is trained only when a
// quantized Linear reads it, and a rows_of group only when its rows' Linear is quantized
// too and has no bias. Batches are drawn as TuneBlock draws them, from `block_seed`, out
// of the samples not held out.
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
