#include "src/pipeline/outputs.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/export/sharded_safetensors.h"
#include "src/export/staging_dir.h"
#include "src/tensor/float_bytes.h"

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

// "P" for tensor "P.weight" of quantized layer P, else "".
std::string QuantizedPrefix(const ExportSource& source, const std::string& tensor) {
  const std::string suffix = ".weight";
  if (!absl::EndsWith(tensor, suffix)) return "";
  std::string prefix = tensor.substr(0, tensor.size() - suffix.size());
  return source.QuantizedPlan(prefix) != nullptr ? prefix : "";
}

absl::Status WriteFakeWeights(const ExportSource& source, const std::string& dir,
                              uint64_t max_shard_bytes) {
  const Checkpoint& ckpt = source.checkpoint();
  std::vector<TensorSpec> specs;
  std::vector<std::string> quantized;  // in the order the writer asks for them
  for (const auto& [name, t] : ckpt.tensors()) {
    specs.push_back({name, t.entry->dtype, t.entry->shape});
    const std::string prefix = QuantizedPrefix(source, name);
    if (!prefix.empty()) quantized.push_back(prefix);
  }
  source.WillAsk(std::move(quantized), /*with_dequant=*/true);
  std::string converted;  // W^ in the tensor's dtype when the source holds another
  std::string previous;   // the quantized layer handed out last
  EvictBehind evict;
  auto bytes = [&](const TensorSpec& spec) -> absl::StatusOr<absl::string_view> {
    if (!previous.empty()) source.Release(previous);
    previous.clear();
    const Checkpoint::Tensor& original = ckpt.tensors().at(spec.name);
    const std::string prefix = QuantizedPrefix(source, spec.name);
    if (prefix.empty()) {
      return evict.Next(original.file, *original.entry);
    }
    SR_ASSIGN_OR_RETURN(DequantView w, source.Dequant(prefix));
    previous = prefix;
    if (w.dtype == spec.dtype) return w.bytes;
    converted = FloatsToBytes(FloatsFromBytes(w.bytes, w.dtype), spec.dtype);
    return absl::string_view(converted);
  };
  absl::Status s = WriteShardedSafetensors(dir, std::move(specs), bytes, max_shard_bytes);
  if (!previous.empty()) source.Release(previous);
  return s;
}

}  // namespace

absl::Status WriteFakeQuantized(const ExportSource& source, const std::string& dir,
                                uint64_t max_shard_bytes) {
  const Checkpoint& ckpt = source.checkpoint();
  SR_RETURN_IF_ERROR(WriteFakeWeights(source, dir, max_shard_bytes));
  SR_ASSIGN_OR_RETURN(std::string config,
                      ReadFileToString(JoinPath(ckpt.dir(), "config.json"), 16 << 20));
  SR_RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "config.json"), config));
  return CopyTokenizerFiles(ckpt.dir(), dir);
}

namespace {

absl::Status WriteExport(const ExportSource& source, const ExportFormat& f,
                         const ExportOptions& options, const std::string& out_dir) {
  SR_ASSIGN_OR_RETURN(StagingDir dir, StagingDir::Create(out_dir, f.dir_name));
  if (f.kind == FormatKind::kFake) {
    SR_RETURN_IF_ERROR(WriteFakeQuantized(source, dir.path(), options.max_shard_bytes));
  } else {
    SR_RETURN_IF_ERROR(WriteQuantizedExport(source, f, options, dir.path()));
  }
  return dir.Commit();
}

}  // namespace

absl::StatusOr<Checkpoint> WithStoredChanges(const Checkpoint& ckpt, const BlockStore& store) {
  std::map<std::string, Checkpoint::Tensor, std::less<>> replaced;
  for (int64_t i = 0; i < ckpt.config().num_hidden_layers; ++i) {
    SR_ASSIGN_OR_RETURN(auto block, store.ChangedTensors(i, absl::StrCat("model.layers.", i, ".")));
    replaced.merge(block);
  }
  return ckpt.WithReplacedTensors(replaced);
}

absl::StatusOr<ExportSource> OpenStoredBlocks(const Checkpoint& ckpt, const BlockStore& store,
                                              const std::vector<LayerPlan>& plans,
                                              const std::vector<LayerPlan>& ends) {
  std::vector<std::string> block_files;
  for (int64_t i = 0; i < ckpt.config().num_hidden_layers; ++i) {
    block_files.push_back(store.BlockPath(i));
  }
  return ExportSource::Open(ckpt, plans, block_files, ends,
                            store.HasEnds() ? store.EndsPath() : "");
}

ExportResults WriteExports(
    const ExportSource& source, const std::vector<ExportFormat>& formats,
    const ExportOptions& options, const std::string& out_dir,
    const std::function<void(const ExportFormat&, const absl::Status&)>& done) {
  ExportResults results;
  for (const ExportFormat& f : formats) {
    absl::Status s = WriteExport(source, f, options, out_dir);
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
