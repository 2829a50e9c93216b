#include "src/export/export_format.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "src/common/status_macros.h"
#include "src/export/gguf_exporter.h"

namespace signround {

absl::StatusOr<std::vector<ExportFormat>> ParseExportFormats(absl::string_view list) {
  std::vector<ExportFormat> out;
  std::set<std::string> seen;
  for (absl::string_view raw : absl::StrSplit(list, ',')) {
    const std::string name(absl::StripAsciiWhitespace(raw));
    ExportFormat f;
    f.name = name;
    f.dir_name = absl::StrReplaceAll(name, {{":", "-"}});
    if (name == "fake") {
      f.kind = ExportFormat::Kind::kFake;
    } else if (name == "auto_round") {
      f.kind = ExportFormat::Kind::kAutoRound;
    } else if (name == "auto_gptq") {
      f.kind = ExportFormat::Kind::kAutoGptq;
    } else if (ParseGgufFormat(name)) {
      f.kind = ExportFormat::Kind::kGguf;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("format '", name, "' is not one of ", kExportFormatNames));
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("format '", name, "' is listed twice"));
    }
    out.push_back(std::move(f));
  }
  return out;
}

absl::Status CheckExportFormats(const std::vector<ExportFormat>& formats, const ModelConfig& config,
                                const std::vector<LayerPlan>& plans) {
  for (const ExportFormat& f : formats) {
    if (f.kind != ExportFormat::Kind::kGguf) continue;
    SR_RETURN_IF_ERROR(CheckGgufExport(*ParseGgufFormat(f.name), config, plans));
  }
  return absl::OkStatus();
}

}  // namespace signround
