// ParseModelConfig on config.json text, then the invariants of a parsed config
// (the families' own fields included) and a round trip through ModelConfigToJson
// (what make-test-model writes and `inspect --json` prints) back to an
// identical config.
#include <cstddef>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "src/model/config.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr int64_t kMaxDim = int64_t{1} << 24;

bool InRange(int64_t v) { return v >= 1 && v <= kMaxDim; }

// What the families' own keys set (src/model/families/).
bool SameFamilyFields(const signround::ModelConfig& a, const signround::ModelConfig& b) {
  const bool moe = a.moe.has_value() == b.moe.has_value() &&
                   (!a.moe || (a.moe->num_experts == b.moe->num_experts &&
                               a.moe->experts_per_token == b.moe->experts_per_token &&
                               a.moe->expert_intermediate_size == b.moe->expert_intermediate_size &&
                               a.moe->norm_topk_prob == b.moe->norm_topk_prob &&
                               a.moe->decoder_sparse_step == b.moe->decoder_sparse_step &&
                               a.moe->mlp_only_layers == b.moe->mlp_only_layers));
  return moe && a.qk_norm == b.qk_norm && a.gemma_norms == b.gemma_norms &&
         a.query_pre_attn_scalar == b.query_pre_attn_scalar &&
         a.sliding_layers == b.sliding_layers && a.sliding_window == b.sliding_window &&
         a.rope_local_theta == b.rope_local_theta;
}

bool Same(const signround::ModelConfig& a, const signround::ModelConfig& b) {
  const bool rope =
      a.rope_scaling.has_value() == b.rope_scaling.has_value() &&
      (!a.rope_scaling || (a.rope_scaling->type == b.rope_scaling->type &&
                           a.rope_scaling->factor == b.rope_scaling->factor &&
                           (a.rope_scaling->type != "llama3" ||
                            (a.rope_scaling->low_freq_factor == b.rope_scaling->low_freq_factor &&
                             a.rope_scaling->high_freq_factor == b.rope_scaling->high_freq_factor &&
                             a.rope_scaling->original_max_position_embeddings ==
                                 b.rope_scaling->original_max_position_embeddings))));
  return rope && a.model_type == b.model_type && a.architectures == b.architectures &&
         a.hidden_size == b.hidden_size && a.intermediate_size == b.intermediate_size &&
         a.num_hidden_layers == b.num_hidden_layers &&
         a.num_attention_heads == b.num_attention_heads &&
         a.num_key_value_heads == b.num_key_value_heads && a.head_dim == b.head_dim &&
         a.max_position_embeddings == b.max_position_embeddings && a.vocab_size == b.vocab_size &&
         a.rms_norm_eps == b.rms_norm_eps && a.rope_theta == b.rope_theta &&
         a.tie_word_embeddings == b.tie_word_embeddings && a.qkv_bias == b.qkv_bias &&
         a.o_bias == b.o_bias && a.mlp_bias == b.mlp_bias && a.torch_dtype == b.torch_dtype &&
         a.hidden_act == b.hidden_act && a.bos_token_id == b.bos_token_id &&
         a.eos_token_ids == b.eos_token_ids && SameFamilyFields(a, b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<signround::ModelConfig> c = signround::ParseModelConfig(text, "config.json");
  if (!c.ok()) {
    FUZZ_CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(c.status().message(), "config.json"));
    return 0;
  }
  FUZZ_CHECK(InRange(c->hidden_size) && InRange(c->intermediate_size) &&
             InRange(c->num_hidden_layers) && InRange(c->num_attention_heads) &&
             InRange(c->num_key_value_heads) && InRange(c->head_dim) && InRange(c->vocab_size) &&
             InRange(c->max_position_embeddings));
  FUZZ_CHECK(c->num_attention_heads % c->num_key_value_heads == 0);
  FUZZ_CHECK(c->head_dim % 2 == 0);
  FUZZ_CHECK(c->q_dim() <= kMaxDim && c->kv_dim() <= c->q_dim());
  FUZZ_CHECK(c->rms_norm_eps > 0 && c->rope_theta > 0);
  // Gemma 3's MLP is GELU-tanh (hidden_activation); every other family's is SiLU.
  FUZZ_CHECK(c->hidden_act == (c->gemma_norms ? "gelu_pytorch_tanh" : "silu"));
  if (c->moe) {
    FUZZ_CHECK(c->moe->experts_per_token >= 1 && c->moe->experts_per_token <= c->moe->num_experts);
    FUZZ_CHECK(c->moe->expert_intermediate_size >= 1 && c->moe->decoder_sparse_step >= 1);
    for (int64_t l : c->moe->mlp_only_layers) FUZZ_CHECK(l >= 0 && l < c->num_hidden_layers);
  }
  FUZZ_CHECK(c->sliding_layers.empty() ||
             static_cast<int64_t>(c->sliding_layers.size()) == c->num_hidden_layers);
  FUZZ_CHECK(c->sliding_layers.empty() || c->sliding_window >= 1);
  FUZZ_CHECK(c->AttentionScale() > 0);
  if (c->rope_scaling) {
    FUZZ_CHECK(c->rope_scaling->type == "linear" || c->rope_scaling->type == "llama3");
    FUZZ_CHECK(c->rope_scaling->factor > 0);
  }
  // The round trip: what we write must read back as the same config.
  const std::string written = signround::ModelConfigToJson(*c).dump(2);
  absl::StatusOr<signround::ModelConfig> again =
      signround::ParseModelConfig(written, "written config.json");
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(Same(*c, *again));
  return 0;
}
