#include "src/model/blocks/blocks.h"

namespace signround::blocks {

at::Tensor DenseForward(const ModelConfig& c, const BlockWeights& w, const RopeTables& rope,
                        const at::Tensor& x, std::vector<int64_t>* /*expert_tokens*/) {
  at::Tensor h = x + Attention(c, w, rope, Norm(c, x, w.param("input_layernorm")));
  return h + GatedMlp(c, w, "mlp.", "gate_proj", "up_proj", "down_proj",
                      Norm(c, h, w.param("post_attention_layernorm")));
}

}  // namespace signround::blocks
