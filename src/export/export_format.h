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

// Refuses, before any tuning, a format the job cannot be written to exactly
// (GGUF of a scheme llama.cpp has no block type for, or of a model family it
// does not load), with the reason.
absl::Status CheckExportFormats(const std::vector<ExportFormat>& formats, const ModelConfig& config,
                                const std::vector<LayerPlan>& plans);

}  // namespace signround
