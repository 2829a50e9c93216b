#include "src/contract/settings.h"

#include <cmath>
#include <set>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"
#include "src/common/utf8.h"
#include "src/contract/auto_scheme.h"
#include "src/contract/export_formats.h"
#include "src/contract/recipe.h"

namespace signround::contract {
namespace {

using nlohmann::json;

// `status` with "<field>: " in front of its message.
absl::Status InField(absl::string_view field, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(field, ": ", status.message()));
}

// A recorded (already resolved) settings field of the file, checked.
absl::Status ReadInt(const JsonFields& f, const char* key, int64_t lo, int64_t hi, int* out) {
  SR_ASSIGN_OR_RETURN(int64_t v, f.Int(key));
  if (v < lo || v > hi) return f.Error(key, absl::StrCat(v, " is outside ", lo, "..", hi));
  *out = static_cast<int>(v);
  return absl::OkStatus();
}

absl::Status ReadRate(const JsonFields& f, const char* key, double* out) {
  SR_ASSIGN_OR_RETURN(*out, f.Double(key));
  if (!std::isfinite(*out) || *out < 0) return f.Error(key, "must be a finite number >= 0");
  return absl::OkStatus();
}

absl::Status ReadBool(const JsonFields& f, const char* key, bool* out) {
  SR_ASSIGN_OR_RETURN(std::optional<bool> v, f.OptionalBool(key));
  if (!v) return f.Error(key, "is required");
  *out = *v;
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckPackedDtype(absl::string_view dtype) {
  if (dtype == "float16" || dtype == "bfloat16") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(QuoteUntrusted(dtype), " is not one of ", kPackedDtypeNames));
}

QuantScheme QuantizeSettings::scheme() const {
  QuantScheme s;
  s.bits = bits;
  s.group_size = group_size;
  s.sym = sym;
  // A k-quant mix's layers are its types (GgufFormatInfo::kquant; CheckFormatScheme
  // refuses other bits, group_size or sym with it).
  if (std::optional<GgufFormat> mix = KQuantMixOf(formats)) {
    s.data_type = GgufFormatOf(*mix).kquant;
  }
  return s;
}

json QuantizeSettings::ToJson() const {
  return {{"recipe", recipe},
          {"formats", formats},
          {"bits", bits},
          {"group_size", group_size},
          {"sym", sym},
          {"iters", iters},
          {"lr", lr},
          {"minmax_lr", minmax_lr},
          {"nsamples", nsamples},
          {"seqlen", seqlen},
          {"batch_size", batch_size},
          {"seed", seed},
          {"scale_search", scale_search},
          {"loss_filter", loss_filter},
          {"target_bits", target_bits},
          {"scheme_candidates", scheme_candidates},
          {"teq_iters", teq_iters},
          {"packed_dtype", packed_dtype},
          {"layer_overrides", LayerOverridesToJson(layer_overrides)}};
}

absl::StatusOr<QuantizeSettings> ResolveSettings(const QuantizeRequest& r) {
  QuantizeSettings s;
  s.recipe = r.recipe.empty() ? "default" : r.recipe;
  absl::StatusOr<Recipe> recipe = FindRecipe(s.recipe);
  if (!recipe.ok()) return InField("recipe", recipe.status());
  s.iters = recipe->iters;
  s.nsamples = recipe->nsamples;
  s.lr = recipe->lr;
  s.scale_search = recipe->scale_search;
  if (r.bits) s.bits = *r.bits;
  if (r.group_size) s.group_size = *r.group_size;
  if (r.sym) s.sym = *r.sym;
  if (r.iters) s.iters = *r.iters;
  if (r.lr) s.lr = *r.lr;
  if (r.minmax_lr) s.minmax_lr = *r.minmax_lr;
  if (r.nsamples) s.nsamples = *r.nsamples;
  if (r.seqlen) s.seqlen = *r.seqlen;
  if (r.batch_size) s.batch_size = *r.batch_size;
  if (r.seed) s.seed = *r.seed;
  if (r.scale_search) s.scale_search = *r.scale_search;
  if (r.loss_filter) s.loss_filter = *r.loss_filter;
  if (r.target_bits) s.target_bits = *r.target_bits;
  if (r.teq_iters) s.teq_iters = *r.teq_iters;
  // Canonical names where they parse (CheckAutoScheme reports the others).
  for (const std::string& name : r.scheme_candidates) {
    absl::StatusOr<SchemeCandidate> c = ParseSchemeCandidate(name);
    s.scheme_candidates.push_back(c.ok() ? SchemeCandidateName(*c) : name);
  }
  if (!r.formats.empty()) s.formats.clear();
  for (size_t i = 0; i < r.formats.size(); ++i) {
    const std::string field = absl::StrCat("formats[", i, "]");
    absl::StatusOr<ExportFormat> f = FindExportFormat(absl::AsciiStrToLower(r.formats[i]));
    if (!f.ok()) return InField(field, f.status());
    if (absl::c_linear_search(s.formats, f->name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", QuoteUntrusted(f->name), " is listed twice"));
    }
    s.formats.push_back(f->name);
  }
  // A k-quant mix's base type fixes what the request leaves unset.
  if (std::optional<GgufFormat> mix = KQuantMixOf(s.formats)) {
    const QuantScheme base = GgufScheme(*mix);
    if (!r.bits) s.bits = base.bits;
    if (!r.group_size) s.group_size = base.group_size;
    if (!r.sym) s.sym = base.sym;
  }
  if (s.target_bits > 0 && s.scheme_candidates.empty()) {
    s.scheme_candidates = DefaultSchemeCandidates(s.group_size);
  }
  // SignRoundV2's scale search and loss filter where the recipe has them (Recipe::v2_max_bits):
  // a tuned, uniform, symmetric integer job.
  const bool v2 = s.iters > 0 && s.bits >= 2 && s.bits <= recipe->v2_max_bits && s.sym &&
                  s.target_bits == 0 && !KQuantMixOf(s.formats);
  if (v2 && !r.scale_search) s.scale_search = true;
  if (v2 && !r.loss_filter) s.loss_filter = true;
  s.packed_dtype = r.packed_dtype.empty() ? "float16" : absl::AsciiStrToLower(r.packed_dtype);
  if (!CheckPackedDtype(s.packed_dtype).ok()) {
    return absl::InvalidArgumentError(absl::StrCat("packed_dtype: ", QuoteUntrusted(r.packed_dtype),
                                                   " is not float16 or bfloat16 (\"\": float16)"));
  }
  s.layer_overrides = r.layer_overrides;
  s.allow_split_fused = r.allow_split_fused;
  s.allow_gguf_without_vocab = r.allow_gguf_without_vocab;
  return s;
}

std::string SettingsFileText(const QuantizeSettings& s) {
  json j = s.ToJson();
  j["version"] = kSettingsFileVersion;
  j["allow_split_fused"] = s.allow_split_fused;
  j["allow_gguf_without_vocab"] = s.allow_gguf_without_vocab;
  return j.dump(2) + "\n";
}

absl::StatusOr<QuantizeSettings> ParseSettingsFile(absl::string_view text,
                                                   absl::string_view where) {
  SR_ASSIGN_OR_RETURN(json j, ParseJsonObject(text, where));
  JsonFields f(j, std::string(where));
  SR_ASSIGN_OR_RETURN(int64_t version, f.Int("version"));
  if (version != kSettingsFileVersion) {
    return f.Error("version", absl::StrCat(version, " is not ", kSettingsFileVersion,
                                           " (written by another version of signround)"));
  }
  static const std::set<std::string> kKeys = {"version",
                                              "recipe",
                                              "formats",
                                              "bits",
                                              "group_size",
                                              "sym",
                                              "iters",
                                              "lr",
                                              "minmax_lr",
                                              "nsamples",
                                              "seqlen",
                                              "batch_size",
                                              "seed",
                                              "scale_search",
                                              "loss_filter",
                                              "target_bits",
                                              "scheme_candidates",
                                              "teq_iters",
                                              "packed_dtype",
                                              "layer_overrides",
                                              "allow_split_fused",
                                              "allow_gguf_without_vocab"};
  for (const auto& [key, unused] : j.items()) {
    if (!kKeys.count(key)) return f.Error(key, "is not a setting");
  }
  QuantizeSettings s;
  SR_ASSIGN_OR_RETURN(s.recipe, f.String("recipe"));
  if (absl::Status st = FindRecipe(s.recipe).status(); !st.ok())
    return f.Error("recipe", st.message());
  SR_ASSIGN_OR_RETURN(s.formats, f.OptionalStringList("formats"));
  if (s.formats.empty()) return f.Error("formats", "must list at least one format");
  std::set<std::string> seen;
  for (const std::string& name : s.formats) {
    if (absl::Status st = FindExportFormat(name).status(); !st.ok()) {
      return f.Error("formats", st.message());
    }
    if (!seen.insert(name).second) {
      return f.Error("formats", absl::StrCat(QuoteUntrusted(name), " is listed twice"));
    }
  }
  SR_RETURN_IF_ERROR(ReadInt(f, "bits", 0, 64, &s.bits));
  SR_RETURN_IF_ERROR(ReadInt(f, "group_size", -1, 1 << 24, &s.group_size));
  SR_RETURN_IF_ERROR(ReadBool(f, "sym", &s.sym));
  SR_RETURN_IF_ERROR(ReadInt(f, "iters", 0, 1 << 30, &s.iters));
  SR_RETURN_IF_ERROR(ReadRate(f, "lr", &s.lr));
  SR_RETURN_IF_ERROR(ReadRate(f, "minmax_lr", &s.minmax_lr));
  SR_RETURN_IF_ERROR(ReadInt(f, "nsamples", 1, 1 << 30, &s.nsamples));
  SR_RETURN_IF_ERROR(ReadInt(f, "seqlen", 2, 1 << 30, &s.seqlen));
  SR_RETURN_IF_ERROR(ReadInt(f, "batch_size", 1, 1 << 30, &s.batch_size));
  const json* seed = f.Get("seed");
  if (seed == nullptr || !seed->is_number_unsigned()) {
    return f.Error("seed", "must be an unsigned 64-bit integer");
  }
  s.seed = seed->get<uint64_t>();
  SR_RETURN_IF_ERROR(ReadBool(f, "scale_search", &s.scale_search));
  SR_RETURN_IF_ERROR(ReadBool(f, "loss_filter", &s.loss_filter));
  SR_RETURN_IF_ERROR(ReadRate(f, "target_bits", &s.target_bits));
  if (f.Get("scheme_candidates") == nullptr) return f.Error("scheme_candidates", "is required");
  SR_ASSIGN_OR_RETURN(s.scheme_candidates, f.OptionalStringList("scheme_candidates"));
  for (const std::string& name : s.scheme_candidates) {
    absl::StatusOr<SchemeCandidate> c = ParseSchemeCandidate(name);
    if (!c.ok()) return f.Error("scheme_candidates", c.status().message());
    if (SchemeCandidateName(*c) != name) {
      return f.Error("scheme_candidates", absl::StrCat(QuoteUntrusted(name), " is not written ",
                                                       SchemeCandidateName(*c)));
    }
  }
  SR_RETURN_IF_ERROR(ReadInt(f, "teq_iters", 0, kMaxTeqIters, &s.teq_iters));
  SR_ASSIGN_OR_RETURN(s.packed_dtype, f.String("packed_dtype"));
  if (absl::Status st = CheckPackedDtype(s.packed_dtype); !st.ok()) {
    return f.Error("packed_dtype", st.message());
  }
  const json* overrides = f.Get("layer_overrides");
  if (overrides == nullptr) return f.Error("layer_overrides", "is required");
  const std::string overrides_where = absl::StrCat(where, ": layer_overrides");
  SR_ASSIGN_OR_RETURN(s.layer_overrides, LayerOverridesFromJson(*overrides, overrides_where));
  SR_RETURN_IF_ERROR(CheckLayerOverridePatterns(s.layer_overrides, overrides_where));
  SR_RETURN_IF_ERROR(ReadBool(f, "allow_split_fused", &s.allow_split_fused));
  SR_RETURN_IF_ERROR(ReadBool(f, "allow_gguf_without_vocab", &s.allow_gguf_without_vocab));
  return s;
}

}  // namespace signround::contract
