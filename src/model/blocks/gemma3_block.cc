#include "src/model/blocks/blocks.h"

namespace signround::blocks {

at::Tensor Gemma3Forward(const ModelConfig& c, const BlockWeights& w, const RopeTables& rope,
                         const at::Tensor& x, std::vector<int64_t>* /*expert_tokens*/) {
  at::Tensor attn = Attention(c, w, rope, Norm(c, x, w.param("input_layernorm")));
  at::Tensor h = x + Norm(c, attn, w.param("post_attention_layernorm"));
  at::Tensor mlp = GatedMlp(c, w, "mlp.", "gate_proj", "up_proj", "down_proj",
                            Norm(c, h, w.param("pre_feedforward_layernorm")));
  return h + Norm(c, mlp, w.param("post_feedforward_layernorm"));
}

}  // namespace signround::blocks
