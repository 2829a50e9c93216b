// The work directory of a quantize run: one safetensors file per finished
// block (its quantized layers and tuning stats), and the settings they were
// made with. A rerun with the same settings resumes after the last finished
// block; a rerun with other settings starts over.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "src/contract/progress.h"
#include "src/model/packed_linear.h"
#include "src/quant/signround_tuner.h"

namespace signround {

// The stats stored with each block, listed in report.json and sent as progress.
using contract::BlockStats;
using contract::BlockStatsFromJson;
using contract::BlockStatsToJson;

struct StoredBlock {
  BlockStats stats;
  std::vector<QuantizedLinear> layers;
  // Tensors the exported model holds instead of the checkpoint's (TEQ's scaled norms), by
  // tensor name inside the block ("input_layernorm.weight"), in the checkpoint's dtype.
  std::vector<std::pair<std::string, at::Tensor>> changed;
};

class BlockStore {
 public:
  // Uses `dir`, creating it. When `settings` (a canonical JSON text) differs
  // from what the directory was made with, its finished blocks are discarded.
  static absl::StatusOr<BlockStore> Open(const std::string& dir, const std::string& settings);

  const std::string& dir() const { return dir_; }
  std::string BlockPath(int64_t index) const;
  bool Has(int64_t index) const;

  // Writes a finished block atomically.
  absl::Status Save(const StoredBlock& block, const std::string& layer_prefix) const;
  // Reads a finished block back (tensors on the CPU, fp32 W^).
  absl::StatusOr<StoredBlock> Load(int64_t index, const std::string& layer_prefix) const;

  // The changed tensors of finished block `index` as stored (full names), for an
  // export to read in place of the checkpoint's.
  absl::StatusOr<std::map<std::string, TensorRef, std::less<>>> ChangedTensors(
      int64_t index, const std::string& layer_prefix) const;

  // The model's quantized ends (a GGUF k-quant mix's token embedding and lm_head,
  // full names), stored like a block with index -1.
  std::string EndsPath() const;
  bool HasEnds() const;
  absl::Status SaveEnds(const StoredBlock& ends) const;
  absl::StatusOr<StoredBlock> LoadEnds() const;

  // Removes the directory and everything in it.
  absl::Status Remove() const;

 private:
  absl::Status SaveTo(const std::string& path, const StoredBlock& block,
                      const std::string& prefix) const;
  absl::StatusOr<StoredBlock> LoadFrom(const std::string& path, const std::string& prefix) const;

  std::string dir_;
};

}  // namespace signround
