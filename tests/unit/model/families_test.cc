// The model families' config keys and block layouts (src/model/families/):
// each family's keys and transformers' defaults for them, the errors that name
// the key at fault, the tensors DecoderLinears / ExpectedTensors derive from
// the layout (MoE experts included), and the ModelConfigToJson ->
// ParseModelConfig round trip that make-test-model relies on. The defaults are
// transformers' configuration_<family>.py (Qwen3Config, Qwen3MoeConfig,
// MixtralConfig, Gemma3TextConfig, Phi3Config).
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "src/model/config.h"
#include "src/model/family.h"
#include "src/model/layout.h"
#include "src/model/random_checkpoint.h"

namespace signround {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The keys every family needs, small: 4 layers, 4 heads of 16 (2 kv heads).
json Base(const std::string& model_type) {
  return {{"model_type", model_type}, {"hidden_size", 64},        {"intermediate_size", 96},
          {"num_hidden_layers", 4},   {"num_attention_heads", 4}, {"num_key_value_heads", 2},
          {"head_dim", 16},           {"vocab_size", 256}};
}

absl::StatusOr<ModelConfig> Parse(const json& j) { return ParseModelConfig(j.dump(), "cfg.json"); }

ModelConfig ParseOk(const json& j) {
  absl::StatusOr<ModelConfig> c = Parse(j);
  EXPECT_TRUE(c.ok()) << c.status() << "\n" << j.dump();
  return c.ok() ? *c : ModelConfig{};
}

// The message of parsing `j`, which must fail with INVALID_ARGUMENT.
std::string ParseError(const json& j) {
  absl::StatusOr<ModelConfig> c = Parse(j);
  EXPECT_FALSE(c.ok()) << j.dump();
  if (c.ok()) return "";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << c.status();
  return std::string(c.status().message());
}

std::vector<bool> Sliding(std::initializer_list<int> v) {
  std::vector<bool> out;
  for (int b : v) out.push_back(b != 0);
  return out;
}

// ---- qwen3 ----

TEST(Qwen3Config, KeysAndDefaults) {
  json j = Base("qwen3");
  j.erase("head_dim");
  ModelConfig c = ParseOk(j);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.gemma_norms);
  EXPECT_FALSE(c.moe.has_value());
  EXPECT_TRUE(c.sliding_layers.empty());
  EXPECT_FALSE(c.IsSlidingLayer(0));
  EXPECT_EQ(c.hidden_act, "silu");
  // Qwen3Config: head_dim 128 (not hidden_size / heads), 32768 positions,
  // rms_norm_eps 1e-6, rope_theta 10000, untied.
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.AttentionScale(), 1.0 / std::sqrt(128.0));
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.mlp_bias);
}

TEST(Qwen3Config, AttentionBiasBiasesQkvAndOButMlpBiasIsNotAQwen3Key) {
  json j = Base("qwen3");
  j["attention_bias"] = true;
  j["mlp_bias"] = true;  // Qwen3MLP has no biases whatever the config says
  ModelConfig c = ParseOk(j);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.o_bias);
  EXPECT_FALSE(c.mlp_bias);
}

TEST(Qwen3Config, SlidingWindowIsRefused) {
  for (const char* type : {"qwen3", "qwen3_moe"}) {
    json j = Base(type);
    j["use_sliding_window"] = false;
    j["sliding_window"] = 4096;  // ignored without use_sliding_window (as transformers)
    EXPECT_TRUE(Parse(j).ok()) << type;
    j["use_sliding_window"] = true;
    EXPECT_THAT(ParseError(j),
                HasSubstr("cfg.json: key 'use_sliding_window' true is not supported"))
        << type;
  }
}

// ---- qwen3_moe ----

