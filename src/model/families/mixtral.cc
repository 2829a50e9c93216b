// Mixtral: Llama attention; every layer's MLP is a sparse MoE (router
// block_sparse_moe.gate, experts block_sparse_moe.experts.N.{w1,w3,w2} =
// gate, up, down), top-k renormalised.
#include "src/common/status_macros.h"
#include "src/model/families/families.h"
#include "src/model/families/moe.h"

namespace signround::families {
namespace {

absl::Status ReadMixtral(const JsonFields& f, ModelConfig& c) {
  // transformers' MixtralConfig defaults; intermediate_size is each expert's.
  MoeConfig moe;
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> experts, f.OptionalInt("num_local_experts"));
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> per_token, f.OptionalInt("num_experts_per_tok"));
  moe.num_experts = experts.value_or(8);
  moe.experts_per_token = per_token.value_or(2);
  moe.expert_intermediate_size = c.intermediate_size;
  moe.norm_topk_prob = true;
  return SetMoe(f, "num_local_experts", std::move(moe), c);
}

BlockLayout MixtralLayout(const ModelConfig& c, int64_t /*layer*/) {
  BlockLayout out;
  layout::AddLlamaNorms(c, out);
  layout::AddAttention(c, out);
  AddSparseMoe(c, "block_sparse_moe.gate", "block_sparse_moe.experts.", "w1", "w3", "w2", out);
  return out;
}

void WriteMixtral(const ModelConfig& c, nlohmann::json& out) {
  out["num_local_experts"] = c.moe->num_experts;
  out["num_experts_per_tok"] = c.moe->experts_per_token;
}

// llama.cpp's "llama" with experts (expert_count > 0): Llama attention (q/k
// permuted, every bias loaded) and a sparse MoE MLP in every layer, the
// experts' w1 / w3 / w2 stacked as ffn_gate_exps / ffn_up_exps / ffn_down_exps.
// feed_forward_length is each expert's (intermediate_size).
constexpr GgufBlockTensor kMixtralGguf[] = {
    {"input_layernorm", "attn_norm"},
    {"post_attention_layernorm", "ffn_norm"},
    {"self_attn.q_proj", "attn_q", true},
    {"self_attn.k_proj", "attn_k", true},
    {"self_attn.v_proj", "attn_v", true},
    {"self_attn.o_proj", "attn_output", true},
    {"block_sparse_moe.gate", "ffn_gate_inp"},
    {"block_sparse_moe.experts.*.w1", "ffn_gate_exps"},
    {"block_sparse_moe.experts.*.w3", "ffn_up_exps"},
    {"block_sparse_moe.experts.*.w2", "ffn_down_exps"},
};

}  // namespace

const ModelFamily kMixtral = {"mixtral",
                              4096 * 32,
                              1e-5,
                              false,
                              false,
                              false,
                              &ReadMixtral,
                              &WriteMixtral,
                              &MixtralLayout,
                              "the MoE router (block_sparse_moe.gate)",
                              {"llama", /*permute_qk=*/true, kMixtralGguf, 0, "silu",
                               /*llama3_rope=*/true, &GgufExpertKeys, nullptr},
                              "MixtralForCausalLM",
                              /*default_rope_theta=*/1e6};

}  // namespace signround::families
