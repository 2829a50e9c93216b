#include "src/model/blocks/blocks.h"

namespace signround::blocks {
namespace {

constexpr MoeNames kQwen3MoeNames = {"mlp.gate", "mlp.experts.", "gate_proj", "up_proj",
                                     "down_proj"};
constexpr MoeNames kMixtralNames = {"block_sparse_moe.gate", "block_sparse_moe.experts.", "w1",
                                    "w3", "w2"};

}  // namespace

at::Tensor Qwen3MoeForward(const ModelConfig& c, const BlockWeights& w, const RopeTables& rope,
                           const at::Tensor& x, std::vector<int64_t>* expert_tokens) {
  if (!c.IsMoeLayer(w.layer)) return DenseForward(c, w, rope, x, expert_tokens);
  at::Tensor h = x + Attention(c, w, rope, Norm(c, x, w.param("input_layernorm")));
  return h + SparseMoe(c, w, kQwen3MoeNames, Norm(c, h, w.param("post_attention_layernorm")),
                       expert_tokens);
}

at::Tensor MixtralForward(const ModelConfig& c, const BlockWeights& w, const RopeTables& rope,
                          const at::Tensor& x, std::vector<int64_t>* expert_tokens) {
  at::Tensor h = x + Attention(c, w, rope, Norm(c, x, w.param("input_layernorm")));
  return h + SparseMoe(c, w, kMixtralNames, Norm(c, h, w.param("post_attention_layernorm")),
                       expert_tokens);
}

}  // namespace signround::blocks