TEST(Qwen3MoeConfig, DefaultsAreTransformers) {
  ModelConfig c = ParseOk(Base("qwen3_moe"));
  ASSERT_TRUE(c.moe.has_value());
  EXPECT_EQ(c.moe->num_experts, 128);
  EXPECT_EQ(c.moe->experts_per_token, 8);
  EXPECT_EQ(c.moe->expert_intermediate_size, 768);
  EXPECT_FALSE(c.moe->norm_topk_prob);
  EXPECT_EQ(c.moe->decoder_sparse_step, 1);
  EXPECT_TRUE(c.moe->mlp_only_layers.empty());
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  for (int64_t l = 0; l < 4; ++l) EXPECT_TRUE(c.IsMoeLayer(l)) << l;
  // Qwen3MoeConfig has no head_dim default: hidden_size / heads.
  json j = Base("qwen3_moe");
  j.erase("head_dim");
  EXPECT_EQ(ParseOk(j).head_dim, 16);
}

TEST(Qwen3MoeConfig, KeysAreRead) {
  json j = Base("qwen3_moe");
  j["num_experts"] = 6;
  j["num_experts_per_tok"] = 3;
  j["moe_intermediate_size"] = 40;
  j["norm_topk_prob"] = true;
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = {3};
  ModelConfig c = ParseOk(j);
  ASSERT_TRUE(c.moe.has_value());
  EXPECT_EQ(c.moe->num_experts, 6);
  EXPECT_EQ(c.moe->experts_per_token, 3);
  EXPECT_EQ(c.moe->expert_intermediate_size, 40);
  EXPECT_EQ(c.intermediate_size, 96);  // the dense layers' MLP
  EXPECT_TRUE(c.moe->norm_topk_prob);
  EXPECT_EQ(c.moe->decoder_sparse_step, 2);
  EXPECT_THAT(c.moe->mlp_only_layers, ElementsAre(3));
  // Sparse where (layer + 1) % 2 == 0 and not in mlp_only_layers: layer 1 only.
  EXPECT_FALSE(c.IsMoeLayer(0));
  EXPECT_TRUE(c.IsMoeLayer(1));
  EXPECT_FALSE(c.IsMoeLayer(2));
  EXPECT_FALSE(c.IsMoeLayer(3));
  j["mlp_only_layers"] = nullptr;  // transformers' None: no dense-only layers
  EXPECT_TRUE(ParseOk(j).moe->mlp_only_layers.empty());
}

TEST(Qwen3MoeConfig, ErrorsNameTheKey) {
  json j = Base("qwen3_moe");
  j["num_experts"] = 4;
  j["num_experts_per_tok"] = 5;
  EXPECT_THAT(ParseError(j), HasSubstr("cfg.json: key 'num_experts_per_tok' must be between 1 "
                                       "and num_experts (4), got 5"));
  j["num_experts_per_tok"] = 0;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'num_experts_per_tok' must be between 1"));

  j = Base("qwen3_moe");
  j["num_experts"] = 0;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'num_experts' must be between 1 and 4096, got 0"));

  j = Base("qwen3_moe");
  j["moe_intermediate_size"] = 0;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'intermediate_size' of an expert must be between"));

  j = Base("qwen3_moe");
  j["decoder_sparse_step"] = 0;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'decoder_sparse_step' must be at least 1, got 0"));

  for (int bad : {4, -1}) {
    j = Base("qwen3_moe");
    j["mlp_only_layers"] = {0, bad};
    EXPECT_THAT(ParseError(j), HasSubstr("key 'mlp_only_layers' holds " + std::to_string(bad) +
                                         ", not a layer (the model has 4)"));
  }
  for (const json& bad : {json(3), json("0,1"), json({"a"}), json({1.5}), json({{"l", 1}})}) {
    j = Base("qwen3_moe");
    j["mlp_only_layers"] = bad;
    EXPECT_THAT(ParseError(j), HasSubstr("key 'mlp_only_layers' must be a list of layer indices"))
        << bad.dump();
  }
  j = Base("qwen3_moe");
  j["norm_topk_prob"] = "yes";
  EXPECT_THAT(ParseError(j), HasSubstr("key 'norm_topk_prob' must be true or false"));
}

