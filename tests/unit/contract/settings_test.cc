#include "src/contract/settings.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "src/contract/export_formats.h"

namespace signround::contract {
namespace {

using nlohmann::json;

TEST(Settings, DefaultsAndRecipes) {
  QuantizeSettings d = *ResolveSettings({});
  EXPECT_EQ(d.recipe, "default");
  EXPECT_EQ(d.formats, std::vector<std::string>{"auto_round"});
  EXPECT_EQ(d.bits, 4);
  EXPECT_EQ(d.group_size, 128);
  EXPECT_TRUE(d.sym);
  EXPECT_EQ(d.iters, 200);
  EXPECT_EQ(d.nsamples, 128);
  EXPECT_EQ(d.seqlen, 2048);
  EXPECT_EQ(d.batch_size, 8);
  EXPECT_EQ(d.seed, 42u);
  EXPECT_EQ(d.packed_dtype, "float16");

  QuantizeRequest r;
  r.recipe = "best";
  QuantizeSettings best = *ResolveSettings(r);
  EXPECT_EQ(best.iters, 1000);
  EXPECT_EQ(best.nsamples, 512);
  r.recipe = "light";
  QuantizeSettings light = *ResolveSettings(r);
  EXPECT_EQ(light.iters, 50);
  EXPECT_EQ(light.lr, 5e-3);
  r.recipe = "rtn";
  EXPECT_EQ(ResolveSettings(r)->iters, 0);
  EXPECT_FALSE(ResolveSettings(r)->scale_search);
  EXPECT_FALSE(d.scale_search);
  EXPECT_FALSE(d.loss_filter);
  // opt_rtn: no tuning, the scale search on; either may be set against it.
  r.recipe = "opt_rtn";
  QuantizeSettings opt = *ResolveSettings(r);
  EXPECT_EQ(opt.iters, 0);
  EXPECT_TRUE(opt.scale_search);
  EXPECT_FALSE(opt.loss_filter);
  r.scale_search = false;
  r.iters = 50;
  r.loss_filter = true;
  opt = *ResolveSettings(r);
  EXPECT_FALSE(opt.scale_search);
  EXPECT_EQ(opt.iters, 50);
  EXPECT_TRUE(opt.loss_filter);
}

// SignRoundV2's scale search and loss filter are on by default where they were measured to
// win: the default recipe tuning a uniform 2- or 3-bit symmetric integer job. Not at other widths,
// asymmetric, in another recipe, without tuning, with mixed bits or a k-quant mix, and either
// may be set against it.
TEST(Settings, SignRoundV2IsOnByDefaultAtTwoAndThreeBitsSymmetric) {
  QuantizeRequest r;
  r.bits = 3;
  QuantizeSettings s = *ResolveSettings(r);
  EXPECT_TRUE(s.sym);
  EXPECT_TRUE(s.scale_search);
  EXPECT_TRUE(s.loss_filter);
  r.bits = 2;
  r.recipe = "default";
  EXPECT_TRUE(ResolveSettings(r)->scale_search);
  auto off = [](QuantizeRequest q) {
    QuantizeSettings t = *ResolveSettings(q);
    return !t.scale_search && !t.loss_filter;
  };
  QuantizeRequest q = r;
  q.bits = 4;
  EXPECT_TRUE(off(q));
  q.bits = 8;
  EXPECT_TRUE(off(q));
  q = r;
  q.sym = false;
  EXPECT_TRUE(off(q));
  for (const char* recipe : {"best", "light", "rtn"}) {
    q = r;
    q.recipe = recipe;
    EXPECT_TRUE(off(q)) << recipe;
  }
  q = r;
  q.iters = 0;
  EXPECT_TRUE(off(q));
  q = r;
  q.target_bits = 2.5;
  EXPECT_TRUE(off(q));
  q = r;
  q.sym = true;
  q.formats = {"gguf:q2_k"};
  EXPECT_TRUE(off(q));
  q = r;
  q.scale_search = false;
  s = *ResolveSettings(q);
  EXPECT_FALSE(s.scale_search);
  EXPECT_TRUE(s.loss_filter);
  q = r;
  q.loss_filter = false;
  s = *ResolveSettings(q);
  EXPECT_TRUE(s.scale_search);
  EXPECT_FALSE(s.loss_filter);
}

TEST(Settings, ExplicitValuesWinOverTheRecipe) {
  QuantizeRequest r;
  r.recipe = "best";
  r.iters = 7;
  r.lr = 0.01;
  r.bits = 2;
  r.sym = false;
  r.formats = {"GGUF:Q4_0", "fake"};
  r.packed_dtype = "BFloat16";
  QuantizeSettings s = *ResolveSettings(r);
  EXPECT_EQ(s.iters, 7);
  EXPECT_EQ(s.nsamples, 512);
  EXPECT_EQ(s.lr, 0.01);
  EXPECT_EQ(s.bits, 2);
  EXPECT_FALSE(s.sym);
  EXPECT_EQ(s.formats, (std::vector<std::string>{"gguf:q4_0", "fake"}));
  EXPECT_EQ(s.packed_dtype, "bfloat16");
  EXPECT_EQ(s.scheme().bits, 2);
  EXPECT_FALSE(s.scheme().sym);
}

TEST(Settings, AKQuantMixFixesTheSchemeTheRequestLeavesUnset) {
  QuantizeRequest r;
  r.formats = {"GGUF:Q3_K_M", "fake"};
  absl::StatusOr<QuantizeSettings> s = ResolveSettings(r);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->bits, 3);
  EXPECT_EQ(s->group_size, 16);
  EXPECT_TRUE(s->sym);
  EXPECT_EQ(s->scheme().data_type, DataType::kQ3_K);
  r.bits = 8;  // given explicitly: kept, and CheckFormatScheme refuses it
  s = ResolveSettings(r);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->bits, 8);
  EXPECT_FALSE(CheckFormatScheme("gguf:q3_k_m", s->scheme()).ok());
  EXPECT_FALSE(ValidateQuantScheme(s->scheme()).ok());
  // The settings file carries it back.
  r.bits.reset();
  s = ResolveSettings(r);
  absl::StatusOr<QuantizeSettings> back = ParseSettingsFile(SettingsFileText(*s), "f");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(SameScheme(back->scheme(), s->scheme()));
}

