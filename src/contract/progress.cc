#include "src/contract/progress.h"

#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/common/json_util.h"

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
  if (s.teq) {
    j["teq"] = {{"loss_rtn", s.teq->loss_rtn},
                {"loss", s.teq->loss},
                {"kept", s.teq->kept},
                {"units", s.teq->units}};
    if (s.teq->tuned) {
      j["teq"]["tuned_loss_without"] = s.teq->tuned->loss_without;
      j["teq"]["tuned_loss"] = s.teq->tuned->loss;
    }
  }
  return j;
}

absl::StatusOr<BlockStats> BlockStatsFromJson(const json& j, absl::string_view where) {
  // NaN losses arrive as null (JSON has no NaN).
  auto number = [&j](const char* key) {
    const json& v = j.at(key);
    return v.is_null() ? std::nan("") : v.get<double>();
  };
  // An integer that fits (a float such as 2e59 would overflow the conversion).
  auto integer = [&j, where](const char* key, int64_t lo, int64_t hi) -> absl::StatusOr<int64_t> {
    std::optional<int64_t> v = JsonToInt64(j.at(key));
    if (!v || *v < lo || *v > hi) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": '", key, "' must be an integer in [", lo, ", ", hi, "]"));
    }
    return *v;
  };
  auto counts = [&j, where](const char* key) -> absl::StatusOr<std::vector<int64_t>> {
    const json& list = j.at(key);
    if (!list.is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": '", key, "' must be a list"));
    }
    std::vector<int64_t> out;
    for (const json& e : list) {
      std::optional<int64_t> v = JsonToInt64(e);
      if (!v || *v < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": '", key, "' must hold non-negative integers"));
      }
      out.push_back(*v);
    }
    return out;
  };
  constexpr int64_t kIntMin = std::numeric_limits<int>::min();
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  BlockStats s;
  try {
    absl::StatusOr<int64_t> index =
        integer("index", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
    if (!index.ok()) return index.status();
    s.index = *index;
    absl::StatusOr<int64_t> layers = integer("layers_quantized", kIntMin, kIntMax);
    if (!layers.ok()) return layers.status();
    s.layers_quantized = static_cast<int>(*layers);
    s.loss_iter0 = number("loss_iter0");
    s.loss_best = number("loss_best");
    absl::StatusOr<int64_t> best_iter = integer("best_iter", kIntMin, kIntMax);
    if (!best_iter.ok()) return best_iter.status();
    s.best_iter = static_cast<int>(*best_iter);
    s.seconds = number("seconds");
    if (j.contains("expert_tokens")) {
      absl::StatusOr<std::vector<int64_t>> tokens = counts("expert_tokens");
      if (!tokens.ok()) return tokens.status();
      absl::StatusOr<std::vector<int64_t>> rounded = counts("rounded_experts");
      if (!rounded.ok()) return rounded.status();
      s.expert_tokens = *std::move(tokens);
      s.rounded_experts = *std::move(rounded);
    }
    if (j.contains("teq")) {
      const json& t = j.at("teq");
      // "units" is absent in what earlier versions wrote.
      if (!t.is_object() || !t.at("kept").is_boolean() ||
          (t.contains("units") && !t.at("units").is_array())) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": 'teq' must be {\"loss_rtn\", \"loss\", \"kept\", \"units\"}"));
      }
      auto loss = [&t](const char* key) {
        const json& v = t.at(key);
        return v.is_null() ? std::nan("") : v.get<double>();
      };
      s.teq = BlockStats::Teq{loss("loss_rtn"),
                              loss("loss"),
                              t.at("kept").get<bool>(),
                              t.value("units", std::vector<std::string>{}),
                              {}};
      if (t.contains("tuned_loss")) {
        s.teq->tuned = BlockStats::Teq::Tuned{loss("tuned_loss_without"), loss("tuned_loss")};
      }
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
    std::optional<int64_t> count = JsonToInt64(j.at("block_count"));
    if (!count)
      return absl::InvalidArgumentError("worker block event: 'block_count' must be an integer");
    e.block.block_count = *count;
    e.block.resumed = j.value("resumed", false);
    if (j.contains("calibrated")) e.detail = {{"calibrated", j["calibrated"].get<bool>()}};
  } catch (const json::exception& ex) {
    return absl::InvalidArgumentError(absl::StrCat("worker block event: ", ex.what()));
  }
  return e;
}

}  // namespace signround::contract
