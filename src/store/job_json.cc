#include "src/store/job_json.h"

#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"

namespace signround::jobs {
namespace {

using nlohmann::json;

json DoubleToJson(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return v;
}

std::string Describe(const json& v) {
  if (!v.is_primitive()) return v.type_name();
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 40) text = text.substr(0, 40) + "...";
  return absl::StrCat(v.type_name(), " ", text);
}

// Typed reads of one stored object. An absent or null key leaves the
// default; a present one must have the right type and range.
class Fields {
 public:
  static absl::StatusOr<Fields> Of(const json& obj, absl::string_view where) {
    if (!obj.is_object()) {
      return absl::DataLossError(
          absl::StrCat(where, ": expected a JSON object, got ", Describe(obj)));
    }
    return Fields(obj, std::string(where));
  }

  absl::Status Error(absl::string_view key, absl::string_view what) const {
    return absl::DataLossError(absl::StrCat(where_, ": key '", key, "' ", what));
  }
  absl::Status WrongType(absl::string_view key, absl::string_view expected, const json& got) const {
    return Error(key, absl::StrCat("must be ", expected, ", got ", Describe(got)));
  }

  const json* Find(absl::string_view key) const {
    auto it = obj_.find(std::string(key));
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }

  absl::Status Str(absl::string_view key, std::string* out) const {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_string()) return WrongType(key, "a string", *v);
    *out = v->get<std::string>();
    return absl::OkStatus();
  }

  absl::Status Int64(absl::string_view key, int64_t* out, int64_t lo, int64_t hi) const {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    bool fits = false;
    if (v->is_number_unsigned()) {
      fits = v->get<uint64_t>() <= static_cast<uint64_t>(hi);
    } else if (v->is_number_integer()) {
      fits = v->get<int64_t>() >= lo && v->get<int64_t>() <= hi;
    } else {
      return WrongType(key, "an integer", *v);
    }
    if (!fits) return Error(key, absl::StrCat("is out of range [", lo, ", ", hi, "]"));
    *out = v->is_number_unsigned() ? static_cast<int64_t>(v->get<uint64_t>()) : v->get<int64_t>();
    return absl::OkStatus();
  }

  absl::Status Int(absl::string_view key, int* out) const {
    int64_t wide = *out;
    SR_RETURN_IF_ERROR(
        Int64(key, &wide, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
    *out = static_cast<int>(wide);
    return absl::OkStatus();
  }

  absl::Status OptInt(absl::string_view key, std::optional<int>* out) const {
    if (Find(key) == nullptr) return absl::OkStatus();
    int value = 0;
    SR_RETURN_IF_ERROR(Int(key, &value));
    *out = value;
    return absl::OkStatus();
  }

  absl::Status OptUint64(absl::string_view key, std::optional<uint64_t>* out) const {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (v->is_number_unsigned()) {
      *out = v->get<uint64_t>();
    } else if (v->is_number_integer() && v->get<int64_t>() >= 0) {
      *out = static_cast<uint64_t>(v->get<int64_t>());
    } else {
      return WrongType(key, "an unsigned integer", *v);
    }
    return absl::OkStatus();
  }

  absl::Status Double(absl::string_view key, double* out) const {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (v->is_number()) {
      *out = v->get<double>();
    } else if (*v == "NaN") {
      *out = std::numeric_limits<double>::quiet_NaN();
    } else if (*v == "Infinity" || *v == "-Infinity") {
      *out = *v == "Infinity" ? std::numeric_limits<double>::infinity()
                              : -std::numeric_limits<double>::infinity();
    } else {
      return WrongType(key, "a number", *v);
    }
    return absl::OkStatus();
  }

  // A list of non-negative integers.
  absl::Status Counts(absl::string_view key, std::vector<int64_t>* out) const {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_array()) return WrongType(key, "a list of counts", *v);
    out->clear();
    for (const json& e : *v) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0) {
        return WrongType(key, "a list of counts", *v);
      }
      out->push_back(e.get<int64_t>());
    }
    return absl::OkStatus();
  }

  absl::Status Bool(absl::string_view key, bool* out) const {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_boolean()) return WrongType(key, "true or false", *v);
    *out = v->get<bool>();
    return absl::OkStatus();
  }

  absl::Status OptBool(absl::string_view key, std::optional<bool>* out) const {
    if (Find(key) == nullptr) return absl::OkStatus();
    bool value = false;
    SR_RETURN_IF_ERROR(Bool(key, &value));
    *out = value;
    return absl::OkStatus();
  }

  absl::Status StrList(absl::string_view key, std::vector<std::string>* out) const {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_array()) return WrongType(key, "a list of strings", *v);
    for (size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string()) {
        return WrongType(absl::StrCat(key, "[", i, "]"), "a string", (*v)[i]);
      }
      out->push_back((*v)[i].get<std::string>());
    }
    return absl::OkStatus();
  }

  absl::Status StrMap(absl::string_view key, std::map<std::string, std::string>* out) const {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_object()) return WrongType(key, "an object of strings", *v);
    for (const auto& [k, value] : v->items()) {
      if (!value.is_string()) return WrongType(absl::StrCat(key, ".", k), "a string", value);
      (*out)[k] = value.get<std::string>();
    }
    return absl::OkStatus();
  }

  absl::Status State(absl::string_view key, JobState* out) const {
    const json* v = Find(key);
    if (v == nullptr) return Error(key, "is missing");
    if (!v->is_string()) return WrongType(key, "a job state name", *v);
    const std::string name = v->get<std::string>();
    if (name == JobStateName(JobState::kUnspecified)) {
      *out = JobState::kUnspecified;
      return absl::OkStatus();
    }
    std::optional<JobState> state = ParseJobState(name);
    if (!state) return WrongType(key, "a job state name", *v);
    *out = *state;
    return absl::OkStatus();
  }

  const std::string& where() const { return where_; }

 private:
  Fields(const json& obj, std::string where) : obj_(obj), where_(std::move(where)) {}
  const json& obj_;
  std::string where_;
};

