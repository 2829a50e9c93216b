#include "src/attempts/worker_command.h"

#include "absl/strings/str_cat.h"

namespace signround::jobs {

std::vector<std::string> WorkerArgv(const WorkerInputs& in) {
  std::vector<std::string> argv = {in.worker_bin, "quantize",   "--progress",
                                   "json",        "--settings", in.settings_path};
  auto add = [&argv](const char* flag, const std::string& value) {
    argv.push_back(flag);
    argv.push_back(value);
  };
  add("--model", in.model_dir);
  add("--out", in.out_dir);
  if (!in.calib_path.empty()) add("--calib", in.calib_path);
  // Settings name the inputs by URI, so any worker can resume another's blocks.
  if (!in.model_name.empty()) add("--model-name", in.model_name);
  if (!in.calib_path.empty() && !in.calib_name.empty()) add("--calib-name", in.calib_name);
  add("--device", in.device);
  if (in.threads > 0) add("--threads", absl::StrCat(in.threads));
  return argv;
}

absl::StatusOr<WorkerLine> ParseWorkerLine(const std::string& line) {
  absl::StatusOr<contract::ProgressEvent> event = contract::ParseProgressEventLine(line);
  if (!event.ok()) return event.status();
  WorkerLine out;
  if (event->kind == "done") out.kind = WorkerLine::Kind::kDone;
  if (event->kind == "block") {
    out.kind = WorkerLine::Kind::kBlock;
    out.block = event->block;
  }
  return out;
}

}  // namespace signround::jobs
