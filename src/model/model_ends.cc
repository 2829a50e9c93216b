#include "src/model/model_ends.h"

#include "src/common/status_macros.h"
#include "src/model/llama_block.h"

namespace signround {

at::Tensor Embed(const at::Tensor& embed_weight, const at::Tensor& ids) {
  return at::embedding(embed_weight, ids);
}

absl::StatusOr<at::Tensor> LoadEmbedding(const Checkpoint& ckpt, at::ScalarType dtype,
                                         at::Device device) {
  return LoadCheckpointTensor(ckpt, "model.embed_tokens.weight", dtype, device);
}

absl::StatusOr<HeadWeights> LoadHeadWeights(const Checkpoint& ckpt, at::ScalarType dtype,
                                            at::Device device) {
  HeadWeights w;
  SR_ASSIGN_OR_RETURN(w.norm, LoadCheckpointTensor(ckpt, "model.norm.weight", dtype, device));
  const char* head_name =
      ckpt.config().tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  SR_ASSIGN_OR_RETURN(w.lm_head, LoadCheckpointTensor(ckpt, head_name, dtype, device));
  return w;
}

at::Tensor HeadForward(const ModelConfig& config, const HeadWeights& w, const at::Tensor& h) {
  return at::linear(RmsNorm(h, w.norm, config.rms_norm_eps), w.lm_head);
}

}  // namespace signround
