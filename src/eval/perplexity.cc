#include "src/eval/perplexity.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <utility>

#include <c10/core/InferenceMode.h>

#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"
#include "src/data/token_tensor.h"
#include "src/model/block_registry.h"
#include "src/model/model_ends.h"

namespace signround {
namespace {

// valid[r][p]: whether position p of row r predicts a real token (p + 1 < length).
at::Tensor ValidPredictions(const std::vector<TokenRow>& rows, int64_t t) {
  std::vector<int64_t> lengths;
  for (const TokenRow& row : rows) lengths.push_back(static_cast<int64_t>(row.size()));
  at::Tensor len = at::tensor(lengths, at::kLong).unsqueeze(1);
  return at::arange(t - 1, at::kLong).unsqueeze(0) + 1 < len;
}

absl::Status CheckInputs(const Checkpoint& ckpt, const std::vector<TokenRow>& rows,
                         const PerplexityOptions& o) {
  if (o.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("perplexity: batch size must be positive, got ", o.batch_size));
  }
  SR_RETURN_IF_ERROR(CheckTokenIds(rows, ckpt.config().vocab_size, "perplexity"));
  for (const TokenRow& row : rows) {
    if (row.size() >= 2) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("perplexity: nothing to predict: ", rows.size(),
                                                 " rows and none has at least 2 tokens"));
}

// Runs `hidden` [N, T, hidden] through every decoder block in place.
absl::Status RunBlocks(const Checkpoint& ckpt, const BlockImpl& impl, const PerplexityOptions& o,
                       at::Tensor& hidden) {
  const ModelConfig& c = ckpt.config();
  const int64_t n = hidden.size(0);
  RopeTables rope = MakeRopeTables(c, hidden.size(1), o.device);
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    absl::StatusOr<BlockWeights> w =
        o.block_weights ? o.block_weights(layer) : impl.load(ckpt, layer, o.dtype, o.device);
    if (!w.ok()) return w.status();
    for (int64_t b = 0; b < n; b += o.batch_size) {
      at::Tensor slice = hidden.narrow(0, b, std::min(o.batch_size, n - b));
      slice.copy_(impl.forward(c, *w, rope, slice, nullptr));
    }
  }  // each block's weights are dropped at the end of its iteration
  return absl::OkStatus();
}

struct NllSum {
  double sum = 0;
  int64_t count = 0;
};

// Sum of next-token NLL over the valid predictions of every row.
NllSum HeadNll(const ModelConfig& c, const HeadWeights& head, const at::Tensor& hidden,
               const at::Tensor& ids, const at::Tensor& valid, int64_t batch_size) {
  const int64_t n = hidden.size(0), t = hidden.size(1);
  NllSum total;
  for (int64_t b = 0; b < n; b += batch_size) {
    const int64_t len = std::min(batch_size, n - b);
    at::Tensor logits =
        HeadForward(c, head, hidden.narrow(0, b, len).narrow(1, 0, t - 1)).to(at::kFloat);
    at::Tensor targets = ids.narrow(0, b, len).narrow(1, 1, t - 1).unsqueeze(-1);
    at::Tensor nll = -at::log_softmax(logits, -1).gather(-1, targets).squeeze(-1);
    at::Tensor mask = valid.narrow(0, b, len);
    total.sum += nll.masked_select(mask).to(at::kDouble).sum().item<double>();
    total.count += mask.sum().item<int64_t>();
  }
  return total;
}

absl::StatusOr<PerplexityResult> Evaluate(const Checkpoint& ckpt, const BlockImpl& impl,
                                          const std::vector<TokenRow>& rows,
                                          const PerplexityOptions& o) {
  c10::InferenceMode inference;
  const ModelConfig& c = ckpt.config();
  SR_ASSIGN_OR_RETURN(at::Tensor ids, PadTokenRows(rows));
  ids = ids.to(o.device);
  at::Tensor valid = ValidPredictions(rows, ids.size(1)).to(o.device);
  at::Tensor hidden;
  {
    at::Tensor embed;
    if (o.embedding.defined()) {
      embed = o.embedding.to(o.device, o.dtype);
    } else {
      SR_ASSIGN_OR_RETURN(embed, LoadEmbedding(ckpt, o.dtype, o.device));
    }
    hidden = Embed(c, embed, ids);
  }
  SR_RETURN_IF_ERROR(RunBlocks(ckpt, impl, o, hidden));
  SR_ASSIGN_OR_RETURN(HeadWeights head, LoadHeadWeights(ckpt, o.dtype, o.device));
  if (o.lm_head.defined()) {
    head.lm_head = o.lm_head.to(o.device, o.dtype);
  } else if (c.tie_word_embeddings && o.embedding.defined()) {
    head.lm_head = o.embedding.to(o.device, o.dtype);
  }
  NllSum nll = HeadNll(c, head, hidden, ids, valid, o.batch_size);
  PerplexityResult result;
  result.rows = static_cast<int64_t>(rows.size());
  result.predictions = nll.count;
  result.mean_nll = nll.sum / static_cast<double>(nll.count);
  result.perplexity = std::exp(result.mean_nll);
  return result;
}

}  // namespace

absl::StatusOr<PerplexityResult> EvaluatePerplexity(const Checkpoint& ckpt,
                                                    const std::vector<TokenRow>& rows,
                                                    const PerplexityOptions& options) {
  SR_RETURN_IF_ERROR(CheckInputs(ckpt, rows, options));
  SR_ASSIGN_OR_RETURN(const BlockImpl* impl, FindBlockImpl(ckpt.config().model_type));
  try {
    return Evaluate(ckpt, *impl, rows, options);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("perplexity of ", ckpt.dir(), ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {  // some LibTorch 1.13 checks throw std::runtime_error
    return absl::InternalError(absl::StrCat("perplexity of ", ckpt.dir(), ": ", e.what()));
  }
}

}  // namespace signround
