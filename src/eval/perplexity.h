// Perplexity of a checkpoint on token rows, streaming the model one decoder
// block at a time: all rows are embedded, then each block's weights are
// loaded, every row is run through it in batches, and the weights are
// dropped. Peak memory is one block plus the activations of all rows.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "src/data/token_dataset.h"
#include "src/model/block_weights.h"
#include "src/model/checkpoint.h"

namespace signround {

struct PerplexityOptions {
  // Rows per forward call.
  int64_t batch_size = 8;
  // Where the math runs; activations live there too.
  at::Device device = at::kCPU;
  // Compute dtype of weights and activations (the NLL is always fp32).
  at::ScalarType dtype = at::kFloat;
  // Supplies block `layer`'s weights (in `dtype` on `device`), e.g. a
  // quantized model's. Unset: loaded from the checkpoint.
  std::function<absl::StatusOr<BlockWeights>(int64_t layer)> block_weights;
  // Replace model.embed_tokens.weight / lm_head.weight (a quantized model's W^);
  // undefined: the checkpoint's. A tied model's lm_head is its (replaced) embedding.
  at::Tensor embedding;
  at::Tensor lm_head;
};

struct PerplexityResult {
  double perplexity = 0;  // exp(mean_nll)
  double mean_nll = 0;    // mean next-token negative log-likelihood, nats
  int64_t predictions = 0;
  int64_t rows = 0;
};

// exp(mean NLL of ids[:, 1:] given logits[:, :-1]) over all rows. Rows may
// differ in length (they are right-padded; causal attention keeps padding
// from reaching real tokens). INVALID_ARGUMENT for ids outside the
// vocabulary, bad options, or no predictions (every row shorter than 2).
absl::StatusOr<PerplexityResult> EvaluatePerplexity(const Checkpoint& ckpt,
                                                    const std::vector<TokenRow>& rows,
                                                    const PerplexityOptions& options = {});

}  // namespace signround
