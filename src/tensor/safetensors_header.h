// The safetensors header: parsing and full validation of hostile input
// (FORMATS.md). No LibTorch here: this is pure bookkeeping over bytes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "src/tensor/dtype.h"

namespace signround {

// Headers larger than this are refused before anything is parsed.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct TensorEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t numel = 1;
  // Offsets relative to the start of the data buffer; `end` is exclusive.
  uint64_t begin = 0;
  uint64_t end = 0;

  uint64_t nbytes() const { return end - begin; }
};

struct SafetensorsHeader {
  uint64_t header_bytes = 0;         // N, the JSON length
  uint64_t data_start = 0;           // 8 + N
  uint64_t data_bytes = 0;           // file size - data_start
  std::vector<TensorEntry> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;

  // The entry with this name, or nullptr.
  const TensorEntry* Find(absl::string_view name) const;
};

// Validates the first bytes of a safetensors file of `file_size` bytes.
// `prefix` must hold at least min(file_size, 8 + N) bytes (the whole file
// when mapped). `label` (usually the path) starts every error message.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view prefix,
                                                         uint64_t file_size,
                                                         absl::string_view label);

// "BF16 [4096, 11008]": a one-line description for messages and listings.
std::string DescribeTensor(const TensorEntry& entry);

}  // namespace signround
