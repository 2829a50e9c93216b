// The auto_round and auto_gptq checkpoints (FORMATS.md): every quantized
// Linear packed GPTQ-style from the engine's integer codes, every other
// tensor as it was, config.json with a quantization_config and the packed
// dtype, the same object in quantization_config.json (and, for auto_gptq, in
// GPTQModel's quantize_config.json), and the tokenizer files.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "src/export/export_source.h"
#include "src/export/quantization_config.h"

namespace signround {

// Writes the checkpoint into `dir` (an empty staging directory). Zero points
// are v1 when every quantized layer is symmetric, else v2 (ZeroPointsFor).
// An options.packed_torch_dtype other than float16 / bfloat16 is
// INVALID_ARGUMENT before anything is written.
absl::Status ExportPacked(const ExportSource& source, PackedFormat format,
                          const ExportOptions& options, const std::string& dir);

}  // namespace signround
