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
  static constexpr GgufFormatInfo kQ4_0 = {"gguf:q4_0", 2, 2, 4, true, false};
  static constexpr GgufFormatInfo kQ4_1 = {"gguf:q4_1", 3, 3, 4, false, true};
  static constexpr GgufFormatInfo kQ8_0 = {"gguf:q8_0", 8, 7, 8, true, false};
  switch (format) {
    case GgufFormat::kQ4_0:
      return kQ4_0;
    case GgufFormat::kQ4_1:
      return kQ4_1;
    case GgufFormat::kQ8_0:
      return kQ8_0;
  }
  return kQ4_0;
}

std::optional<GgufFormat> ParseGgufFormat(absl::string_view name) {
  for (GgufFormat f : kGgufFormats) {
    if (name == GgufFormatOf(f).name) return f;
  }
  return std::nullopt;
}

QuantScheme GgufScheme(GgufFormat format) {
  const GgufFormatInfo& info = GgufFormatOf(format);
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
    if (info.bits == s.bits && info.sym == s.sym) return f;
  }
  return std::nullopt;
}

std::string GgufFormatNeeds(GgufFormat format) {
  const GgufFormatInfo& info = GgufFormatOf(format);
  return absl::StrCat(info.bits, "-bit ", info.sym ? "symmetric" : "asymmetric", " group-size-",
                      kGgufGroupSize);
}

absl::Status CheckFormatScheme(absl::string_view format, const QuantScheme& s) {
  std::optional<GgufFormat> gguf = ParseGgufFormat(format);
  if (!gguf) return absl::OkStatus();
  const QuantScheme want = GgufScheme(*gguf);
  if (s.bits == want.bits && s.sym == want.sym && s.group_size == want.group_size) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(format, " holds exactly bits ", want.bits, ", ", want.sym ? "sym" : "asym",
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
