#include "src/attempts/worker_command.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace signround::jobs {

using nlohmann::json;

std::vector<std::string> WorkerArgv(const WorkerInputs& in, const EffectiveSettings& s) {
  std::vector<std::string> argv = {in.worker_bin, "quantize",   "--progress", "json",
                                   "--model",     in.model_dir, "--out",      in.out_dir};
  if (!in.calib_path.empty()) argv.insert(argv.end(), {"--calib", in.calib_path});
  auto add = [&argv](const char* flag, const std::string& value) {
    argv.push_back(flag);
    argv.push_back(value);
  };
  // Settings name the inputs by URI, so any worker can resume another's blocks.
  if (!in.model_name.empty()) add("--model-name", in.model_name);
  if (!in.calib_path.empty() && !in.calib_name.empty()) add("--calib-name", in.calib_name);
  add("--recipe", s.recipe);
  add("--format", absl::StrJoin(s.formats, ","));
  add("--bits", absl::StrCat(s.bits));
  add("--group-size", absl::StrCat(s.group_size));
  argv.push_back(s.sym ? "--sym" : "--asym");
  add("--iters", absl::StrCat(s.iters));
  if (s.lr != 0) add("--lr", absl::StrCat(s.lr));
  if (s.minmax_lr != 0) add("--minmax-lr", absl::StrCat(s.minmax_lr));
  add("--nsamples", absl::StrCat(s.nsamples));
  add("--seqlen", absl::StrCat(s.seqlen));
  add("--batch-size", absl::StrCat(s.batch_size));
  add("--seed", absl::StrCat(s.seed));
  add("--device", in.device);
  // Only when asked for: the command line of a job without them stays as it was.
  if (s.allow_split_fused) argv.push_back("--allow-split-fused");
  if (s.allow_gguf_without_vocab) argv.push_back("--allow-gguf-without-vocab");
  if (s.packed_dtype != EffectiveSettings().packed_dtype) add("--packed-dtype", s.packed_dtype);
  if (!in.layer_config_path.empty()) add("--layer-config", in.layer_config_path);
  if (in.threads > 0) add("--threads", absl::StrCat(in.threads));
  return argv;
}

std::string LayerConfigJson(const std::vector<LayerOverrideSpec>& overrides) {
  // Ordered: later overrides win, so file order is meaning.
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  for (const LayerOverrideSpec& o : overrides) {
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    if (o.bits != 0) entry["bits"] = o.bits;
    if (o.group_size != 0) entry["group_size"] = o.group_size;
    if (o.sym) entry["sym"] = *o.sym;
    // A repeated pattern: the later entry wins, as it would in order.
    config.erase(o.pattern);
    config[o.pattern] = entry;
  }
  return config.dump();
}

absl::StatusOr<WorkerLine> ParseWorkerLine(const std::string& line) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("event") || !j["event"].is_string()) {
    return absl::InvalidArgumentError("worker output: not a JSON event line");
  }
  WorkerLine out;
  const std::string event = j["event"].get<std::string>();
  if (event == "done") out.kind = WorkerLine::Kind::kDone;
  if (event != "block") return out;
  // NaN losses arrive as null (JSON has no NaN).
  auto number = [&j](const char* key) {
    const json& v = j.at(key);
    return v.is_null() ? std::nan("") : v.get<double>();
  };
  try {
    BlockProgress& b = out.block;
    b.block_index = j.at("index").get<int>();
    b.block_count = j.at("block_count").get<int>();
    b.layers_quantized = j.at("layers_quantized").get<int>();
    b.loss_iter0 = number("loss_iter0");
    b.best_loss = number("loss_best");
    b.best_iteration = j.at("best_iter").get<int>();
    b.seconds = number("seconds");
    b.resumed = j.value("resumed", false);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("worker block event: ", e.what()));
  }
  out.kind = WorkerLine::Kind::kBlock;
  return out;
}

}  // namespace signround::jobs
