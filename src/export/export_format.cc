#include "src/export/export_format.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "src/common/status_macros.h"
#include "src/export/fused_groups.h"
#include "src/export/gguf_exporter.h"
#include "src/export/gguf_quants.h"
#include "src/export/gguf_tokenizer.h"

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

void UseFormatZeroPoints(const std::vector<ExportFormat>& formats, std::vector<LayerPlan>& plans) {
  const bool gguf = std::any_of(formats.begin(), formats.end(), [](const ExportFormat& f) {
    return f.kind == ExportFormat::Kind::kGguf;
  });
  if (!gguf) return;
  for (LayerPlan& p : plans) {
    QuantScheme q4_1 = p.scheme;
    q4_1.float_min = true;
    if (p.quantized && GgmlTypeForScheme(q4_1) == GgmlType::kQ4_1) p.scheme = q4_1;
  }
}

absl::StatusOr<std::vector<std::string>> CheckExportFormats(
    const std::vector<ExportFormat>& formats, const ModelConfig& config,
    const std::string& model_dir, const std::vector<LayerPlan>& plans,
    const ExportWaivers& waivers) {
  std::vector<std::string> warnings;
  for (const ExportFormat& f : formats) {
    switch (f.kind) {
      case ExportFormat::Kind::kFake:
        break;
      case ExportFormat::Kind::kAutoRound:
      case ExportFormat::Kind::kAutoGptq: {
        for (const LayerPlan& p : plans) {
          if (!p.quantized || !p.scheme.float_min) continue;
          return absl::InvalidArgumentError(absl::StrCat(
              f.name, ": layer ", p.layer.name,
              " is stored in GGUF Q4_1 with a real-valued minimum per group, which "
              "auto_round and auto_gptq (integer zero points) cannot hold; write GGUF Q4_1 and ",
              f.name, " in separate jobs"));
        }
        absl::Status fused = CheckFusedGroups(f.name, plans);
        if (fused.ok()) break;
        if (!waivers.allow_split_fused) return fused;
        warnings.push_back(std::string(fused.message()));
        break;
      }
      case ExportFormat::Kind::kGguf: {
        SR_RETURN_IF_ERROR(CheckGgufExport(*ParseGgufFormat(f.name), config, plans));
        SR_ASSIGN_OR_RETURN(std::optional<GgufVocab> vocab, LoadGgufVocab(model_dir, config));
        if (vocab) break;
        const std::string why = absl::StrCat(
            f.name, ": ", model_dir,
            " has no tokenizer.model or tokenizer.json, so the GGUF file would have no "
            "vocabulary: llama.cpp loads such a file but cannot tokenize any text");
        if (!waivers.allow_gguf_without_vocab) {
          return absl::InvalidArgumentError(
              absl::StrCat(why, " (add the tokenizer files, or pass --allow-gguf-without-vocab)"));
        }
        warnings.push_back(why);
        break;
      }
    }
  }
  return warnings;
}

}  // namespace signround
