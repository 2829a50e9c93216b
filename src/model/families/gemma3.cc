// Gemma 3 (text): norms x * (1 + w), four per block (input, post-attention,
// pre-feedforward, post-feedforward) plus q/k norms; embeddings scaled by
// sqrt(hidden); GELU-tanh gated MLP; sliding-window layers with their own RoPE
// base beside global ones; attention scale query_pre_attn_scalar^-0.5.
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"
#include "src/model/config.h"
#include "src/model/families/families.h"

namespace signround::families {
namespace {

absl::Status RefuseSet(const JsonFields& f, absl::string_view key) {
  if (f.Get(key) != nullptr) return f.Error(key, "is not supported (only null)");
  return absl::OkStatus();
}

// layer_types when given, else transformers' sliding_window_pattern rule.
absl::Status ReadSlidingLayers(const JsonFields& f, ModelConfig& c) {
  SR_ASSIGN_OR_RETURN(std::vector<std::string> types, f.OptionalStringList("layer_types"));
  c.sliding_layers.assign(static_cast<size_t>(c.num_hidden_layers), false);
  if (f.Get("layer_types") != nullptr) {
    if (static_cast<int64_t>(types.size()) != c.num_hidden_layers) {
      return f.Error("layer_types", absl::StrCat("has ", types.size(), " entries for ",
                                                 c.num_hidden_layers, " layers"));
    }
    for (size_t i = 0; i < types.size(); ++i) {
      if (types[i] != "sliding_attention" && types[i] != "full_attention") {
        return f.Error("layer_types", absl::StrCat("entry ", i, " '", types[i],
                                                   "' is neither sliding_attention nor "
                                                   "full_attention"));
      }
      c.sliding_layers[i] = types[i] == "sliding_attention";
    }
    return absl::OkStatus();
  }
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> pattern, f.OptionalInt("sliding_window_pattern"));
  const int64_t p = pattern.value_or(6);
  if (p < 1) return f.Error("sliding_window_pattern", "must be at least 1");
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) c.sliding_layers[i] = (i + 1) % p != 0;
  return absl::OkStatus();
}

absl::Status ReadGemma3(const JsonFields& f, ModelConfig& c) {
  SR_RETURN_IF_ERROR(RefuseSet(f, "final_logit_softcapping"));
  SR_RETURN_IF_ERROR(RefuseSet(f, "attn_logit_softcapping"));
  SR_ASSIGN_OR_RETURN(std::optional<bool> bidi, f.OptionalBool("use_bidirectional_attention"));
  if (bidi.value_or(false)) {
    return f.Error("use_bidirectional_attention", "true is not supported (causal only)");
  }
  SR_ASSIGN_OR_RETURN(std::optional<std::string> act, f.OptionalString("hidden_activation"));
  c.hidden_act = act.value_or("gelu_pytorch_tanh");
  if (c.hidden_act != "gelu_pytorch_tanh") {
    return f.Error("hidden_activation",
                   absl::StrCat("'", c.hidden_act, "' is not supported (only gelu_pytorch_tanh)"));
  }
  SR_ASSIGN_OR_RETURN(std::optional<double> scalar, f.OptionalDouble("query_pre_attn_scalar"));
  c.query_pre_attn_scalar = scalar.value_or(256);
  if (!(c.query_pre_attn_scalar > 0)) return f.Error("query_pre_attn_scalar", "must be positive");
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> window, f.OptionalInt("sliding_window"));
  c.sliding_window = window.value_or(4096);
  if (c.sliding_window < 1) return f.Error("sliding_window", "must be at least 1");
  SR_ASSIGN_OR_RETURN(std::optional<double> local, f.OptionalDouble("rope_local_base_freq"));
  c.rope_local_theta = local.value_or(10000.0);
  if (!(c.rope_local_theta > 0)) return f.Error("rope_local_base_freq", "must be positive");
  SR_RETURN_IF_ERROR(ReadSlidingLayers(f, c));
  c.qk_norm = true;
  c.gemma_norms = true;
  return absl::OkStatus();
}

BlockLayout Gemma3Layout(const ModelConfig& c, int64_t /*layer*/) {
  BlockLayout out;
  layout::AddLlamaNorms(c, out);
  // The post-attention norm scales the attention's output; the pre-feedforward one makes
  // the MLP's input.
  out.params[1].makes = BlockInput::kNone;
  out.params.push_back({"pre_feedforward_layernorm", {c.hidden_size}, BlockInput::kMlp});
  out.params.push_back({"post_feedforward_layernorm", {c.hidden_size}});
  layout::AddQkNorms(c, out);
  layout::AddAttention(c, out);
  layout::AddGatedMlp(c, "mlp.", "gate_proj", "up_proj", "down_proj", c.intermediate_size, -1, out);
  return out;
}

