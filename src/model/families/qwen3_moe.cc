// Qwen3-MoE: Qwen3 attention; a sparse MoE MLP (router mlp.gate, experts
// mlp.experts.N.{gate,up,down}_proj) on the layers decoder_sparse_step and
// mlp_only_layers select, a dense MLP on the others.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/common/status_macros.h"
#include "src/model/families/families.h"
#include "src/model/families/moe.h"

namespace signround::families {
namespace {

absl::Status ReadQwen3Moe(const JsonFields& f, ModelConfig& c) {
  SR_ASSIGN_OR_RETURN(std::optional<bool> sliding, f.OptionalBool("use_sliding_window"));
  if (sliding.value_or(false)) {
    return f.Error("use_sliding_window", "true is not supported (only full attention)");
  }
  c.qk_norm = true;
  // transformers' Qwen3MoeConfig defaults.
  MoeConfig moe;
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> experts, f.OptionalInt("num_experts"));
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> per_token, f.OptionalInt("num_experts_per_tok"));
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> ff, f.OptionalInt("moe_intermediate_size"));
  SR_ASSIGN_OR_RETURN(std::optional<bool> norm, f.OptionalBool("norm_topk_prob"));
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> step, f.OptionalInt("decoder_sparse_step"));
  moe.num_experts = experts.value_or(128);
  moe.experts_per_token = per_token.value_or(8);
  moe.expert_intermediate_size = ff.value_or(768);
  moe.norm_topk_prob = norm.value_or(false);
  moe.decoder_sparse_step = step.value_or(1);
  if (const nlohmann::json* only = f.Get("mlp_only_layers"); only != nullptr) {
    if (!only->is_array()) return f.Error("mlp_only_layers", "must be a list of layer indices");
    for (const nlohmann::json& v : *only) {
      std::optional<int64_t> l = JsonToInt64(v);
      if (!l) return f.Error("mlp_only_layers", "must be a list of layer indices");
      moe.mlp_only_layers.push_back(*l);
    }
  }
  return SetMoe(f, "num_experts", std::move(moe), c);
}

BlockLayout Qwen3MoeLayout(const ModelConfig& c, int64_t layer) {
  BlockLayout out;
  layout::AddLlamaNorms(c, out);
  layout::AddQkNorms(c, out);
  layout::AddAttention(c, out);
  if (c.IsMoeLayer(layer)) {
    AddSparseMoe(c, "mlp.gate", "mlp.experts.", "gate_proj", "up_proj", "down_proj", out);
  } else {
    layout::AddGatedMlp(c, "mlp.", "gate_proj", "up_proj", "down_proj", c.intermediate_size, -1,
                        out);
  }
  return out;
}

void WriteQwen3Moe(const ModelConfig& c, nlohmann::json& out) {
  out["attention_bias"] = c.qkv_bias;
  out["num_experts"] = c.moe->num_experts;
  out["num_experts_per_tok"] = c.moe->experts_per_token;
  out["moe_intermediate_size"] = c.moe->expert_intermediate_size;
  out["norm_topk_prob"] = c.moe->norm_topk_prob;
  out["decoder_sparse_step"] = c.moe->decoder_sparse_step;
  out["mlp_only_layers"] = c.moe->mlp_only_layers;
}

// llama.cpp's "qwen3moe": Qwen3 attention and a sparse MoE MLP in every layer
// (ffn_gate_inp, the experts stacked); no dense MLP, no expert biases.
constexpr GgufBlockTensor kQwen3MoeGguf[] = {
    {"input_layernorm", "attn_norm"},
    {"post_attention_layernorm", "ffn_norm"},
    {"self_attn.q_norm", "attn_q_norm"},
    {"self_attn.k_norm", "attn_k_norm"},
    {"self_attn.q_proj", "attn_q", true},
    {"self_attn.k_proj", "attn_k", true},
    {"self_attn.v_proj", "attn_v", true},
    {"self_attn.o_proj", "attn_output"},
    {"mlp.gate", "ffn_gate_inp"},
    {"mlp.experts.*.gate_proj", "ffn_gate_exps"},
    {"mlp.experts.*.up_proj", "ffn_up_exps"},
    {"mlp.experts.*.down_proj", "ffn_down_exps"},
};

std::vector<GgufKey> Qwen3MoeGgufKeys(const ModelConfig& c) {
  std::vector<GgufKey> out = GgufExpertKeys(c);
  out.push_back(GgufKey::U32("expert_feed_forward_length", c.moe->expert_intermediate_size));
  return out;
}

absl::Status CheckQwen3MoeGguf(const ModelConfig& c) {
  const MoeConfig& moe = *c.moe;
  if (!moe.mlp_only_layers.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mlp_only_layers [", absl::StrJoin(moe.mlp_only_layers, ", "),
        "] cannot be exported: llama.cpp's qwen3moe has a sparse MoE MLP in every layer (no "
        "dense MLP layers)"));
  }
  if (moe.decoder_sparse_step != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "decoder_sparse_step ", moe.decoder_sparse_step,
        " cannot be exported: llama.cpp's qwen3moe has a sparse MoE MLP in every layer (no "
        "dense MLP layers)"));
  }
  if (!moe.norm_topk_prob) {
    return absl::InvalidArgumentError(
        "norm_topk_prob false cannot be exported: llama.cpp's qwen3moe always renormalises the "
        "top-k routing weights to sum to 1");
  }
  return absl::OkStatus();
}

}  // namespace

const ModelFamily kQwen3Moe = {
    "qwen3_moe",
    32768,
    1e-6,
    false,
    true,
    /*honours_mlp_bias=*/false,
    &ReadQwen3Moe,
    &WriteQwen3Moe,
    &Qwen3MoeLayout,
    "the MoE router (mlp.gate)",
    {"qwen3moe", false, kQwen3MoeGguf, 0, "silu", false, &Qwen3MoeGgufKeys, &CheckQwen3MoeGguf},
    "Qwen3MoeForCausalLM"};

}  // namespace signround::families
