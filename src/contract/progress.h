// The progress record of a quantize run, defined once: the engine fills it, the
// worker writes it (one JSON object a line with --progress json), the job
// service reads it back and stores it, report.json and the block files list it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace signround::contract {

// One finished decoder block. A run without calibration measures nothing:
// loss_iter0 = loss_best = 0 and best_iter 0. A NaN loss is written as null.
struct BlockStats {
  int64_t index = 0;
  int layers_quantized = 0;
  double loss_iter0 = 0;
  double loss_best = 0;
  int best_iter = 0;
  double seconds = 0;
  // MoE blocks of a calibrated run: the calibration tokens each expert received
  // (top-k selections on the chain the block was tuned on), and the experts that
  // received fewer than kMinExpertTokens and were rounded to nearest instead of
  // tuned. Empty for dense blocks.
  std::vector<int64_t> expert_tokens;
  std::vector<int64_t> rounded_experts;
  // Blocks of a TEQ run (src/quant/teq.h): the block loss over the judging calibration
  // samples (with iters 0 the last quarter, held out; else all) rounded to nearest before
  // TEQ's scales and with them, whether any were kept (only when they lowered it), and
  // which units of scales were ("input_layernorm", "self_attn.o_proj", "experts", ...).
  struct Teq {
    double loss_rtn = 0;
    double loss = 0;
    bool kept = false;
    std::vector<std::string> units;
    // TEQ + SignRound: the block loss over all samples of the block tuned without the
    // scales and from them (kept when lower); unset with iters 0 or nothing kept before.
    struct Tuned {
      double loss_without = 0;
      double loss = 0;
    };
    std::optional<Tuned> tuned;
  };
  std::optional<Teq> teq;
};

// An expert that receives fewer calibration tokens than this in a block is
// rounded to nearest (RTN) rather than tuned: its signed-gradient steps would
// follow a handful of tokens (ALGORITHM.md's batches hold 8 x 2048 of them).
inline constexpr int64_t kMinExpertTokens = 64;

// {"index", "layers_quantized", "loss_iter0", "loss_best", "best_iter", "seconds"},
// "expert_tokens" / "rounded_experts" when the block has experts, and "teq"
// ({"loss_rtn", "loss", "kept", "units", and with SignRound where TEQ kept scales
// "tuned_loss_without", "tuned_loss"}) in a TEQ run.
nlohmann::json BlockStatsToJson(const BlockStats& stats);
// The same keys back (null losses as NaN); other keys are left to the caller.
absl::StatusOr<BlockStats> BlockStatsFromJson(const nlohmann::json& j, absl::string_view where);

// A block as the job reports it: its stats, of how many, and whether an earlier
// attempt had finished it (resumed from the work directory).
struct BlockProgress {
  BlockStats stats;
  int64_t block_count = 0;
  bool resumed = false;
};

// One progress event of the worker.
struct ProgressEvent {
  std::string kind;  // "start", "block", "export", "eval", "done"
  // block_count always; stats and resumed for "block".
  BlockProgress block;
  // Extra fields for "start" / "export" / "eval" / "done"; for "block",
  // {"calibrated": bool} (false: RTN without data, the losses are not measured).
  nlohmann::json detail;
};

// The event as one line of JSON (no newline): {"event": kind, "block_count": n, ...}
// with, for "block", the stats' keys, "resumed" and the detail's keys; else "detail".
std::string ProgressEventLine(const ProgressEvent& event);
// Reads such a line. INVALID_ARGUMENT for a line that is not a JSON object with a
// string "event", or a "block" event without its stats.
absl::StatusOr<ProgressEvent> ParseProgressEventLine(absl::string_view line);

}  // namespace signround::contract
