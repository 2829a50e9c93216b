// A GGUF v3 writer (llama.cpp's model file, FORMATS.md): header, metadata
// key-value pairs, tensor infos, then the tensor data, each tensor aligned to
// 32 bytes. Tensor bytes are streamed from a callback one tensor at a time, so
// a large model is never held in memory, and the file is written atomically.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace signround {

inline constexpr uint32_t kGgufVersion = 3;
// The default alignment; we never write `general.alignment`.
inline constexpr uint64_t kGgufAlignment = 32;

enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// The ggml tensor types the exporter writes.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ8_0 = 8,
  // The k-quants: super-blocks of 256 values (gguf_kquants.h packs them).
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
};

// "F32", "Q4_0", ...
absl::string_view GgmlTypeName(GgmlType type);
// Elements per block (1 for F32/F16, 32 for Q4_0/Q4_1/Q8_0, 256 for the k-quants).
int64_t GgmlBlockElements(GgmlType type);
// Bytes per block.
int64_t GgmlBlockBytes(GgmlType type);

// The metadata section, serialized as pairs are added. A repeated or empty key
// is remembered and reported by status() (and by WriteGgufFile).
class GgufMetadata {
 public:
  void AddU8(absl::string_view key, uint8_t v) { AddScalar(key, v); }
  void AddI8(absl::string_view key, int8_t v) { AddScalar(key, v); }
  void AddU16(absl::string_view key, uint16_t v) { AddScalar(key, v); }
  void AddI16(absl::string_view key, int16_t v) { AddScalar(key, v); }
  void AddU32(absl::string_view key, uint32_t v) { AddScalar(key, v); }
  void AddI32(absl::string_view key, int32_t v) { AddScalar(key, v); }
  void AddF32(absl::string_view key, float v) { AddScalar(key, v); }
  void AddBool(absl::string_view key, bool v) { AddScalar(key, v); }
  void AddU64(absl::string_view key, uint64_t v) { AddScalar(key, v); }
  void AddI64(absl::string_view key, int64_t v) { AddScalar(key, v); }
  void AddF64(absl::string_view key, double v) { AddScalar(key, v); }
  void AddString(absl::string_view key, absl::string_view v);

  // An array of scalars (uint8_t ... double, bool) or of strings.
  template <typename T>
  void AddArray(absl::string_view key, const std::vector<T>& values);
  void AddStringArray(absl::string_view key, const std::vector<std::string>& values);

  uint64_t count() const { return count_; }
  // The serialized pairs, in insertion order.
  const std::string& bytes() const { return bytes_; }
  absl::Status status() const { return status_; }

 private:
  template <typename T>
  static constexpr GgufValueType TypeOf();
  template <typename T>
  void AddScalar(absl::string_view key, T v);
  void AddKey(absl::string_view key, GgufValueType type);
  void AppendRaw(const void* p, size_t n) { bytes_.append(static_cast<const char*>(p), n); }
  void AppendU32(uint32_t v) { AppendRaw(&v, 4); }
  void AppendU64(uint64_t v) { AppendRaw(&v, 8); }
  void AppendString(absl::string_view s);

  std::string bytes_;
  uint64_t count_ = 0;
  std::set<std::string, std::less<>> keys_;
  absl::Status status_;
};

struct GgufTensorInfo {
  std::string name;            // at most 63 bytes (llama.cpp's GGML_MAX_NAME - 1)
  std::vector<int64_t> shape;  // torch order ([out, in]); written reversed as ne[]
  GgmlType type = GgmlType::kF32;
};

// The data size of a tensor; INVALID_ARGUMENT naming it when the shape is
// empty, has more than 4 dims or a non-positive dim, or the innermost dim is
// not a multiple of the type's block.
absl::StatusOr<uint64_t> GgufTensorBytes(const GgufTensorInfo& info);

// Writes one piece of the current tensor's data.
using GgufWriteFn = std::function<absl::Status(absl::string_view)>;
// Produces the bytes of tensors[index] through `write`, in pieces of any size;
// they must add up to GgufTensorBytes(). Called once per tensor, in order.
using GgufTensorDataFn =
    std::function<absl::Status(size_t index, const GgufTensorInfo& info, const GgufWriteFn& write)>;

// Writes a GGUF v3 file at `path` (temporary file, fsync, the reader-side
// CheckGgufFile of gguf_check.h, rename: a failure leaves no file; a failed
// check is INTERNAL). Tensor names must be unique.
absl::Status WriteGgufFile(const std::string& path, const GgufMetadata& metadata,
                           const std::vector<GgufTensorInfo>& tensors,
                           const GgufTensorDataFn& data);

// --- template definitions ---

template <typename T>
constexpr GgufValueType GgufMetadata::TypeOf() {
  if constexpr (std::is_same_v<T, uint8_t>) return GgufValueType::kU8;
  if constexpr (std::is_same_v<T, int8_t>) return GgufValueType::kI8;
  if constexpr (std::is_same_v<T, uint16_t>) return GgufValueType::kU16;
  if constexpr (std::is_same_v<T, int16_t>) return GgufValueType::kI16;
  if constexpr (std::is_same_v<T, uint32_t>) return GgufValueType::kU32;
  if constexpr (std::is_same_v<T, int32_t>) return GgufValueType::kI32;
  if constexpr (std::is_same_v<T, float>) return GgufValueType::kF32;
  if constexpr (std::is_same_v<T, bool>) return GgufValueType::kBool;
  if constexpr (std::is_same_v<T, uint64_t>) return GgufValueType::kU64;
  if constexpr (std::is_same_v<T, int64_t>) return GgufValueType::kI64;
  if constexpr (std::is_same_v<T, double>) return GgufValueType::kF64;
  static_assert(std::is_arithmetic_v<T>, "not a GGUF scalar type");
  return GgufValueType::kU8;
}

template <typename T>
void GgufMetadata::AddScalar(absl::string_view key, T v) {
  AddKey(key, TypeOf<T>());
  if constexpr (std::is_same_v<T, bool>) {
    uint8_t b = v ? 1 : 0;
    AppendRaw(&b, 1);
  } else {
    AppendRaw(&v, sizeof(v));  // the host is little-endian, as GGUF
  }
}

template <typename T>
void GgufMetadata::AddArray(absl::string_view key, const std::vector<T>& values) {
  AddKey(key, GgufValueType::kArray);
  AppendU32(static_cast<uint32_t>(TypeOf<T>()));
  AppendU64(values.size());
  if constexpr (std::is_same_v<T, bool>) {
    for (bool v : values) bytes_.push_back(v ? 1 : 0);
  } else {
    AppendRaw(values.data(), values.size() * sizeof(T));
  }
}

}  // namespace signround
