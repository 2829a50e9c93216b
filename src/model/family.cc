#include "src/model/family.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/model/config.h"
#include "src/model/families/families.h"

namespace signround {
namespace {

const ModelFamily* const kFamilies[] = {
    &families::kLlama,    &families::kMistral, &families::kQwen2,  &families::kQwen3,
    &families::kQwen3Moe, &families::kMixtral, &families::kGemma3, &families::kPhi3,
};

}  // namespace

const ModelFamily* FindModelFamily(absl::string_view model_type) {
  for (const ModelFamily* f : kFamilies) {
    if (f->model_type == model_type) return f;
  }
  return nullptr;
}

std::string SupportedModelTypes() {
  return absl::StrJoin(kFamilies, ", ", [](std::string* out, const ModelFamily* f) {
    out->append(f->model_type.data(), f->model_type.size());
  });
}

absl::Span<const ModelFamily* const> ModelFamilies() { return kFamilies; }

namespace layout {

void AddLlamaNorms(const ModelConfig& c, BlockLayout& out) {
  out.params.push_back({"input_layernorm", {c.hidden_size}, BlockInput::kAttention});
  out.params.push_back({"post_attention_layernorm", {c.hidden_size}, BlockInput::kMlp});
}

LinearFeed ValuesFeedOutput(const ModelConfig& c, int64_t row_begin) {
  return {"self_attn.o_proj", row_begin, c.kv_dim(), c.head_dim,
          c.num_attention_heads / c.num_key_value_heads};
}

void AddAttention(const ModelConfig& c, BlockLayout& out) {
  constexpr BlockInput kIn = BlockInput::kAttention;
  out.linears.push_back({"self_attn.q_proj", c.hidden_size, c.q_dim(), c.qkv_bias, -1, kIn});
  out.linears.push_back({"self_attn.k_proj", c.hidden_size, c.kv_dim(), c.qkv_bias, -1, kIn});
  out.linears.push_back(
      {"self_attn.v_proj", c.hidden_size, c.kv_dim(), c.qkv_bias, -1, kIn, ValuesFeedOutput(c, 0)});
  out.linears.push_back({"self_attn.o_proj", c.q_dim(), c.hidden_size, c.o_bias});
}

void AddQkNorms(const ModelConfig& c, BlockLayout& out) {
  out.params.push_back({"self_attn.q_norm", {c.head_dim}});
  out.params.push_back({"self_attn.k_norm", {c.head_dim}});
}

void AddGatedMlp(const ModelConfig& c, const std::string& prefix, absl::string_view gate,
                 absl::string_view up, absl::string_view down, int64_t ff, int64_t expert,
                 BlockLayout& out) {
  constexpr BlockInput kIn = BlockInput::kMlp;
  out.linears.push_back({absl::StrCat(prefix, gate), c.hidden_size, ff, c.mlp_bias, expert, kIn});
  out.linears.push_back({absl::StrCat(prefix, up), c.hidden_size, ff, c.mlp_bias, expert, kIn,
                         LinearFeed{absl::StrCat(prefix, down), 0, ff}});
  out.linears.push_back({absl::StrCat(prefix, down), ff, c.hidden_size, c.mlp_bias, expert});
}

}  // namespace layout
}  // namespace signround