// The contract's one shape; rows stored before it wrote 0 for an unset bits or
// group_size, which reads as unset.
absl::Status ReadLayerOverrides(const Fields& f, std::vector<contract::LayerOverride>* out) {
  const json* list = f.Find("layer_overrides");
  if (list == nullptr) return absl::OkStatus();
  json entries = *list;
  for (json& e : entries) {
    for (const char* key : {"bits", "group_size"}) {
      if (e.is_object() && e.contains(key) && e[key] == 0) e.erase(key);
    }
  }
  SR_ASSIGN_OR_RETURN(*out, contract::LayerOverridesFromJson(
                                entries, absl::StrCat(f.where(), ": layer_overrides")));
  return absl::OkStatus();
}

}  // namespace

json JobSpecToJson(const JobSpec& spec) {
  json j = {{"model_uri", spec.model_uri},
            {"calibration_uri", spec.calibration_uri},
            {"output_uri", spec.output_uri},
            {"formats", spec.formats},
            {"bits", spec.bits},
            {"group_size", spec.group_size},
            {"lr", DoubleToJson(spec.lr)},
            {"minmax_lr", DoubleToJson(spec.minmax_lr)},
            {"nsamples", spec.nsamples},
            {"seqlen", spec.seqlen},
            {"batch_size", spec.batch_size},
            {"recipe", spec.recipe},
            {"device", spec.device},
            {"priority", spec.priority},
            {"labels", spec.labels},
            {"idempotency_key", spec.idempotency_key},
            {"allow_split_fused", spec.allow_split_fused},
            {"allow_gguf_without_vocab", spec.allow_gguf_without_vocab},
            {"packed_dtype", spec.packed_dtype},
            {"target_bits", DoubleToJson(spec.target_bits)},
            {"scheme_candidates", spec.scheme_candidates},
            {"teq_iters", spec.teq_iters}};
  if (spec.sym) j["sym"] = *spec.sym;
  if (spec.iters) j["iters"] = *spec.iters;
  if (spec.seed) j["seed"] = *spec.seed;
  if (spec.scale_search) j["scale_search"] = *spec.scale_search;
  if (spec.loss_filter) j["loss_filter"] = *spec.loss_filter;
  j["layer_overrides"] = contract::LayerOverridesToJson(spec.layer_overrides);
  return j;
}

