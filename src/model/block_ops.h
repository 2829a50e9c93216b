// The pieces decoder blocks are built from, in ATen, each matching Hugging Face
// transformers' eager implementation: rotary tables, RMSNorm (Llama and Gemma
// styles), grouped-query causal attention (optionally sliding-window, with q/k
// norms, fused qkv), gated MLPs (optionally fused gate_up) and the sparse MoE
// MLP. All are differentiable with respect to every weight; they throw
// c10::Error on mismatched shapes (callers catch at their boundary).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/string_view.h"
#include "src/model/block_weights.h"
#include "src/model/config.h"

namespace signround {

// Rotary position tables, [T, head_dim] fp32, for positions 0..T-1; the local
// ones (sliding-window layers with their own base) are defined only when the
// config has rope_local_theta.
struct RopeTables {
  at::Tensor cos;
  at::Tensor sin;
  at::Tensor local_cos;
  at::Tensor local_sin;
};

// The rotary inverse frequencies, [head_dim / 2] fp32, for base `theta`, with
// rope_scaling ("linear" or "llama3") applied as transformers does when `scaled`.
at::Tensor RopeInvFreq(const ModelConfig& config, double theta, bool scaled);
inline at::Tensor RopeInvFreq(const ModelConfig& config) {
  return RopeInvFreq(config, config.rope_theta, true);
}

// Tables for positions 0..seqlen-1: freqs = pos x inv_freq, emb = cat(freqs,
// freqs), cos/sin of emb.
RopeTables MakeRopeTables(const ModelConfig& config, int64_t seqlen, at::Device device);

// Rotate-half RoPE of `x` [..., T, head_dim] with the first T rows of cos/sin:
// x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1).
at::Tensor ApplyRope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
inline at::Tensor ApplyRope(const at::Tensor& x, const RopeTables& rope) {
  return ApplyRope(x, rope.cos, rope.sin);
}

// RMSNorm over the last dimension, computed in fp32 and cast back to x's dtype
// before the weight is applied (as transformers' LlamaRMSNorm).
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);
// Gemma's: x * rsqrt(mean(x^2) + eps) * (1 + w), all in fp32, cast back at the end.
at::Tensor GemmaRmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);
// The config's norm (Gemma's when gemma_norms).
at::Tensor Norm(const ModelConfig& config, const at::Tensor& x, const at::Tensor& weight);

// y = x W^T (+ b). Hands x to the thread's LinearInputObserver when one is set.
at::Tensor Linear(const at::Tensor& x, const LinearWeights& w);

// Sees the input of every Linear a forward pass on this thread computes while it is
// alive (the engine's activation statistics: the importance of each input channel);
// `w` is the Linear's weights, by address. Observers do not nest.
class ScopedLinearInputObserver {
 public:
  using Fn = std::function<void(const LinearWeights& w, const at::Tensor& x)>;
  explicit ScopedLinearInputObserver(Fn fn);
  ~ScopedLinearInputObserver();
  ScopedLinearInputObserver(const ScopedLinearInputObserver&) = delete;
  ScopedLinearInputObserver& operator=(const ScopedLinearInputObserver&) = delete;

 private:
  Fn fn_;
};

// The config's hidden activation (silu or gelu_pytorch_tanh).
at::Tensor Activation(const ModelConfig& config, const at::Tensor& x);

// Self-attention of block `w.layer` on x [B, T, hidden] (already normed):
// self_attn.{q,k,v}_proj or the fused self_attn.qkv_proj (rows [q | k | v]),
// q/k norms when config.qk_norm, RoPE, causal (sliding-window on sliding
// layers) softmax attention with grouped-query heads, then self_attn.o_proj.
at::Tensor Attention(const ModelConfig& config, const BlockWeights& w, const RopeTables& rope,
                     const at::Tensor& x);

// down(act(gate(x)) * up(x)) with Linears `prefix` + gate/up/down, or with the
// fused `prefix`gate_up_proj (rows [gate | up]) when the block has it.
at::Tensor GatedMlp(const ModelConfig& config, const BlockWeights& w, absl::string_view prefix,
                    absl::string_view gate, absl::string_view up, absl::string_view down,
                    const at::Tensor& x);

// Module names of a sparse MoE MLP inside the block.
struct MoeNames {
  absl::string_view router;          // "mlp.gate": [num_experts, hidden], no bias
  absl::string_view experts_prefix;  // "mlp.experts." (+ N + ".")
  absl::string_view gate, up, down;  // "gate_proj", "up_proj", "down_proj"
};

// The sparse MoE MLP on x [B, T, hidden]: softmax of the router logits over all
// experts in fp32, top-k, renormalised when norm_topk_prob, cast to x's dtype;
// each expert runs on the tokens routed to it only (an expert without tokens is
// not run and gets no gradient), its output weighted and summed in expert
// order. When `expert_tokens` is not null, the number of tokens each expert
// receives is added to it (size num_experts).
at::Tensor SparseMoe(const ModelConfig& config, const BlockWeights& w, const MoeNames& names,
                     const at::Tensor& x, std::vector<int64_t>* expert_tokens);

}  // namespace signround
