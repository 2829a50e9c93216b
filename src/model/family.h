// Model families keyed by config.json's `model_type`. A family says how its
// config differs from plain Llama (its own keys, read by `read_config`), which
// tensors each decoder block holds (`block_layout`), what stays 16-bit, and the
// names other runtimes give it. The block's forward pass is registered beside
// it in block_registry.cc (LibTorch). Adding a family: one file in
// src/model/families/ (this description) and one in src/model/blocks/ (its
// forward), plus a row in each table.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"

namespace signround {

class JsonFields;
struct ModelConfig;

// The two sublayer inputs of a decoder block: the normalized hidden state the
// attention's projections read, and the one the MLP's read. TEQ (src/quant/teq.h)
// scales the channels of such an input inside the norm that makes it and undoes
// the scaling in every matrix that reads it.
enum class BlockInput { kNone, kAttention, kMlp };

// A tensor of a decoder block that is not a quantized Linear (a norm, the MoE
// router), by module name inside the block: "input_layernorm" is stored as
// "model.layers.N.input_layernorm.weight".
struct BlockParam {
  std::string name;
  std::vector<int64_t> shape;
  // A norm: the sublayer input it makes (its output feeds nothing else).
  BlockInput makes = BlockInput::kNone;
  // A [rows, hidden] matrix applied to that input (the MoE router).
  BlockInput reads = BlockInput::kNone;
};

// Rows of a Linear's output that another Linear of the block reads channel for
// channel, with nothing between them but per-channel linear maps: v_proj's rows
// reach o_proj's columns through the attention's weighted sums over tokens,
// up_proj's reach down_proj's through the product with act(gate). TEQ divides
// such rows by s and multiplies the reader's columns by s.
struct LinearFeed {
  std::string reader;     // the Linear that reads them ("self_attn.o_proj")
  int64_t row_begin = 0;  // the rows [row_begin, row_begin + channels) (a fused Linear's part)
  int64_t channels = 0;
  // Grouped-query attention: the reader's column c reads channel
  // (c / (head_dim * repeat)) * head_dim + c % head_dim, each key/value head's
  // values being read by `repeat` query heads. 0 means head_dim = channels.
  int64_t head_dim = 0;
  int64_t repeat = 1;
};

// A Linear of a decoder block, by module name inside the block
// ("self_attn.q_proj"); the weight is [out, in].
struct BlockLinear {
  std::string name;
  int64_t in = 0;
  int64_t out = 0;
  bool bias = false;
  int64_t expert = -1;  // the MoE expert it belongs to, or -1
  // The sublayer input it reads, when it reads one (q/k/v, gate/up; not o or down).
  BlockInput reads = BlockInput::kNone;
  // Rows another Linear reads as they are (v_proj -> o_proj, up_proj -> down_proj).
  std::optional<LinearFeed> feeds;
};

struct BlockLayout {
  std::vector<BlockParam> params;
  std::vector<BlockLinear> linears;
};

// One tensor of a decoder block in llama.cpp's naming (GGUF export).
struct GgufBlockTensor {
  // The module name inside the block, as in BlockParam / BlockLinear; "*" stands
  // for the expert index of an MoE expert's Linear ("mlp.experts.*.gate_proj"):
  // the Linears of every expert of a layer are stacked into one 3-D tensor
  // [num_experts, out, in] (expert-major), of one ggml type.
  absl::string_view module;
  // The name after "blk.N." (".weight" / ".bias" appended): "attn_norm", "ffn_gate_exps".
  absl::string_view gguf;
  // Whether the architecture loads a bias for this Linear (blk.N.<gguf>.bias).
  bool bias = false;
};

// A metadata key an architecture adds beside the ones every architecture
// shares, typed exactly as llama.cpp's loader reads it (it refuses another type).
struct GgufKey {
  enum class Type { kU32, kF32 };
  std::string name;  // after "<arch>.": "expert_count", "attention.sliding_window"
  Type type = Type::kU32;
  int64_t u32 = 0;  // kU32 (the exporter checks that it fits)
  double f32 = 0;   // kF32

