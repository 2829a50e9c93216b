#include "src/model/block_ops.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"

namespace signround {
namespace {

// HF repeat_kv: [B, KV, T, D] -> [B, KV * n_rep, T, D]; kv head j serves
// query heads j*n_rep .. (j+1)*n_rep - 1.
at::Tensor RepeatKv(const at::Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  const int64_t b = x.size(0), kv = x.size(1), t = x.size(2), d = x.size(3);
  return x.unsqueeze(2).expand({b, kv, n_rep, t, d}).reshape({b, kv * n_rep, t, d});
}

// [T, T]: 0 where query i may attend key j (j <= i, and j > i - window when
// window > 0), -inf elsewhere.
at::Tensor AttentionMask(int64_t t, int64_t window, const at::TensorOptions& options) {
  const float inf = std::numeric_limits<float>::infinity();
  at::Tensor mask = at::full({t, t}, -inf, options).triu(1);
  if (window > 0 && window < t) mask = mask + at::full({t, t}, -inf, options).tril(-window);
  return mask;
}

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// [B, T, heads * d] -> [B, heads, T, d].
at::Tensor Heads(const at::Tensor& x, int64_t heads, int64_t d) {
  return x.view({x.size(0), x.size(1), heads, d}).transpose(1, 2);
}

}  // namespace

at::Tensor RopeInvFreq(const ModelConfig& c, double theta, bool scaled) {
  const int64_t d = c.head_dim;
  // 1 / theta^(2i / d), in float64 and then rounded to float32 like transformers.
  at::Tensor exponent = at::arange(0, d, 2, at::kDouble) / static_cast<double>(d);
  at::Tensor inv_freq = (1.0 / at::pow(theta, exponent)).to(at::kFloat);
  if (!scaled || !c.rope_scaling) return inv_freq;
  const RopeScaling& rs = *c.rope_scaling;
  if (rs.type == "linear") return inv_freq / rs.factor;
  if (rs.type != "llama3") return inv_freq;  // the config parser accepts no other type
  // transformers' _compute_llama3_parameters.
  const double orig = static_cast<double>(rs.original_max_position_embeddings);
  const double low_freq_wavelen = orig / rs.low_freq_factor;
  const double high_freq_wavelen = orig / rs.high_freq_factor;
  at::Tensor wavelen = 2 * M_PI / inv_freq;
  at::Tensor scaled_freq = at::where(wavelen > low_freq_wavelen, inv_freq / rs.factor, inv_freq);
  at::Tensor smooth =
      (orig / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
  at::Tensor smoothed = (1 - smooth) * scaled_freq / rs.factor + smooth * scaled_freq;
  at::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return at::where(medium, smoothed, scaled_freq);
}

RopeTables MakeRopeTables(const ModelConfig& c, int64_t seqlen, at::Device device) {
  at::Tensor pos = at::arange(seqlen, at::TensorOptions().dtype(at::kFloat).device(device));
  auto tables = [&](const at::Tensor& inv_freq) {
    at::Tensor freqs = at::outer(pos, inv_freq.to(device));
    at::Tensor emb = at::cat({freqs, freqs}, -1);
    return std::make_pair(emb.cos(), emb.sin());
  };
  RopeTables out;
  std::tie(out.cos, out.sin) = tables(RopeInvFreq(c));
  if (c.rope_local_theta > 0) {
    // transformers' local rotary embedding is the default RoPE with the local base.
    std::tie(out.local_cos, out.local_sin) =
        tables(RopeInvFreq(c, c.rope_local_theta, /*scaled=*/false));
  }
  return out;
}

at::Tensor ApplyRope(const at::Tensor& x, const at::Tensor& cos_table,
                     const at::Tensor& sin_table) {
  const int64_t t = x.size(-2);
  at::Tensor cos = cos_table.narrow(0, 0, t).to(x.scalar_type());
  at::Tensor sin = sin_table.narrow(0, 0, t).to(x.scalar_type());
  return x * cos + RotateHalf(x) * sin;
}

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor GemmaRmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return (normed * (1.0 + weight.to(at::kFloat))).to(x.scalar_type());
}

at::Tensor Norm(const ModelConfig& c, const at::Tensor& x, const at::Tensor& weight) {
  return c.gemma_norms ? GemmaRmsNorm(x, weight, c.rms_norm_eps)
                       : RmsNorm(x, weight, c.rms_norm_eps);
}

namespace {
thread_local const ScopedLinearInputObserver::Fn* linear_observer = nullptr;
}  // namespace

ScopedLinearInputObserver::ScopedLinearInputObserver(Fn fn) : fn_(std::move(fn)) {
  linear_observer = &fn_;
}

ScopedLinearInputObserver::~ScopedLinearInputObserver() { linear_observer = nullptr; }

at::Tensor Linear(const at::Tensor& x, const LinearWeights& w) {
  if (linear_observer != nullptr) (*linear_observer)(w, x);
  return at::linear(x, w.weight, w.bias);
}

at::Tensor Activation(const ModelConfig& c, const at::Tensor& x) {
  if (c.hidden_act == "gelu_pytorch_tanh") return at::gelu(x, "tanh");
  return at::silu(x);
}

at::Tensor Attention(const ModelConfig& c, const BlockWeights& w, const RopeTables& rope,
                     const at::Tensor& x) {
  const int64_t b = x.size(0), t = x.size(1);
  const int64_t heads = c.num_attention_heads, kv_heads = c.num_key_value_heads, d = c.head_dim;
  at::Tensor q, k, v;
  if (const LinearWeights* qkv = w.FindLinear("self_attn.qkv_proj"); qkv != nullptr) {
    at::Tensor all = Linear(x, *qkv);
    q = all.narrow(-1, 0, c.q_dim());
    k = all.narrow(-1, c.q_dim(), c.kv_dim());
    v = all.narrow(-1, c.q_dim() + c.kv_dim(), c.kv_dim());
  } else {
    q = Linear(x, w.linear("self_attn.q_proj"));
    k = Linear(x, w.linear("self_attn.k_proj"));
    v = Linear(x, w.linear("self_attn.v_proj"));
  }
  q = Heads(q.contiguous(), heads, d);
  k = Heads(k.contiguous(), kv_heads, d);
  v = Heads(v.contiguous(), kv_heads, d);
  if (c.qk_norm) {
    q = Norm(c, q, w.param("self_attn.q_norm"));
    k = Norm(c, k, w.param("self_attn.k_norm"));
  }
  const bool sliding = c.IsSlidingLayer(w.layer);
  const bool local_rope = sliding && rope.local_cos.defined();
  const at::Tensor& cos = local_rope ? rope.local_cos : rope.cos;
  const at::Tensor& sin = local_rope ? rope.local_sin : rope.sin;
  q = ApplyRope(q, cos, sin);
  k = RepeatKv(ApplyRope(k, cos, sin), heads / kv_heads);
  v = RepeatKv(v, heads / kv_heads);
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * c.AttentionScale();
  scores = scores + AttentionMask(t, sliding ? c.sliding_window : 0, scores.options());
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  at::Tensor out = at::matmul(probs, v).transpose(1, 2).reshape({b, t, heads * d});
  return Linear(out, w.linear("self_attn.o_proj"));
}

at::Tensor GatedMlp(const ModelConfig& c, const BlockWeights& w, absl::string_view prefix,
                    absl::string_view gate, absl::string_view up, absl::string_view down,
                    const at::Tensor& x) {
  at::Tensor g, u;
  if (const LinearWeights* fused = w.FindLinear(absl::StrCat(prefix, "gate_up_proj"));
      fused != nullptr) {
    at::Tensor both = Linear(x, *fused);
    const int64_t ff = both.size(-1) / 2;
    g = both.narrow(-1, 0, ff);
    u = both.narrow(-1, ff, ff);
  } else {
    g = Linear(x, w.linear(absl::StrCat(prefix, gate)));
    u = Linear(x, w.linear(absl::StrCat(prefix, up)));
  }
  return Linear(Activation(c, g) * u, w.linear(absl::StrCat(prefix, down)));
}

at::Tensor SparseMoe(const ModelConfig& c, const BlockWeights& w, const MoeNames& n,
                     const at::Tensor& x, std::vector<int64_t>* expert_tokens) {
  TORCH_CHECK(c.moe.has_value(), "SparseMoe: the config has no experts");
  const MoeConfig& moe = *c.moe;
  const int64_t k = moe.experts_per_token;
  at::Tensor h = x.reshape({-1, x.size(-1)});
  at::Tensor logits = at::linear(h, w.param(n.router));
  at::Tensor probs = at::softmax(logits, 1, at::kFloat);
  auto [top_w, top_i] = at::topk(probs, k, -1);
  if (moe.norm_topk_prob) top_w = top_w / top_w.sum(-1, /*keepdim=*/true);
  top_w = top_w.to(h.scalar_type()).reshape({-1});
  // The (token, slot) pairs of each expert, grouped by expert.
  at::Tensor flat = top_i.reshape({-1});
  at::Tensor order = std::get<1>(at::sort(flat, /*stable=*/true, 0, false));
  at::Tensor counts = at::bincount(flat, {}, moe.num_experts).to(at::kCPU);
  const int64_t* count = counts.data_ptr<int64_t>();
  if (expert_tokens != nullptr) {
    expert_tokens->resize(static_cast<size_t>(moe.num_experts), 0);
    for (int64_t e = 0; e < moe.num_experts; ++e) (*expert_tokens)[e] += count[e];
  }
  at::Tensor out = at::zeros_like(h);
  int64_t start = 0;
  for (int64_t e = 0; e < moe.num_experts; ++e) {
    if (count[e] == 0) continue;
    at::Tensor pairs = order.narrow(0, start, count[e]);
    start += count[e];
    at::Tensor tokens = at::div(pairs, k, "floor");
    const std::string prefix = absl::StrCat(n.experts_prefix, e, ".");
    at::Tensor y = GatedMlp(c, w, prefix, n.gate, n.up, n.down, h.index_select(0, tokens));
    out = out.index_add(0, tokens, y * top_w.index_select(0, pairs).unsqueeze(1));
  }
  return out.view(x.sizes());
}

}  // namespace signround
