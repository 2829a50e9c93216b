#include "src/model/layout.h"

#include "absl/strings/str_cat.h"

namespace signround {

BlockLayout DecoderBlockLayout(const ModelConfig& c, int64_t layer) {
  const ModelFamily* family = FindModelFamily(c.model_type);
  // A ModelConfig comes from ParseModelConfig, which accepts only known families.
  return family == nullptr ? BlockLayout{} : family->block_layout(c, layer);
}

std::vector<LinearLayer> DecoderLinears(const ModelConfig& c) {
  std::vector<LinearLayer> out;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    for (const BlockLinear& l : DecoderBlockLayout(c, i).linears) {
      out.push_back({p + l.name, i, l.in, l.out, l.bias, l.expert});
    }
  }
  return out;
}

std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& c) {
  std::vector<ExpectedTensor> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}});
  // Every block's norms (and routers) first, then every Linear: the order
  // make-test-model has always written.
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    for (const BlockParam& t : DecoderBlockLayout(c, i).params) {
      out.push_back({p + t.name + ".weight", t.shape});
    }
  }
  for (const LinearLayer& l : DecoderLinears(c)) {
    out.push_back({l.name + ".weight", {l.out, l.in}});
    if (l.bias) out.push_back({l.name + ".bias", {l.out}});
  }
  out.push_back({"model.norm.weight", {c.hidden_size}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size}});
  return out;
}

}  // namespace signround
