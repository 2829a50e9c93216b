// AutoScheme's settings: candidate names, their defaults and the rules CheckAutoScheme
// holds a job to (each error names its field).
#include "src/contract/auto_scheme.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "src/contract/settings.h"

namespace signround::contract {
namespace {

TEST(AutoScheme, CandidateNames) {
  absl::StatusOr<SchemeCandidate> c = ParseSchemeCandidate("w3g32");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->bits, 3);
  EXPECT_EQ(c->group_size, 32);
  EXPECT_EQ(SchemeCandidateName(*c), "W3G32");
  c = ParseSchemeCandidate("W4G-1");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->group_size, -1);
  c = ParseSchemeCandidate("W16");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->keep());
  EXPECT_EQ(SchemeCandidateName(*c), "W16");
  for (const char* bad : {"", "W", "G32", "W3", "W3G", "W5G32", "W3G33", "W3G32x", "W+3G32",
                          "W3G+32", "W16G32", "W 3G32"}) {
    EXPECT_EQ(ParseSchemeCandidate(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(DefaultSchemeCandidates(128),
            (std::vector<std::string>{"W2G128", "W3G128", "W4G128", "W8G128", "W16"}));
}

QuantizeSettings WithTarget(double target, std::vector<std::string> candidates = {}) {
  QuantizeRequest r;
  r.target_bits = target;
  r.group_size = 32;
  r.scheme_candidates = std::move(candidates);
  return *ResolveSettings(r);
}

void ExpectError(const QuantizeSettings& s, const std::string& start) {
  absl::Status st = CheckAutoScheme(s);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << start;
  EXPECT_TRUE(absl::StartsWith(st.message(), start)) << st.message();
}

TEST(AutoScheme, ResolvedDefaultsAndChecks) {
  EXPECT_TRUE(CheckAutoScheme(*ResolveSettings({})).ok());  // off
  QuantizeSettings s = WithTarget(2.5);
  EXPECT_EQ(s.scheme_candidates, DefaultSchemeCandidates(32));
  EXPECT_TRUE(CheckAutoScheme(s).ok());
  s = WithTarget(3.5, {"w3g32", "W4G32"});
  EXPECT_EQ(s.scheme_candidates, (std::vector<std::string>{"W3G32", "W4G32"}));
  EXPECT_TRUE(CheckAutoScheme(s).ok());

  ExpectError(WithTarget(2.5, {"W3G32", "W4G32"}), "target_bits: 2.5 is outside");
  ExpectError(WithTarget(17), "target_bits: 17 is outside");
  ExpectError(WithTarget(2.5, {"W2G32"}), "scheme_candidates: needs 2 to 8");
  ExpectError(WithTarget(2.5, {"W2G32", "w2g32"}), "scheme_candidates[1]: W2G32 is listed twice");
  ExpectError(WithTarget(2.5, {"W2G32", "W7G32"}), "scheme_candidates[1]: 'W7G32'");
  s = WithTarget(2.5);
  s.target_bits = 0;
  ExpectError(s, "scheme_candidates: given without target_bits");
  s.target_bits = -1;
  ExpectError(s, "target_bits: must be 0");
  s = WithTarget(4.5, {"W4G32", "W8G32"});
  s.formats = {"auto_round", "gguf:q4_0"};
  ExpectError(s, "scheme_candidates[1]: gguf:q4_0 cannot hold W8G32");
  s.formats = {"gguf:q4_k_m"};
  ExpectError(s, "target_bits: a GGUF k-quant mix");
  // The settings file carries both.
  s = WithTarget(3.25, {"W2G32", "W4G32", "W16"});
  absl::StatusOr<QuantizeSettings> back = ParseSettingsFile(SettingsFileText(s), "f");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->target_bits, 3.25);
  EXPECT_EQ(back->scheme_candidates, s.scheme_candidates);
}

}  // namespace
}  // namespace signround::contract