TEST(Qwen3MoeLayout, MlpOnlyLayersAreDenseAndExpertsCarryTheirIndex) {
  json j = Base("qwen3_moe");
  j["num_hidden_layers"] = 2;
  j["num_experts"] = 3;
  j["num_experts_per_tok"] = 2;
  j["moe_intermediate_size"] = 24;
  j["mlp_only_layers"] = {0};
  ModelConfig c = ParseOk(j);
  std::vector<LinearLayer> linears = DecoderLinears(c);
  std::vector<std::string> names;
  for (const LinearLayer& l : linears) names.push_back(l.name);
  std::vector<std::string> want = {
      "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
      "model.layers.0.self_attn.v_proj", "model.layers.0.self_attn.o_proj",
      "model.layers.0.mlp.gate_proj",    "model.layers.0.mlp.up_proj",
      "model.layers.0.mlp.down_proj",    "model.layers.1.self_attn.q_proj",
      "model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.v_proj",
      "model.layers.1.self_attn.o_proj"};
  for (int e = 0; e < 3; ++e) {
    for (const char* p : {"gate_proj", "up_proj", "down_proj"}) {
      want.push_back("model.layers.1.mlp.experts." + std::to_string(e) + "." + p);
    }
  }
  EXPECT_EQ(names, want);
  for (const LinearLayer& l : linears) {
    const bool expert = l.name.find(".experts.") != std::string::npos;
    if (!expert) {
      EXPECT_EQ(l.expert, -1) << l.name;
      continue;
    }
    EXPECT_EQ(l.layer, 1) << l.name;
    EXPECT_EQ(l.expert, l.name[std::string("model.layers.1.mlp.experts.").size()] - '0') << l.name;
    EXPECT_FALSE(l.bias) << l.name;
    const bool down = l.name.find("down_proj") != std::string::npos;
    EXPECT_EQ(l.in, down ? 24 : 64) << l.name;
    EXPECT_EQ(l.out, down ? 64 : 24) << l.name;
  }
  // The dense layer's MLP has intermediate_size, the attention q/k norms are there.
  EXPECT_EQ(linears[4].out, 96);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const ExpectedTensor& t : ExpectedTensors(c)) shapes[t.name] = t.shape;
  EXPECT_EQ(shapes.count("model.layers.0.mlp.gate.weight"), 0u);
  EXPECT_EQ(shapes["model.layers.1.mlp.gate.weight"], (std::vector<int64_t>{3, 64}));
  EXPECT_EQ(shapes["model.layers.1.mlp.experts.2.down_proj.weight"],
            (std::vector<int64_t>{64, 24}));
  EXPECT_EQ(shapes["model.layers.0.mlp.gate_proj.weight"], (std::vector<int64_t>{96, 64}));
  EXPECT_EQ(shapes["model.layers.0.self_attn.q_norm.weight"], (std::vector<int64_t>{16}));
  EXPECT_EQ(shapes["model.layers.1.self_attn.k_norm.weight"], (std::vector<int64_t>{16}));
  EXPECT_EQ(shapes["lm_head.weight"], (std::vector<int64_t>{256, 64}));
  // embedding + 2 x (2 norms + 2 qk norms) + router + 11 + 9 weights + final norm + lm_head.
  EXPECT_EQ(shapes.size(), 1u + 8u + 1u + 7u + 13u + 2u);
}

// ---- mixtral ----

TEST(MixtralConfig, KeysAndDefaults) {
  json j = Base("mixtral");
  ModelConfig c = ParseOk(j);
  ASSERT_TRUE(c.moe.has_value());
  // MixtralConfig: 8 local experts, top-2, always renormalised; each expert has
  // intermediate_size; rms_norm_eps 1e-5, 4096 * 32 positions, rope_theta 1e6.
  EXPECT_EQ(c.moe->num_experts, 8);
  EXPECT_EQ(c.moe->experts_per_token, 2);
  EXPECT_TRUE(c.moe->norm_topk_prob);
  EXPECT_EQ(c.moe->expert_intermediate_size, 96);
  EXPECT_EQ(c.moe->decoder_sparse_step, 1);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.max_position_embeddings, 4096 * 32);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_FALSE(c.qk_norm);
  for (int64_t l = 0; l < 4; ++l) EXPECT_TRUE(c.IsMoeLayer(l)) << l;

  j["num_local_experts"] = 4;
  j["num_experts_per_tok"] = 1;
  j["norm_topk_prob"] = false;  // not a Mixtral key: Mixtral always renormalises
  c = ParseOk(j);
  EXPECT_EQ(c.moe->num_experts, 4);
  EXPECT_EQ(c.moe->experts_per_token, 1);
  EXPECT_TRUE(c.moe->norm_topk_prob);
}

