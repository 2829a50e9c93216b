// Element types of safetensors files, independent of LibTorch.
#pragma once

#include <cstddef>
#include <optional>
#include "absl/strings/string_view.h"

namespace signround {

enum class DType {
  kBool,
  kU8,
  kI8,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
  kF8E4M3,
  kF8E5M2,
};

// Parses a safetensors dtype string ("BF16", "F32", ...); nullopt when unknown.
std::optional<DType> ParseDType(absl::string_view name);

// The safetensors spelling of a dtype.
absl::string_view DTypeName(DType dtype);

// Bytes per element.
size_t DTypeSize(DType dtype);

// F16, BF16, F32 or F64: the dtypes model weights may have.
bool IsFloatingWeightDType(DType dtype);

}  // namespace signround
