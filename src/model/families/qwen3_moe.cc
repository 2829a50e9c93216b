// Qwen3-MoE: Qwen3 attention; a sparse MoE MLP (router mlp.gate, experts
// mlp.experts.N.{gate,up,down}_proj) on the layers decoder_sparse_step and
// mlp_only_layers select, a dense MLP on the others.
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

}  // namespace

const ModelFamily kQwen3Moe = {"qwen3_moe",
                               32768,
                               1e-6,
                               false,
                               true,
                               /*honours_mlp_bias=*/false,
                               &ReadQwen3Moe,
                               &WriteQwen3Moe,
                               &Qwen3MoeLayout,
                               "the MoE router (mlp.gate)",
                               {"qwen3moe", false},
                               "Qwen3MoeForCausalLM"};

}  // namespace signround::families
