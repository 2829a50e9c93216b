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

TEST(ValidateQuantSchemeTest, DefaultIsValid) { EXPECT_TRUE(ValidateQuantScheme({}).ok()); }

TEST(ValidateQuantSchemeTest, AcceptsSupportedBitsAndGroupSizes) {
  for (int bits : {2, 3, 4, 8}) {
    for (int group_size : {-1, 32, 128}) {
      for (bool sym : {true, false}) {
        absl::Status s = ValidateQuantScheme(Scheme(bits, group_size, sym));
        EXPECT_TRUE(s.ok()) << "bits " << bits << " group_size " << group_size << ": " << s;
      }
    }
  }
}

TEST(ValidateQuantSchemeTest, RejectsUnsupportedBits) {
  for (int bits : {0, 1, 5, 6, 7, 16, -4}) {
    absl::Status s = ValidateQuantScheme(Scheme(bits, 128));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "bits " << bits;
    EXPECT_THAT(std::string(s.message()), HasSubstr("bits must be 2, 3, 4 or 8"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("got " + std::to_string(bits)));
  }
}

TEST(ValidateQuantSchemeTest, RejectsBadGroupSizes) {
  for (int group_size : {0, -2, -128}) {
    absl::Status s = ValidateQuantScheme(Scheme(4, group_size));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "group_size " << group_size;
    EXPECT_THAT(std::string(s.message()), HasSubstr("group_size must be positive or -1"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("got " + std::to_string(group_size)));
  }
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

}  // namespace
}  // namespace signround
