// A Hugging Face checkpoint directory: config.json plus one safetensors file
// or a sharded set with model.safetensors.index.json. Opening validates
// everything (headers, index, every tensor the config implies and its shape)
// but reads no tensor data: files are memory-mapped. A Linear may be stored
// packed (GPTQ / auto_round, described by a quantization_config) instead of
// as P.weight.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "src/model/config.h"
#include "src/model/packed_linear.h"
#include "src/tensor/safetensors_file.h"

namespace signround {

inline constexpr char kSingleFileName[] = "model.safetensors";
inline constexpr char kIndexFileName[] = "model.safetensors.index.json";

class Checkpoint {
 public:
  using Tensor = TensorRef;

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
  // A copy whose tensors named in `replaced` are read from elsewhere instead (TEQ's
  // changed norms in a work directory's block files); INTERNAL when one is not a tensor of
  // the checkpoint or differs from it in dtype or shape.
  absl::StatusOr<Checkpoint> WithReplacedTensors(
      const std::map<std::string, Tensor, std::less<>>& replaced) const;
  // Total number of elements over all tensors.
  uint64_t parameter_count() const;

  // The quantization_config of a packed checkpoint (config.json's, else
  // quantization_config.json's), if any.
  const std::optional<PackedQuantizationConfig>& quantization() const { return quantization_; }
  // The packed Linears by module name ("model.layers.0.mlp.up_proj"); their
  // P.weight is absent (LoadCheckpointTensor dequantizes them).
  const std::map<std::string, PackedLinear, std::less<>>& packed_linears() const { return packed_; }

 private:
  absl::Status CheckExpectedTensors();

  std::string dir_;
  ModelConfig config_;
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::map<std::string, Tensor, std::less<>> tensors_;
  std::optional<PackedQuantizationConfig> quantization_;
  std::map<std::string, PackedLinear, std::less<>> packed_;
};

}  // namespace signround
