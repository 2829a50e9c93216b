#include "src/model/layout.h"

#include "absl/strings/str_cat.h"

namespace signround {

std::vector<LinearLayer> DecoderLinears(const ModelConfig& c) {
  std::vector<LinearLayer> out;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    std::string p = absl::StrCat("model.layers.", i, ".");
    out.push_back({p + "self_attn.q_proj", i, c.hidden_size, c.q_dim(), c.qkv_bias});
    out.push_back({p + "self_attn.k_proj", i, c.hidden_size, c.kv_dim(), c.qkv_bias});
    out.push_back({p + "self_attn.v_proj", i, c.hidden_size, c.kv_dim(), c.qkv_bias});
    out.push_back({p + "self_attn.o_proj", i, c.q_dim(), c.hidden_size, c.o_bias});
    out.push_back({p + "mlp.gate_proj", i, c.hidden_size, c.intermediate_size, c.mlp_bias});
    out.push_back({p + "mlp.up_proj", i, c.hidden_size, c.intermediate_size, c.mlp_bias});
    out.push_back({p + "mlp.down_proj", i, c.intermediate_size, c.hidden_size, c.mlp_bias});
  }
  return out;
}

std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& c) {
  std::vector<ExpectedTensor> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}});
  std::vector<LinearLayer> linears = DecoderLinears(c);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    std::string p = absl::StrCat("model.layers.", i, ".");
    out.push_back({p + "input_layernorm.weight", {c.hidden_size}});
    out.push_back({p + "post_attention_layernorm.weight", {c.hidden_size}});
  }
  for (const LinearLayer& l : linears) {
    out.push_back({l.name + ".weight", {l.out, l.in}});
    if (l.bias) out.push_back({l.name + ".bias", {l.out}});
  }
  out.push_back({"model.norm.weight", {c.hidden_size}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size}});
  return out;
}

}  // namespace signround
