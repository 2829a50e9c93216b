#include "src/pipeline/outputs.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/export/sharded_safetensors.h"
#include "src/export/staging_dir.h"
#include "src/tensor/torch_tensor.h"

namespace signround {
namespace {

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
  std::vector<std::string> paths;
  for (int64_t i = 0; i < layers; ++i) paths.push_back(store.BlockPath(i));
  if (store.HasEnds()) paths.push_back(store.EndsPath());
  for (const std::string& path : paths) {
    SR_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
    for (const TensorEntry& e : file->header().tensors) out[e.name] = {file, &e};
  }
  return out;
}

absl::Status WriteFakeWeights(const Checkpoint& ckpt,
                              const std::map<std::string, BlockTensor>& blocks,
                              const std::string& dir, uint64_t max_shard_bytes) {
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
  return WriteShardedSafetensors(dir, std::move(specs), bytes, max_shard_bytes);
}

}  // namespace

absl::Status WriteFakeQuantized(const Checkpoint& ckpt, const BlockStore& store,
                                const std::string& dir, uint64_t max_shard_bytes) {
  SR_ASSIGN_OR_RETURN(auto blocks, IndexBlocks(store, ckpt.config().num_hidden_layers));
  SR_RETURN_IF_ERROR(WriteFakeWeights(ckpt, blocks, dir, max_shard_bytes));
  SR_ASSIGN_OR_RETURN(std::string config,
                      ReadFileToString(JoinPath(ckpt.dir(), "config.json"), 16 << 20));
  SR_RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "config.json"), config));
  return CopyTokenizerFiles(ckpt.dir(), dir);
}

namespace {

absl::Status WriteExport(const Checkpoint& ckpt, const BlockStore& store,
                         const ExportSource& source, const ExportFormat& f,
                         const ExportOptions& options, const std::string& out_dir) {
  SR_ASSIGN_OR_RETURN(StagingDir dir, StagingDir::Create(out_dir, f.dir_name));
  if (f.kind == FormatKind::kFake) {
    SR_RETURN_IF_ERROR(WriteFakeQuantized(ckpt, store, dir.path(), options.max_shard_bytes));
  } else {
    SR_RETURN_IF_ERROR(WriteQuantizedExport(source, f, options, dir.path()));
  }
  return dir.Commit();
}

}  // namespace

absl::StatusOr<ExportResults> WriteExports(
    const Checkpoint& ckpt, const BlockStore& store, const std::vector<LayerPlan>& plans,
    const std::vector<LayerPlan>& ends, const std::vector<ExportFormat>& formats,
    const ExportOptions& options, const std::string& out_dir,
    const std::function<void(const ExportFormat&, const absl::Status&)>& done) {
  std::vector<std::string> block_files;
  for (int64_t i = 0; i < ckpt.config().num_hidden_layers; ++i) {
    block_files.push_back(store.BlockPath(i));
  }
  SR_ASSIGN_OR_RETURN(
      ExportSource source,
      ExportSource::Open(ckpt, plans, block_files, ends, store.HasEnds() ? store.EndsPath() : ""));
  ExportResults results;
  for (const ExportFormat& f : formats) {
    absl::Status s = WriteExport(ckpt, store, source, f, options, out_dir);
    if (s.ok()) {
      results.written[f.name] = f.dir_name;
    } else {
      results.failed[f.name] = std::string(s.message());
    }
    if (done) done(f, s);
  }
  return results;
}

}  // namespace signround
