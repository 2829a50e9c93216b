// The fused groups vLLM needs one scheme for (src/export/fused_groups.h): q/k/v
// and gate/up of each decoder layer, split by bits, group size, symmetry or
// 16-bit against quantized; other layers never count.
#include "src/export/fused_groups.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/model/layout.h"
#include "src/model/random_checkpoint.h"

namespace signround {
namespace {

std::vector<LayerPlan> Plans(const char* layer_config, const QuantScheme& scheme = {4, 32, true}) {
  RandomCheckpointOptions o;
  o.hidden_size = 64;
  o.intermediate_size = 96;
  o.num_layers = 3;
  auto config = RandomCheckpointConfig(o);
  EXPECT_TRUE(config.ok()) << config.status();
  auto overrides = ParseLayerConfig(layer_config, "layers.json");
  EXPECT_TRUE(overrides.ok()) << overrides.status();
  return PlanLayers(DecoderLinears(*config), scheme, *overrides);
}

TEST(FusedGroups, UniformAndUnfusedDifferencesPass) {
  for (const char* cfg : {
           "{}",
           // o_proj and down_proj are not fused with anything.
           R"({"o_proj": {"bits": 8}, "layers\\.1\\.mlp\\.down_proj": {"bits": 16}})",
           // A whole group may differ from the rest, and from another layer's.
           R"({"layers\\.0\\.self_attn\\.[qkv]_proj": {"bits": 2, "group_size": 64}})",
           R"({"layers\\.2\\.mlp\\.(gate|up)_proj": {"bits": 16}})",
           R"({"self_attn": {"sym": false}})",
       }) {
    SCOPED_TRACE(cfg);
    std::vector<LayerPlan> plans = Plans(cfg);
    EXPECT_TRUE(CheckFusedGroups("auto_round", plans).ok());
    EXPECT_TRUE(SplitFusedGroups(plans).empty());
  }
}

TEST(FusedGroups, NamesTheGroupAndItsSchemes) {
  std::vector<LayerPlan> plans = Plans(R"({"layers\\.0\\.self_attn\\.k_proj": {"bits": 8}})");
  absl::Status s = CheckFusedGroups("auto_round", plans);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "auto_round: model.layers.0.self_attn.{q_proj,k_proj,v_proj} form vLLM's fused "
            "qkv_proj but have different schemes (q_proj 4-bit g32 sym, k_proj 8-bit g32 sym, "
            "v_proj 4-bit g32 sym); give them the same scheme in the layer config, or pass "
            "--allow-split-fused to write it anyway (vLLM will not load it; transformers and "
            "GPTQModel do not fuse and will)");
  EXPECT_EQ(SplitFusedGroups(plans),
            std::vector<std::string>({"model.layers.0.self_attn.{q_proj,k_proj,v_proj} (vLLM's "
                                      "qkv_proj): q_proj 4-bit g32 sym, k_proj 8-bit g32 sym, "
                                      "v_proj 4-bit g32 sym"}));
}

// Every field splits a group: group size, symmetry, 16-bit against quantized. The
// first is named, the others counted; SplitFusedGroups lists them all in plan order.
TEST(FusedGroups, EveryFieldSplitsAndAllAreListed) {
  std::vector<LayerPlan> plans = Plans(R"({
      "layers\\.0\\.mlp\\.up_proj": {"group_size": 64},
      "layers\\.1\\.self_attn\\.v_proj": {"sym": false},
      "layers\\.2\\.mlp\\.gate_proj": {"bits": 16}})");
  absl::Status s = CheckFusedGroups("auto_gptq", plans);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "auto_gptq: model.layers.0.mlp.{gate_proj,up_proj} form vLLM's fused gate_up_proj but "
            "have different schemes (gate_proj 4-bit g32 sym, up_proj 4-bit g64 sym); 2 more fused "
            "groups differ likewise; give them the same scheme in the layer config, or pass "
            "--allow-split-fused to write it anyway (vLLM will not load it; transformers and "
            "GPTQModel do not fuse and will)");
  EXPECT_EQ(SplitFusedGroups(plans),
            std::vector<std::string>(
                {"model.layers.0.mlp.{gate_proj,up_proj} (vLLM's gate_up_proj): gate_proj 4-bit "
                 "g32 sym, up_proj 4-bit g64 sym",
                 "model.layers.1.self_attn.{q_proj,k_proj,v_proj} (vLLM's qkv_proj): q_proj "
                 "4-bit g32 sym, k_proj 4-bit g32 sym, v_proj 4-bit g32 asym",
                 "model.layers.2.mlp.{gate_proj,up_proj} (vLLM's gate_up_proj): gate_proj "
                 "16-bit, up_proj 4-bit g32 sym"}));
}

TEST(FusedGroups, OneMoreGroupIsSingular) {
  std::vector<LayerPlan> plans = Plans(R"({"layers\\.[01]\\.self_attn\\.q_proj": {"bits": 3}})");
  absl::Status s = CheckFusedGroups("auto_round", plans);
  EXPECT_NE(s.message().find("(q_proj 3-bit g32 sym, k_proj 4-bit g32 sym, v_proj 4-bit g32 "
                             "sym); 1 more fused group differs likewise;"),
            absl::string_view::npos)
      << s;
  EXPECT_EQ(SplitFusedGroups(plans).size(), 2u);
}

