#include "src/export/export_format.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/export/fused_groups.h"
#include "src/export/gguf_exporter.h"
#include "src/export/gguf_tokenizer.h"
#include "src/export/packed_exporter.h"

namespace signround {

void UseFormatZeroPoints(const std::vector<ExportFormat>& formats, std::vector<LayerPlan>& plans) {
  for (LayerPlan& p : plans) {
    if (p.quantized && contract::UsesFloatMin(formats, p.scheme)) p.scheme.float_min = true;
  }
}

absl::StatusOr<std::vector<std::string>> CheckExportFormats(
    const std::vector<ExportFormat>& formats, const ModelConfig& config,
    const std::string& model_dir, const std::vector<LayerPlan>& plans,
    const ExportWaivers& waivers) {
  std::vector<std::string> warnings;
  std::string mix;  // the first k-quant mix: a job writes one (the plan holds its types)
  for (const ExportFormat& f : formats) {
    std::optional<GgufFormat> gguf = ParseGgufFormat(f.name);
    if (!gguf || !contract::IsKQuantMix(*gguf)) continue;
    if (!mix.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          f.name, " cannot be written with ", mix,
          " in one job: each k-quant mix gives the layers its own types; run separate jobs"));
    }
    mix = f.name;
  }
  for (const ExportFormat& f : formats) {
    switch (f.kind) {
      case FormatKind::kFake:
        break;
      case FormatKind::kAutoRound:
      case FormatKind::kAutoGptq: {
        for (const LayerPlan& p : plans) {
          if (!p.quantized) continue;
          if (contract::IsKQuant(p.scheme.data_type)) {
            return absl::InvalidArgumentError(absl::StrCat(
                f.name, ": layer ", p.layer.name, " is GGUF ",
                contract::DescribeSchemeLong(p.scheme), " (the k-quant mix ", mix,
                "), which auto_round and auto_gptq cannot hold; write them in separate jobs"));
          }
          if (!p.scheme.float_min) continue;
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
      case FormatKind::kGguf: {
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

absl::Status WriteQuantizedExport(const ExportSource& source, const ExportFormat& format,
                                  const ExportOptions& options, const std::string& dir) {
  switch (format.kind) {
    case FormatKind::kFake:
      break;
    case FormatKind::kAutoRound:
      return ExportPacked(source, PackedFormat::kAutoRound, options, dir);
    case FormatKind::kAutoGptq:
      return ExportPacked(source, PackedFormat::kAutoGptq, options, dir);
    case FormatKind::kGguf: {
      const GgufFormat gguf = *ParseGgufFormat(format.name);
      const std::string file = GgufFileName(ModelName(source.checkpoint().dir()), gguf);
      return ExportGguf(source, gguf, JoinPath(dir, file));
    }
  }
  return absl::InternalError(absl::StrCat(format.name, " is not written from the packed layers"));
}

}  // namespace signround
