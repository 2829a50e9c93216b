#include "src/contract/layer_override.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace signround::contract {
namespace {

using nlohmann::json;

TEST(LayerOverride, JsonRoundTripKeepsOrderAndUnsetFields) {
  std::vector<LayerOverride> in = {
      {"mlp", 8, {}, {}}, {"attn", {}, 64, false}, {"mlp", 16, {}, {}}};
  json j = LayerOverridesToJson(in);
  EXPECT_EQ(j.dump(),
            R"([{"bits":8,"pattern":"mlp"},{"group_size":64,"pattern":"attn","sym":false},)"
            R"({"bits":16,"pattern":"mlp"}])");
  absl::StatusOr<std::vector<LayerOverride>> back = LayerOverridesFromJson(j, "x");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 3u);
  EXPECT_EQ((*back)[1].pattern, "attn");
  EXPECT_EQ((*back)[1].bits, std::nullopt);
  EXPECT_EQ((*back)[1].group_size, 64);
  EXPECT_EQ((*back)[1].sym, false);
  EXPECT_EQ((*back)[2].bits, 16);
}

TEST(LayerOverride, FromJsonRejectsHostileEntries) {
  auto error = [](const std::string& text) {
    return std::string(LayerOverridesFromJson(json::parse(text), "cfg").status().message());
  };
  EXPECT_EQ(error(R"({"pattern":"a"})"), "cfg: not a list");
  EXPECT_EQ(error(R"([1])"), "cfg[0]: not an object");
  EXPECT_TRUE(absl::StrContains(error(R"([{"pattern":"a","bit":4}])"), "cfg[0]: key 'bit'"));
  EXPECT_TRUE(absl::StrContains(error(R"([{"bits":4}])"), "cfg[0]: key 'pattern'"));
  EXPECT_TRUE(absl::StrContains(error(R"([{"pattern":"(","bits":4}])"), "not a valid regex"));
  EXPECT_TRUE(
      absl::StrContains(error(R"([{"pattern":"a","bits":5}])"), "must be 2, 3, 4, 8 or 16, got 5"));
  EXPECT_TRUE(absl::StrContains(error(R"([{"pattern":"a","group_size":0}])"),
                                "must be positive or -1, got 0"));
  EXPECT_TRUE(absl::StrContains(error(R"([{"pattern":"a","sym":"yes"}])"), "key 'sym'"));
}

TEST(LayerOverride, ConfigFileIsAnObjectInFileOrder) {
  absl::StatusOr<std::vector<LayerOverride>> o = ParseLayerConfig(
      R"({"z": {"bits": 2}, "a": {"group_size": -1, "sym": false, "data_type": "int"}})", "l.json");
  ASSERT_TRUE(o.ok()) << o.status();
  ASSERT_EQ(o->size(), 2u);
  EXPECT_EQ((*o)[0].pattern, "z");
  EXPECT_EQ((*o)[1].pattern, "a");
  EXPECT_EQ((*o)[1].group_size, -1);
  EXPECT_EQ(ParseLayerConfig(R"({"a": {"bits": 7}})", "l.json").status().message(),
            "l.json: 'a': key 'bits' must be 2, 3, 4, 8 or 16, got 7");
  EXPECT_EQ(ParseLayerConfig(R"({"a": 4})", "l.json").status().message(),
            "l.json: 'a': must be an object");
  EXPECT_FALSE(ParseLayerConfig(R"({"a": {"bits": 4}, "a": {"bits": 8}})", "l.json").ok());
}

}  // namespace
}  // namespace signround::contract
