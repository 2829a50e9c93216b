// The decoder block forward passes, registered by model_type in
// src/model/block_registry.cc. Each runs one block on x [B, T, hidden] with the
// weights its family's layout lists; MoE blocks add each expert's token count
// to `expert_tokens` when it is not null.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "src/model/block_ops.h"

namespace signround::blocks {

// Pre-norm block: h = x + Attn(norm(x)); out = h + MLP(norm(h)). Llama,
// Mistral, Qwen2, Qwen3 (q/k norms) and Phi-3 (fused Linears).
at::Tensor DenseForward(const ModelConfig& c, const BlockWeights& w, const RopeTables& rope,
                        const at::Tensor& x, std::vector<int64_t>* expert_tokens);

// Qwen3-MoE: the dense block with a sparse MoE MLP on its MoE layers.
at::Tensor Qwen3MoeForward(const ModelConfig& c, const BlockWeights& w, const RopeTables& rope,
                           const at::Tensor& x, std::vector<int64_t>* expert_tokens);

// Mixtral: the dense block with the block_sparse_moe MLP.
at::Tensor MixtralForward(const ModelConfig& c, const BlockWeights& w, const RopeTables& rope,
                          const at::Tensor& x, std::vector<int64_t>* expert_tokens);

// Gemma 3: post-norms on the attention and MLP outputs before each residual add.
at::Tensor Gemma3Forward(const ModelConfig& c, const BlockWeights& w, const RopeTables& rope,
                         const at::Tensor& x, std::vector<int64_t>* expert_tokens);

}  // namespace signround::blocks