  static GgufKey U32(std::string name, int64_t v) { return {std::move(name), Type::kU32, v, 0}; }
  static GgufKey F32(std::string name, double v) { return {std::move(name), Type::kF32, 0, v}; }
};

// How llama.cpp names and computes a family (GGUF export). Everything that
// differs between architectures is here, so the exporter has no per-family code.
struct GgufNaming {
  absl::string_view arch;  // general.architecture; "" when GGUF export is not supported
  // Rows of q_proj / k_proj (attn_q / attn_k) reordered as llama.cpp's converter
  // does for the "llama" architecture (LlamaQkRowOrder).
  bool permute_qk = false;
  // Every tensor a block of the family may hold (block_layout's params and
  // linears) and its GGUF name. Params (norms, the MoE router) are written F32.
  absl::Span<const GgufBlockTensor> block_tensors;
  // Added to every norm weight (a block param whose module name ends in "norm",
  // and model.norm) on export: Gemma's norms compute x * (1 + w), llama.cpp's
  // x * w, so its converter adds 1.
  float norm_shift = 0;
  // The MLP activation the architecture computes (config hidden_act).
  absl::string_view hidden_act = "silu";
  // Whether llama3 rope_scaling can be written (the rope_freqs tensor).
  bool llama3_rope = false;
  // The architecture's own metadata keys (expert counts, sliding window, ...);
  // null when it has none.
  std::vector<GgufKey> (*metadata)(const ModelConfig& config) = nullptr;
  // What of `config` the architecture cannot compute as the engine does:
  // INVALID_ARGUMENT "<config key> <value> cannot be exported: <why>" (the
  // exporter prefixes the format); null when nothing is refused.
  absl::Status (*check)(const ModelConfig& config) = nullptr;
};

struct ModelFamily {
  absl::string_view model_type;
  // max_position_embeddings when config.json leaves it out (transformers' default).
  int64_t default_max_position_embeddings;
  // rms_norm_eps when config.json leaves it out.
  double default_rms_norm_eps;
  // Qwen2 always has q/k/v biases (and no o_proj bias), whatever the config says.
  bool qkv_bias_always;
  // Whether the `attention_bias` config key is honoured (q/k/v and o_proj biases).
  bool honours_attention_bias;
  // Whether the `mlp_bias` config key is honoured (gate/up/down biases): Llama's
  // only; Qwen3's and Gemma 3's MLPs have no biases whatever the config says.
  bool honours_mlp_bias;
  // Reads the family's own keys into `config` (after the shared ones); may be null.
  absl::Status (*read_config)(const JsonFields& fields, ModelConfig& config);
  // Writes them back as config.json keys (make-test-model, inspect --json); may be null.
  void (*write_config)(const ModelConfig& config, nlohmann::json& out);
  // The tensors of decoder block `layer`.
  BlockLayout (*block_layout)(const ModelConfig& config, int64_t layer);
  // What stays 16-bit besides the embeddings, norms and lm_head ("" or e.g.
  // "the MoE router (mlp.gate)"), for inspect.
  absl::string_view kept_16bit;
  GgufNaming gguf;
  // transformers' class, config.json's `architectures` (make-test-model).
  absl::string_view architecture;
  // transformers' defaults for shared keys that config.json may leave out,
  // where the family's differ from Llama's.
  double default_rope_theta = 10000.0;
  int64_t default_head_dim = 0;  // 0: hidden_size / num_attention_heads
  bool default_tie_word_embeddings = false;
};

// The family for `model_type`, or nullptr when it is not supported.
const ModelFamily* FindModelFamily(absl::string_view model_type);

// "llama, mistral, qwen2, ...": for error messages.
std::string SupportedModelTypes();

// Every supported family, in the order SupportedModelTypes lists them.
absl::Span<const ModelFamily* const> ModelFamilies();

// Block layout pieces the families share.
namespace layout {
// input_layernorm and post_attention_layernorm, [hidden], making the attention's
// and the MLP's input.
void AddLlamaNorms(const ModelConfig& c, BlockLayout& out);
// self_attn.{q,k,v,o}_proj (biases as the config says).
void AddAttention(const ModelConfig& c, BlockLayout& out);
// The value rows, from `row_begin` of the Linear that makes them, as o_proj reads them.
LinearFeed ValuesFeedOutput(const ModelConfig& c, int64_t row_begin);
// self_attn.q_norm and self_attn.k_norm, [head_dim].
void AddQkNorms(const ModelConfig& c, BlockLayout& out);
// `prefix`.{gate,up,down} of a gated MLP with `ff` hidden units (expert -1 for a dense MLP).
void AddGatedMlp(const ModelConfig& c, const std::string& prefix, absl::string_view gate,
                 absl::string_view up, absl::string_view down, int64_t ff, int64_t expert,
                 BlockLayout& out);
}  // namespace layout

}  // namespace signround
