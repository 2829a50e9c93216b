// The export formats a quantize job can write, one subdirectory each:
// fake (the fake-quantized model), auto_round, auto_gptq, gguf:q4_0,
// gguf:q4_1 and gguf:q8_0.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/model/config.h"
#include "src/quant/layer_plan.h"

namespace signround {

struct ExportFormat {
  enum class Kind { kFake, kAutoRound, kAutoGptq, kGguf };
  Kind kind = Kind::kAutoRound;
  std::string name;      // as written on the command line: "auto_round", "gguf:q4_0"
  std::string dir_name;  // its subdirectory of the output: "auto_round", "gguf-q4_0"
};

// The names ParseExportFormats accepts, for help texts.
inline constexpr char kExportFormatNames[] =
    "fake, auto_round, auto_gptq, gguf:q4_0, gguf:q4_1, gguf:q8_0";

// Parses a comma-separated list ("auto_round,gguf:q4_0"). INVALID_ARGUMENT
// for an unknown, repeated or empty entry.
absl::StatusOr<std::vector<ExportFormat>> ParseExportFormats(absl::string_view list);

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

// Sets scheme.float_min on every layer that a GGUF format in `formats` stores as
// Q4_1 (4-bit asymmetric group 32): Q4_1 holds a real-valued minimum per block,
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

}  // namespace signround
