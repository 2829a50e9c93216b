#include "src/quant/layer_plan.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/model/config.h"
#include "src/model/layout.h"

namespace signround {
namespace {

using ::testing::HasSubstr;

QuantScheme Scheme(int bits, int group_size, bool sym = true) {
  QuantScheme s;
  s.bits = bits;
  s.group_size = group_size;
  s.sym = sym;
  return s;
}

LinearLayer Linear(const std::string& name, int64_t in, int64_t out) {
  LinearLayer l;
  l.name = name;
  l.in = in;
  l.out = out;
  return l;
}

TEST(PlanLayersTest, QuantizesAlignedLayersWithTheScheme) {
  QuantScheme scheme = Scheme(3, 32, false);
  std::vector<LayerPlan> plans = PlanLayers({Linear("a", 64, 64)}, scheme);
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(plans[0].layer.name, "a");
  EXPECT_TRUE(plans[0].quantized);
  EXPECT_EQ(plans[0].scheme.bits, 3);
  EXPECT_EQ(plans[0].scheme.group_size, 32);
  EXPECT_FALSE(plans[0].scheme.sym);
  EXPECT_TRUE(plans[0].reason.empty());
}

TEST(PlanLayersTest, KeepsUnalignedInputDimension) {
  std::vector<LayerPlan> plans = PlanLayers({Linear("down", 172, 64)}, Scheme(4, 128));
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_FALSE(plans[0].quantized);
  EXPECT_THAT(plans[0].reason, HasSubstr("in 172"));
  EXPECT_THAT(plans[0].reason, HasSubstr("not a multiple of 32"));
}

TEST(PlanLayersTest, KeepsUnalignedOutputDimension) {
  std::vector<LayerPlan> plans = PlanLayers({Linear("gate", 64, 172)}, Scheme(4, 128));
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_FALSE(plans[0].quantized);
  EXPECT_THAT(plans[0].reason, HasSubstr("out 172"));
  EXPECT_THAT(plans[0].reason, HasSubstr("not a multiple of 32"));
}

TEST(PlanLayersTest, PlansEveryLayerInOrder) {
  // stories260k's shape: hidden 64, intermediate 172, 8 heads, 4 kv heads.
  ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = 64;
  c.intermediate_size = 172;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.head_dim = 8;
  std::vector<LinearLayer> layers = DecoderLinears(c);
  std::vector<LayerPlan> plans = PlanLayers(layers, Scheme(4, 32));
  ASSERT_EQ(plans.size(), layers.size());
  ASSERT_EQ(plans.size(), 14u);
  for (size_t i = 0; i < plans.size(); ++i) {
    const std::string& name = plans[i].layer.name;
    EXPECT_EQ(name, layers[i].name);
    bool mlp = name.find(".mlp.") != std::string::npos;
    // q/k/v/o are 64x64 or 64x32; gate/up/down touch 172.
    EXPECT_EQ(plans[i].quantized, !mlp) << name;
    if (mlp) {
      EXPECT_THAT(plans[i].reason, HasSubstr("172")) << name;
    }
  }
}

// --- ParseLayerConfig ---------------------------------------------------------

// The 7 Linears of one Llama block with hidden 64 and intermediate 128 (all
// multiples of 32, so only the overrides decide).
std::vector<LinearLayer> OneBlock() {
  const std::string p = "model.layers.0.";
  return {Linear(p + "self_attn.q_proj", 64, 64), Linear(p + "self_attn.k_proj", 64, 32),
          Linear(p + "self_attn.v_proj", 64, 32), Linear(p + "self_attn.o_proj", 64, 64),
          Linear(p + "mlp.gate_proj", 64, 128),   Linear(p + "mlp.up_proj", 64, 128),
          Linear(p + "mlp.down_proj", 128, 64)};
}

const LayerPlan& PlanOf(const std::vector<LayerPlan>& plans, const std::string& suffix) {
  for (const LayerPlan& p : plans) {
    if (p.layer.name.size() >= suffix.size() &&
        p.layer.name.compare(p.layer.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return p;
    }
  }
  ADD_FAILURE() << "no layer " << suffix;
  static const LayerPlan none;
  return none;
}

TEST(ParseLayerConfigTest, OverridesApplyInFileOrder) {
  auto o = ParseLayerConfig(R"({
    "mlp\\.": {"bits": 8, "group_size": 64},
    "mlp\\.down_proj": {"bits": 2, "sym": false},
    "q_proj": {"group_size": -1}
  })",
                            "layers.json");
  ASSERT_TRUE(o.ok()) << o.status();
  ASSERT_EQ(o->size(), 3u);
  EXPECT_EQ((*o)[0].pattern, "mlp\\.");
  EXPECT_EQ((*o)[1].pattern, "mlp\\.down_proj");
  EXPECT_EQ((*o)[2].pattern, "q_proj");
  EXPECT_EQ((*o)[0].bits, 8);
  EXPECT_EQ((*o)[0].group_size, 64);
  EXPECT_FALSE((*o)[0].sym.has_value());
  EXPECT_EQ((*o)[1].sym, false);
  EXPECT_FALSE((*o)[2].bits.has_value());

