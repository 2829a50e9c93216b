// The Llama-family decoder block (Llama, Mistral, Qwen2) in ATen: weights,
// rotary tables, and a differentiable forward pass that matches Hugging Face
// transformers' eager implementation.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/model/checkpoint.h"
#include "src/model/config.h"

namespace signround {

// One nn.Linear: y = x W^T + b.
struct LinearWeights {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out]; undefined when the layer has none
};

inline constexpr int kBlockLinearCount = 7;

// The 7 linears' names inside a block, in DecoderLinears() order:
// "self_attn.q_proj", ..., "mlp.down_proj" (the checkpoint name is
// "model.layers.N." + name).
const std::array<absl::string_view, kBlockLinearCount>& BlockLinearNames();

struct BlockWeights {
  at::Tensor input_norm;           // [hidden]
  at::Tensor post_attention_norm;  // [hidden]
  LinearWeights q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;

  // The linear named `name` (one of BlockLinearNames()), or nullptr. A tuner
  // swaps `weight` for a fake-quantized tensor and calls BlockForward again.
  LinearWeights* FindLinear(absl::string_view name);
  const LinearWeights* FindLinear(absl::string_view name) const;

  // The linears in BlockLinearNames() order.
  std::array<LinearWeights*, kBlockLinearCount> Linears();
};

// Loads tensor `name` of `ckpt` as an owned copy (not aliasing the
// memory-mapped file) in `dtype` on `device`. The weight of a packed Linear
// ("P.weight" stored as P.qweight, ...) is dequantized.
absl::StatusOr<at::Tensor> LoadCheckpointTensor(const Checkpoint& ckpt, const std::string& name,
                                                at::ScalarType dtype, at::Device device);

// Loads decoder block `layer` from `ckpt`, converted to `dtype` on `device`.
// The tensors are copies (they do not alias the memory-mapped file), so they
// may be modified. INVALID_ARGUMENT for a layer out of range.
absl::StatusOr<BlockWeights> LoadBlockWeights(const Checkpoint& ckpt, int64_t layer,
                                              at::ScalarType dtype, at::Device device);

// Rotary position tables, [T, head_dim] fp32, for positions 0..T-1.
struct RopeTables {
  at::Tensor cos;
  at::Tensor sin;
};

// The rotary inverse frequencies, [head_dim / 2] fp32, with rope_scaling
// ("linear" or "llama3") applied as transformers does.
at::Tensor RopeInvFreq(const ModelConfig& config);

// Tables for positions 0..seqlen-1: freqs = pos x inv_freq, emb = cat(freqs,
// freqs), cos/sin of emb.
RopeTables MakeRopeTables(const ModelConfig& config, int64_t seqlen, at::Device device);

// Rotate-half RoPE of `x` [..., T, head_dim] with the first T rows of the
// tables: x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1).
at::Tensor ApplyRope(const at::Tensor& x, const RopeTables& rope);

// RMSNorm over the last dimension, computed in fp32 and cast back to x's dtype
// before the weight is applied (as transformers' LlamaRMSNorm).
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);

// y = x W^T (+ b).
at::Tensor Linear(const at::Tensor& x, const LinearWeights& w);

// One decoder block on x [B, T, hidden] (T <= the tables' length):
// h = x + Attn(RMSNorm(x)); out = h + MLP(RMSNorm(h)), causal attention with
// grouped-query heads. Differentiable with respect to every weight. Throws
// c10::Error on mismatched shapes or dtypes; callers catch at their boundary.
at::Tensor BlockForward(const ModelConfig& config, const BlockWeights& weights,
                        const RopeTables& rope, const at::Tensor& x);

}  // namespace signround
