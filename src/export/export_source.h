// What every exporter reads: the original checkpoint (unquantized tensors,
// config, tokenizer files), the layer plan, and the engine's integer weights
// of every quantized Linear (the finished block files of the work directory).
// Everything stays memory-mapped; Release() drops a tensor's pages after use so
// an export streams through a large model.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "src/export/integer_layer.h"
#include "src/model/checkpoint.h"
#include "src/quant/layer_plan.h"

namespace signround {

// Settings shared by the exporters.
struct ExportOptions {
  QuantScheme scheme;  // the job's default scheme (overrides are in the plans)
  // The job's settings (iters, lr, nsamples, ...): the packed formats record
  // the tuning hyper-parameters in quantization_config, informationally.
  nlohmann::json settings = nlohmann::json::object();
  uint64_t max_shard_bytes = 5'000'000'000;  // safetensors shards
  // The dtype the packed formats' config.json declares ("float16" or "bfloat16";
  // see ValidatePackedTorchDtype): what vLLM and transformers compute in.
  std::string packed_torch_dtype = "float16";
};

class ExportSource {
 public:
  // `block_files[i]` holds layer i's quantized Linears as P.codes (U8 [out, in]),
  // P.scales (F16 [out, G]) and P.zeros (U8 [out, G]). Every quantized layer of
  // `plans` must be there with those dtypes and shapes (INTERNAL otherwise: the
  // work directory is ours).
  // `ends` (quantized token embedding / lm_head, named "model.embed_tokens" and
  // "lm_head", layer -1) are stored the same way in `ends_file`.
  static absl::StatusOr<ExportSource> Open(const Checkpoint& ckpt, std::vector<LayerPlan> plans,
                                           const std::vector<std::string>& block_files,
                                           std::vector<LayerPlan> ends = {},
                                           const std::string& ends_file = "");

  const Checkpoint& checkpoint() const { return *ckpt_; }
  const ModelConfig& config() const { return ckpt_->config(); }
  const std::vector<LayerPlan>& plans() const { return plans_; }

  // The plan of decoder Linear `name` ("model.layers.0.mlp.up_proj"), or nullptr.
  const LayerPlan* Plan(absl::string_view name) const;

  // The plan of a quantized end ("model.embed_tokens", "lm_head"), or nullptr.
  const LayerPlan* EndPlan(absl::string_view name) const;

  // The integer weights of quantized Linear (or end) `name`, or nullptr when it is not
  // quantized.
  const IntegerLayer* Layer(absl::string_view name) const;

  // The raw bytes of an original tensor.
  absl::string_view Bytes(const Checkpoint::Tensor& tensor) const {
    return tensor.file->Bytes(*tensor.entry);
  }

  // Drops the resident pages of quantized Linear `name` / of an original tensor.
  void Release(absl::string_view name) const;
  void Release(const Checkpoint::Tensor& tensor) const { tensor.file->Evict(*tensor.entry); }

 private:
  struct Stored {
    IntegerLayer layer;
    std::shared_ptr<const SafetensorsFile> file;
    std::vector<const TensorEntry*> entries;
  };
  const Checkpoint* ckpt_ = nullptr;
  std::vector<LayerPlan> plans_;
  std::vector<LayerPlan> ends_;
  std::map<std::string, Stored, std::less<>> layers_;
};

// The model directory's base name ("Llama-3-8B" for "/models/Llama-3-8B/"),
// "model" when it has none.
std::string ModelName(const std::string& dir);

// The tokenizer and generation files an export copies from the model directory.
const std::vector<std::string>& TokenizerFileNames();

}  // namespace signround
