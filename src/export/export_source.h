// What every exporter reads: the original checkpoint (unquantized tensors,
// config, tokenizer files), the layer plan, and the engine's integer weights
// of every quantized Linear: the finished block files of the work directory
// (Open), or made on demand from the checkpoint (Computed: model-free RTN).
// Everything stays memory-mapped or is made when asked; Release() drops a
// layer's or tensor's pages after use so an export streams through a large model.
#pragma once

#include <functional>
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

// One quantized Linear's integer weights made on demand, and its W^ (`dequant`, raw
// bytes of `dequant_dtype`) when asked for; `layer` views buffers that `keep` owns.
struct ComputedLayer {
  IntegerLayer layer;
  absl::string_view dequant;
  DType dequant_dtype = DType::kF32;
  std::shared_ptr<const void> keep;
  double seconds = 0;  // what making it took
};
// Makes the layer of `plan`, with W^ when `with_dequant`. Called on a background thread
// too (WillAsk): it must not touch shared state.
using ComputeLayerFn =
    std::function<absl::StatusOr<ComputedLayer>(const LayerPlan& plan, bool with_dequant)>;
// Told on the caller's thread each time a layer made by a ComputeLayerFn is taken; an
// error (a cancelled run) fails the Layer() / Dequant() call.
using LayerMadeFn = std::function<absl::Status(const LayerPlan& plan, double seconds)>;
// Starts reading what making `plan`'s layer will read (a hint; any thread).
using LayerPrefetchFn = std::function<void(const LayerPlan& plan)>;

// W^ of a quantized Linear as raw bytes of `dtype`, [out, in].
struct DequantView {
  absl::string_view bytes;
  DType dtype = DType::kF32;
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

  // Every quantized layer of `plans` and `ends` made by `compute` when first asked for,
  // kept until Release(); `made` is told of each, and `prefetch` hints the layer after
  // the one being made ahead (WillAsk).
  static ExportSource Computed(const Checkpoint& ckpt, std::vector<LayerPlan> plans,
                               std::vector<LayerPlan> ends, ComputeLayerFn compute,
                               LayerMadeFn made = nullptr, LayerPrefetchFn prefetch = nullptr);

  // The quantized layers an exporter is about to ask for, in its order (Layer() calls, or
  // Dequant() calls when `with_dequant`). A computed source then makes the next one on a
  // background thread while the caller packs and writes the current one (and hints the
  // one after it). No effect on stored blocks.
  void WillAsk(std::vector<std::string> names, bool with_dequant) const;

  const Checkpoint& checkpoint() const { return *ckpt_; }
  const ModelConfig& config() const { return ckpt_->config(); }
  const std::vector<LayerPlan>& plans() const { return plans_; }

  // The plan of decoder Linear `name` ("model.layers.0.mlp.up_proj"), or nullptr.
  const LayerPlan* Plan(absl::string_view name) const;

  // The plan of a quantized end ("model.embed_tokens", "lm_head"), or nullptr.
  const LayerPlan* EndPlan(absl::string_view name) const;

  // The plan of quantized Linear (or end) `name`, or nullptr when it is not quantized.
  const LayerPlan* QuantizedPlan(absl::string_view name) const;

  // The integer weights of quantized Linear (or end) `name`, or nullptr when it is not
  // quantized; valid until Release(name).
  absl::StatusOr<const IntegerLayer*> Layer(absl::string_view name) const;

  // W^ of quantized Linear (or end) `name` in the checkpoint weight's dtype (the block
  // file's dtype for stored blocks); NOT_FOUND when it is not quantized. Valid until
  // Release(name).
  absl::StatusOr<DequantView> Dequant(absl::string_view name) const;

  // The raw bytes of an original tensor.
  absl::string_view Bytes(const Checkpoint::Tensor& tensor) const {
    return tensor.file->Bytes(*tensor.entry);
  }

  // Drops the resident pages (or the made buffers) of quantized Linear `name` / of an
  // original tensor.
  void Release(absl::string_view name) const;
  void Release(const Checkpoint::Tensor& tensor) const { tensor.file->Evict(*tensor.entry); }

 private:
  struct Stored {
    IntegerLayer layer;
    std::shared_ptr<const SafetensorsFile> file;
    std::vector<const TensorEntry*> entries;
    const TensorEntry* dequant = nullptr;
  };
  // A made layer and whether it holds W^.
  struct Made {
    ComputedLayer computed;
    bool with_dequant = false;
  };
  // What a computed source keeps between calls (shared: the source is movable).
  struct MadeState;
  absl::StatusOr<const Made*> Make(absl::string_view name, bool with_dequant) const;

  const Checkpoint* ckpt_ = nullptr;
  std::vector<LayerPlan> plans_;
  std::vector<LayerPlan> ends_;
  std::map<std::string, Stored, std::less<>> layers_;
  ComputeLayerFn compute_;  // set for Computed()
  LayerMadeFn on_made_;
  LayerPrefetchFn prefetch_;
  std::shared_ptr<MadeState> made_;
};

// The model directory's base name ("Llama-3-8B" for "/models/Llama-3-8B/"),
// "model" when it has none.
std::string ModelName(const std::string& dir);

// The tokenizer and generation files an export copies from the model directory.
const std::vector<std::string>& TokenizerFileNames();

}  // namespace signround
