// ggml block encoders for the GGUF exporter (FORMATS.md): Q4_0 / Q4_1 / Q8_0
// from the engine's integer codes (exact), Q8_0 from float rows as llama.cpp
// quantizes them, and F16 / F32 from checkpoint bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "src/export/gguf_file.h"
#include "src/export/integer_layer.h"
#include "src/quant/layer_plan.h"
#include "src/tensor/dtype.h"

namespace signround {

// The block type that stores `scheme` exactly (contract::GgufFormatForScheme), or
// nullopt: 4-bit sym -> Q4_0 (nibble = code), 4-bit asym -> Q4_1, 8-bit sym -> Q8_0
// (q = code - 128), group size 32; a k-quant scheme -> its type (Q2_K ... Q6_K).
std::optional<GgmlType> GgmlTypeForScheme(const QuantScheme& scheme);

// Appends output row `n` of `layer` as blocks of `type` (which must be
// GgmlTypeForScheme(layer.scheme)); a k-quant layer's super-blocks as
// PackKQuantBlock writes them. Q4_1 stores a float_min layer's m as it is,
// else m = fp16(-zp * scale) (inexact by that rounding). INTERNAL
// when the codes do not fit the scheme (the work directory is ours).
absl::Status EncodeIntegerRow(const IntegerLayer& layer, int64_t n, GgmlType type,
                              std::string* out);

// Appends `x` (a multiple of 32 values) as Q8_0 blocks exactly as llama.cpp's
// quantize_row_q8_0_ref: d = amax / 127, q = roundf(x / d), stored fp16(d).
void QuantizeRowQ8_0(absl::Span<const float> x, std::string* out);

// Appends `x` as F32, F16 (round to nearest even) or Q8_0.
absl::Status EncodeFloatRow(absl::Span<const float> x, GgmlType type, std::string* out);

}  // namespace signround
