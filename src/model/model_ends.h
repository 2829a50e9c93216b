// The parts of a model around the decoder blocks: the token
// embedding, and the final norm + lm_head that turn hidden states into logits.
#pragma once

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "src/model/checkpoint.h"
#include "src/model/config.h"

namespace signround {

// Rows of `embed_weight` [vocab, hidden] for `ids` (any integer shape S):
// [S..., hidden]; Gemma multiplies them by sqrt(hidden) (in the weight's dtype).
at::Tensor Embed(const ModelConfig& config, const at::Tensor& embed_weight, const at::Tensor& ids);

struct HeadWeights {
  at::Tensor norm;     // model.norm.weight, [hidden]
  at::Tensor lm_head;  // [vocab, hidden]; the embedding when tie_word_embeddings
};

// Loads model.embed_tokens.weight as an owned copy in `dtype` on `device`.
absl::StatusOr<at::Tensor> LoadEmbedding(const Checkpoint& ckpt, at::ScalarType dtype,
                                         at::Device device);

// Loads the final norm and lm_head (the embedding when tied).
absl::StatusOr<HeadWeights> LoadHeadWeights(const Checkpoint& ckpt, at::ScalarType dtype,
                                            at::Device device);

// Logits [..., vocab] for hidden states [..., hidden]: lm_head(norm(h)).
at::Tensor HeadForward(const ModelConfig& config, const HeadWeights& weights, const at::Tensor& h);

}  // namespace signround
