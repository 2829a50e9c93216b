// The auto_round and auto_gptq checkpoints (FORMATS.md): every quantized
// Linear packed GPTQ-style from the engine's integer codes, every other
// tensor as it was, config.json with a quantization_config, the same object
// in quantization_config.json, and the tokenizer files.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "src/export/export_source.h"
#include "src/export/quantization_config.h"

namespace signround {

// Writes the checkpoint into `dir` (an empty staging directory). A v1 export
// (auto_gptq) of an asymmetric layer with a zero point of 0 is
// FAILED_PRECONDITION, found before anything is written.
absl::Status ExportPacked(const ExportSource& source, PackedFormat format,
                          const ExportOptions& options, const std::string& dir);

}  // namespace signround
