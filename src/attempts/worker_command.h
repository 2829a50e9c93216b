// The command line of one job attempt's engine process
// (`signround-worker quantize ... --progress json`) and the parsing of the
// JSON lines it prints.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "src/jobs/job.h"
#include "src/jobs/job_validation.h"

namespace signround::jobs {

struct WorkerInputs {
  std::string worker_bin;         // absolute path of signround-worker
  std::string model_dir;          // local checkpoint directory
  std::string calib_path;         // local JSONL; empty: none (RTN)
  std::string model_name;         // the job's model URI (--model-name)
  std::string calib_name;         // the job's calibration URI (--calib-name)
  std::string out_dir;            // the attempt's output (and resume) directory
  std::string layer_config_path;  // empty: no overrides
  std::string device;             // what the engine sees: "cpu" or "cuda:0"
  int threads = 0;                // 0: LibTorch's default
};

// argv (argv[0] = worker_bin) for a job with these effective settings. The
// waivers (--allow-split-fused, --allow-gguf-without-vocab) and --packed-dtype
// appear only when they differ from the worker's defaults.
std::vector<std::string> WorkerArgv(const WorkerInputs& in, const EffectiveSettings& s);

// The layer config file the worker reads (--layer-config) for `overrides`:
// {"<pattern>": {"bits": .., "group_size": .., "sym": ..}, ...} in order.
std::string LayerConfigJson(const std::vector<LayerOverrideSpec>& overrides);

// One stdout line of the worker: a block event, the final "done", or
// something else (start, export, eval: not relayed).
struct WorkerLine {
  enum class Kind { kOther, kBlock, kDone };
  Kind kind = Kind::kOther;
  BlockProgress block;  // kBlock
};

// INVALID_ARGUMENT for a line that is not a JSON object with an "event".
absl::StatusOr<WorkerLine> ParseWorkerLine(const std::string& line);

}  // namespace signround::jobs