  std::vector<LayerPlan> plans = PlanLayers(OneBlock(), Scheme(4, 128), *o);
  // down_proj: both mlp patterns match; the later one wins bits and adds sym,
  // the earlier one's group_size stays.
  const LayerPlan& down = PlanOf(plans, "mlp.down_proj");
  EXPECT_TRUE(down.quantized);
  EXPECT_EQ(down.scheme.bits, 2);
  EXPECT_EQ(down.scheme.group_size, 64);
  EXPECT_FALSE(down.scheme.sym);
  const LayerPlan& gate = PlanOf(plans, "mlp.gate_proj");
  EXPECT_EQ(gate.scheme.bits, 8);
  EXPECT_EQ(gate.scheme.group_size, 64);
  EXPECT_TRUE(gate.scheme.sym);
  const LayerPlan& q = PlanOf(plans, "self_attn.q_proj");
  EXPECT_EQ(q.scheme.bits, 4);
  EXPECT_EQ(q.scheme.group_size, -1);
  const LayerPlan& k = PlanOf(plans, "self_attn.k_proj");
  EXPECT_EQ(k.scheme.bits, 4);
  EXPECT_EQ(k.scheme.group_size, 128);
}

TEST(ParseLayerConfigTest, LaterOverrideWins) {
  auto a = ParseLayerConfig(R"({"mlp": {"bits": 8}, "down_proj": {"bits": 2}})", "a.json");
  auto b = ParseLayerConfig(R"({"down_proj": {"bits": 2}, "mlp": {"bits": 8}})", "b.json");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(PlanOf(PlanLayers(OneBlock(), Scheme(4, 32), *a), "mlp.down_proj").scheme.bits, 2);
  EXPECT_EQ(PlanOf(PlanLayers(OneBlock(), Scheme(4, 32), *b), "mlp.down_proj").scheme.bits, 8);
}

TEST(ParseLayerConfigTest, Bits16KeepsTheLayer) {
  auto o = ParseLayerConfig(R"({"self_attn\\.(k|v)_proj": {"bits": 16}})", "layers.json");
  ASSERT_TRUE(o.ok()) << o.status();
  std::vector<LayerPlan> plans = PlanLayers(OneBlock(), Scheme(2, 32), *o);
  for (const LayerPlan& p : plans) {
    bool kv = p.layer.name.find("k_proj") != std::string::npos ||
              p.layer.name.find("v_proj") != std::string::npos;
    EXPECT_EQ(p.quantized, !kv) << p.layer.name;
    if (kv) {
      EXPECT_EQ(p.reason, "kept 16-bit by the layer config") << p.layer.name;
      EXPECT_EQ(p.scheme.bits, 16) << p.layer.name;
    } else {
      EXPECT_EQ(p.scheme.bits, 2) << p.layer.name;
      EXPECT_TRUE(p.reason.empty()) << p.layer.name;
    }
  }
}

}  // namespace
}  // namespace signround
