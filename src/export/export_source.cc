#include "src/export/export_source.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/common/status_macros.h"

namespace signround {
namespace {

absl::StatusOr<const TensorEntry*> FindStored(const SafetensorsFile& file, const std::string& name,
                                              DType dtype, std::vector<int64_t> shape) {
  absl::StatusOr<const TensorEntry*> e = file.Find(name);
  if (!e.ok()) return absl::InternalError(e.status().message());
  if ((*e)->dtype != dtype || (*e)->shape != shape) {
    return absl::InternalError(absl::StrCat(file.path(), ": tensor '", name, "' is ",
                                            DescribeTensor(**e), "; expected ", DTypeName(dtype),
                                            " [", absl::StrJoin(shape, ", "), "]"));
  }
  return *e;
}

}  // namespace

absl::StatusOr<ExportSource> ExportSource::Open(const Checkpoint& ckpt,
                                                std::vector<LayerPlan> plans,
                                                const std::vector<std::string>& block_files) {
  ExportSource source;
  source.ckpt_ = &ckpt;
  source.plans_ = std::move(plans);
  std::map<int64_t, std::shared_ptr<const SafetensorsFile>> files;
  for (const LayerPlan& p : source.plans_) {
    if (!p.quantized) continue;
    if (p.layer.layer < 0 || p.layer.layer >= static_cast<int64_t>(block_files.size())) {
      return absl::InternalError(
          absl::StrCat(p.layer.name, ": no block file for layer ", p.layer.layer));
    }
    auto& file = files[p.layer.layer];
    if (!file) {
      SR_ASSIGN_OR_RETURN(file, SafetensorsFile::Open(block_files[p.layer.layer]));
    }
    Stored s;
    s.file = file;
    IntegerLayer& l = s.layer;
    l.name = p.layer.name;
    l.scheme = p.scheme;
    l.out = p.layer.out;
    l.in = p.layer.in;
    const std::string& n = p.layer.name;
    SR_ASSIGN_OR_RETURN(s.entries[0], FindStored(*file, n + ".codes", DType::kU8, {l.out, l.in}));
    SR_ASSIGN_OR_RETURN(s.entries[1],
                        FindStored(*file, n + ".scales", DType::kF16, {l.out, l.groups()}));
    if (l.scheme.float_min) {
      SR_ASSIGN_OR_RETURN(s.entries[2],
                          FindStored(*file, n + ".mins", DType::kF16, {l.out, l.groups()}));
    } else {
      SR_ASSIGN_OR_RETURN(s.entries[2],
                          FindStored(*file, n + ".zeros", DType::kU8, {l.out, l.groups()}));
    }
    l.codes = file->Bytes(*s.entries[0]);
    l.scales = file->Bytes(*s.entries[1]);
    (l.scheme.float_min ? l.mins : l.zeros) = file->Bytes(*s.entries[2]);
    source.layers_.emplace(n, std::move(s));
  }
  return source;
}

const LayerPlan* ExportSource::Plan(absl::string_view name) const {
  for (const LayerPlan& p : plans_) {
    if (p.layer.name == name) return &p;
  }
  return nullptr;
}

const IntegerLayer* ExportSource::Layer(absl::string_view name) const {
  auto it = layers_.find(name);
  return it == layers_.end() ? nullptr : &it->second.layer;
}

void ExportSource::Release(absl::string_view name) const {
  auto it = layers_.find(name);
  if (it == layers_.end()) return;
  for (const TensorEntry* e : it->second.entries) it->second.file->Evict(*e);
}

std::string ModelName(const std::string& dir) {
  absl::string_view d = dir;
  while (d.size() > 1 && d.back() == '/') d.remove_suffix(1);
  const size_t slash = d.rfind('/');
  absl::string_view base = slash == absl::string_view::npos ? d : d.substr(slash + 1);
  return base.empty() || base == "." || base == ".." || base == "/" ? "model" : std::string(base);
}

const std::vector<std::string>& TokenizerFileNames() {
  static const std::vector<std::string> names = {
      "generation_config.json",  "tokenizer.json",    "tokenizer.model", "tokenizer_config.json",
      "special_tokens_map.json", "added_tokens.json", "vocab.json",      "merges.txt",
  };
  return names;
}

}  // namespace signround