// A layer kept 16-bit by its shape counts like one kept by the layer config; an
// unquantized layer's (meaningless) scheme does not.
TEST(FusedGroups, UnquantizedMembersCompareByTheFlagOnly) {
  std::vector<LayerPlan> plans = Plans(R"({"layers\\.0\\.mlp\\.(gate|up)_proj": {"bits": 16}})");
  for (LayerPlan& p : plans) {
    if (p.layer.name == "model.layers.0.mlp.up_proj") p.scheme = {8, 128, false};
  }
  EXPECT_TRUE(CheckFusedGroups("auto_round", plans).ok());
  for (LayerPlan& p : plans) {
    if (p.layer.name != "model.layers.1.self_attn.v_proj") continue;
    p.quantized = false;
    p.reason = "out 40 is not a multiple of 32";
  }
  ASSERT_EQ(SplitFusedGroups(plans).size(), 1u);
  EXPECT_EQ(SplitFusedGroups(plans)[0],
            "model.layers.1.self_attn.{q_proj,k_proj,v_proj} (vLLM's qkv_proj): q_proj 4-bit g32 "
            "sym, k_proj 4-bit g32 sym, v_proj 16-bit");
}

// Only groups whose members are all in the plan count.
TEST(FusedGroups, IncompleteGroupsDoNotCount) {
  std::vector<LayerPlan> plans = Plans(R"({"k_proj": {"bits": 8}, "up_proj": {"bits": 2}})");
  std::vector<LayerPlan> partial;
  for (const LayerPlan& p : plans) {
    const std::string& n = p.layer.name;
    if (n.find("v_proj") != std::string::npos) continue;  // no complete q/k/v anywhere
    if (n == "model.layers.1.mlp.gate_proj") continue;    // layer 1's gate/up incomplete
    partial.push_back(p);
  }
  EXPECT_EQ(SplitFusedGroups(partial),
            std::vector<std::string>(
                {"model.layers.0.mlp.{gate_proj,up_proj} (vLLM's gate_up_proj): gate_proj 4-bit "
                 "g32 sym, up_proj 2-bit g32 sym",
                 "model.layers.2.mlp.{gate_proj,up_proj} (vLLM's gate_up_proj): gate_proj 4-bit "
                 "g32 sym, up_proj 2-bit g32 sym"}));
  EXPECT_EQ(SplitFusedGroups(plans).size(), 6u);
}

TEST(FusedGroups, DescribesSchemes) {
  LayerPlan p;
  p.quantized = true;
  p.scheme = {2, -1, false};
  EXPECT_EQ(DescribeLayerScheme(p), "2-bit g-1 asym");
  p.scheme.float_min = true;
  EXPECT_EQ(DescribeLayerScheme(p), "2-bit g-1 asym float-min");
  p.quantized = false;
  EXPECT_EQ(DescribeLayerScheme(p), "16-bit");
  ASSERT_EQ(FusedGroupKinds().size(), 2u);
  EXPECT_EQ(FusedGroupKinds()[0].fused, "qkv_proj");
  EXPECT_EQ(FusedGroupKinds()[1].members, std::vector<std::string>({"gate_proj", "up_proj"}));
}

// vLLM's FusedMoE holds every expert of a layer in one module of one scheme.
TEST(FusedGroups, ExpertsOfOneLayerShareAScheme) {
  RandomCheckpointOptions o;
  o.model_type = "mixtral";
  o.hidden_size = 64;
  o.intermediate_size = 96;
  o.num_layers = 2;
  o.num_experts = 4;
  o.experts_per_token = 2;
  auto config = RandomCheckpointConfig(o);
  ASSERT_TRUE(config.ok()) << config.status();
  auto plans = [&](const char* cfg) {
    auto overrides = ParseLayerConfig(cfg, "layers.json");
    EXPECT_TRUE(overrides.ok()) << overrides.status();
    return PlanLayers(DecoderLinears(*config), {4, 32, true}, *overrides);
  };
  // All experts of a layer alike, another layer different: fine.
  EXPECT_TRUE(
      CheckFusedGroups("auto_round", plans(R"({"layers\\.1\\.block_sparse_moe": {"bits": 8}})"))
          .ok());
  std::vector<LayerPlan> split = plans(R"({"layers\\.0\\..*experts\\.3\\.w2": {"bits": 8}})");
  absl::Status s = CheckFusedGroups("auto_gptq", split);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "auto_gptq: model.layers.0.block_sparse_moe.experts.* form vLLM's fused MoE but "
            "have different schemes (0.w1 4-bit g32 sym, 3.w2 8-bit g32 sym); give them the same "
            "scheme in the layer config, or pass --allow-split-fused to write it anyway (vLLM "
            "will not load it; transformers and GPTQModel do not fuse and will)");
  EXPECT_EQ(SplitFusedGroups(split),
            std::vector<std::string>({"model.layers.0.block_sparse_moe.experts.* (vLLM's "
                                      "MoE): 0.w1 4-bit g32 sym, 3.w2 8-bit g32 sym"}));
}

}  // namespace
}  // namespace signround
