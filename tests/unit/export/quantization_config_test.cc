// quantization_config (src/export/quantization_config.h) written and read back, other
// writers' conventions, its hostile variants, and the packed dtype.
#include "src/export/quantization_config.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/model/layout.h"
#include "src/model/random_checkpoint.h"
#include "src/quant/layer_plan.h"

namespace signround {
namespace {

using ojson = nlohmann::ordered_json;

std::vector<LayerPlan> Plans(const QuantScheme& scheme, const char* layer_config) {
  RandomCheckpointOptions o;
  o.hidden_size = 64;
  o.intermediate_size = 96;
  o.num_layers = 2;
  ModelConfig config = *RandomCheckpointConfig(o);
  auto overrides = ParseLayerConfig(layer_config, "layers.json");
  EXPECT_TRUE(overrides.ok()) << overrides.status();
  return PlanLayers(DecoderLinears(config), scheme, *overrides);
}

// Every layer resolves, from the written config, to exactly what the plan says.
void ExpectRoundTrip(PackedFormat format, const QuantScheme& scheme,
                     const std::vector<LayerPlan>& plans) {
  ExportOptions options;
  options.scheme = scheme;
  ojson written = MakeQuantizationConfig(format, options, plans);
  auto parsed = PackedQuantizationConfig::Parse(ojson::parse(written.dump()), "qc");
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << written.dump(2);
  for (const LayerPlan& p : plans) {
    std::optional<PackedScheme> s = parsed->Resolve(p.layer.name);
    ASSERT_EQ(s.has_value(), p.quantized) << p.layer.name << "\n" << written.dump(2);
    if (!s) continue;
    EXPECT_EQ(s->bits, p.scheme.bits) << p.layer.name;
    EXPECT_EQ(s->group_size, p.scheme.group_size) << p.layer.name;
  }
}

TEST(QuantizationConfig, AutoRoundSymmetricWithOverrides) {
  const QuantScheme scheme{4, 32, true};
  // intermediate 96 is a multiple of 32, so only the config keeps layers 16-bit.
  auto plans = Plans(scheme, R"({"layers\\.0\\.mlp\\.": {"bits": 16},
                                 "o_proj": {"bits": 8, "group_size": 64}})");
  ExportOptions options;
  options.scheme = scheme;
  options.settings = {{"iters", 200}, {"lr", 0.01}, {"nsamples", 128}, {"seqlen", 256}};
  ojson c = MakeQuantizationConfig(PackedFormat::kAutoRound, options, plans);
  EXPECT_EQ(c["quant_method"], "auto-round");
  EXPECT_EQ(c["packing_format"], "auto_round:auto_gptq");
  EXPECT_EQ(c["bits"], 4);
  EXPECT_EQ(c["group_size"], 32);
  EXPECT_EQ(c["sym"], true);
  EXPECT_EQ(c["data_type"], "int");
  EXPECT_EQ(c["block_name_to_quantize"], "model.layers");
  EXPECT_FALSE(c.contains("iters"));  // the default
  EXPECT_EQ(c["lr"], 0.01);           // not 1/iters, the default
  EXPECT_EQ(c["seqlen"], 256);
  EXPECT_EQ(c["extra_config"]["model.layers.0.mlp.up_proj"],
            ojson({{"bits", 16}, {"data_type", "fp"}}));
  EXPECT_EQ(c["extra_config"]["model.layers.1.self_attn.o_proj"],
            ojson({{"bits", 8}, {"group_size", 64}}));
  EXPECT_FALSE(c["extra_config"].contains("model.layers.1.mlp.up_proj"));
  ExpectRoundTrip(PackedFormat::kAutoRound, scheme, plans);
}

TEST(QuantizationConfig, AutoRoundAsymmetricUsesV2) {
  const QuantScheme scheme{2, 128, false};
  auto plans = Plans(scheme, "{}");
  ExportOptions options;
  options.scheme = scheme;
  EXPECT_EQ(ZeroPointsFor(plans), ZeroPointFormat::kV2);
  ojson c = MakeQuantizationConfig(PackedFormat::kAutoRound, options, plans);
  EXPECT_EQ(c["packing_format"], "auto_round");
  EXPECT_FALSE(c.contains("extra_config"));
  EXPECT_FALSE(c.contains("meta"));
  ExpectRoundTrip(PackedFormat::kAutoRound, scheme, plans);
  ojson g = MakeQuantizationConfig(PackedFormat::kAutoGptq, options, plans);
  EXPECT_EQ(g["checkpoint_format"], "gptq_v2");
  EXPECT_EQ(g["sym"], false);
  ExpectRoundTrip(PackedFormat::kAutoGptq, scheme, plans);
}

// A symmetric job keeps GPTQ v1 ("gptq", stored zp - 1) in both formats; GPTQModel's
// meta names us, as "name:version" (GPTQModel checks versions only for its own name).
TEST(QuantizationConfig, SymmetricJobsStayV1) {
  const QuantScheme scheme{4, 32, true};
  auto plans = Plans(scheme, R"({"down_proj": {"bits": 8}, "layers\\.1\\.": {"bits": 16}})");
  ExportOptions options;
  options.scheme = scheme;
  EXPECT_EQ(ZeroPointsFor(plans), ZeroPointFormat::kV1);
  ojson g = MakeQuantizationConfig(PackedFormat::kAutoGptq, options, plans);
  EXPECT_EQ(g["checkpoint_format"], "gptq");
  EXPECT_EQ(g["meta"], ojson::parse(R"({"quantizer": ["signround:0.1.0"]})"));
  std::vector<std::string> keys;
  for (const auto& [key, value] : g.items()) keys.push_back(key);
  EXPECT_EQ(keys, std::vector<std::string>({"quant_method", "bits", "group_size", "sym", "desc_act",
                                            "true_sequential", "damp_percent", "lm_head",
                                            "checkpoint_format", "dynamic", "meta"}));
  ExpectRoundTrip(PackedFormat::kAutoGptq, scheme, plans);
  EXPECT_EQ(MakeQuantizationConfig(PackedFormat::kAutoRound, options, plans)["packing_format"],
            "auto_round:auto_gptq");
}

TEST(QuantizationConfig, PackedTorchDtype) {
  EXPECT_TRUE(ValidatePackedTorchDtype("float16").ok());
  EXPECT_TRUE(ValidatePackedTorchDtype("bfloat16").ok());
  for (const char* bad : {"float32", "fp16", "", "Float16"}) {
    absl::Status s = ValidatePackedTorchDtype(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(s.message(),
              absl::StrCat("packed dtype '", bad, "' is not one of float16, bfloat16"));
  }
  // Whichever of torch_dtype / dtype (newer transformers) the config has; torch_dtype
  // when it has neither. Other keys keep their order.
  ojson old_style = ojson::parse(R"({"a": 1, "torch_dtype": "float32", "b": 2})");
  SetConfigTorchDtype(old_style, "float16");
  EXPECT_EQ(old_style.dump(), R"({"a":1,"torch_dtype":"float16","b":2})");
  ojson new_style = ojson::parse(R"({"dtype": "bfloat16", "a": 1})");
  SetConfigTorchDtype(new_style, "float16");
  EXPECT_EQ(new_style.dump(), R"({"dtype":"float16","a":1})");
  ojson both = ojson::parse(R"({"dtype": "float32", "torch_dtype": "float32"})");
  SetConfigTorchDtype(both, "bfloat16");
  EXPECT_EQ(both.dump(), R"({"dtype":"bfloat16","torch_dtype":"bfloat16"})");
  ojson neither = ojson::parse(R"({"a": 1})");
  SetConfigTorchDtype(neither, "float16");
  EXPECT_EQ(neither.dump(), R"({"a":1,"torch_dtype":"float16"})");
}

TEST(QuantizationConfig, GptqDynamicSkipsAndOverrides) {
  const QuantScheme scheme{4, 128, true};
  auto plans = Plans(scheme, R"({"layers\\.1\\.mlp\\.down": {"bits": 16},
                                 "layers\\.0\\.self_attn\\.q": {"bits": 3, "sym": false}})");
  ExportOptions options;
  options.scheme = scheme;
  ojson c = MakeQuantizationConfig(PackedFormat::kAutoGptq, options, plans);
  EXPECT_EQ(c["quant_method"], "gptq");
  EXPECT_EQ(c["desc_act"], false);
  EXPECT_EQ(c["true_sequential"], false);
  EXPECT_EQ(c["damp_percent"], 0.01);
  EXPECT_EQ(c["lm_head"], false);
  EXPECT_EQ(c["dynamic"]["-:model\\.layers\\.1\\.mlp\\.down_proj$"], ojson::object());
  EXPECT_EQ(c["dynamic"]["+:model\\.layers\\.0\\.self_attn\\.q_proj$"],
            ojson({{"bits", 3}, {"group_size", 128}, {"sym", false}}));
  EXPECT_EQ(c["dynamic"].size(), 2u);
  // One asymmetric layer makes the whole file v2: GPTQ v1 cannot store its zero point 0.
  EXPECT_EQ(c["checkpoint_format"], "gptq_v2");
  EXPECT_EQ(c["meta"]["quantizer"], ojson::array({"signround:0.1.0"}));
  ExpectRoundTrip(PackedFormat::kAutoGptq, scheme, plans);
}

TEST(QuantizationConfig, ReadsOtherWritersConventions) {
  // auto-round's regex keys and 16-bit "float" layers; GPTQModel's first-match dynamic.
  auto ar = PackedQuantizationConfig::Parse(ojson::parse(R"({
      "quant_method": "auto-round", "bits": 4, "group_size": 128, "sym": true,
      "block_name_to_quantize": "model.layers,model.vision",
      "extra_config": {".*mlp\\.gate.*": {"bits": 16, "data_type": "float"},
                       "model.layers.2.self_attn.v_proj": {"bits": 8}}})"),
                                            "qc");
  ASSERT_TRUE(ar.ok()) << ar.status();
  EXPECT_EQ(ar->zeros(), ZeroPointFormat::kV1);
  EXPECT_FALSE(ar->Resolve("model.layers.0.mlp.gate_proj"));
  EXPECT_EQ(ar->Resolve("model.layers.2.self_attn.v_proj")->bits, 8);
  EXPECT_EQ(ar->Resolve("model.layers.2.self_attn.k_proj")->bits, 4);
  EXPECT_FALSE(ar->Resolve("lm_head"));  // outside the quantized blocks
  auto gptq = PackedQuantizationConfig::Parse(ojson::parse(R"({
      "quant_method": "gptq", "bits": 4, "group_size": 128, "checkpoint_format": "gptq_v2",
      "dynamic": {"+:.*\\.0\\..*": {"bits": 8}, "-:.*\\.0\\.mlp": {}}})"),
                                              "qc");
  ASSERT_TRUE(gptq.ok()) << gptq.status();
  EXPECT_EQ(gptq->zeros(), ZeroPointFormat::kV2);
  EXPECT_EQ(gptq->Resolve("model.layers.0.mlp.up_proj")->bits, 8);  // first match wins
  EXPECT_EQ(gptq->Resolve("model.layers.1.mlp.up_proj")->bits, 4);
}

