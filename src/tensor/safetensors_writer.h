// Writes safetensors files: 8-byte aligned header, {"format": "pt"} metadata,
// tensors in name order, written atomically (temporary file, fsync, rename) so
// a failed or interrupted write never leaves a half-written file behind.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "src/tensor/dtype.h"

namespace signround {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;

  uint64_t numel() const;
  uint64_t nbytes() const { return numel() * DTypeSize(dtype); }
};

// Produces the bytes of one tensor (little-endian, row-major). The returned
// view must stay valid until the next call. Called once per tensor, in name order.
using TensorBytesFn = std::function<absl::StatusOr<absl::string_view>(const TensorSpec&)>;

// Writes `specs` to `path`, pulling each tensor's bytes from `bytes` so that
// only one tensor is in memory at a time. `metadata` is added to
// {"format": "pt"}. Names must be unique and non-empty.
absl::Status WriteSafetensors(const std::string& path, std::vector<TensorSpec> specs,
                              const TensorBytesFn& bytes,
                              const std::map<std::string, std::string>& metadata = {});

// The header block (length prefix + padded JSON) that WriteSafetensors would
// write for `specs`, which must already be sorted by name.
absl::StatusOr<std::string> SafetensorsHeaderBlock(
    const std::vector<TensorSpec>& specs, const std::map<std::string, std::string>& metadata);

}  // namespace signround
