// The command line of one job attempt's engine process
// (`signround-worker quantize --settings FILE ... --progress json`) and the
// reading of the progress events it prints (src/contract/progress.h).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "src/jobs/job.h"

namespace signround::jobs {

struct WorkerInputs {
  std::string worker_bin;     // absolute path of signround-worker
  std::string settings_path;  // the job's settings file (contract::SettingsFileText)
  std::string model_dir;      // local checkpoint directory
  std::string calib_path;     // local JSONL; empty: none (RTN)
  std::string model_name;     // the job's model URI (--model-name)
  std::string calib_name;     // the job's calibration URI (--calib-name)
  std::string out_dir;        // the attempt's output (and resume) directory
  std::string device;         // what the engine sees: "cpu" or "cuda:0"
  int threads = 0;            // 0: LibTorch's default
};

// argv (argv[0] = worker_bin): the inputs as flags, the settings as a file.
std::vector<std::string> WorkerArgv(const WorkerInputs& in);

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
