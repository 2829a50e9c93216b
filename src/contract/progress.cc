#include "src/contract/progress.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace signround::contract {

using nlohmann::json;

json BlockStatsToJson(const BlockStats& s) {
  json j = {{"index", s.index},           {"layers_quantized", s.layers_quantized},
            {"loss_iter0", s.loss_iter0}, {"loss_best", s.loss_best},
            {"best_iter", s.best_iter},   {"seconds", s.seconds}};
  if (!s.expert_tokens.empty()) {
    j["expert_tokens"] = s.expert_tokens;
    j["rounded_experts"] = s.rounded_experts;
  }
  return j;
}

absl::StatusOr<BlockStats> BlockStatsFromJson(const json& j, absl::string_view where) {
  // NaN losses arrive as null (JSON has no NaN).
  auto number = [&j](const char* key) {
    const json& v = j.at(key);
    return v.is_null() ? std::nan("") : v.get<double>();
  };
  BlockStats s;
  try {
    s.index = j.at("index").get<int64_t>();
    s.layers_quantized = j.at("layers_quantized").get<int>();
    s.loss_iter0 = number("loss_iter0");
    s.loss_best = number("loss_best");
    s.best_iter = j.at("best_iter").get<int>();
    s.seconds = number("seconds");
    if (j.contains("expert_tokens")) {
      s.expert_tokens = j.at("expert_tokens").get<std::vector<int64_t>>();
      s.rounded_experts = j.at("rounded_experts").get<std::vector<int64_t>>();
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", e.what()));
  }
  return s;
}

std::string ProgressEventLine(const ProgressEvent& e) {
  json j = {{"event", e.kind}, {"block_count", e.block.block_count}};
  if (e.kind == "block") {
    j.update(BlockStatsToJson(e.block.stats));
    j["resumed"] = e.block.resumed;
    if (e.detail.is_object()) j.update(e.detail);  // "calibrated"
  } else if (!e.detail.is_null()) {
    j["detail"] = e.detail;
  }
  return j.dump();
}

absl::StatusOr<ProgressEvent> ParseProgressEventLine(absl::string_view line) {
  json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("event") || !j["event"].is_string()) {
    return absl::InvalidArgumentError("worker output: not a JSON event line");
  }
  ProgressEvent e;
  e.kind = j["event"].get<std::string>();
  if (e.kind != "block") {
    const json count = j.value("block_count", json());
    if (count.is_number_integer()) e.block.block_count = count.get<int64_t>();
    if (j.contains("detail")) e.detail = j["detail"];
    return e;
  }
  absl::StatusOr<BlockStats> stats = BlockStatsFromJson(j, "worker block event");
  if (!stats.ok()) return stats.status();
  e.block.stats = *stats;
  try {
    e.block.block_count = j.at("block_count").get<int64_t>();
    e.block.resumed = j.value("resumed", false);
    if (j.contains("calibrated")) e.detail = {{"calibrated", j["calibrated"].get<bool>()}};
  } catch (const json::exception& ex) {
    return absl::InvalidArgumentError(absl::StrCat("worker block event: ", ex.what()));
  }
  return e;
}

}  // namespace signround::contract
