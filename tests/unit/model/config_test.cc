#include "src/model/config.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// A minimal valid llama config.json.
json LlamaJson() {
  return {
      {"model_type", "llama"},  {"hidden_size", 64},        {"intermediate_size", 172},
      {"num_hidden_layers", 5}, {"num_attention_heads", 8}, {"vocab_size", 512},
  };
}

absl::StatusOr<ModelConfig> Parse(const json& j) { return ParseModelConfig(j.dump(), "cfg.json"); }

// The error message of parsing `j`, which must fail with INVALID_ARGUMENT.
std::string ParseError(const json& j) {
  absl::StatusOr<ModelConfig> c = Parse(j);
  EXPECT_FALSE(c.ok()) << j.dump();
  if (c.ok()) return "";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << c.status();
  return std::string(c.status().message());
}

TEST(ParseModelConfigTest, ValidLlamaWithDefaults) {
  absl::StatusOr<ModelConfig> c = Parse(LlamaJson());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_type, "llama");
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->intermediate_size, 172);
  EXPECT_EQ(c->num_hidden_layers, 5);
  EXPECT_EQ(c->num_attention_heads, 8);
  EXPECT_EQ(c->num_key_value_heads, 8);  // defaults to num_attention_heads
  EXPECT_EQ(c->head_dim, 8);             // hidden_size / num_attention_heads
  EXPECT_EQ(c->vocab_size, 512);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_FALSE(c->o_bias);
  EXPECT_FALSE(c->mlp_bias);
  EXPECT_FALSE(c->rope_scaling.has_value());
  EXPECT_TRUE(c->eos_token_ids.empty());
  EXPECT_FALSE(c->bos_token_id.has_value());
  EXPECT_EQ(c->q_dim(), 64);
  EXPECT_EQ(c->kv_dim(), 64);
}

TEST(ParseModelConfigTest, ExplicitFieldsAreKept) {
  json j = LlamaJson();
  j["num_key_value_heads"] = 4;
  j["tie_word_embeddings"] = true;
  j["rms_norm_eps"] = 1e-5;
  j["rope_theta"] = 500000.0;
  j["max_position_embeddings"] = 4096;
  j["torch_dtype"] = "bfloat16";
  j["bos_token_id"] = 1;
  j["architectures"] = {"LlamaForCausalLM"};
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_key_value_heads, 4);
  EXPECT_EQ(c->kv_dim(), 32);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  EXPECT_EQ(c->max_position_embeddings, 4096);
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  ASSERT_TRUE(c->bos_token_id.has_value());
  EXPECT_EQ(*c->bos_token_id, 1);
  EXPECT_EQ(c->architectures, std::vector<std::string>{"LlamaForCausalLM"});
}

TEST(ParseModelConfigTest, ExplicitHeadDim) {
  json j = LlamaJson();
  j["head_dim"] = 16;  // q_dim 128 != hidden_size 64
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->q_dim(), 128);
}

TEST(ParseModelConfigTest, ExplicitHeadDimAllowsIndivisibleHiddenSize) {
  json j = LlamaJson();
  j["hidden_size"] = 60;
  j["head_dim"] = 8;
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 8);
}

TEST(ParseModelConfigTest, Qwen2AlwaysHasQkvBiasButNoOBias) {
  json j = LlamaJson();
  j["model_type"] = "qwen2";
  j["attention_bias"] = false;  // ignored for qwen2
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->qkv_bias);
  EXPECT_FALSE(c->o_bias);
  EXPECT_FALSE(c->mlp_bias);
}

TEST(ParseModelConfigTest, LlamaAttentionBiasGivesQkvAndOBias) {
  json j = LlamaJson();
  j["attention_bias"] = true;
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->qkv_bias);
  EXPECT_TRUE(c->o_bias);
  EXPECT_FALSE(c->mlp_bias);

  j["mlp_bias"] = true;
  c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->mlp_bias);
}

TEST(ParseModelConfigTest, MistralIgnoresAttentionBias) {
  json j = LlamaJson();
  j["model_type"] = "mistral";
  j["attention_bias"] = true;
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_FALSE(c->o_bias);
}

TEST(ParseModelConfigTest, RopeScalingLlama3) {
  json j = LlamaJson();
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->rope_scaling.has_value());
  EXPECT_EQ(c->rope_scaling->type, "llama3");
  EXPECT_DOUBLE_EQ(c->rope_scaling->factor, 8.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling->low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling->high_freq_factor, 4.0);
  EXPECT_EQ(c->rope_scaling->original_max_position_embeddings, 8192);
}

