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
                            {"llama", /*permute_qk=*/true},
                            "LlamaForCausalLM"};
const ModelFamily kMistral = {"mistral",
                              4096 * 32,
                              1e-6,
                              false,
                              false,
                              false,
                              nullptr,
                              nullptr,
                              &LlamaLayout,
                              "",
                              {"llama", /*permute_qk=*/true},
                              "MistralForCausalLM"};
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
                            {"qwen2", false},
                            "Qwen2ForCausalLM"};

}  // namespace signround::families