TEST(QuantizationConfig, HostileConfigsGetPreciseErrors) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"bits": 4, "group_size": 128})", "qc: key 'quant_method' is missing or not a string"},
      {R"({"quant_method": "awq", "bits": 4, "group_size": 128})",
       "qc: quant_method 'awq' is not supported (supported: auto-round, gptq)"},
      {R"({"quant_method": "gptq", "bits": 5, "group_size": 128})",
       "qc: 'bits' must be 2, 3, 4, 8 or >= 16, got 5"},
      {R"({"quant_method": "gptq", "bits": 4, "group_size": 0})",
       "qc: 'group_size' must be positive or -1, got 0"},
      {R"({"quant_method": "gptq", "bits": 4})", "qc: key 'group_size' is missing"},
      {R"({"quant_method": "auto-round", "bits": 4, "group_size": 32,
           "packing_format": "auto_round:auto_awq"})",
       "qc: packing_format 'auto_round:auto_awq' is not supported (auto_round:auto_gptq, "
       "auto_round)"},
      {R"({"quant_method": "gptq", "bits": 4, "group_size": 32, "dynamic": {"-:mlp[": {}}})",
       "qc: dynamic '-:mlp[': not a valid regex"},
      {R"({"quant_method": "gptq", "bits": 4, "group_size": 32, "dynamic": {"x": 3}})",
       "qc: dynamic 'x': must be an object, got 3"},
      {R"({"quant_method": "auto-round", "bits": 4, "group_size": 32,
           "extra_config": {"x": {"bits": "4"}}})",
       "qc: extra_config 'x': 'bits' must be an integer, got \"4\""},
  };
  for (const auto& [text, error] : cases) {
    auto c = PackedQuantizationConfig::Parse(ojson::parse(text), "qc");
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(c.status().message(), error);
  }
}

}  // namespace
}  // namespace signround