TEST(ParseModelConfigTest, RopeScalingLinearWithLegacyTypeKey) {
  json j = LlamaJson();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->rope_scaling.has_value());
  EXPECT_EQ(c->rope_scaling->type, "linear");
  EXPECT_DOUBLE_EQ(c->rope_scaling->factor, 2.0);
}

TEST(ParseModelConfigTest, RopeScalingNullOrDefaultMeansNone) {
  json j = LlamaJson();
  j["rope_scaling"] = nullptr;
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->rope_scaling.has_value());

  j["rope_scaling"] = {{"rope_type", "default"}};
  c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->rope_scaling.has_value());
}

TEST(ParseModelConfigTest, RopeScalingYarnIsRejected) {
  json j = LlamaJson();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  std::string msg = ParseError(j);
  EXPECT_THAT(msg, HasSubstr("rope_scaling"));
  EXPECT_THAT(msg, HasSubstr("'yarn' is not supported"));
}

TEST(ParseModelConfigTest, RopeScalingBadValuesAreRejected) {
  json j = LlamaJson();
  j["rope_scaling"] = {{"rope_type", "linear"}};
  EXPECT_THAT(ParseError(j), HasSubstr("key 'factor' is missing"));

  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 4.0},
                       {"high_freq_factor", 1.0}};
  EXPECT_THAT(ParseError(j), HasSubstr("must be greater than low_freq_factor"));

  j["rope_scaling"] = "linear";
  EXPECT_THAT(ParseError(j), HasSubstr("key 'rope_scaling' must be an object or null"));
}

TEST(ParseModelConfigTest, EosTokenIdAsInt) {
  json j = LlamaJson();
  j["eos_token_id"] = 2;
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->eos_token_ids, std::vector<int64_t>{2});
}

TEST(ParseModelConfigTest, EosTokenIdAsList) {
  json j = LlamaJson();
  j["eos_token_id"] = {128001, 128008, 128009};
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
}

TEST(ParseModelConfigTest, EosTokenIdWrongType) {
  json j = LlamaJson();
  j["eos_token_id"] = "2";
  EXPECT_THAT(ParseError(j), HasSubstr("key 'eos_token_id' must be an integer or a list"));
}

TEST(ParseModelConfigTest, MissingRequiredField) {
  for (const char* key : {"model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "vocab_size"}) {
    json j = LlamaJson();
    j.erase(key);
    std::string msg = ParseError(j);
    EXPECT_THAT(msg, HasSubstr(std::string("key '") + key + "' is missing")) << key;
    EXPECT_THAT(msg, HasSubstr("cfg.json")) << key;
  }
}

TEST(ParseModelConfigTest, NullRequiredFieldCountsAsMissing) {
  json j = LlamaJson();
  j["hidden_size"] = nullptr;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'hidden_size' is missing"));
}

TEST(ParseModelConfigTest, WrongType) {
  json j = LlamaJson();
  j["hidden_size"] = "64";
  EXPECT_THAT(ParseError(j), HasSubstr("key 'hidden_size' must be an integer"));

  j = LlamaJson();
  j["hidden_size"] = 64.5;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'hidden_size' must be an integer"));

  j = LlamaJson();
  j["tie_word_embeddings"] = "true";
  EXPECT_THAT(ParseError(j), HasSubstr("key 'tie_word_embeddings' must be true or false"));

  j = LlamaJson();
  j["model_type"] = 7;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'model_type' must be a string"));
}

TEST(ParseModelConfigTest, NegativeOrZeroDimensions) {
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "vocab_size"}) {
    for (int value : {0, -1}) {
      json j = LlamaJson();
      j[key] = value;
      std::string msg = ParseError(j);
      EXPECT_THAT(msg, HasSubstr(std::string("key '") + key + "' must be between 1 and"))
          << key << "=" << value;
      EXPECT_THAT(msg, HasSubstr("got " + std::to_string(value))) << key << "=" << value;
    }
  }
  json j = LlamaJson();
  j["num_key_value_heads"] = 0;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'num_key_value_heads' must be between 1 and"));
  j = LlamaJson();
  j["head_dim"] = -8;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'head_dim' must be between 1 and"));
  j = LlamaJson();
  j["rms_norm_eps"] = 0.0;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'rms_norm_eps' must be positive"));
}

TEST(ParseModelConfigTest, HugeDimensionIsRejected) {
  json j = LlamaJson();
  j["vocab_size"] = int64_t{1} << 40;
  EXPECT_THAT(ParseError(j), HasSubstr("key 'vocab_size' must be between 1 and"));
}

