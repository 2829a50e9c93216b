// Phi-3: the Llama block with q, k and v fused into one Linear (qkv_proj, rows
// [q | k | v]) and gate and up fused (gate_up_proj, rows [gate | up]). Each is
// quantized as the single Linear it is, and exports keep it fused.
#include "absl/strings/str_cat.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"
#include "src/model/config.h"
#include "src/model/families/families.h"

namespace signround::families {
namespace {

absl::Status ReadPhi3(const JsonFields& f, ModelConfig& c) {
  SR_ASSIGN_OR_RETURN(std::optional<double> partial, f.OptionalDouble("partial_rotary_factor"));
  if (partial && *partial != 1.0) {
    return f.Error(
        "partial_rotary_factor",
        absl::StrCat("must be 1.0 (partial rotary embeddings are not supported), got ", *partial));
  }
  // transformers applies Phi-3's sliding window to every layer.
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> window, f.OptionalInt("sliding_window"));
  if (window) {
    if (*window < 1) return f.Error("sliding_window", "must be at least 1");
    c.sliding_window = *window;
    c.sliding_layers.assign(static_cast<size_t>(c.num_hidden_layers), true);
  }
  return absl::OkStatus();
}

BlockLayout Phi3Layout(const ModelConfig& c, int64_t /*layer*/) {
  BlockLayout out;
  layout::AddLlamaNorms(c, out);
  out.linears.push_back({"self_attn.qkv_proj", c.hidden_size, c.q_dim() + 2 * c.kv_dim(),
                         c.qkv_bias, -1, BlockInput::kAttention,
                         layout::ValuesFeedOutput(c, c.q_dim() + c.kv_dim())});
  out.linears.push_back({"self_attn.o_proj", c.q_dim(), c.hidden_size, c.o_bias});
  out.linears.push_back({"mlp.gate_up_proj", c.hidden_size, 2 * c.intermediate_size, c.mlp_bias, -1,
                         BlockInput::kMlp,
                         LinearFeed{"mlp.down_proj", c.intermediate_size, c.intermediate_size}});
  out.linears.push_back({"mlp.down_proj", c.intermediate_size, c.hidden_size, c.mlp_bias});
  return out;
}

void WritePhi3(const ModelConfig& c, nlohmann::json& out) {
  if (c.sliding_window > 0) out["sliding_window"] = c.sliding_window;
}

// llama.cpp's "phi3": the fused Linears as they are (attn_qkv rows [q | k | v],
// ffn_up rows [gate | up]; there is no ffn_gate); a qkv bias only.
constexpr GgufBlockTensor kPhi3Gguf[] = {
    {"input_layernorm", "attn_norm"},         {"post_attention_layernorm", "ffn_norm"},
    {"self_attn.qkv_proj", "attn_qkv", true}, {"self_attn.o_proj", "attn_output"},
    {"mlp.gate_up_proj", "ffn_up"},           {"mlp.down_proj", "ffn_down"},
};

absl::Status CheckPhi3Gguf(const ModelConfig& c) {
  if (c.q_dim() != c.hidden_size) {
    return absl::InvalidArgumentError(absl::StrCat("head_dim ", c.head_dim,
                                                   " cannot be exported: llama.cpp's phi3 needs "
                                                   "num_attention_heads * head_dim (",
                                                   c.q_dim(), ") to equal hidden_size (",
                                                   c.hidden_size, ")"));
  }
  // llama.cpp ignores Phi-3's sliding_window (every layer attends to every key):
  // the same as the engine up to the window (2047 of Phi-3-mini's 4096), which is
  // how llama.cpp runs every Phi-3 GGUF; not refused.
  return absl::OkStatus();
}

}  // namespace

const ModelFamily kPhi3 = {"phi3",
                           4096,
                           1e-5,
                           false,
                           false,
                           false,
                           &ReadPhi3,
                           &WritePhi3,
                           &Phi3Layout,
                           "",
                           {"phi3", false, kPhi3Gguf, 0, "silu", false, nullptr, &CheckPhi3Gguf},
                           "Phi3ForCausalLM"};

}  // namespace signround::families