TEST(MixtralConfig, ErrorsNameTheKey) {
  json j = Base("mixtral");
  j["num_local_experts"] = 4;
  j["num_experts_per_tok"] = 5;
  EXPECT_THAT(ParseError(j), HasSubstr("cfg.json: key 'num_experts_per_tok' must be between 1 and "
                                       "num_local_experts (4), got 5"));
  j = Base("mixtral");
  j["num_experts_per_tok"] = 9;  // > the default 8
  EXPECT_THAT(ParseError(j), HasSubstr("num_local_experts (8), got 9"));
  j = Base("mixtral");
  j["num_local_experts"] = -2;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'num_local_experts' must be between 1 and 4096"));
  j = Base("mixtral");
  j["num_local_experts"] = "8";
  EXPECT_THAT(ParseError(j), HasSubstr("key 'num_local_experts' must be an integer"));
}

TEST(MixtralLayout, BlockSparseMoeNames) {
  json j = Base("mixtral");
  j["num_hidden_layers"] = 1;
  j["num_local_experts"] = 2;
  j["num_experts_per_tok"] = 1;
  ModelConfig c = ParseOk(j);
  std::vector<std::string> names;
  std::vector<int64_t> experts;
  for (const LinearLayer& l : DecoderLinears(c)) {
    names.push_back(l.name);
    experts.push_back(l.expert);
  }
  const std::string p = "model.layers.0.";
  EXPECT_EQ(names, (std::vector<std::string>{
                       p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj",
                       p + "self_attn.o_proj", p + "block_sparse_moe.experts.0.w1",
                       p + "block_sparse_moe.experts.0.w3", p + "block_sparse_moe.experts.0.w2",
                       p + "block_sparse_moe.experts.1.w1", p + "block_sparse_moe.experts.1.w3",
                       p + "block_sparse_moe.experts.1.w2"}));
  EXPECT_EQ(experts, (std::vector<int64_t>{-1, -1, -1, -1, 0, 0, 0, 1, 1, 1}));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const ExpectedTensor& t : ExpectedTensors(c)) shapes[t.name] = t.shape;
  EXPECT_EQ(shapes[p + "block_sparse_moe.gate.weight"], (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(shapes[p + "block_sparse_moe.experts.1.w2.weight"], (std::vector<int64_t>{64, 96}));
  EXPECT_EQ(shapes.count(p + "self_attn.q_norm.weight"), 0u);
}

// ---- gemma3_text ----

TEST(Gemma3Config, KeysAndDefaults) {
  json j = Base("gemma3_text");
  j["num_hidden_layers"] = 12;
  j.erase("head_dim");
  ModelConfig c = ParseOk(j);
  // Gemma3TextConfig: query_pre_attn_scalar 256, sliding_window 4096,
  // sliding_window_pattern 6, rope_local_base_freq 10000, gelu_pytorch_tanh,
  // head_dim 256, rope_theta 1e6, tied embeddings, 131072 positions.
  EXPECT_DOUBLE_EQ(c.AttentionScale(), 1.0 / 16.0);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.sliding_layers, Sliding({1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0}));
  EXPECT_DOUBLE_EQ(c.rope_local_theta, 10000.0);
  EXPECT_EQ(c.hidden_act, "gelu_pytorch_tanh");
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_TRUE(c.gemma_norms);
  EXPECT_FALSE(c.moe.has_value());
}

