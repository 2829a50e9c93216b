#include "src/model/families/moe.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace signround::families {

// Far above any real model (DeepSeek-V3 has 256 experts).
constexpr int64_t kMaxExperts = 4096;

absl::Status SetMoe(const JsonFields& f, absl::string_view experts_key, MoeConfig moe,
                    ModelConfig& c) {
  if (moe.num_experts < 1 || moe.num_experts > kMaxExperts) {
    return f.Error(experts_key,
                   absl::StrCat("must be between 1 and ", kMaxExperts, ", got ", moe.num_experts));
  }
  if (moe.experts_per_token < 1 || moe.experts_per_token > moe.num_experts) {
    return f.Error("num_experts_per_tok",
                   absl::StrCat("must be between 1 and ", experts_key, " (", moe.num_experts,
                                "), got ", moe.experts_per_token));
  }
  if (moe.expert_intermediate_size < 1 || moe.expert_intermediate_size > (int64_t{1} << 24)) {
    return f.Error("intermediate_size",
                   absl::StrCat("of an expert must be between 1 and 2^24, got ",
                                moe.expert_intermediate_size));
  }
  if (moe.decoder_sparse_step < 1) {
    return f.Error("decoder_sparse_step",
                   absl::StrCat("must be at least 1, got ", moe.decoder_sparse_step));
  }
  for (int64_t l : moe.mlp_only_layers) {
    if (l < 0 || l >= c.num_hidden_layers) {
      return f.Error("mlp_only_layers", absl::StrCat("holds ", l, ", not a layer (the model has ",
                                                     c.num_hidden_layers, ")"));
    }
  }
  c.moe = std::move(moe);
  return absl::OkStatus();
}

void AddSparseMoe(const ModelConfig& c, absl::string_view router, absl::string_view experts_prefix,
                  absl::string_view gate, absl::string_view up, absl::string_view down,
                  BlockLayout& out) {
  out.params.push_back({std::string(router),
                        {c.moe->num_experts, c.hidden_size},
                        BlockInput::kNone,
                        BlockInput::kMlp});
  for (int64_t e = 0; e < c.moe->num_experts; ++e) {
    layout::AddGatedMlp(c, absl::StrCat(experts_prefix, e, "."), gate, up, down,
                        c.moe->expert_intermediate_size, e, out);
  }
}

std::vector<GgufKey> GgufExpertKeys(const ModelConfig& c) {
  return {GgufKey::U32("expert_count", c.moe->num_experts),
          GgufKey::U32("expert_used_count", c.moe->experts_per_token)};
}

}  // namespace signround::families
