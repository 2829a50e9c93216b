// A Hugging Face checkpoint directory: config.json plus one safetensors file
// or a sharded set with model.safetensors.index.json. Opening validates
// everything (headers, index, every tensor the config implies and its shape)
// but reads no tensor data: files are memory-mapped.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "src/model/config.h"
#include "src/tensor/safetensors_file.h"

namespace signround {

inline constexpr char kSingleFileName[] = "model.safetensors";
inline constexpr char kIndexFileName[] = "model.safetensors.index.json";

class Checkpoint {
 public:
  struct Tensor {
    std::shared_ptr<const SafetensorsFile> file;
    const TensorEntry* entry = nullptr;
  };

  // Opens and validates `dir`. Errors name the file, the tensor or key, and
  // what is wrong (INVALID_ARGUMENT), or NOT_FOUND for a missing directory.
  static absl::StatusOr<Checkpoint> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  // The safetensors files, in file-name order.
  const std::vector<std::shared_ptr<const SafetensorsFile>>& files() const { return files_; }
  // Every tensor by name.
  const std::map<std::string, Tensor, std::less<>>& tensors() const { return tensors_; }
  // NOT_FOUND naming the checkpoint when absent.
  absl::StatusOr<Tensor> Find(absl::string_view name) const;
  // Total number of elements over all tensors.
  uint64_t parameter_count() const;

 private:
  std::string dir_;
  ModelConfig config_;
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::map<std::string, Tensor, std::less<>> tensors_;
};

}  // namespace signround
