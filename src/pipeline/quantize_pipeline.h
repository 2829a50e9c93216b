// The quantize job: streams the checkpoint one decoder block at a time through
// SignRound (or RTN), checkpointing each finished block so a rerun resumes,
// then writes each requested export format (one subdirectory each) and
// report.json. Peak memory is about one block plus the two activation chains.
// RTN (iters 0) may run without calibration data: each block is then rounded
// to nearest from its weights alone (no forward pass), with the same codes as
// a calibrated RTN run; see `calib_path`.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "src/contract/progress.h"
#include "src/contract/settings.h"
#include "src/export/export_format.h"
#include "src/pipeline/block_store.h"
#include "src/quant/layer_plan.h"
#include "src/quant/signround_tuner.h"

namespace signround {

struct QuantizeOptions {
  std::string model_dir;
  // JSONL of {"input_ids": [...]}. Empty: no calibration, allowed only with
  // settings.iters == 0 (RTN). Such a run records "calib": null and "calibrated":
  // false in its settings, "calibration": null in report.json, and block stats
  // with loss_iter0 = loss_best = 0 and best_iter 0 (nothing is measured).
  // Also a text JSONL ({"text": ...}) or plain text file, tokenized with the
  // model's tokenizer (src/data/text_dataset.h).
  std::string calib_path;
  // Text data: join the tokenized texts and cut seqlen chunks instead of one
  // row per text. In the settings as "calib_concat". (A text eval_path is
  // always cut into context-length chunks: EvalTextOptions.)
  bool calib_concat = false;
  // What the settings and report.json call the model and the calibration data
  // (the job service passes their URIs): empty means the paths. Finished
  // blocks resume only under the same settings, so a job resumed on another
  // machine, whose local copies sit elsewhere, must name them the same.
  std::string model_name;
  std::string calib_name;
  std::string out_dir;
  std::string eval_path;  // optional: perplexity before and after
  // The job's settings, resolved (src/contract/settings.h): scheme, recipe,
  // tuning, formats, layer overrides, packed dtype and waivers.
  contract::QuantizeSettings settings;
  // The engine's own knobs, not job settings (worker flags only).
  int gradient_accumulate_steps = 1;
  bool enable_minmax_tuning = true;
  bool enable_quanted_input = true;
  std::string device = "cpu";  // "cpu" or "cuda:N"
  int64_t eval_batch_size = 8;
  uint64_t max_shard_bytes = 5'000'000'000;
};

using contract::BlockProgress;
using contract::ProgressEvent;

// Receives progress; returning false cancels the run (CANCELLED; finished
// blocks stay in the work directory for a rerun).
using ProgressFn = std::function<bool(const ProgressEvent&)>;

// Runs the job; returns report.json's content. Bad input is INVALID_ARGUMENT
// naming the file or setting. An export format that fails after tuning does not
// stop the others: report.json is still written, with the error under
// "failed_outputs" ({format: message}), and the work directory's finished blocks
// are kept so that a rerun with other formats resumes them.
absl::StatusOr<nlohmann::json> RunQuantize(const QuantizeOptions& options,
                                           const ProgressFn& progress);

}  // namespace signround
