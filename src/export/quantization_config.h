// The quantization_config that a packed export adds to config.json and writes
// to quantization_config.json (FORMATS.md): what transformers, auto-round,
// vLLM and GPTQModel read to know how each layer is stored.
#pragma once

#include <vector>

#include "nlohmann/json.hpp"
#include "src/export/export_source.h"
#include "src/model/packed_linear.h"
#include "src/quant/layer_plan.h"

namespace signround {

enum class PackedFormat { kAutoRound, kAutoGptq };

// auto_gptq always stores v1 zero points; auto_round stores v1
// ("auto_round:auto_gptq") when every quantized layer is symmetric, else v2
// ("auto_round").
ZeroPointFormat ZeroPointsFor(PackedFormat format, const std::vector<LayerPlan>& plans);

// The quantization_config object, keys in a fixed order.
nlohmann::ordered_json MakeQuantizationConfig(PackedFormat format, const ExportOptions& options,
                                              const std::vector<LayerPlan>& plans);

}  // namespace signround