TEST(Gemma3Config, KeysAreRead) {
  json j = Base("gemma3_text");
  j["query_pre_attn_scalar"] = 168;  // gemma-3-27b
  j["sliding_window"] = 512;
  j["sliding_window_pattern"] = 2;
  j["rope_local_base_freq"] = 20000.0;
  j["rope_theta"] = 500000.0;
  j["tie_word_embeddings"] = false;
  j["hidden_activation"] = "gelu_pytorch_tanh";
  j["attention_bias"] = true;
  j["mlp_bias"] = true;  // not a Gemma 3 key: Gemma3MLP has no biases
  j["final_logit_softcapping"] = nullptr;
  j["attn_logit_softcapping"] = nullptr;
  j["use_bidirectional_attention"] = false;
  ModelConfig c = ParseOk(j);
  EXPECT_DOUBLE_EQ(c.AttentionScale(), 1.0 / std::sqrt(168.0));
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.sliding_window, 512);
  EXPECT_EQ(c.sliding_layers, Sliding({1, 0, 1, 0}));
  EXPECT_TRUE(c.IsSlidingLayer(2));
  EXPECT_FALSE(c.IsSlidingLayer(3));
  EXPECT_FALSE(c.IsSlidingLayer(4));  // out of range
  EXPECT_DOUBLE_EQ(c.rope_local_theta, 20000.0);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.o_bias);
  EXPECT_FALSE(c.mlp_bias);

  // layer_types wins over sliding_window_pattern.
  j["layer_types"] = {"full_attention", "sliding_attention", "sliding_attention", "full_attention"};
  EXPECT_EQ(ParseOk(j).sliding_layers, Sliding({0, 1, 1, 0}));
}

TEST(Gemma3Config, ErrorsNameTheKey) {
  json j = Base("gemma3_text");
  j["layer_types"] = {"sliding_attention", "full_attention"};
  EXPECT_THAT(ParseError(j), HasSubstr("cfg.json: key 'layer_types' has 2 entries for 4 layers"));
  j["layer_types"] = json::array();
  EXPECT_THAT(ParseError(j), HasSubstr("key 'layer_types' has 0 entries for 4 layers"));
  j["layer_types"] = {"sliding_attention", "full_attention", "chunked_attention", "full_attention"};
  EXPECT_THAT(ParseError(j), HasSubstr("key 'layer_types' entry 2 'chunked_attention' is neither "
                                       "sliding_attention nor full_attention"));
  j["layer_types"] = {"sliding_attention", 1, "full_attention", "full_attention"};
  EXPECT_THAT(ParseError(j), HasSubstr("key 'layer_types' must be a list of strings"));

  j = Base("gemma3_text");
  j["final_logit_softcapping"] = 30.0;
  EXPECT_THAT(ParseError(j),
              HasSubstr("key 'final_logit_softcapping' is not supported (only null)"));
  j = Base("gemma3_text");
  j["attn_logit_softcapping"] = 50.0;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'attn_logit_softcapping' is not supported"));
  j = Base("gemma3_text");
  j["use_bidirectional_attention"] = true;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'use_bidirectional_attention' true is not supported"));
  j = Base("gemma3_text");
  j["hidden_activation"] = "gelu";
  EXPECT_THAT(
      ParseError(j),
      HasSubstr("key 'hidden_activation' 'gelu' is not supported (only gelu_pytorch_tanh)"));
  j = Base("gemma3_text");
  j["query_pre_attn_scalar"] = 0;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'query_pre_attn_scalar' must be positive"));
  j = Base("gemma3_text");
  j["sliding_window"] = 0;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'sliding_window' must be at least 1"));
  j = Base("gemma3_text");
  j["sliding_window_pattern"] = 0;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'sliding_window_pattern' must be at least 1"));
  j = Base("gemma3_text");
  j["rope_local_base_freq"] = -1.0;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'rope_local_base_freq' must be positive"));
}

TEST(Gemma3Layout, FourNormsAndQkNormsAndNoLmHeadWhenTied) {
  json j = Base("gemma3_text");
  j["num_hidden_layers"] = 1;
  ModelConfig c = ParseOk(j);
  ASSERT_TRUE(c.tie_word_embeddings);
  std::vector<std::string> names;
  for (const ExpectedTensor& t : ExpectedTensors(c)) names.push_back(t.name);
  const std::string p = "model.layers.0.";
  EXPECT_EQ(names,
            (std::vector<std::string>{
                "model.embed_tokens.weight", p + "input_layernorm.weight",
                p + "post_attention_layernorm.weight", p + "pre_feedforward_layernorm.weight",
                p + "post_feedforward_layernorm.weight", p + "self_attn.q_norm.weight",
                p + "self_attn.k_norm.weight", p + "self_attn.q_proj.weight",
                p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight",
                p + "self_attn.o_proj.weight", p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight",
                p + "mlp.down_proj.weight", "model.norm.weight"}));
}