absl::StatusOr<JobSpec> JobSpecFromJson(const json& j, absl::string_view where) {
  SR_ASSIGN_OR_RETURN(Fields f, Fields::Of(j, where));
  JobSpec s;
  SR_RETURN_IF_ERROR(f.Str("model_uri", &s.model_uri));
  SR_RETURN_IF_ERROR(f.Str("calibration_uri", &s.calibration_uri));
  SR_RETURN_IF_ERROR(f.Str("output_uri", &s.output_uri));
  SR_RETURN_IF_ERROR(f.StrList("formats", &s.formats));
  SR_RETURN_IF_ERROR(f.Int("bits", &s.bits));
  SR_RETURN_IF_ERROR(f.Int("group_size", &s.group_size));
  SR_RETURN_IF_ERROR(f.OptBool("sym", &s.sym));
  SR_RETURN_IF_ERROR(f.OptInt("iters", &s.iters));
  SR_RETURN_IF_ERROR(f.Double("lr", &s.lr));
  SR_RETURN_IF_ERROR(f.Double("minmax_lr", &s.minmax_lr));
  SR_RETURN_IF_ERROR(f.Int("nsamples", &s.nsamples));
  SR_RETURN_IF_ERROR(f.Int("seqlen", &s.seqlen));
  SR_RETURN_IF_ERROR(f.Int("batch_size", &s.batch_size));
  SR_RETURN_IF_ERROR(f.OptUint64("seed", &s.seed));
  SR_RETURN_IF_ERROR(f.OptBool("scale_search", &s.scale_search));
  SR_RETURN_IF_ERROR(f.OptBool("loss_filter", &s.loss_filter));
  SR_RETURN_IF_ERROR(f.Str("recipe", &s.recipe));
  SR_RETURN_IF_ERROR(ReadLayerOverrides(f, &s.layer_overrides));
  SR_RETURN_IF_ERROR(f.Str("device", &s.device));
  SR_RETURN_IF_ERROR(f.Int("priority", &s.priority));
  SR_RETURN_IF_ERROR(f.StrMap("labels", &s.labels));
  SR_RETURN_IF_ERROR(f.Str("idempotency_key", &s.idempotency_key));
  // Absent in rows stored before these keys existed: the defaults.
  SR_RETURN_IF_ERROR(f.Bool("allow_split_fused", &s.allow_split_fused));
  SR_RETURN_IF_ERROR(f.Bool("allow_gguf_without_vocab", &s.allow_gguf_without_vocab));
  SR_RETURN_IF_ERROR(f.Str("packed_dtype", &s.packed_dtype));
  SR_RETURN_IF_ERROR(f.Double("target_bits", &s.target_bits));
  SR_RETURN_IF_ERROR(f.StrList("scheme_candidates", &s.scheme_candidates));
  SR_RETURN_IF_ERROR(f.Int("teq_iters", &s.teq_iters));
  return s;
}

json ArtifactToJson(const Artifact& a) {
  return {{"format", a.format}, {"uri", a.uri}, {"bytes", a.bytes}, {"sha256", a.sha256}};
}

absl::StatusOr<Artifact> ArtifactFromJson(const json& j, absl::string_view where) {
  SR_ASSIGN_OR_RETURN(Fields f, Fields::Of(j, where));
  Artifact a;
  SR_RETURN_IF_ERROR(f.Str("format", &a.format));
  SR_RETURN_IF_ERROR(f.Str("uri", &a.uri));
  SR_RETURN_IF_ERROR(f.Int64("bytes", &a.bytes, 0, std::numeric_limits<int64_t>::max()));
  SR_RETURN_IF_ERROR(f.Str("sha256", &a.sha256));
  return a;
}

json ArtifactListToJson(const std::vector<Artifact>& artifacts) {
  json list = json::array();
  for (const Artifact& a : artifacts) list.push_back(ArtifactToJson(a));
  return list;
}

absl::StatusOr<std::vector<Artifact>> ArtifactListFromJson(const json& j, absl::string_view where) {
  if (!j.is_array()) {
    return absl::DataLossError(absl::StrCat(where, ": expected a JSON list, got ", Describe(j)));
  }
  std::vector<Artifact> out;
  for (size_t i = 0; i < j.size(); ++i) {
    SR_ASSIGN_OR_RETURN(Artifact a, ArtifactFromJson(j[i], absl::StrCat(where, "[", i, "]")));
    out.push_back(std::move(a));
  }
  return out;
}

