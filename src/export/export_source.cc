#include "src/export/export_source.h"

#include <algorithm>
#include <future>
#include <optional>
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
    if (absl::StatusOr<const TensorEntry*> dq = file->Find(n + ".dequant"); dq.ok()) {
      if ((*dq)->shape != std::vector<int64_t>{l.out, l.in} ||
          !IsFloatingWeightDType((*dq)->dtype) || (*dq)->dtype == DType::kF64) {
        return absl::InternalError(
            absl::StrCat(file->path(), ": tensor '", n, ".dequant' is ", DescribeTensor(**dq)));
      }
      s.dequant = *dq;
      s.entries.push_back(*dq);
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

struct ExportSource::MadeState {
  std::map<std::string, Made, std::less<>> layers;
  // The order of WillAsk, and the next layer being made in the background.
  std::vector<std::string> order;
  bool order_with_dequant = false;
  struct Ahead {
    std::string name;
    bool with_dequant = false;
    std::future<absl::StatusOr<ComputedLayer>> result;
  };
  std::optional<Ahead> ahead;
};

ExportSource ExportSource::Computed(const Checkpoint& ckpt, std::vector<LayerPlan> plans,
                                    std::vector<LayerPlan> ends, ComputeLayerFn compute,
                                    LayerMadeFn made, LayerPrefetchFn prefetch) {
  ExportSource source;
  source.ckpt_ = &ckpt;
  source.plans_ = std::move(plans);
  source.ends_ = std::move(ends);
  source.compute_ = std::move(compute);
  source.on_made_ = std::move(made);
  source.prefetch_ = std::move(prefetch);
  source.made_ = std::make_shared<MadeState>();
  return source;
}

void ExportSource::WillAsk(std::vector<std::string> names, bool with_dequant) const {
  if (!compute_) return;
  made_->ahead.reset();
  made_->order = std::move(names);
  made_->order_with_dequant = with_dequant;
}

const LayerPlan* ExportSource::QuantizedPlan(absl::string_view name) const {
  if (const LayerPlan* p = Plan(name); p != nullptr && p->quantized) return p;
  return EndPlan(name);
}

absl::StatusOr<const ExportSource::Made*> ExportSource::Make(absl::string_view name,
                                                             bool with_dequant) const {
  MadeState& state = *made_;
  auto it = state.layers.find(name);
  if (it != state.layers.end() && (it->second.with_dequant || !with_dequant)) return &it->second;
  const LayerPlan* plan = QuantizedPlan(name);
  if (plan == nullptr) return absl::InternalError(absl::StrCat(name, ": not a quantized layer"));
  // A layer made ahead for another order than the caller's is dropped (once it is done).
  if (state.ahead && state.ahead->name != name) state.ahead.reset();
  absl::StatusOr<ComputedLayer> c;
  if (state.ahead && state.ahead->name == name && (state.ahead->with_dequant || !with_dequant)) {
    c = state.ahead->result.get();
    with_dequant = state.ahead->with_dequant;
    state.ahead.reset();
  } else {
    c = compute_(*plan, with_dequant);
  }
  if (!c.ok()) return c.status();
  if (on_made_) SR_RETURN_IF_ERROR(on_made_(*plan, c->seconds));
  Made& m = state.layers[std::string(name)];
  m = {*std::move(c), with_dequant};
  // The next layer of the announced order, made while the caller uses this one.
  auto at = std::find(state.order.begin(), state.order.end(), name);
  if (!state.ahead && at != state.order.end() && at + 1 != state.order.end() &&
      state.layers.find(*(at + 1)) == state.layers.end()) {
    if (const LayerPlan* next = QuantizedPlan(*(at + 1)); next != nullptr) {
      const bool dq = state.order_with_dequant;
      // And the read of the one after it starts now (a hint: no waiting).
      const LayerPlan* after =
          prefetch_ && at + 2 != state.order.end() ? QuantizedPlan(*(at + 2)) : nullptr;
      state.ahead =
          MadeState::Ahead{*(at + 1), dq,
                           std::async(std::launch::async, [compute = compute_, p = *next, dq,
                                                           hint = after ? prefetch_ : nullptr,
                                                           h = after ? *after : LayerPlan()] {
                             if (hint) hint(h);
                             return compute(p, dq);
                           })};
    }
  }
  return &m;
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

absl::StatusOr<const IntegerLayer*> ExportSource::Layer(absl::string_view name) const {
  if (compute_) {
    if (QuantizedPlan(name) == nullptr) return nullptr;
    SR_ASSIGN_OR_RETURN(const Made* m, Make(name, /*with_dequant=*/false));
    return &m->computed.layer;
  }
  auto it = layers_.find(name);
  return it == layers_.end() ? nullptr : &it->second.layer;
}

absl::StatusOr<DequantView> ExportSource::Dequant(absl::string_view name) const {
  if (compute_) {
    if (QuantizedPlan(name) == nullptr) {
      return absl::NotFoundError(absl::StrCat(name, ": not a quantized layer"));
    }
    SR_ASSIGN_OR_RETURN(const Made* m, Make(name, /*with_dequant=*/true));
    return DequantView{m->computed.dequant, m->computed.dequant_dtype};
  }
  auto it = layers_.find(name);
  if (it == layers_.end())
    return absl::NotFoundError(absl::StrCat(name, ": not a quantized layer"));
  const Stored& s = it->second;
  if (s.dequant == nullptr) {
    return absl::InternalError(absl::StrCat(s.file->path(), ": no tensor '", name, ".dequant'"));
  }
  return DequantView{s.file->Bytes(*s.dequant), s.dequant->dtype};
}

void ExportSource::Release(absl::string_view name) const {
  if (compute_) {
    if (auto m = made_->layers.find(name); m != made_->layers.end()) made_->layers.erase(m);
    return;
  }
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
