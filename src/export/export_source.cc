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
                                                const std::vector<std::string>& block_files,
                                                std::vector<LayerPlan> ends,
                                                const std::string& ends_file) {
  ExportSource source;
  source.ckpt_ = &ckpt;
  source.plans_ = std::move(plans);
  source.ends_ = std::move(ends);
  std::map<std::string, std::shared_ptr<const SafetensorsFile>> files;  // opened once each
  auto add = [&](const LayerPlan& p, const std::string& path) -> absl::Status {
    std::shared_ptr<const SafetensorsFile>& opened = files[path];
    if (!opened) {
      SR_ASSIGN_OR_RETURN(opened, SafetensorsFile::Open(path));
    }
    Stored s;
    s.file = opened;
    const SafetensorsFile* file = s.file.get();
    IntegerLayer& l = s.layer;
    l.name = p.layer.name;
    l.scheme = p.scheme;
    l.out = p.layer.out;
    l.in = p.layer.in;
    const std::string& n = p.layer.name;
    // Maps tensor `suffix` of the layer into `bytes`, checking its dtype and shape.
    auto map = [&](const char* suffix, DType dtype, std::vector<int64_t> shape,
                   absl::string_view* bytes) -> absl::Status {
      SR_ASSIGN_OR_RETURN(const TensorEntry* e,
                          FindStored(*file, n + suffix, dtype, std::move(shape)));
      s.entries.push_back(e);
      *bytes = file->Bytes(*e);
      return absl::OkStatus();
    };
    SR_RETURN_IF_ERROR(map(".codes", DType::kU8, {l.out, l.in}, &l.codes));
    if (contract::IsKQuant(l.scheme.data_type)) {
      if (l.in % contract::kKQuantSuperBlock != 0) {
        return absl::InternalError(absl::StrCat(n, ": a k-quant layer of ", l.in, " inputs"));
      }
      SR_RETURN_IF_ERROR(map(".sub_scales", DType::kU8, {l.out, l.groups()}, &l.sub_scales));
      SR_RETURN_IF_ERROR(map(".d", DType::kF16, {l.out, l.supers()}, &l.d));
      if (!l.scheme.sym) {
        SR_RETURN_IF_ERROR(map(".sub_mins", DType::kU8, {l.out, l.groups()}, &l.sub_mins));
        SR_RETURN_IF_ERROR(map(".dmin", DType::kF16, {l.out, l.supers()}, &l.dmin));
      }
    } else {
      SR_RETURN_IF_ERROR(map(".scales", DType::kF16, {l.out, l.groups()}, &l.scales));
      if (l.scheme.float_min) {
        SR_RETURN_IF_ERROR(map(".mins", DType::kF16, {l.out, l.groups()}, &l.mins));
      } else {
        SR_RETURN_IF_ERROR(map(".zeros", DType::kU8, {l.out, l.groups()}, &l.zeros));
      }
    }
    source.layers_.emplace(n, std::move(s));
    return absl::OkStatus();
  };
  for (const LayerPlan& p : source.plans_) {
    if (!p.quantized) continue;
    if (p.layer.layer < 0 || p.layer.layer >= static_cast<int64_t>(block_files.size())) {
      return absl::InternalError(
          absl::StrCat(p.layer.name, ": no block file for layer ", p.layer.layer));
    }
    SR_RETURN_IF_ERROR(add(p, block_files[p.layer.layer]));
  }
  for (const LayerPlan& p : source.ends_) {
    if (!p.quantized) continue;
    if (ends_file.empty()) return absl::InternalError(absl::StrCat(p.layer.name, ": no ends file"));
    SR_RETURN_IF_ERROR(add(p, ends_file));
  }
  return source;
}

const LayerPlan* ExportSource::EndPlan(absl::string_view name) const {
  for (const LayerPlan& p : ends_) {
    if (p.layer.name == name && p.quantized) return &p;
  }
  return nullptr;
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
