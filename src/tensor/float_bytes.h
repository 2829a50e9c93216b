// Conversions of raw little-endian tensor bytes between the floating dtypes
// model weights use, without LibTorch (bit-exact round-to-nearest-even).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "src/tensor/dtype.h"

namespace signround {

// The elements of `bytes` (F16, BF16, F32 or F64; IsFloatingWeightDType) as fp32.
std::vector<float> FloatsFromBytes(absl::string_view bytes, DType dtype);

// `values` as the bytes of an F16, BF16 or F32 tensor.
std::string FloatsToBytes(const std::vector<float>& values, DType dtype);

}  // namespace signround
