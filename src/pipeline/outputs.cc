#include "src/pipeline/outputs.h"

#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/tensor/safetensors_writer.h"
#include "src/tensor/torch_tensor.h"

namespace signround {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCopiedFiles[] = {
    "config.json",     "generation_config.json", "tokenizer.json",
    "tokenizer.model", "tokenizer_config.json",  "special_tokens_map.json",
};

// Hands out a tensor's mapped bytes and releases the previous tensor's pages:
// the writer has consumed them by the time it asks for the next tensor.
class EvictBehind {
 public:
  ~EvictBehind() { Release(); }
  absl::string_view Next(const std::shared_ptr<const SafetensorsFile>& file,
                         const TensorEntry& entry) {
    Release();
    file_ = file;
    entry_ = &entry;
    return file->Bytes(entry);
  }

 private:
  void Release() {
    if (file_) file_->Evict(*entry_);
    file_.reset();
  }
  std::shared_ptr<const SafetensorsFile> file_;
  const TensorEntry* entry_ = nullptr;
};

struct BlockTensor {
  std::shared_ptr<const SafetensorsFile> file;
  const TensorEntry* entry;
};

// Every tensor of every finished block file, by name ("model.layers.3.mlp.up_proj.codes").
absl::StatusOr<std::map<std::string, BlockTensor>> IndexBlocks(const BlockStore& store,
                                                               int64_t layers) {
  std::map<std::string, BlockTensor> out;
  for (int64_t i = 0; i < layers; ++i) {
    SR_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(store.BlockPath(i)));
    for (const TensorEntry& e : file->header().tensors) out[e.name] = {file, &e};
  }
  return out;
}

absl::Status WriteFakeQuantized(const Checkpoint& ckpt,
                                const std::map<std::string, BlockTensor>& blocks,
                                const std::string& path) {
  std::vector<TensorSpec> specs;
  for (const auto& [name, t] : ckpt.tensors())
    specs.push_back({name, t.entry->dtype, t.entry->shape});
  at::Tensor current;
  EvictBehind evict;
  auto bytes = [&](const TensorSpec& spec) -> absl::StatusOr<absl::string_view> {
    const Checkpoint::Tensor& original = ckpt.tensors().at(spec.name);
    const std::string suffix = ".weight";
    auto q = spec.name.size() > suffix.size()
                 ? blocks.find(spec.name.substr(0, spec.name.size() - suffix.size()) + ".dequant")
                 : blocks.end();
    if (q == blocks.end()) return evict.Next(original.file, *original.entry);
    SR_ASSIGN_OR_RETURN(at::Tensor w, LoadTensor(q->second.file, *q->second.entry));
    evict.Next(q->second.file, *q->second.entry);
    current = w.to(*ToScalarType(spec.dtype)).contiguous();
    return absl::string_view(static_cast<const char*>(current.data_ptr()), spec.nbytes());
  };
  return WriteSafetensors(path, std::move(specs), bytes);
}

absl::Status WriteIntegerWeights(const std::map<std::string, BlockTensor>& blocks,
                                 const std::string& path) {
  std::vector<TensorSpec> specs;
  for (const auto& [name, t] : blocks) {
    if (absl::EndsWith(name, ".dequant")) continue;
    specs.push_back({name, t.entry->dtype, t.entry->shape});
  }
  EvictBehind evict;
  auto bytes = [&](const TensorSpec& spec) -> absl::StatusOr<absl::string_view> {
    const BlockTensor& t = blocks.at(spec.name);
    return evict.Next(t.file, *t.entry);
  };
  return WriteSafetensors(path, std::move(specs), bytes);
}

}  // namespace

absl::Status WriteQuantizedCheckpoint(const Checkpoint& ckpt, const BlockStore& store,
                                      const std::string& out_dir) {
  SR_ASSIGN_OR_RETURN(auto blocks, IndexBlocks(store, ckpt.config().num_hidden_layers));
  SR_RETURN_IF_ERROR(WriteFakeQuantized(ckpt, blocks, JoinPath(out_dir, kSingleFileName)));
  SR_RETURN_IF_ERROR(WriteIntegerWeights(blocks, JoinPath(out_dir, kIntegerWeightsFile)));
  for (const char* name : kCopiedFiles) {
    std::string from = JoinPath(ckpt.dir(), name);
    if (!fs::exists(from)) continue;
    SR_ASSIGN_OR_RETURN(std::string contents, ReadFileToString(from, 1ull << 30));
    SR_RETURN_IF_ERROR(WriteFileAtomically(JoinPath(out_dir, name), contents));
  }
  return absl::OkStatus();
}

}  // namespace signround
