// Checks, before any tuning, that a job's export formats can be written: the
// format table itself (names, kinds, what each holds) is the contract's
// (src/contract/export_formats.h).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "src/contract/export_formats.h"
#include "src/export/export_source.h"
#include "src/model/config.h"
#include "src/quant/layer_plan.h"

namespace signround {

using contract::ExportFormat;
using contract::FormatKind;
using contract::kExportFormatNames;
using contract::ParseExportFormats;

// What a job may write although a loader will refuse or misuse it; each waiver
// turns a refusal into a warning in report.json.
struct ExportWaivers {
  // auto_round / auto_gptq whose fused groups (q/k/v, gate/up) differ in scheme:
  // vLLM refuses them (--allow-split-fused).
  bool allow_split_fused = false;
  // GGUF from a checkpoint without tokenizer.model or tokenizer.json: llama.cpp
  // loads it but cannot tokenize any text (--allow-gguf-without-vocab).
  bool allow_gguf_without_vocab = false;
};

// Sets scheme.float_min on every quantized layer that a GGUF format in `formats`
// stores in a block type with a real-valued minimum (contract::UsesFloatMin: Q4_1),
// so tuning and rounding use one. Nothing changes without a GGUF format.
void UseFormatZeroPoints(const std::vector<ExportFormat>& formats, std::vector<LayerPlan>& plans);

// Refuses, before any tuning, a format the job cannot be written to exactly
// (GGUF of a scheme llama.cpp has no block type for, or of a model family it
// does not load; auto_round / auto_gptq of float_min layers, which is GGUF Q4_1
// with a packed format in one job), or that a loader would refuse (see
// ExportWaivers), with the reason. Returns the warnings of what the waivers let
// through. `model_dir` holds the tokenizer files.
absl::StatusOr<std::vector<std::string>> CheckExportFormats(
    const std::vector<ExportFormat>& formats, const ModelConfig& config,
    const std::string& model_dir, const std::vector<LayerPlan>& plans,
    const ExportWaivers& waivers);

// Writes `format` (auto_round, auto_gptq or a GGUF type: the formats made from the
// packed integer layers of `source`) into the directory `dir`. The one place that
// maps a format kind to its writer; the fake-quantized model, which is made from
// the work directory's W^, is the pipeline's (WriteFakeQuantized).
absl::Status WriteQuantizedExport(const ExportSource& source, const ExportFormat& format,
                                  const ExportOptions& options, const std::string& dir);

}  // namespace signround
