#include "src/model/block_weights.h"

#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"
#include "src/model/layout.h"
#include "src/tensor/torch_tensor.h"

namespace signround {

absl::StatusOr<at::ScalarType> WeightDType(const Checkpoint& ckpt, const std::string& linear) {
  SR_ASSIGN_OR_RETURN(Checkpoint::Tensor t, ckpt.Find(linear + ".weight"));
  std::optional<at::ScalarType> type = ToScalarType(t.entry->dtype);
  if (!type) {
    return absl::InternalError(absl::StrCat(linear, ": weight dtype has no LibTorch type"));
  }
  return *type;
}

absl::StatusOr<at::Tensor> LoadCheckpointTensor(const Checkpoint& ckpt, const std::string& name,
                                                at::ScalarType dtype, at::Device device) {
  at::Tensor raw;
  std::vector<float> dequantized;
  absl::StatusOr<Checkpoint::Tensor> t = ckpt.Find(name);
  const PackedLinear* packed = nullptr;
  if (!t.ok() && absl::EndsWith(name, ".weight")) {
    auto it = ckpt.packed_linears().find(name.substr(0, name.size() - 7));
    if (it != ckpt.packed_linears().end()) packed = &it->second;
  }
  if (packed != nullptr) {
    SR_ASSIGN_OR_RETURN(dequantized, DequantizePackedLinear(*packed));
    raw = at::from_blob(dequantized.data(), {packed->out, packed->in}, at::kFloat);
  } else {
    SR_RETURN_IF_ERROR(t.status());
    SR_ASSIGN_OR_RETURN(raw, LoadTensor(t->file, *t->entry));
  }
  try {
    at::Tensor copy = raw.to(device, dtype, /*non_blocking=*/false, /*copy=*/true).contiguous();
    if (t.ok()) t->file->Evict(*t->entry);
    return copy;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(ckpt.dir(), ": tensor '", name, "': cannot convert to ",
                                            c10::toString(dtype), " on ", device.str(), ": ",
                                            e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(ckpt.dir(), ": tensor '", name, "': cannot convert to ",
                                            c10::toString(dtype), " on ", device.str(), ": ",
                                            e.what()));
  }
}

LinearWeights* BlockWeights::FindLinear(absl::string_view name) {
  for (auto& [n, l] : linears) {
    if (n == name) return &l;
  }
  return nullptr;
}

const LinearWeights* BlockWeights::FindLinear(absl::string_view name) const {
  return const_cast<BlockWeights*>(this)->FindLinear(name);
}

const LinearWeights& BlockWeights::linear(absl::string_view name) const {
  const LinearWeights* l = FindLinear(name);
  TORCH_CHECK(l != nullptr, "block ", layer, " has no Linear '", std::string(name), "'");
  return *l;
}

at::Tensor& BlockWeights::param(absl::string_view name) {
  for (auto& [n, t] : params) {
    if (n == name) return t;
  }
  TORCH_CHECK(false, "block ", layer, " has no tensor '", std::string(name), "'");
}

const at::Tensor& BlockWeights::param(absl::string_view name) const {
  return const_cast<BlockWeights*>(this)->param(name);
}

absl::StatusOr<BlockWeights> LoadBlockWeights(const Checkpoint& ckpt, int64_t layer,
                                              at::ScalarType dtype, at::Device device) {
  const ModelConfig& c = ckpt.config();
  if (layer < 0 || layer >= c.num_hidden_layers) {
    return absl::InvalidArgumentError(absl::StrCat(ckpt.dir(), ": layer ", layer,
                                                   " is out of range (the model has ",
                                                   c.num_hidden_layers, " layers)"));
  }
  const std::string p = absl::StrCat("model.layers.", layer, ".");
  const BlockLayout layout = DecoderBlockLayout(c, layer);
  BlockWeights w;
  w.layer = layer;
  for (const BlockParam& t : layout.params) {
    SR_ASSIGN_OR_RETURN(at::Tensor value,
                        LoadCheckpointTensor(ckpt, p + t.name + ".weight", dtype, device));
    w.params.emplace_back(t.name, std::move(value));
  }
  for (const BlockLinear& l : layout.linears) {
    LinearWeights lw;
    SR_ASSIGN_OR_RETURN(lw.weight,
                        LoadCheckpointTensor(ckpt, p + l.name + ".weight", dtype, device));
    if (l.bias) {
      SR_ASSIGN_OR_RETURN(lw.bias, LoadCheckpointTensor(ckpt, p + l.name + ".bias", dtype, device));
    }
    w.linears.emplace_back(l.name, std::move(lw));
  }
  return w;
}

}  // namespace signround