absl::string_view EventKind(const EventPayload& payload) {
  switch (payload.index()) {
    case 0:
      return "state_change";
    case 1:
      return "block_progress";
    case 2:
      return "artifact";
    default:
      return "error";
  }
}

json EventPayloadToJson(const EventPayload& payload) {
  if (const auto* c = std::get_if<StateChange>(&payload)) {
    return {{"from", JobStateName(c->from)}, {"to", JobStateName(c->to)}, {"reason", c->reason}};
  }
  if (const auto* p = std::get_if<BlockProgress>(&payload)) {
    // The stored keys (rows outlive versions): block_index, best_loss, best_iteration.
    const contract::BlockStats& b = p->stats;
    json out = {{"block_index", b.index},
                {"block_count", p->block_count},
                {"layers_quantized", b.layers_quantized},
                {"loss_iter0", DoubleToJson(b.loss_iter0)},
                {"best_loss", DoubleToJson(b.loss_best)},
                {"best_iteration", b.best_iter},
                {"seconds", DoubleToJson(b.seconds)},
                {"resumed", p->resumed}};
    if (!b.expert_tokens.empty()) {
      out["expert_tokens"] = b.expert_tokens;
      out["rounded_experts"] = b.rounded_experts;
    }
    return out;
  }
  if (const auto* a = std::get_if<Artifact>(&payload)) return ArtifactToJson(*a);
  const auto& e = std::get<JobError>(payload);
  return {{"message", e.message}, {"will_retry", e.will_retry}};
}

absl::StatusOr<EventPayload> EventPayloadFromJson(absl::string_view kind, const json& j,
                                                  absl::string_view where) {
  if (kind == "artifact") {
    SR_ASSIGN_OR_RETURN(Artifact a, ArtifactFromJson(j, where));
    return EventPayload(std::move(a));
  }
  SR_ASSIGN_OR_RETURN(Fields f, Fields::Of(j, where));
  if (kind == "state_change") {
    StateChange c;
    SR_RETURN_IF_ERROR(f.State("from", &c.from));
    SR_RETURN_IF_ERROR(f.State("to", &c.to));
    SR_RETURN_IF_ERROR(f.Str("reason", &c.reason));
    return EventPayload(std::move(c));
  }
  if (kind == "block_progress") {
    BlockProgress p;
    contract::BlockStats& b = p.stats;
    constexpr int64_t kMaxInt = std::numeric_limits<int>::max();
    SR_RETURN_IF_ERROR(f.Int64("block_index", &b.index, std::numeric_limits<int>::min(), kMaxInt));
    SR_RETURN_IF_ERROR(
        f.Int64("block_count", &p.block_count, std::numeric_limits<int>::min(), kMaxInt));
    SR_RETURN_IF_ERROR(f.Int("layers_quantized", &b.layers_quantized));
    SR_RETURN_IF_ERROR(f.Double("loss_iter0", &b.loss_iter0));
    SR_RETURN_IF_ERROR(f.Double("best_loss", &b.loss_best));
    SR_RETURN_IF_ERROR(f.Int("best_iteration", &b.best_iter));
    SR_RETURN_IF_ERROR(f.Double("seconds", &b.seconds));
    SR_RETURN_IF_ERROR(f.Bool("resumed", &p.resumed));
    SR_RETURN_IF_ERROR(f.Counts("expert_tokens", &b.expert_tokens));
    SR_RETURN_IF_ERROR(f.Counts("rounded_experts", &b.rounded_experts));
    return EventPayload(p);
  }
  if (kind == "error") {
    JobError e;
    SR_RETURN_IF_ERROR(f.Str("message", &e.message));
    SR_RETURN_IF_ERROR(f.Bool("will_retry", &e.will_retry));
    return EventPayload(std::move(e));
  }
  return absl::DataLossError(absl::StrCat(where, ": unknown event kind '", kind, "'"));
}

absl::StatusOr<std::string> DumpJson(const json& j, absl::string_view where) {
  try {
    return j.dump();
  } catch (const json::exception&) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": a string is not valid UTF-8"));
  }
}

absl::StatusOr<json> ParseStoredJson(absl::string_view text, absl::string_view where) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::DataLossError(absl::StrCat(where, ": stored text is not valid JSON"));
  }
  return j;
}

}  // namespace signround::jobs
