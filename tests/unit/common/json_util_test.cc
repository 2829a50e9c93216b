#include "src/common/json_util.h"

#include <gtest/gtest.h>

namespace signround {
namespace {

std::string ErrorOf(absl::string_view text) {
  auto r = ParseJsonObject(text, "f.json");
  EXPECT_FALSE(r.ok());
  return std::string(r.status().message());
}

TEST(ParseJsonObject, AcceptsObject) {
  auto r = ParseJsonObject(R"({"a": 1, "b": {"c": [1, 2]}})", "f.json");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)["b"]["c"][1], 2);
}

TEST(ParseJsonObject, RejectsDuplicateKeysAtAnyDepth) {
  EXPECT_EQ(ErrorOf(R"({"a": 1, "a": 2})"), "f.json: duplicate key 'a'");
  EXPECT_EQ(ErrorOf(R"({"x": {"b": 1, "b": 1}})"), "f.json: duplicate key 'b'");
  // The same key in sibling objects is fine.
  EXPECT_TRUE(ParseJsonObject(R"({"x": {"b": 1}, "y": {"b": 1}})", "f.json").ok());
}

TEST(ParseJsonObject, RejectsNonObjectsAndGarbage) {
  EXPECT_EQ(ErrorOf("[1, 2]"), "f.json: expected a JSON object, got array");
  EXPECT_NE(ErrorOf("{\"a\": }").find("f.json: not valid JSON: parse error"), std::string::npos);
  EXPECT_NE(ErrorOf("{} x").find("not valid JSON"), std::string::npos);
  EXPECT_NE(ErrorOf("{\"a\": \"\xff\"}").find("not valid JSON"), std::string::npos);
}

TEST(JsonFields, TypedAccessNamesKeyAndType) {
  auto j = nlohmann::json::parse(
      R"({"i": 3, "s": "x", "d": 1.5, "n": null, "b": true, "big": 18446744073709551615,
          "l": [1, 2], "f": 2.5})");
  JsonFields f(j, "cfg");
  EXPECT_EQ(*f.Int("i"), 3);
  EXPECT_EQ(*f.String("s"), "x");
  EXPECT_DOUBLE_EQ(*f.Double("i"), 3.0);
  EXPECT_FALSE(f.OptionalInt("n")->has_value());
  EXPECT_FALSE(f.Has("n"));
  EXPECT_EQ(f.Int("missing").status().message(), "cfg: key 'missing' is missing");
  EXPECT_EQ(f.Int("s").status().message(), "cfg: key 's' must be an integer, got string \"x\"");
  EXPECT_EQ(f.Int("f").status().message(), "cfg: key 'f' must be an integer, got number 2.5");
  EXPECT_EQ(f.Int("big").status().message(),
            "cfg: key 'big' must be an integer, got number 18446744073709551615");
  EXPECT_EQ(f.OptionalBool("i").status().message(),
            "cfg: key 'i' must be true or false, got number 3");
  EXPECT_EQ(*f.OptionalIntOrIntList("i"), std::vector<int64_t>({3}));
  EXPECT_EQ(*f.OptionalIntOrIntList("l"), std::vector<int64_t>({1, 2}));
  EXPECT_TRUE(f.OptionalIntOrIntList("n")->empty());
  EXPECT_FALSE(f.OptionalStringList("l").ok());
}

}  // namespace
}  // namespace signround