// ---- phi3 ----

TEST(Phi3Config, KeysAndDefaults) {
  json j = Base("phi3");
  j.erase("head_dim");
  j["attention_bias"] = true;  // not a Phi-3 key: its Linears have no biases
  ModelConfig c = ParseOk(j);
  // Phi3Config: 4096 positions, rms_norm_eps 1e-5, rope_theta 10000, no sliding window.
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_TRUE(c.sliding_layers.empty());
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.mlp_bias);
  EXPECT_FALSE(c.qk_norm);

  j["partial_rotary_factor"] = 1.0;
  j["sliding_window"] = nullptr;
  EXPECT_TRUE(ParseOk(j).sliding_layers.empty());
  // transformers applies Phi-3's window to every layer.
  j["sliding_window"] = 2047;
  c = ParseOk(j);
  EXPECT_EQ(c.sliding_window, 2047);
  EXPECT_EQ(c.sliding_layers, Sliding({1, 1, 1, 1}));
}

TEST(Phi3Config, ErrorsNameTheKey) {
  json j = Base("phi3");
  j["partial_rotary_factor"] = 0.5;
  EXPECT_THAT(ParseError(j), HasSubstr("cfg.json: key 'partial_rotary_factor' must be 1.0 (partial "
                                       "rotary embeddings are not supported), got 0.5"));
  j = Base("phi3");
  j["sliding_window"] = 0;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'sliding_window' must be at least 1"));
}

TEST(Phi3Layout, FusedQkvAndGateUp) {
  json j = Base("phi3");
  j["num_hidden_layers"] = 1;
  ModelConfig c = ParseOk(j);
  std::vector<LinearLayer> l = DecoderLinears(c);
  ASSERT_EQ(l.size(), 4u);
  EXPECT_EQ(l[0].name, "model.layers.0.self_attn.qkv_proj");
  EXPECT_EQ(l[0].out, 4 * 16 + 2 * 2 * 16);  // rows [q | k | v]
  EXPECT_EQ(l[0].in, 64);
  EXPECT_EQ(l[1].name, "model.layers.0.self_attn.o_proj");
  EXPECT_EQ(l[1].in, 64);
  EXPECT_EQ(l[2].name, "model.layers.0.mlp.gate_up_proj");
  EXPECT_EQ(l[2].out, 2 * 96);  // rows [gate | up]
  EXPECT_EQ(l[3].name, "model.layers.0.mlp.down_proj");
  EXPECT_EQ(l[3].in, 96);
  for (const LinearLayer& x : l) EXPECT_EQ(x.expert, -1);
}

// ---- every family ----

TEST(ModelFamilies, AllAreRegistered) {
  EXPECT_EQ(SupportedModelTypes(),
            "llama, mistral, qwen2, qwen3, qwen3_moe, mixtral, gemma3_text, phi3");
  for (const char* t : {"qwen3", "qwen3_moe", "mixtral", "gemma3_text", "phi3"}) {
    const ModelFamily* f = FindModelFamily(t);
    ASSERT_NE(f, nullptr) << t;
    EXPECT_EQ(f->model_type, t);
    EXPECT_NE(f->block_layout, nullptr) << t;
  }
  EXPECT_EQ(FindModelFamily("gemma3"), nullptr);  // the multimodal config is not a text model
}

// Every field ParseModelConfig sets, MoE and sliding layers included.
void ExpectSameConfig(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.architectures, b.architectures);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_scaling.has_value(), b.rope_scaling.has_value());
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.o_bias, b.o_bias);
  EXPECT_EQ(a.mlp_bias, b.mlp_bias);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
  EXPECT_EQ(a.hidden_act, b.hidden_act);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
  ASSERT_EQ(a.moe.has_value(), b.moe.has_value());
  if (a.moe) {
    EXPECT_EQ(a.moe->num_experts, b.moe->num_experts);
    EXPECT_EQ(a.moe->experts_per_token, b.moe->experts_per_token);
    EXPECT_EQ(a.moe->expert_intermediate_size, b.moe->expert_intermediate_size);
    EXPECT_EQ(a.moe->norm_topk_prob, b.moe->norm_topk_prob);
    EXPECT_EQ(a.moe->decoder_sparse_step, b.moe->decoder_sparse_step);
    EXPECT_EQ(a.moe->mlp_only_layers, b.moe->mlp_only_layers);
  }
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.gemma_norms, b.gemma_norms);
  EXPECT_EQ(a.AttentionScale(), b.AttentionScale());  // exactly: no drift
  EXPECT_EQ(a.sliding_layers, b.sliding_layers);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.rope_local_theta, b.rope_local_theta);
}

