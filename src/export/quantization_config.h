// The quantization_config that a packed export adds to config.json and writes
// to quantization_config.json (FORMATS.md): what transformers, auto-round,
// vLLM and GPTQModel read to know how each layer is stored.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "src/export/export_source.h"
#include "src/model/packed_linear.h"
#include "src/quant/layer_plan.h"

namespace signround {

enum class PackedFormat { kAutoRound, kAutoGptq };

// v1 zero points (stored zp - 1) when every quantized layer is symmetric, else
// v2 (stored as is), in both formats: v1 cannot hold an asymmetric zero point
// of 0. auto_round names them "auto_round:auto_gptq" / "auto_round"
// (packing_format), auto_gptq "gptq" / "gptq_v2" (checkpoint_format).
ZeroPointFormat ZeroPointsFor(const std::vector<LayerPlan>& plans);

// The quantization_config object, keys in a fixed order. auto_gptq's also goes
// to quantize_config.json (GPTQModel's file) and carries a `meta` naming us as
// the quantizer ("signround:<version>").
nlohmann::ordered_json MakeQuantizationConfig(PackedFormat format, const ExportOptions& options,
                                              const std::vector<LayerPlan>& plans);

// The dtypes a packed config.json may declare (ExportOptions::packed_torch_dtype):
// "float16" or "bfloat16"; INVALID_ARGUMENT naming any other value.
absl::Status ValidatePackedTorchDtype(absl::string_view dtype);

// Sets the model dtype that `config` (a config.json object) declares: each of
// "torch_dtype" and "dtype" (newer transformers) that it has, "torch_dtype" when
// it has neither.
void SetConfigTorchDtype(nlohmann::ordered_json& config, const std::string& dtype);

}  // namespace signround
