// Llama, Mistral and Qwen2: the Llama block (RMSNorm, RoPE attention with
// grouped-query heads, SiLU-gated MLP).
#include "src/model/config.h"
#include "src/model/families/families.h"

namespace signround::families {
namespace {

BlockLayout LlamaLayout(const ModelConfig& c, int64_t /*layer*/) {
  BlockLayout out;
  layout::AddLlamaNorms(c, out);
  layout::AddAttention(c, out);
  layout::AddGatedMlp(c, "mlp.", "gate_proj", "up_proj", "down_proj", c.intermediate_size, -1, out);
  return out;
}

void WriteLlamaBiases(const ModelConfig& c, nlohmann::json& out) {
  out["attention_bias"] = c.qkv_bias;
  out["mlp_bias"] = c.mlp_bias;
}

// llama.cpp's "llama" loads every Linear's bias; "qwen2" only q, k and v's.
constexpr GgufBlockTensor kLlamaGguf[] = {
    {"input_layernorm", "attn_norm"},     {"post_attention_layernorm", "ffn_norm"},
    {"self_attn.q_proj", "attn_q", true}, {"self_attn.k_proj", "attn_k", true},
    {"self_attn.v_proj", "attn_v", true}, {"self_attn.o_proj", "attn_output", true},
    {"mlp.gate_proj", "ffn_gate", true},  {"mlp.up_proj", "ffn_up", true},
    {"mlp.down_proj", "ffn_down", true},
};
constexpr GgufBlockTensor kQwen2Gguf[] = {
    {"input_layernorm", "attn_norm"},     {"post_attention_layernorm", "ffn_norm"},
    {"self_attn.q_proj", "attn_q", true}, {"self_attn.k_proj", "attn_k", true},
    {"self_attn.v_proj", "attn_v", true}, {"self_attn.o_proj", "attn_output"},
    {"mlp.gate_proj", "ffn_gate"},        {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
};

constexpr GgufNaming kLlamaNaming = {"llama",
                                     /*permute_qk=*/true,
                                     kLlamaGguf,
                                     0,
                                     "silu",
                                     /*llama3_rope=*/true,
                                     nullptr,
                                     nullptr};

}  // namespace

const ModelFamily kLlama = {"llama",
                            2048,
                            1e-6,
                            false,
                            true,
                            /*honours_mlp_bias=*/true,
                            nullptr,
                            &WriteLlamaBiases,
                            &LlamaLayout,
                            "",
                            kLlamaNaming,
                            "LlamaForCausalLM"};
const ModelFamily kMistral = {"mistral",    4096 * 32, 1e-6,         false,
                              false,        false,     nullptr,      nullptr,
                              &LlamaLayout, "",        kLlamaNaming, "MistralForCausalLM"};
const ModelFamily kQwen2 = {"qwen2",
                            32768,
                            1e-6,
                            true,
                            false,
                            false,
                            nullptr,
                            nullptr,
                            &LlamaLayout,
                            "",
                            {"qwen2", false, kQwen2Gguf, 0, "silu", false, nullptr, nullptr},
                            "Qwen2ForCausalLM"};

}  // namespace signround::families
