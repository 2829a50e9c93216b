#include "src/contract/export_formats.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "src/common/utf8.h"

namespace signround::contract {

absl::StatusOr<ExportFormat> FindExportFormat(absl::string_view name) {
  ExportFormat f;
  f.name = std::string(name);
  f.dir_name = absl::StrReplaceAll(name, {{":", "-"}});
  if (name == "fake") {
    f.kind = FormatKind::kFake;
  } else if (name == "auto_round") {
    f.kind = FormatKind::kAutoRound;
  } else if (name == "auto_gptq") {
    f.kind = FormatKind::kAutoGptq;
  } else if (ParseGgufFormat(name)) {
    f.kind = FormatKind::kGguf;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(QuoteUntrusted(name), " is not one of ", kExportFormatNames));
  }
  return f;
}

std::optional<ExportFormat> FindExportFormatByDir(absl::string_view dir_name) {
  for (absl::string_view name : absl::StrSplit(kExportFormatNames, ", ")) {
    absl::StatusOr<ExportFormat> f = FindExportFormat(name);
    if (f.ok() && f->dir_name == dir_name) return *std::move(f);
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<ExportFormat>> ParseExportFormats(absl::string_view list) {
  std::vector<ExportFormat> out;
  std::set<std::string> seen;
  for (absl::string_view raw : absl::StrSplit(list, ',')) {
    const std::string name(absl::StripAsciiWhitespace(raw));
    absl::StatusOr<ExportFormat> f = FindExportFormat(name);
    if (!f.ok()) return absl::InvalidArgumentError(absl::StrCat("format ", f.status().message()));
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("format ", QuoteUntrusted(name), " is listed twice"));
    }
    out.push_back(*std::move(f));
  }
  return out;
}

bool HoldsOnlyIntegerZeros(FormatKind kind) {
  return kind == FormatKind::kAutoRound || kind == FormatKind::kAutoGptq;
}

const GgufFormatInfo& GgufFormatOf(GgufFormat format) {
  using D = DataType;
  // LLAMA_FTYPE_MOSTLY_*: Q4_0 2, Q4_1 3, Q8_0 7, Q2_K 10, Q3_K_S 11, Q3_K_M 12, Q4_K_S 14,
  // Q4_K_M 15, Q5_K_S 16, Q5_K_M 17, Q6_K 18.
  static constexpr GgufFormatInfo kInfo[] = {
      {"gguf:q4_0", 2, 2, 4, true, false, D::kInt, "Q4_0"},
      {"gguf:q4_1", 3, 3, 4, false, true, D::kInt, "Q4_1"},
      {"gguf:q8_0", 8, 7, 8, true, false, D::kInt, "Q8_0"},
      {"gguf:q2_k", 10, 10, 2, false, false, D::kQ2_K, "Q2_K"},
      {"gguf:q3_k_s", 11, 11, 3, true, false, D::kQ3_K, "Q3_K_S"},
      {"gguf:q3_k_m", 11, 12, 3, true, false, D::kQ3_K, "Q3_K_M"},
      {"gguf:q4_k_s", 12, 14, 4, false, false, D::kQ4_K, "Q4_K_S"},
      {"gguf:q4_k_m", 12, 15, 4, false, false, D::kQ4_K, "Q4_K_M"},
      {"gguf:q5_k_s", 13, 16, 5, false, false, D::kQ5_K, "Q5_K_S"},
      {"gguf:q5_k_m", 13, 17, 5, false, false, D::kQ5_K, "Q5_K_M"},
      {"gguf:q6_k", 14, 18, 6, true, false, D::kQ6_K, "Q6_K"},
  };
  static_assert(std::size(kInfo) == std::size(kGgufFormats));
  const size_t i = static_cast<size_t>(format);
  return kInfo[i < std::size(kInfo) ? i : 0];
}

bool IsKQuantMix(GgufFormat format) { return IsKQuant(GgufFormatOf(format).kquant); }

std::optional<GgufFormat> ParseGgufFormat(absl::string_view name) {
  for (GgufFormat f : kGgufFormats) {
    if (name == GgufFormatOf(f).name) return f;
  }
  return std::nullopt;
}

QuantScheme GgufScheme(GgufFormat format) {
  const GgufFormatInfo& info = GgufFormatOf(format);
  if (IsKQuant(info.kquant)) return KQuantScheme(info.kquant);
  QuantScheme s;
  s.bits = info.bits;
  s.group_size = kGgufGroupSize;
  s.sym = info.sym;
  s.float_min = info.float_min;
  return s;
}

std::optional<GgufFormat> GgufFormatForScheme(const QuantScheme& s) {
  if (s.data_type != DataType::kInt || s.group_size != kGgufGroupSize) return std::nullopt;
  for (GgufFormat f : kGgufFormats) {
    const GgufFormatInfo& info = GgufFormatOf(f);
    if (!IsKQuant(info.kquant) && info.bits == s.bits && info.sym == s.sym) return f;
  }
  return std::nullopt;
}

std::string GgufFormatNeeds(GgufFormat format) {
  const GgufFormatInfo& info = GgufFormatOf(format);
  if (IsKQuant(info.kquant)) {
    const KQuantInfo& k = KQuantOf(info.kquant);
    return absl::StrCat(DescribeSchemeLong(KQuantScheme(info.kquant)), " (", k.bits, "-bit ",
                        k.sym ? "symmetric" : "asymmetric", ", sub-blocks of ", k.group_size, ")");
  }
  return absl::StrCat(info.bits, "-bit ", info.sym ? "symmetric" : "asymmetric", " group-size-",
                      kGgufGroupSize);
}

std::optional<GgufFormat> KQuantMixOf(const std::vector<std::string>& formats) {
  for (const std::string& name : formats) {
    std::optional<GgufFormat> f = ParseGgufFormat(name);
    if (f && IsKQuantMix(*f)) return f;
  }
  return std::nullopt;
}

absl::Status CheckFormatScheme(absl::string_view format, const QuantScheme& s) {
  std::optional<GgufFormat> gguf = ParseGgufFormat(format);
  if (!gguf) return absl::OkStatus();
  const QuantScheme want = GgufScheme(*gguf);
  if (s.bits == want.bits && s.sym == want.sym && s.group_size == want.group_size) {
    return absl::OkStatus();
  }
  const std::string holds =
      IsKQuantMix(*gguf) ? absl::StrCat(" stores ", GgufFormatNeeds(*gguf),
                                        " layers: leave bits, group_size and sym unset, or give")
                         : " holds exactly";
  return absl::InvalidArgumentError(
      absl::StrCat(format, holds, " bits ", want.bits, ", ", want.sym ? "sym" : "asym",
                   ", group_size ", want.group_size, "; the job has bits ", s.bits, ", ",
                   s.sym ? "sym" : "asym", ", group_size ", s.group_size));
}

bool UsesFloatMin(const std::vector<ExportFormat>& formats, const QuantScheme& scheme) {
  const bool gguf = std::any_of(formats.begin(), formats.end(),
                                [](const ExportFormat& f) { return f.kind == FormatKind::kGguf; });
  if (!gguf) return false;
  std::optional<GgufFormat> type = GgufFormatForScheme(scheme);
  return type && GgufFormatOf(*type).float_min;
}

}  // namespace signround::contract
