#include "src/contract/layer_override.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "gmock/gmock.h"

namespace signround::contract {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

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
  EXPECT_TRUE(
      absl::StrContains(error(R"([{"pattern":"a","bits":5}])"), "must be 2, 3, 4, 8 or 16, got 5"));
  EXPECT_TRUE(absl::StrContains(error(R"([{"pattern":"a","group_size":0}])"),
                                "must be positive or -1, got 0"));
  EXPECT_TRUE(absl::StrContains(error(R"([{"pattern":"a","sym":"yes"}])"), "key 'sym'"));
}

TEST(LayerOverride, PatternsAreCheckedApart) {
  // The job store reads its own rows without compiling them; files from elsewhere are checked.
  absl::StatusOr<std::vector<LayerOverride>> o =
      LayerOverridesFromJson(json::parse(R"([{"pattern":"mlp","bits":4},{"pattern":"("}])"), "cfg");
  ASSERT_TRUE(o.ok()) << o.status();
  absl::Status s = CheckLayerOverridePatterns(*o, "cfg");
  EXPECT_TRUE(absl::StartsWith(s.message(), "cfg[1]: not a valid regex")) << s;
  o->pop_back();
  EXPECT_TRUE(CheckLayerOverridePatterns(*o, "cfg").ok());
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

TEST(ParseLayerConfigTest, EmptyObjectHasNoOverrides) {
  auto o = ParseLayerConfig("{}", "layers.json");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->empty());
}

// Each bad config is INVALID_ARGUMENT starting with the label and naming the pattern.
void ExpectBadLayerConfig(const std::string& text, const std::string& pattern,
                          const std::string& fragment) {
  auto o = ParseLayerConfig(text, "layers.json");
  ASSERT_FALSE(o.ok()) << text;
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << o.status();
  std::string msg(o.status().message());
  EXPECT_EQ(msg.rfind("layers.json: '" + pattern + "'", 0), 0u) << msg;
  EXPECT_THAT(msg, HasSubstr(fragment));
}

TEST(ParseLayerConfigTest, RejectsInvalidRegex) {
  ExpectBadLayerConfig(R"({"mlp\\.": {"bits": 8}, "(q_proj": {"bits": 8}})", "(q_proj",
                       "not a valid regex");
}

TEST(ParseLayerConfigTest, RejectsUnsupportedBits) {
  ExpectBadLayerConfig(R"({"down_proj": {"bits": 7}})", "down_proj",
                       "key 'bits' must be 2, 3, 4, 8 or 16, got 7");
}

TEST(ParseLayerConfigTest, RejectsZeroGroupSize) {
  ExpectBadLayerConfig(R"({"o_proj": {"group_size": 0}})", "o_proj",
                       "key 'group_size' must be positive or -1, got 0");
}

TEST(ParseLayerConfigTest, RejectsUnknownKey) {
  ExpectBadLayerConfig(R"({"o_proj": {"bitz": 4}})", "o_proj", "key 'bitz'");
}

TEST(ParseLayerConfigTest, RejectsNonObjectValue) {
  ExpectBadLayerConfig(R"({"o_proj": 4})", "o_proj", "must be an object");
}

TEST(ParseLayerConfigTest, RejectsWrongFieldTypes) {
  ExpectBadLayerConfig(R"({"o_proj": {"bits": "4"}})", "o_proj", "bits");
  ExpectBadLayerConfig(R"({"o_proj": {"sym": 1}})", "o_proj", "sym");
}

TEST(ParseLayerConfigTest, RejectsNonObjectRoot) {
  auto o = ParseLayerConfig(R"([{"bits": 4}])", "layers.json");
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(o.status().message()), HasSubstr("layers.json"));
}

}  // namespace
}  // namespace signround::contract
