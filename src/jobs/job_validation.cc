#include "src/jobs/job_validation.h"

#include <cmath>
#include <regex>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/common/status_macros.h"
#include "src/common/utf8.h"
#include "src/contract/auto_scheme.h"
#include "src/contract/export_formats.h"
#include "src/storage/storage_uri.h"

namespace signround::jobs {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

bool IsValidUtf8(absl::string_view s) { return FirstInvalidUtf8Offset(s) < 0; }

bool HasControl(absl::string_view s) {
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

absl::Status CheckUri(absl::string_view field, const std::string& uri) {
  if (uri.empty()) return Invalid(field, "required (file:///abs/path or s3://bucket/key)");
  absl::StatusOr<StorageUri> parsed = ParseStorageUri(uri);
  if (!parsed.ok()) return Invalid(field, parsed.status().message());
  return absl::OkStatus();
}

absl::Status CheckGroupSize(absl::string_view field, int g, bool zero_ok) {
  if ((g == 0 && zero_ok) || contract::IsRequestGroupSize(g)) {
    return absl::OkStatus();
  }
  return Invalid(field, absl::StrCat(g, " is not -1 or a power of two from 32 to 65536"));
}

absl::Status CheckRange(absl::string_view field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) return Invalid(field, absl::StrCat(v, " is outside ", lo, "..", hi));
  return absl::OkStatus();
}

absl::Status CheckRate(absl::string_view field, double v) {
  if (!std::isfinite(v) || v < 0 || v > 1) {
    return Invalid(field, absl::StrCat(v, " is not a finite number in [0, 1] (0: default)"));
  }
  return absl::OkStatus();
}

// GGUF tunes the layers a float_min block type holds (Q4_1) with a real-valued
// minimum per group, which the packed formats' integer zero points cannot hold (the
// worker refuses the same, layer by layer, before tuning).
absl::Status CheckFormatsTogether(const EffectiveSettings& s) {
  if (std::optional<contract::GgufFormat> mix = contract::KQuantMixOf(s.formats)) {
    const std::string name = contract::GgufFormatOf(*mix).name;
    for (size_t i = 0; i < s.formats.size(); ++i) {
      if (s.formats[i] == "fake" || s.formats[i] == name) continue;
      return Invalid(absl::StrCat("spec.formats[", i, "]"),
                     absl::StrCat(s.formats[i], " cannot be written with ", name,
                                  " in one job: the k-quant mix gives each layer llama.cpp's type "
                                  "for it (Q4_K, Q6_K, ...), which no other format holds; submit "
                                  "them as separate jobs"));
    }
    if (!s.layer_overrides.empty()) {
      return Invalid(
          "spec.layer_overrides",
          absl::StrCat("are not supported with ", name,
                       ": the mix chooses each layer's type as llama.cpp's preset does"));
    }
  }
  std::vector<contract::ExportFormat> formats;
  for (const std::string& name : s.formats) formats.push_back(*contract::FindExportFormat(name));
  if (!contract::UsesFloatMin(formats, s.scheme())) return absl::OkStatus();
  int gguf = -1;
  int packed = -1;
  for (size_t i = 0; i < formats.size(); ++i) {
    if (gguf < 0 && formats[i].kind == contract::FormatKind::kGguf) gguf = static_cast<int>(i);
    if (packed < 0 && contract::HoldsOnlyIntegerZeros(formats[i].kind)) {
      packed = static_cast<int>(i);
    }
  }
  if (packed < 0) return absl::OkStatus();
  return Invalid(absl::StrCat("spec.formats[", packed, "]"),
                 absl::StrCat(s.formats[packed], " cannot be written with ", s.formats[gguf],
                              " in one job: GGUF stores 4-bit asym group-32 layers (Q4_1) with "
                              "a real-valued minimum per group, which integer zero points "
                              "cannot hold; submit them as separate jobs"));
}

absl::Status ValidateOverrides(const JobSpec& spec) {
  if (spec.layer_overrides.size() > static_cast<size_t>(kMaxLayerOverrides)) {
    return Invalid("spec.layer_overrides", absl::StrCat(spec.layer_overrides.size(),
                                                        " entries; at most ", kMaxLayerOverrides));
  }
  for (size_t i = 0; i < spec.layer_overrides.size(); ++i) {
    const contract::LayerOverride& o = spec.layer_overrides[i];
    const std::string field = absl::StrCat("spec.layer_overrides[", i, "]");
    SR_RETURN_IF_ERROR(ValidatePattern(field + ".pattern", o.pattern));
    if (o.bits && !contract::IsOverrideBits(*o.bits)) {
      return Invalid(field + ".bits", absl::StrCat(*o.bits, " is not one of ",
                                                   contract::SchemeBitsList(", ", true)));
    }
    if (o.group_size) {
      SR_RETURN_IF_ERROR(CheckGroupSize(field + ".group_size", *o.group_size, /*zero_ok=*/false));
    }
    if (!o.bits && !o.group_size && !o.sym) {
      return Invalid(field, "sets nothing: give bits, group_size or sym");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePlacement(const JobSpec& spec, const std::vector<std::string>& devices) {
  const std::string& d = spec.device;
  bool known = d.empty() || d == "any" || d == "cpu" || d == "cuda";
  int64_t index = 0;
  if (!known && absl::StartsWith(d, "cuda:")) {
    absl::string_view n = absl::string_view(d).substr(5);
    known = !n.empty() && n.size() <= 3 && absl::c_all_of(n, absl::ascii_isdigit) &&
            absl::SimpleAtoi(n, &index);
  }
  if (!known) {
    return Invalid("spec.device",
                   absl::StrCat(QuoteUntrusted(d), " is not any, cpu, cuda or cuda:N"));
  }
  // An API server without slots does not know its workers' devices.
  if (devices.empty()) return absl::OkStatus();
  for (const std::string& slot : devices) {
    if (DeviceAccepts(slot, d)) return absl::OkStatus();
  }
  return Invalid("spec.device",
                 absl::StrCat(QuoteUntrusted(d), " matches none of this server's devices (",
                              absl::StrJoin(devices, ", "), ")"));
}

absl::Status ValidateMeta(const JobSpec& spec) {
  SR_RETURN_IF_ERROR(CheckRange("spec.priority", spec.priority, -kMaxPriority, kMaxPriority));
  if (spec.labels.size() > static_cast<size_t>(kMaxLabels)) {
    return Invalid("spec.labels",
                   absl::StrCat(spec.labels.size(), " labels; at most ", kMaxLabels));
  }
  for (const auto& [key, value] : spec.labels) {
    SR_RETURN_IF_ERROR(ValidateLabel("spec.labels", key, value));
  }
  const std::string& k = spec.idempotency_key;
  if (k.size() > kMaxIdempotencyKeyBytes) {
    return Invalid("spec.idempotency_key",
                   absl::StrCat(k.size(), " bytes; at most ", kMaxIdempotencyKeyBytes));
  }
  for (char c : k) {
    if (c < 0x21 || c > 0x7e) {
      return Invalid("spec.idempotency_key", "must be printable ASCII without spaces");
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool DeviceAccepts(absl::string_view device, absl::string_view preference) {
  if (preference.empty() || preference == "any") return true;
  if (preference == "cuda") return absl::StartsWith(device, "cuda:");
  return device == preference;
}

absl::Status ValidateJobId(absl::string_view id, absl::string_view field) {
  bool ok = id.size() == 18 && absl::StartsWith(id, "j-");
  for (size_t i = 2; ok && i < id.size(); ++i) {
    ok = absl::ascii_isdigit(id[i]) || (id[i] >= 'a' && id[i] <= 'f');
  }
  if (!ok)
    return Invalid(field, absl::StrCat(QuoteUntrusted(id), " is not a job id (j-<16 hex digits>)"));
  return absl::OkStatus();
}

absl::Status ValidateLabel(absl::string_view field, const std::string& key,
                           const std::string& value) {
  static const std::regex kKey("[a-z0-9][a-z0-9._/-]{0,62}");
  const std::string where = absl::StrCat(field, "[", QuoteUntrusted(key), "]");
  if (!std::regex_match(key, kKey)) {
    return Invalid(where, "keys are 1-63 characters of a-z 0-9 . _ / -, starting with a-z or 0-9");
  }
  if (value.size() > kMaxLabelValueBytes || !IsValidUtf8(value) || HasControl(value)) {
    return Invalid(where,
                   absl::StrCat("values are valid UTF-8 without control characters, at most ",
                                kMaxLabelValueBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidatePattern(absl::string_view field, const std::string& pattern) {
  if (pattern.empty()) return Invalid(field, "required (a regex searched in layer names)");
  if (pattern.size() > kMaxPatternBytes || !IsValidUtf8(pattern) || HasControl(pattern)) {
    return Invalid(field, absl::StrCat("must be valid UTF-8 without control characters, at most ",
                                       kMaxPatternBytes, " bytes"));
  }
  try {
    std::regex re(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return Invalid(field,
                   absl::StrCat(QuoteUntrusted(pattern), " is not a valid regex: ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<EffectiveSettings> ResolveSettings(const JobSpec& spec) {
  // The spec's "unset" (0, empty, nullopt) becomes the request's nullopt.
  auto set = [](auto v) { return v != 0 ? std::make_optional(v) : std::nullopt; };
  contract::QuantizeRequest r;
  r.recipe = spec.recipe;
  r.formats = spec.formats;
  r.bits = set(spec.bits);
  r.group_size = set(spec.group_size);
  r.sym = spec.sym;
  r.iters = spec.iters;
  r.lr = set(spec.lr);
  r.minmax_lr = set(spec.minmax_lr);
  r.nsamples = set(spec.nsamples);
  r.seqlen = set(spec.seqlen);
  r.batch_size = set(spec.batch_size);
  r.seed = spec.seed;
  r.scale_search = spec.scale_search;
  r.loss_filter = spec.loss_filter;
  r.target_bits = set(spec.target_bits);
  r.scheme_candidates = spec.scheme_candidates;
  r.teq_iters = set(spec.teq_iters);
  r.packed_dtype = spec.packed_dtype;
  r.layer_overrides = spec.layer_overrides;
  r.allow_split_fused = spec.allow_split_fused;
  r.allow_gguf_without_vocab = spec.allow_gguf_without_vocab;
  absl::StatusOr<EffectiveSettings> s = contract::ResolveSettings(r);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("spec.", s.status().message()));
  return s;
}

absl::Status ValidateJobSpec(const JobSpec& spec, const std::vector<std::string>& devices) {
  SR_RETURN_IF_ERROR(CheckUri("spec.model_uri", spec.model_uri));
  SR_RETURN_IF_ERROR(CheckUri("spec.output_uri", spec.output_uri));
  if (spec.bits != 0 && !contract::IsSchemeBits(spec.bits)) {
    return Invalid("spec.bits",
                   absl::StrCat(spec.bits, " is not one of ", contract::SchemeBitsList(),
                                " (0: ", EffectiveSettings().bits, ")"));
  }
  SR_RETURN_IF_ERROR(CheckGroupSize("spec.group_size", spec.group_size, /*zero_ok=*/true));
  if (spec.iters) SR_RETURN_IF_ERROR(CheckRange("spec.iters", *spec.iters, 0, 100000));
  SR_RETURN_IF_ERROR(CheckRate("spec.lr", spec.lr));
  SR_RETURN_IF_ERROR(CheckRate("spec.minmax_lr", spec.minmax_lr));
  SR_RETURN_IF_ERROR(CheckRange("spec.nsamples", spec.nsamples, 0, 65536));
  SR_RETURN_IF_ERROR(CheckRange("spec.seqlen", spec.seqlen, 0, 131072));
  SR_RETURN_IF_ERROR(CheckRange("spec.batch_size", spec.batch_size, 0, 4096));
  SR_RETURN_IF_ERROR(CheckRange("spec.teq_iters", spec.teq_iters, 0, contract::kMaxTeqIters));
  if (spec.formats.size() > static_cast<size_t>(kMaxFormats)) {
    return Invalid("spec.formats",
                   absl::StrCat(spec.formats.size(), " formats; at most ", kMaxFormats));
  }
  if (spec.scheme_candidates.size() > static_cast<size_t>(contract::kMaxSchemeCandidates)) {
    return Invalid("spec.scheme_candidates",
                   absl::StrCat(spec.scheme_candidates.size(), " candidates; at most ",
                                contract::kMaxSchemeCandidates));
  }
  SR_ASSIGN_OR_RETURN(EffectiveSettings s, ResolveSettings(spec));
  for (size_t i = 0; i < s.formats.size(); ++i) {
    absl::Status st = contract::CheckFormatScheme(s.formats[i], s.scheme());
    if (!st.ok()) return Invalid(absl::StrCat("spec.formats[", i, "]"), st.message());
  }
  SR_RETURN_IF_ERROR(CheckFormatsTogether(s));
  if (absl::Status st = contract::CheckAutoScheme(s); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("spec.", st.message()));
  }
  if (spec.calibration_uri.empty()) {
    if (s.iters != 0) {
      return Invalid("spec.calibration_uri",
                     "required unless the job does no tuning (recipe RTN or iters 0)");
    }
    if (s.scale_search) {
      return Invalid("spec.calibration_uri",
                     "required by the scale search (scale_search, recipe OPT_RTN)");
    }
    if (s.target_bits > 0) {
      return Invalid("spec.calibration_uri", "required by mixed bits (target_bits)");
    }
    if (s.teq_iters > 0) {
      return Invalid("spec.calibration_uri", "required by TEQ (teq_iters)");
    }
  } else {
    SR_RETURN_IF_ERROR(CheckUri("spec.calibration_uri", spec.calibration_uri));
  }
  SR_RETURN_IF_ERROR(ValidateOverrides(spec));
  SR_RETURN_IF_ERROR(ValidatePlacement(spec, devices));
  return ValidateMeta(spec);
}

}  // namespace signround::jobs
