// Qwen3: the Llama block with RMSNorm over each head of q and k (q_norm,
// k_norm) before RoPE, and an explicit head_dim.
#include "absl/strings/str_cat.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"
#include "src/model/config.h"
#include "src/model/families/families.h"

namespace signround::families {
namespace {

absl::Status ReadQwen3(const JsonFields& f, ModelConfig& c) {
  SR_ASSIGN_OR_RETURN(std::optional<bool> sliding, f.OptionalBool("use_sliding_window"));
  if (sliding.value_or(false)) {
    return f.Error("use_sliding_window", "true is not supported (only full attention)");
  }
  c.qk_norm = true;
  return absl::OkStatus();
}

BlockLayout Qwen3Layout(const ModelConfig& c, int64_t /*layer*/) {
  BlockLayout out;
  layout::AddLlamaNorms(c, out);
  layout::AddQkNorms(c, out);
  layout::AddAttention(c, out);
  layout::AddGatedMlp(c, "mlp.", "gate_proj", "up_proj", "down_proj", c.intermediate_size, -1, out);
  return out;
}

void WriteQwen3(const ModelConfig& c, nlohmann::json& out) { out["attention_bias"] = c.qkv_bias; }

// llama.cpp's "qwen3" loads q, k and v biases (not o_proj's, nor the MLP's).
constexpr GgufBlockTensor kQwen3Gguf[] = {
    {"input_layernorm", "attn_norm"},     {"post_attention_layernorm", "ffn_norm"},
    {"self_attn.q_norm", "attn_q_norm"},  {"self_attn.k_norm", "attn_k_norm"},
    {"self_attn.q_proj", "attn_q", true}, {"self_attn.k_proj", "attn_k", true},
    {"self_attn.v_proj", "attn_v", true}, {"self_attn.o_proj", "attn_output"},
    {"mlp.gate_proj", "ffn_gate"},        {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
};

}  // namespace

// Qwen3Config's head_dim defaults to 128 (not hidden_size / heads).
const ModelFamily kQwen3 = {"qwen3",
                            32768,
                            1e-6,
                            false,
                            true,
                            /*honours_mlp_bias=*/false,
                            &ReadQwen3,
                            &WriteQwen3,
                            &Qwen3Layout,
                            "",
                            {"qwen3", false, kQwen3Gguf, 0, "silu", false, nullptr, nullptr},
                            "Qwen3ForCausalLM",
                            /*default_rope_theta=*/10000.0,
                            /*default_head_dim=*/128};

}  // namespace signround::families