TEST(Settings, ErrorsNameTheField) {
  QuantizeRequest r;
  r.recipe = "fastest";
  EXPECT_EQ(ResolveSettings(r).status().message(),
            "recipe: 'fastest' is not one of default, best, light, rtn, opt_rtn");
  r.recipe = "";
  r.formats = {"fake", "awq"};
  EXPECT_TRUE(absl::StartsWith(ResolveSettings(r).status().message(), "formats[1]: 'awq'"));
  r.formats = {"fake", "FAKE"};
  EXPECT_EQ(ResolveSettings(r).status().message(), "formats[1]: 'fake' is listed twice");
  r.formats = {};
  r.packed_dtype = "float32";
  EXPECT_TRUE(absl::StartsWith(ResolveSettings(r).status().message(), "packed_dtype: "));
}

TEST(Settings, FileRoundTripsEveryField) {
  QuantizeRequest r;
  r.formats = {"auto_gptq", "fake"};
  r.bits = 3;
  r.group_size = -1;
  r.sym = false;
  r.iters = 9;
  r.lr = 0.25;
  r.minmax_lr = 0.5;
  r.nsamples = 3;
  r.seqlen = 17;
  r.batch_size = 2;
  r.seed = 18446744073709551615u;
  r.layer_overrides = {{"mlp", 16, {}, {}}};
  r.allow_split_fused = true;
  r.scale_search = true;
  r.loss_filter = true;
  r.teq_iters = 30;
  QuantizeSettings s = *ResolveSettings(r);
  const std::string text = SettingsFileText(s);
  EXPECT_EQ(json::parse(text).at("version"), kSettingsFileVersion);
  absl::StatusOr<QuantizeSettings> back = ParseSettingsFile(text, "s.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ToJson(), s.ToJson());
  EXPECT_EQ(SettingsFileText(*back), text);
  EXPECT_TRUE(back->allow_split_fused);
  EXPECT_FALSE(back->allow_gguf_without_vocab);
  EXPECT_TRUE(back->scale_search);
  EXPECT_TRUE(back->loss_filter);
  EXPECT_EQ(back->teq_iters, 30);
  // The waivers are not settings.
  EXPECT_FALSE(s.ToJson().contains("allow_split_fused"));
}

TEST(Settings, FileRejectsWhatResolutionWouldNotWrite) {
  const json good = json::parse(SettingsFileText(*ResolveSettings({})));
  auto error = [&good](const std::string& key, const json& value) {
    json j = good;
    if (value.is_discarded()) {
      j.erase(key);
    } else {
      j[key] = value;
    }
    return std::string(ParseSettingsFile(j.dump(), "s.json").status().message());
  };
  EXPECT_TRUE(ParseSettingsFile(good.dump(), "s.json").ok());
  EXPECT_TRUE(absl::StrContains(error("version", 1), "key 'version' 1 is not 3"));
  EXPECT_TRUE(absl::StrContains(error("scale_search", json(json::value_t::discarded)),
                                "key 'scale_search'"));
  EXPECT_TRUE(absl::StrContains(error("loss_filter", 1), "key 'loss_filter'"));
  EXPECT_TRUE(absl::StrContains(error("target_bits", -2), "key 'target_bits'"));
  EXPECT_TRUE(absl::StrContains(error("teq_iters", -1), "key 'teq_iters' -1 is outside 0..100000"));
  EXPECT_TRUE(
      absl::StrContains(error("teq_iters", json(json::value_t::discarded)), "key 'teq_iters'"));
  EXPECT_TRUE(absl::StrContains(error("scheme_candidates", {"w3g32"}), "is not written W3G32"));
  EXPECT_TRUE(absl::StrContains(error("scheme_candidates", {"W9"}), "key 'scheme_candidates'"));
  EXPECT_TRUE(absl::StrContains(error("scheme_candidates", json(json::value_t::discarded)),
                                "key 'scheme_candidates' is required"));
  EXPECT_TRUE(absl::StrContains(error("colour", "red"), "key 'colour' is not a setting"));
  EXPECT_TRUE(absl::StrContains(error("bits", json(json::value_t::discarded)), "key 'bits'"));
  EXPECT_TRUE(absl::StrContains(error("formats", {"awq"}), "'awq' is not one of"));
  EXPECT_TRUE(absl::StrContains(error("formats", json::array()), "at least one format"));
  EXPECT_TRUE(absl::StrContains(error("recipe", "fast"), "key 'recipe'"));
  EXPECT_TRUE(absl::StrContains(error("seed", -1), "key 'seed'"));
  EXPECT_TRUE(absl::StrContains(error("packed_dtype", "BFLOAT16"), "key 'packed_dtype'"));
  EXPECT_TRUE(absl::StrContains(error("lr", -1), "key 'lr'"));
  EXPECT_TRUE(
      absl::StrContains(error("layer_overrides", {{{"pattern", "("}}}), "not a valid regex"));
  EXPECT_FALSE(ParseSettingsFile("[]", "s.json").ok());
  EXPECT_FALSE(ParseSettingsFile("{\"version\": 1", "s.json").ok());
}

TEST(Settings, PackedDtypeNames) {
  EXPECT_TRUE(CheckPackedDtype("float16").ok());
  EXPECT_TRUE(CheckPackedDtype("bfloat16").ok());
  EXPECT_EQ(CheckPackedDtype("float32").message(), "'float32' is not one of float16, bfloat16");
}

}  // namespace
}  // namespace signround::contract
