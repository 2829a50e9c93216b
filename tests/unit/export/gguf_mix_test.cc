// The k-quant mixes against llama.cpp's presets (src/llama-quant.cpp of the llama.cpp
// that node-llama-cpp 3.21.1 bundles: llama_tensor_get_type_impl, use_more_bits,
// tensor_type_fallback). Each expectation below is read off those rules by hand.
#include "src/export/gguf_mix.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "src/model/layout.h"
#include "src/model/random_checkpoint.h"

namespace signround {
namespace {

using contract::DataType;
using contract::GgufFormat;

ModelConfig Config(int64_t layers, int64_t hidden, int64_t intermediate, int64_t heads,
                   int64_t kv_heads, int64_t experts = 0) {
  RandomCheckpointOptions o;
  o.hidden_size = hidden;
  o.intermediate_size = intermediate;
  o.num_layers = layers;
  o.num_heads = heads;
  o.num_kv_heads = kv_heads;
  o.vocab_size = 64;
  if (experts > 0) {
    o.model_type = "mixtral";
    o.num_experts = experts;
    o.experts_per_token = 2;
  }
  absl::StatusOr<ModelConfig> c = RandomCheckpointConfig(o);
  if (!c.ok()) throw std::runtime_error(std::string(c.status().message()));
  return *c;
}

// "q4_k" / "Q4_0" / "16" per Linear name.
std::map<std::string, std::string> Mix(GgufFormat f, const ModelConfig& c,
                                       std::vector<std::string>* notes = nullptr) {
  std::vector<LayerPlan> plans = PlanLayers(DecoderLinears(c), contract::GgufScheme(f), {});
  std::vector<std::string> n = ApplyGgufMix(f, c, plans);
  if (notes) *notes = n;
  std::map<std::string, std::string> out;
  for (const LayerPlan& p : plans) {
    out[p.layer.name] = p.quantized ? contract::DescribeScheme(p.scheme) : "16";
  }
  return out;
}

std::string L(int i, const char* m) { return "model.layers." + std::to_string(i) + "." + m; }

TEST(GgufMix, Q4_K_MGivesAttnVAndFfnDownQ6_KWhereLlamaCppUsesMoreBits) {
  // 8 layers: use_more_bits(i, 8) = i < 1 || i >= 7 || (i - 1) % 3 == 2 -> 0, 3, 6, 7.
  const auto mix = Mix(GgufFormat::kQ4_K_M, Config(8, 256, 512, 4, 2));
  for (int i = 0; i < 8; ++i) {
    const bool more = i == 0 || i == 3 || i == 6 || i == 7;
    EXPECT_EQ(mix.at(L(i, "self_attn.v_proj")), more ? "q6_k" : "q4_k") << i;
    EXPECT_EQ(mix.at(L(i, "mlp.down_proj")), more ? "q6_k" : "q4_k") << i;
    EXPECT_EQ(mix.at(L(i, "self_attn.q_proj")), "q4_k");
    EXPECT_EQ(mix.at(L(i, "self_attn.o_proj")), "q4_k");
    EXPECT_EQ(mix.at(L(i, "mlp.gate_proj")), "q4_k");
  }
}

TEST(GgufMix, Q2_KAndQ3_K_M) {
  const ModelConfig c = Config(16, 256, 512, 4, 2);  // n_gqa 2
  const auto q2 = Mix(GgufFormat::kQ2_K, c);
  EXPECT_EQ(q2.at(L(5, "self_attn.v_proj")), "q3_k");
  EXPECT_EQ(q2.at(L(5, "mlp.down_proj")), "q3_k");
  EXPECT_EQ(q2.at(L(5, "self_attn.o_proj")), "q3_k");
  EXPECT_EQ(q2.at(L(5, "self_attn.k_proj")), "q2_k");
  EXPECT_EQ(q2.at(L(5, "mlp.up_proj")), "q2_k");
  // n_gqa >= 4: attn_v Q4_K.
  EXPECT_EQ(Mix(GgufFormat::kQ2_K, Config(2, 256, 512, 8, 2)).at(L(0, "self_attn.v_proj")), "q4_k");
  const auto q3 = Mix(GgufFormat::kQ3_K_M, c);
  EXPECT_EQ(q3.at(L(0, "self_attn.v_proj")), "q5_k");
  EXPECT_EQ(q3.at(L(1, "self_attn.v_proj")), "q5_k");
  EXPECT_EQ(q3.at(L(2, "self_attn.v_proj")), "q4_k");
  EXPECT_EQ(q3.at(L(0, "mlp.down_proj")), "q5_k");  // 0 < 16 / 16
  EXPECT_EQ(q3.at(L(1, "mlp.down_proj")), "q4_k");
  EXPECT_EQ(q3.at(L(4, "self_attn.o_proj")), "q4_k");
  EXPECT_EQ(q3.at(L(4, "self_attn.q_proj")), "q3_k");
  const auto q3s = Mix(GgufFormat::kQ3_K_S, c);
  EXPECT_EQ(q3s.at(L(0, "self_attn.v_proj")), "q3_k");
  EXPECT_EQ(q3s.at(L(0, "mlp.down_proj")), "q3_k");
  const auto q4s = Mix(GgufFormat::kQ4_K_S, c);
  EXPECT_EQ(q4s.at(L(3, "self_attn.v_proj")), "q5_k");
  EXPECT_EQ(q4s.at(L(4, "self_attn.v_proj")), "q4_k");
  EXPECT_EQ(q4s.at(L(1, "mlp.down_proj")), "q5_k");  // 1 < 16 / 8
  EXPECT_EQ(q4s.at(L(2, "mlp.down_proj")), "q4_k");
  const auto q6 = Mix(GgufFormat::kQ6_K, c);
  EXPECT_EQ(q6.at(L(0, "self_attn.v_proj")), "q6_k");
  EXPECT_EQ(q6.at(L(0, "mlp.down_proj")), "q6_k");
}

TEST(GgufMix, EightExpertsBumpAttentionAsLlamaCppDoes) {
  const auto mix = Mix(GgufFormat::kQ4_K_M, Config(2, 256, 256, 4, 2, 8));
  EXPECT_EQ(mix.at(L(0, "self_attn.v_proj")), "8-bit g32 sym");  // Q8_0
  EXPECT_EQ(mix.at(L(0, "self_attn.k_proj")), "8-bit g32 sym");
  EXPECT_EQ(mix.at(L(0, "self_attn.o_proj")), "q5_k");
  EXPECT_EQ(mix.at(L(1, "block_sparse_moe.experts.3.w2")),
            "q6_k");  // ffn_down_exps, layer 1 >= 7*2/8
}

TEST(GgufMix, RowsThatAreNotMultiplesOf256FallBackAndAreNamed) {
  // hidden 64: every Linear but down_proj (in = 256) has rows of 64.
  std::vector<std::string> notes;
  const auto mix = Mix(GgufFormat::kQ4_K_M, Config(1, 64, 256, 4, 2), &notes);
  EXPECT_EQ(mix.at(L(0, "self_attn.q_proj")), "4-bit g32 asym float-min");  // Q4_1
  EXPECT_EQ(mix.at(L(0, "self_attn.v_proj")), "8-bit g32 sym");             // Q6_K -> Q8_0
  EXPECT_EQ(mix.at(L(0, "mlp.down_proj")), "q6_k");
  ASSERT_EQ(notes.size(), 6u);
  EXPECT_EQ(notes[0],
            "model.layers.0.self_attn.q_proj: 64 inputs, not a multiple of 256: Q4_1 instead of "
            "Q4_K");
  const auto q2 = Mix(GgufFormat::kQ2_K, Config(1, 64, 256, 4, 2));
  EXPECT_EQ(q2.at(L(0, "self_attn.q_proj")), "4-bit g32 sym");  // Q4_0
}

// The ends: output Q6_K (Q8_0 when hidden is not a multiple of 256), token_embd the base
// type (its fallback likewise), or the output's type when tied.
TEST(GgufMix, EmbeddingAndOutputTypes) {
  std::vector<std::string> notes;
  std::vector<LayerPlan> ends = GgufMixEnds(GgufFormat::kQ3_K_M, Config(2, 256, 512, 4, 2), &notes);
  ASSERT_EQ(ends.size(), 2u);
  EXPECT_EQ(ends[0].layer.name, "model.embed_tokens");
  EXPECT_EQ(contract::DescribeScheme(ends[0].scheme), "q3_k");
  EXPECT_EQ(ends[1].layer.name, "lm_head");
  EXPECT_EQ(contract::DescribeScheme(ends[1].scheme), "q6_k");
  EXPECT_TRUE(notes.empty());
  ends = GgufMixEnds(GgufFormat::kQ4_K_M, Config(1, 64, 256, 4, 2), &notes);
  EXPECT_EQ(contract::DescribeScheme(ends[0].scheme), "4-bit g32 asym float-min");  // Q4_1
  EXPECT_EQ(contract::DescribeScheme(ends[1].scheme), "8-bit g32 sym");             // Q8_0
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0], "model.embed_tokens: 64 inputs, not a multiple of 256: Q4_1 instead of Q4_K");
  ModelConfig tied = Config(1, 256, 512, 4, 2);
  tied.tie_word_embeddings = true;
  ends = GgufMixEnds(GgufFormat::kQ2_K, tied, &notes);
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(contract::DescribeScheme(ends[0].scheme), "q6_k");
}

}  // namespace
}  // namespace signround
