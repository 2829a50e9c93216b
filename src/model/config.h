// config.json of a decoder-only Hugging Face checkpoint, parsed into a typed,
// validated struct. The keys every family shares are read here; each family
// (src/model/families/) reads its own keys into the fields after them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace signround {

struct RopeScaling {
  std::string type;  // "linear" or "llama3"
  double factor = 1.0;
  // llama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// A sparse mixture-of-experts MLP (qwen3_moe, mixtral): a router Linear picks
// experts_per_token of num_experts gated MLPs per token.
struct MoeConfig {
  int64_t num_experts = 0;
  int64_t experts_per_token = 0;
  int64_t expert_intermediate_size = 0;
  // Renormalise the top-k routing weights to sum to 1 (mixtral always does).
  bool norm_topk_prob = true;
  // Layer i is sparse when (i + 1) % decoder_sparse_step == 0 and it is not
  // in mlp_only_layers (qwen3_moe); the others have a dense MLP.
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
};

struct ModelConfig {
  std::string model_type;
  std::vector<std::string> architectures;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  int64_t max_position_embeddings = 0;
  int64_t vocab_size = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;    // q/k/v projections have biases
  bool o_bias = false;      // o_proj has a bias
  bool mlp_bias = false;    // gate/up/down have biases
  std::string torch_dtype;  // as written, e.g. "bfloat16"; may be empty
  std::string hidden_act = "silu";
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;

  // Family features beyond the Llama block (set by the family's config reader).
  std::optional<MoeConfig> moe;
  // qwen3, gemma3: RMSNorm over each head of q and k (q_norm, k_norm) before RoPE.
  bool qk_norm = false;
  // Gemma: every RMSNorm computes x * (1 + w), and embeddings are multiplied by
  // sqrt(hidden_size) (not the tied lm_head).
  bool gemma_norms = false;
  // The attention scale is query_pre_attn_scalar^-0.5 (gemma3), or head_dim^-0.5
  // when it is 0. Kept as written so that config.json round-trips exactly.
  double query_pre_attn_scalar = 0;
  // Layers with sliding_layers[i] attend only to the last sliding_window keys
  // (j > i - sliding_window), with RoPE base rope_local_theta when it is set
  // (gemma3; phi3's sliding layers share the global RoPE).
  std::vector<bool> sliding_layers;
  int64_t sliding_window = 0;
  double rope_local_theta = 0;

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Whether layer `layer` has a sparse MoE MLP.
  bool IsMoeLayer(int64_t layer) const;
  bool IsSlidingLayer(int64_t layer) const {
    return layer >= 0 && layer < static_cast<int64_t>(sliding_layers.size()) &&
           sliding_layers[static_cast<size_t>(layer)];
  }
  // query_pre_attn_scalar, or head_dim when it is 0; the attention scale is its ^-0.5.
  double AttentionScalar() const {
    return query_pre_attn_scalar > 0 ? query_pre_attn_scalar : static_cast<double>(head_dim);
  }
  double AttentionScale() const;
};

// Parses and validates config.json text. `label` (the path) starts errors.
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text, absl::string_view label);

// Reads and parses a config.json file.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path);

// The config as Hugging Face config.json keys (what make-test-model writes and
// inspect --json prints).
nlohmann::json ModelConfigToJson(const ModelConfig& config);

}  // namespace signround
