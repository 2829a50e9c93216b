#include "src/model/model_ends.h"

#include <cmath>

#include "src/common/status_macros.h"
#include "src/model/block_ops.h"

namespace signround {

at::Tensor Embed(const ModelConfig& config, const at::Tensor& embed_weight, const at::Tensor& ids) {
  at::Tensor rows = at::embedding(embed_weight, ids);
  if (!config.gemma_norms) return rows;
  // transformers' Gemma3TextScaledWordEmbedding: the scale cast to the weight's dtype.
  const at::Tensor scale = at::scalar_tensor(std::sqrt(static_cast<double>(config.hidden_size)),
                                             at::TensorOptions().dtype(at::kFloat))
                               .to(embed_weight.scalar_type());
  return rows * scale.to(rows.device());
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
  return at::linear(Norm(config, h, w.norm), w.lm_head);
}

}  // namespace signround
