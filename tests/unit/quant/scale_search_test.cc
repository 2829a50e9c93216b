// The integer schemes' scale search (scale_search.h IntSearchRange): it lowers the
// importance-weighted squared error of W^ below the full range's for sym and asym at 2, 3
// and 4 bits, handles a padded last group and per-channel groups, keeps an all-zero group
// as plain rounding has it, and its range goes through the unchanged qdq (alpha = beta = 1),
// also widened for tuning (alpha = beta = 0.5 on twice the range).
#include "src/quant/scale_search.h"

#include <gtest/gtest.h>

#include <string>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "src/quant/qdq.h"

namespace signround {
namespace {

// Rows of varied magnitude with a few outliers; one all-zero row.
at::Tensor TestWeight(int64_t out, int64_t in, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor w = at::randn({out, in}) * at::rand({out, 1}).add_(0.05);
  w[1] = w[1].abs();
  w[2].zero_();
  w[3].narrow(0, 5, 2).mul_(8);
  return w;
}

double WeightedError(const at::Tensor& w, const GroupedWeight& g, const QuantScheme& s,
                     const at::Tensor& importance) {
  at::Tensor err = (QuantDequant(g, s, InitialRoundingParams(g)).dequant - w).pow(2);
  return (err * importance).sum().item<double>();
}

struct Case {
  int bits;
  int group_size;
  bool sym;
  int64_t in;
};

std::string Name(const Case& c) {
  return absl::StrCat("W", c.bits, "G", c.group_size < 0 ? "ch" : std::to_string(c.group_size),
                      c.sym ? "sym" : "asym", "_in", c.in);
}

class IntSearchTest : public ::testing::TestWithParam<Case> {};

TEST_P(IntSearchTest, LowersTheImportanceWeightedError) {
  const Case c = GetParam();
  const QuantScheme s{c.bits, c.group_size, c.sym};
  const at::Tensor w = TestWeight(48, c.in, 3);
  at::manual_seed(4);
  const at::Tensor importance = at::rand({c.in}).pow(4).add_(0.01);
  GroupedWeight g = GroupWeight(w, s.group_size);
  const double plain = WeightedError(w, g, s, importance);
  IntSearchRange(g, s, importance);
  const QdqResult r = QuantDequant(g, s, InitialRoundingParams(g));
  EXPECT_FALSE(at::isnan(r.dequant).any().item<bool>());
  EXPECT_LT(WeightedError(w, g, s, importance), plain) << Name(c);
  // The all-zero row stays exactly zero.
  EXPECT_EQ(r.dequant[2].abs().max().item<float>(), 0.0f);

  // Widened for tuning (WidenSearchedRange): alpha = beta = 0.5 quantize bit for bit as the
  // search found, and alpha = beta = 1 reach twice the searched extremes, past the full range
  // wherever the search clipped.
  GroupedWeight wide = g;
  RoundingParams p = InitialRoundingParams(wide);
  EXPECT_EQ(WidenSearchedRange(wide, p), 0.5);
  EXPECT_TRUE(at::equal(p.alpha, at::full_like(p.alpha, 0.5)));
  EXPECT_TRUE(at::equal(p.beta, at::full_like(p.beta, 0.5)));
  const QdqResult start = QuantDequant(wide, s, p);
  EXPECT_TRUE(at::equal(start.dequant, r.dequant)) << Name(c);
  EXPECT_TRUE(at::equal(start.scale, r.scale)) << Name(c);
  EXPECT_TRUE(at::equal(wide.wmin0, g.wmin0 * 2) && at::equal(wide.wmax0, g.wmax0 * 2));
  const GroupedWeight full = GroupWeight(w, s.group_size);
  EXPECT_TRUE((wide.wmax0 > full.wmax0).any().item<bool>()) << Name(c);
}

INSTANTIATE_TEST_SUITE_P(Schemes, IntSearchTest,
                         ::testing::Values(Case{2, 32, true, 256}, Case{2, 32, false, 256},
                                           Case{3, 32, true, 256}, Case{3, 32, false, 256},
                                           Case{4, 128, true, 256}, Case{4, 128, false, 256},
                                           Case{2, -1, true, 96}, Case{3, 32, true, 80},
                                           Case{3, 32, false, 80}),
                         [](const auto& info) { return Name(info.param); });

// Symmetric: the searched range keeps which extreme dominates and sets the other to 0, so the
// qdq's scale keeps its sign (the dominant extreme maps to -nmax) at the search's alpha and
// beta and at any others tuning may reach: shrinking the dominant extreme below the other
// cannot hand the scale to it.
TEST(IntSearch, SymmetricKeepsTheScaleSign) {
  const QuantScheme s{2, 32, true};
  const at::Tensor w = TestWeight(16, 64, 8);
  GroupedWeight g = GroupWeight(w, s.group_size);
  const at::Tensor before = QuantDequant(g, s, InitialRoundingParams(g)).scale;
  IntSearchRange(g, s, at::ones({64}));
  RoundingParams p = InitialRoundingParams(g);
  EXPECT_TRUE(at::equal(at::sign(before), at::sign(QuantDequant(g, s, p).scale)));
  EXPECT_TRUE(at::equal(at::minimum(-g.wmin0, g.wmax0), at::zeros_like(g.wmax0)));
  for (const bool shrink_max : {true, false}) {
    p.alpha = shrink_max ? at::ones_like(p.alpha) : at::full_like(p.alpha, 0.05);
    p.beta = shrink_max ? at::full_like(p.beta, 0.05) : at::ones_like(p.beta);
    EXPECT_TRUE(at::equal(at::sign(before), at::sign(QuantDequant(g, s, p).scale))) << shrink_max;
  }
}

}  // namespace
}  // namespace signround