TEST(ParseModelConfigTest, LayerCountIsBoundedFarAboveRealModels) {
  // What is kept and written per layer (gemma3's layer_types) must stay small:
  // 2^24 layers made the round trip take seconds and gigabytes.
  json j = LlamaJson();
  j["num_hidden_layers"] = 65536;
  EXPECT_TRUE(Parse(j).ok());
  j["num_hidden_layers"] = 65537;
  EXPECT_THAT(ParseError(j),
              HasSubstr("key 'num_hidden_layers' must be between 1 and 65536, got 65537"));
}

TEST(ParseModelConfigTest, HeadsNotAMultipleOfKvHeads) {
  json j = LlamaJson();
  j["num_key_value_heads"] = 3;
  EXPECT_THAT(ParseError(j),
              HasSubstr("num_attention_heads (8) is not a multiple of num_key_value_heads (3)"));
}

TEST(ParseModelConfigTest, HiddenNotDivisibleByHeadsWithoutHeadDim) {
  json j = LlamaJson();
  j["hidden_size"] = 60;
  EXPECT_THAT(ParseError(j),
              HasSubstr("hidden_size (60) is not divisible by num_attention_heads (8)"));
}

TEST(ParseModelConfigTest, OddHeadDimIsRejected) {
  json j = LlamaJson();
  j["head_dim"] = 7;
  EXPECT_THAT(ParseError(j), HasSubstr("head_dim (7) must be even"));
}

TEST(ParseModelConfigTest, UnsupportedModelType) {
  json j = LlamaJson();
  j["model_type"] = "gpt2";
  std::string msg = ParseError(j);
  EXPECT_THAT(msg, HasSubstr("key 'model_type' 'gpt2' is not supported"));
  EXPECT_THAT(msg, HasSubstr("llama"));
}

TEST(ParseModelConfigTest, HiddenActOtherThanSilu) {
  json j = LlamaJson();
  j["hidden_act"] = "gelu";
  EXPECT_THAT(ParseError(j), HasSubstr("key 'hidden_act' 'gelu' is not supported (only silu)"));

  j["hidden_act"] = "silu";
  EXPECT_TRUE(Parse(j).ok());
}

TEST(ParseModelConfigTest, NotJson) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig("{\"model_type\": ", "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("cfg.json: not valid JSON"));

  c = ParseModelConfig("", "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("not valid JSON"));

  c = ParseModelConfig(LlamaJson().dump() + " trailing", "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("not valid JSON"));
}

TEST(ParseModelConfigTest, DuplicateKey) {
  std::string text = LlamaJson().dump();
  text.insert(1, "\"hidden_size\": 128, ");
  absl::StatusOr<ModelConfig> c = ParseModelConfig(text, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("duplicate key 'hidden_size'"));
}

TEST(ParseModelConfigTest, JsonArrayInsteadOfObject) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig("[" + LlamaJson().dump() + "]", "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("expected a JSON object, got array"));
}

TEST(ParseModelConfigTest, RoundTripsThroughModelConfigToJson) {
  json j = LlamaJson();
  j["num_key_value_heads"] = 4;
  j["attention_bias"] = true;
  j["eos_token_id"] = {2, 3};
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<ModelConfig> again = Parse(ModelConfigToJson(*c));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(ModelConfigToJson(*again), ModelConfigToJson(*c));
  EXPECT_EQ(again->num_key_value_heads, 4);
  EXPECT_TRUE(again->o_bias);
  EXPECT_EQ(again->eos_token_ids, (std::vector<int64_t>{2, 3}));
  ASSERT_TRUE(again->rope_scaling.has_value());
  EXPECT_EQ(again->rope_scaling->type, "llama3");
}

TEST(LoadModelConfigTest, MissingFileIsNotFound) {
  testing::TempDir dir;
  absl::StatusOr<ModelConfig> c = LoadModelConfig(dir.File("config.json"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound) << c.status();
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(dir.File("config.json")));
}

TEST(LoadModelConfigTest, ReadsFileAndNamesItInErrors) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("config.json"), LlamaJson().dump());
  absl::StatusOr<ModelConfig> c = LoadModelConfig(dir.File("config.json"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 64);

  json bad = LlamaJson();
  bad.erase("vocab_size");
  testing::WriteFile(dir.File("config.json"), bad.dump());
  c = LoadModelConfig(dir.File("config.json"));
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr(dir.File("config.json") + ": key 'vocab_size' is missing"));
}

}  // namespace
}  // namespace signround
