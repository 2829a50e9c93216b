// LibTorch views of safetensors data. The only part of src/tensor/ that
// includes LibTorch headers.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "src/tensor/safetensors_file.h"

namespace signround {

// The LibTorch scalar type of a safetensors dtype; nullopt where this LibTorch
// has none (U16/U32/U64, and F8 before LibTorch 2.1).
std::optional<at::ScalarType> ToScalarType(DType dtype);
// The safetensors dtype of a LibTorch scalar type; nullopt when it has none.
std::optional<DType> FromScalarType(at::ScalarType type);

// A CPU tensor for `entry` of `file`. It aliases the file mapping (no copy,
// nothing read until touched) when the data is aligned for its dtype, and keeps
// the mapping alive as long as it lives; otherwise the bytes are copied.
absl::StatusOr<at::Tensor> LoadTensor(const std::shared_ptr<const SafetensorsFile>& file,
                                      const TensorEntry& entry);

// Looks `name` up in `file` and loads it.
absl::StatusOr<at::Tensor> LoadTensor(const std::shared_ptr<const SafetensorsFile>& file,
                                      const std::string& name);

// Writes named CPU tensors (any layout; made contiguous one at a time).
absl::Status WriteTensors(const std::string& path,
                          const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                          const std::map<std::string, std::string>& metadata = {});

}  // namespace signround
