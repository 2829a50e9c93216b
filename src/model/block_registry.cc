#include "src/model/block_registry.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/model/blocks/blocks.h"

namespace signround {
namespace {

const BlockImpl kBlocks[] = {
    {"llama", &blocks::DenseForward},        {"mistral", &blocks::DenseForward},
    {"qwen2", &blocks::DenseForward},        {"qwen3", &blocks::DenseForward},
    {"qwen3_moe", &blocks::Qwen3MoeForward}, {"mixtral", &blocks::MixtralForward},
    {"gemma3_text", &blocks::Gemma3Forward}, {"phi3", &blocks::DenseForward},
};

}  // namespace

absl::StatusOr<const BlockImpl*> FindBlockImpl(absl::string_view model_type) {
  for (const BlockImpl& b : kBlocks) {
    if (b.model_type == model_type) return &b;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("model_type '", model_type,
                   "' has no block implementation (supported: ", BlockModelTypes(), ")"));
}

absl::StatusOr<BlockForwardFn> FindBlockForward(absl::string_view model_type) {
  absl::StatusOr<const BlockImpl*> impl = FindBlockImpl(model_type);
  if (!impl.ok()) return impl.status();
  return (*impl)->forward;
}

std::string BlockModelTypes() {
  return absl::StrJoin(kBlocks, ", ", [](std::string* out, const BlockImpl& b) {
    out->append(b.model_type.data(), b.model_type.size());
  });
}

at::Tensor ForwardAll(const ModelConfig& config, BlockForwardFn forward,
                      const BlockWeights& weights, const RopeTables& rope, const at::Tensor& x,
                      int64_t batch, std::vector<int64_t>* expert_tokens) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> parts;
  for (int64_t b = 0; b < x.size(0); b += batch) {
    parts.push_back(forward(config, weights, rope, x.narrow(0, b, std::min(batch, x.size(0) - b)),
                            expert_tokens));
  }
  return at::cat(parts, 0);
}

}  // namespace signround