// A config of each family with its own keys away from their defaults.
std::vector<json> FamilyConfigs() {
  std::vector<json> out;
  json q3 = Base("qwen3");
  q3["attention_bias"] = true;
  q3["tie_word_embeddings"] = true;
  q3["eos_token_id"] = {1, 2};
  out.push_back(q3);
  json moe = Base("qwen3_moe");
  moe["num_experts"] = 6;
  moe["num_experts_per_tok"] = 2;
  moe["moe_intermediate_size"] = 32;
  moe["norm_topk_prob"] = true;
  moe["decoder_sparse_step"] = 2;
  moe["mlp_only_layers"] = {1};
  moe["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
  out.push_back(moe);
  json mix = Base("mixtral");
  mix["num_local_experts"] = 4;
  mix["num_experts_per_tok"] = 1;
  mix["rope_theta"] = 500000.0;
  out.push_back(mix);
  for (double scalar : {168.0, 32.0, 27.0}) {  // 1 / (scalar^-0.5)^2 != scalar for these
    json g = Base("gemma3_text");
    g["query_pre_attn_scalar"] = scalar;
    g["sliding_window"] = 64;
    g["sliding_window_pattern"] = 3;
    g["rope_local_base_freq"] = 12345.0;
    g["tie_word_embeddings"] = false;
    g["attention_bias"] = true;
    out.push_back(g);
  }
  json phi = Base("phi3");
  phi["sliding_window"] = 7;
  out.push_back(phi);
  out.push_back(Base("phi3"));
  return out;
}

TEST(ModelFamilies, ModelConfigToJsonRoundTripsEveryFamily) {
  for (const json& j : FamilyConfigs()) {
    SCOPED_TRACE(j.dump());
    ModelConfig c = ParseOk(j);
    json written = ModelConfigToJson(c);
    ModelConfig again = ParseOk(written);
    ExpectSameConfig(c, again);
    EXPECT_EQ(ModelConfigToJson(again), written);
    // What is written is what was read: no drift in the values themselves.
    for (const char* key : {"query_pre_attn_scalar", "num_experts", "num_local_experts",
                            "num_experts_per_tok", "sliding_window", "rope_local_base_freq"}) {
      if (j.contains(key)) {
        EXPECT_EQ(written.at(key), j.at(key)) << key;
      }
    }
  }
}

TEST(ModelFamilies, MakeTestModelConfigOfEveryFamilyRoundTrips) {
  for (const char* t :
       {"llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "mixtral", "gemma3_text", "phi3"}) {
    SCOPED_TRACE(t);
    RandomCheckpointOptions o;
    o.model_type = t;
    o.hidden_size = 64;
    o.intermediate_size = 32;
    o.num_heads = 4;
    o.num_kv_heads = 2;
    o.num_experts = 4;
    o.experts_per_token = 2;
    absl::StatusOr<ModelConfig> c = RandomCheckpointConfig(o);
    ASSERT_TRUE(c.ok()) << c.status();
    // hidden / heads, whatever the family's default head_dim (qwen3 128, gemma3 256).
    EXPECT_EQ(c->head_dim, 16);
    if (c->moe) {
      EXPECT_EQ(c->moe->num_experts, 4);
      EXPECT_EQ(c->moe->experts_per_token, 2);
      EXPECT_EQ(c->moe->expert_intermediate_size, 32);
    }
    ModelConfig again = ParseOk(ModelConfigToJson(*c));
    ExpectSameConfig(*c, again);
  }
}

}  // namespace
}  // namespace signround
