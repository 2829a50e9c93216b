#include "src/model/llama_block.h"

#include <cmath>
#include <exception>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"
#include "src/tensor/torch_tensor.h"

namespace signround {
namespace {

constexpr std::array<absl::string_view, kBlockLinearCount> kLinearNames = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

absl::Status LoadLinear(const Checkpoint& ckpt, const std::string& prefix, bool has_bias,
                        at::ScalarType dtype, at::Device device, LinearWeights& out) {
  SR_ASSIGN_OR_RETURN(out.weight, LoadCheckpointTensor(ckpt, prefix + ".weight", dtype, device));
  if (has_bias) {
    SR_ASSIGN_OR_RETURN(out.bias, LoadCheckpointTensor(ckpt, prefix + ".bias", dtype, device));
  }
  return absl::OkStatus();
}

// HF repeat_kv: [B, KV, T, D] -> [B, KV * n_rep, T, D]; kv head j serves
// query heads j*n_rep .. (j+1)*n_rep - 1.
at::Tensor RepeatKv(const at::Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  const int64_t b = x.size(0), kv = x.size(1), t = x.size(2), d = x.size(3);
  return x.unsqueeze(2).expand({b, kv, n_rep, t, d}).reshape({b, kv * n_rep, t, d});
}

// [T, T] with -inf above the diagonal and 0 elsewhere.
at::Tensor CausalMask(int64_t t, const at::TensorOptions& options) {
  return at::full({t, t}, -std::numeric_limits<float>::infinity(), options).triu(1);
}

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

at::Tensor Attention(const ModelConfig& c, const BlockWeights& w, const RopeTables& rope,
                     const at::Tensor& x) {
  const int64_t b = x.size(0), t = x.size(1);
  const int64_t heads = c.num_attention_heads, kv_heads = c.num_key_value_heads, d = c.head_dim;
  at::Tensor q = Linear(x, w.q_proj).view({b, t, heads, d}).transpose(1, 2);
  at::Tensor k = Linear(x, w.k_proj).view({b, t, kv_heads, d}).transpose(1, 2);
  at::Tensor v = Linear(x, w.v_proj).view({b, t, kv_heads, d}).transpose(1, 2);
  q = ApplyRope(q, rope);
  k = RepeatKv(ApplyRope(k, rope), heads / kv_heads);
  v = RepeatKv(v, heads / kv_heads);
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(d)));
  scores = scores + CausalMask(t, scores.options());
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  at::Tensor out = at::matmul(probs, v).transpose(1, 2).reshape({b, t, heads * d});
  return Linear(out, w.o_proj);
}

at::Tensor Mlp(const BlockWeights& w, const at::Tensor& x) {
  return Linear(at::silu(Linear(x, w.gate_proj)) * Linear(x, w.up_proj), w.down_proj);
}

}  // namespace

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

const std::array<absl::string_view, kBlockLinearCount>& BlockLinearNames() { return kLinearNames; }

std::array<LinearWeights*, kBlockLinearCount> BlockWeights::Linears() {
  return {&q_proj, &k_proj, &v_proj, &o_proj, &gate_proj, &up_proj, &down_proj};
}

LinearWeights* BlockWeights::FindLinear(absl::string_view name) {
  std::array<LinearWeights*, kBlockLinearCount> all = Linears();
  for (int i = 0; i < kBlockLinearCount; ++i) {
    if (kLinearNames[i] == name) return all[i];
  }
  return nullptr;
}

const LinearWeights* BlockWeights::FindLinear(absl::string_view name) const {
  return const_cast<BlockWeights*>(this)->FindLinear(name);
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
  BlockWeights w;
  SR_ASSIGN_OR_RETURN(w.input_norm,
                      LoadCheckpointTensor(ckpt, p + "input_layernorm.weight", dtype, device));
  SR_ASSIGN_OR_RETURN(
      w.post_attention_norm,
      LoadCheckpointTensor(ckpt, p + "post_attention_layernorm.weight", dtype, device));
  const bool bias[kBlockLinearCount] = {c.qkv_bias, c.qkv_bias, c.qkv_bias, c.o_bias,
                                        c.mlp_bias, c.mlp_bias, c.mlp_bias};
  std::array<LinearWeights*, kBlockLinearCount> linears = w.Linears();
  for (int i = 0; i < kBlockLinearCount; ++i) {
    SR_RETURN_IF_ERROR(
        LoadLinear(ckpt, absl::StrCat(p, kLinearNames[i]), bias[i], dtype, device, *linears[i]));
  }
  return w;
}

at::Tensor RopeInvFreq(const ModelConfig& c) {
  const int64_t d = c.head_dim;
  // 1 / theta^(2i / d), in float64 and then rounded to float32 like transformers.
  at::Tensor exponent = at::arange(0, d, 2, at::kDouble) / static_cast<double>(d);
  at::Tensor inv_freq = (1.0 / at::pow(c.rope_theta, exponent)).to(at::kFloat);
  if (!c.rope_scaling) return inv_freq;
  const RopeScaling& rs = *c.rope_scaling;
  if (rs.type == "linear") return inv_freq / rs.factor;
  if (rs.type != "llama3") return inv_freq;  // the config parser accepts no other type
  // transformers' _compute_llama3_parameters.
  const double orig = static_cast<double>(rs.original_max_position_embeddings);
  const double low_freq_wavelen = orig / rs.low_freq_factor;
  const double high_freq_wavelen = orig / rs.high_freq_factor;
  at::Tensor wavelen = 2 * M_PI / inv_freq;
  at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / rs.factor, inv_freq);
  at::Tensor smooth =
      (orig / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
  at::Tensor smoothed = (1 - smooth) * scaled / rs.factor + smooth * scaled;
  at::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return at::where(medium, smoothed, scaled);
}

RopeTables MakeRopeTables(const ModelConfig& c, int64_t seqlen, at::Device device) {
  at::Tensor inv_freq = RopeInvFreq(c).to(device);
  at::Tensor pos = at::arange(seqlen, at::TensorOptions().dtype(at::kFloat).device(device));
  at::Tensor freqs = at::outer(pos, inv_freq);
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos(), emb.sin()};
}

at::Tensor ApplyRope(const at::Tensor& x, const RopeTables& rope) {
  const int64_t t = x.size(-2);
  at::Tensor cos = rope.cos.narrow(0, 0, t).to(x.scalar_type());
  at::Tensor sin = rope.sin.narrow(0, 0, t).to(x.scalar_type());
  return x * cos + RotateHalf(x) * sin;
}

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor Linear(const at::Tensor& x, const LinearWeights& w) {
  return at::linear(x, w.weight, w.bias);
}

at::Tensor BlockForward(const ModelConfig& c, const BlockWeights& w, const RopeTables& rope,
                        const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == c.hidden_size, "BlockForward: x must be [B, T, ",
              c.hidden_size, "], got ", x.sizes());
  TORCH_CHECK(x.size(1) <= rope.cos.size(0), "BlockForward: sequence length ", x.size(1),
              " exceeds the rotary tables (", rope.cos.size(0), ")");
  at::Tensor h = x + Attention(c, w, rope, RmsNorm(x, w.input_norm, c.rms_norm_eps));
  return h + Mlp(w, RmsNorm(h, w.post_attention_norm, c.rms_norm_eps));
}

}  // namespace signround