void WriteGemma3(const ModelConfig& c, nlohmann::json& out) {
  out.erase("hidden_act");
  out["hidden_activation"] = c.hidden_act;
  out["attention_bias"] = c.qkv_bias;
  out["query_pre_attn_scalar"] = c.query_pre_attn_scalar;
  out["sliding_window"] = c.sliding_window;
  out["rope_local_base_freq"] = c.rope_local_theta;
  nlohmann::json types = nlohmann::json::array();
  for (bool s : c.sliding_layers) types.push_back(s ? "sliding_attention" : "full_attention");
  out["layer_types"] = types;
}

// llama.cpp's "gemma3": HF post_attention_layernorm is post_attention_norm and
// pre_feedforward_layernorm is ffn_norm; every norm gets +1 (the converter's
// norm_shift); q, k and v biases only.
constexpr GgufBlockTensor kGemma3Gguf[] = {
    {"input_layernorm", "attn_norm"},
    {"post_attention_layernorm", "post_attention_norm"},
    {"pre_feedforward_layernorm", "ffn_norm"},
    {"post_feedforward_layernorm", "post_ffw_norm"},
    {"self_attn.q_norm", "attn_q_norm"},
    {"self_attn.k_norm", "attn_k_norm"},
    {"self_attn.q_proj", "attn_q", true},
    {"self_attn.k_proj", "attn_k", true},
    {"self_attn.v_proj", "attn_v", true},
    {"self_attn.o_proj", "attn_output"},
    {"mlp.gate_proj", "ffn_gate"},
    {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
};

// llama.cpp makes layer i sliding iff i % p < p - 1 for the u32 key
// attention.sliding_window_pattern p (every layer when p is 0; a per-layer
// array is not read). The p that gives `sliding_layers`, or nullopt when none
// does; 1 (no layer sliding) when there are none.
std::optional<int64_t> SlidingWindowPattern(const ModelConfig& c) {
  const int64_t n = c.num_hidden_layers;
  for (int64_t p = 0; p <= n; ++p) {
    bool same = true;
    for (int64_t i = 0; i < n && same; ++i) {
      same = c.IsSlidingLayer(i) == (p == 0 || i % p < p - 1);
    }
    if (same) return p;
  }
  return std::nullopt;
}

bool AnySliding(const ModelConfig& c) {
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    if (c.IsSlidingLayer(i)) return true;
  }
  return false;
}

// The sliding window, its layer pattern and the local RoPE base, when a layer
// slides (without attention.sliding_window llama.cpp makes every layer global).
// rope.freq_base_swa: llama.cpp's default is 10000, written anyway.
std::vector<GgufKey> Gemma3GgufKeys(const ModelConfig& c) {
  if (!AnySliding(c)) return {};
  return {GgufKey::U32("attention.sliding_window", c.sliding_window),
          GgufKey::U32("attention.sliding_window_pattern", SlidingWindowPattern(c).value_or(0)),
          GgufKey::F32("rope.freq_base_swa", c.rope_local_theta)};
}

absl::Status CheckGemma3Gguf(const ModelConfig& c) {
  // llama.cpp reads no query_pre_attn_scalar: it scales by head_dim^-0.5, or
  // (hidden_size / num_attention_heads)^-0.5 for 62 layers (Gemma 3 27B).
  const double scalar = c.AttentionScalar();
  const int64_t llama_scalar =
      c.num_hidden_layers == 62 ? c.hidden_size / c.num_attention_heads : c.head_dim;
  if (std::abs(scalar - static_cast<double>(llama_scalar)) > 1e-6 * llama_scalar) {
    return absl::InvalidArgumentError(absl::StrCat(
        "query_pre_attn_scalar ", scalar,
        " cannot be exported: llama.cpp's gemma3 ignores it and scales attention by ", llama_scalar,
        "^-0.5 (",
        c.num_hidden_layers == 62 ? "hidden_size / num_attention_heads for 62 layers" : "head_dim",
        ")"));
  }
  if (!SlidingWindowPattern(c)) {
    std::string types;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) types += c.IsSlidingLayer(i) ? 'S' : 'G';
    return absl::InvalidArgumentError(absl::StrCat(
        "layer_types (", types,
        ": S sliding, G global) cannot be exported: llama.cpp's gemma3 slides layer i iff i % p "
        "< p - 1 for one sliding_window_pattern p"));
  }
  return absl::OkStatus();
}

}  // namespace

// Gemma3TextConfig: rope_theta 1e6, head_dim 256, tied embeddings.
const ModelFamily kGemma3 = {"gemma3_text",
                             131072,
                             1e-6,
                             false,
                             true,
                             /*honours_mlp_bias=*/false,
                             &ReadGemma3,
                             &WriteGemma3,
                             &Gemma3Layout,
                             "",
                             {"gemma3", false, kGemma3Gguf, /*norm_shift=*/1, "gelu_pytorch_tanh",
                              false, &Gemma3GgufKeys, &CheckGemma3Gguf},
                             "Gemma3ForCausalLM",
                             /*default_rope_theta=*/1e6,
                             /*default_head_dim=*/256,
                             /*default_tie_word_embeddings=*/true};

}  // namespace signround::families
