// Quantize-dequantize against hand-computed cases (ALGORITHM.md section 1).
// Every expected value below was worked out by hand from the formulas there;
// fp16 values are exact binary16 encodings (e.g. fp16(0.45) = 0.449951171875).
// Then the memory-lean path against the composite-op reference, bit for bit.
#include "src/quant/qdq.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace signround {
namespace {

at::Tensor Row(std::vector<float> values) {
  return at::tensor(values, at::kFloat).reshape({1, static_cast<int64_t>(values.size())});
}

std::vector<float> Values(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kFloat).contiguous().reshape({-1});
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::vector<int> Ints(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kInt).contiguous().reshape({-1});
  return std::vector<int>(c.data_ptr<int>(), c.data_ptr<int>() + c.numel());
}

QdqResult Rtn(const at::Tensor& w, QuantScheme scheme) {
  GroupedWeight g = GroupWeight(w, scheme.group_size);
  return QuantDequant(g, scheme, InitialRoundingParams(g));
}

TEST(Qdq, Sym2BitUsesAllFourLevels) {
  // a = 0.9 > c = 0.45: s = +0.9 / 2 = 0.45 -> fp16 0.449951171875.
  QdqResult r = Rtn(Row({0.3f, -0.9f, 0.45f, 0.1f}), {2, 4, true});
  EXPECT_EQ(Values(r.scale), std::vector<float>({0.449951171875f}));
  EXPECT_EQ(Values(r.q), std::vector<float>({1, -2, 1, 0}));
  const float s = 0.449951171875f;
  EXPECT_EQ(Values(r.dequant), std::vector<float>({s, -2 * s, s, 0}));
}

TEST(Qdq, Sym4BitNegativeScaleWhenMaxDominates) {
  // a = 0.2 < c = 0.8: s = -0.8 / 8 = -0.1 -> fp16 -0.0999755859375; 0.8 maps to -8.
  GroupedWeight g = GroupWeight(Row({0.8f, -0.2f, 0.4f, 0.0f}), 4);
  QuantScheme scheme{4, 4, true};
  QdqResult r = QuantDequant(g, scheme, InitialRoundingParams(g));
  EXPECT_EQ(Values(r.scale), std::vector<float>({-0.0999755859375f}));
  EXPECT_EQ(Values(r.q), std::vector<float>({-8, 2, -4, 0}));
  IntegerWeight iw = ToIntegerWeight(g, scheme, r);
  EXPECT_EQ(Ints(iw.codes), std::vector<int>({0, 10, 4, 8}));
  EXPECT_EQ(Ints(iw.zeros), std::vector<int>({8}));
  EXPECT_EQ(iw.scales.scalar_type(), at::kHalf);
  EXPECT_EQ(Values(iw.scales), std::vector<float>({-0.0999755859375f}));
}

TEST(Qdq, Sym3BitAnd8Bit) {
  // 3-bit: s = -0.7 / 4 -> fp16 -0.175048828125; q = round([-3.9989, 0.5713, -1.9994]).
  QdqResult r3 = Rtn(Row({0.7f, -0.1f, 0.35f}), {3, -1, true});
  EXPECT_EQ(Values(r3.scale), std::vector<float>({-0.175048828125f}));
  EXPECT_EQ(Values(r3.q), std::vector<float>({-4, 1, -2}));
  // 8-bit: s = -1 / 128 exactly; both values are exact.
  QdqResult r8 = Rtn(Row({1.0f, -0.5f}), {8, -1, true});
  EXPECT_EQ(Values(r8.q), std::vector<float>({-128, 64}));
  EXPECT_EQ(Values(r8.dequant), std::vector<float>({1.0f, -0.5f}));
}

TEST(Qdq, Asym4Bit) {
  // wmin = -0.5, wmax = 1.0: s = 1.5 / 15 -> fp16 0.0999755859375, zp = round(5.0012) = 5,
  // W / s = [-5.0012, 2.5006, 10.0024, 0] -> [-5, 3, 10, 0], plus zp.
  GroupedWeight g = GroupWeight(Row({-0.5f, 0.25f, 1.0f, 0.0f}), 4);
  QuantScheme scheme{4, 4, false};
  QdqResult r = QuantDequant(g, scheme, InitialRoundingParams(g));
  EXPECT_EQ(Values(r.scale), std::vector<float>({0.0999755859375f}));
  EXPECT_EQ(Values(r.zero), std::vector<float>({5}));
  EXPECT_EQ(Values(r.q), std::vector<float>({0, 8, 15, 5}));
  const float s = 0.0999755859375f;
  EXPECT_EQ(Values(r.dequant), std::vector<float>({-5 * s, 3 * s, 10 * s, 0}));
  IntegerWeight iw = ToIntegerWeight(g, scheme, r);
  EXPECT_EQ(Ints(iw.codes), std::vector<int>({0, 8, 15, 5}));
  EXPECT_EQ(Ints(iw.zeros), std::vector<int>({5}));
}

TEST(Qdq, Asym2BitNonNegativeGroupHasZeroPointZero) {
  // wmin clamps to 0: s = 0.9 / 3 -> fp16 0.300048828125, zp 0, q = round([0, 1.9997, 2.9995]).
  QdqResult r = Rtn(Row({0.0f, 0.6f, 0.9f}), {2, -1, false});
  EXPECT_EQ(Values(r.zero), std::vector<float>({0}));
  EXPECT_EQ(Values(r.q), std::vector<float>({0, 2, 3}));
}

TEST(Qdq, GroupPaddingIsDroppedAfterDequantization) {
  // in = 6, g = 4: groups [1, 2, 3, 4] and [5, 6, 0, 0]. 8-bit sym; s = -4/128 and -6/128.
  at::Tensor w = at::arange(1, 7, at::kFloat).reshape({1, 6});
  GroupedWeight g = GroupWeight(w, 4);
  EXPECT_EQ(g.num_groups(), 2);
  EXPECT_EQ(g.groups.sizes(), at::IntArrayRef({2, 4}));
  EXPECT_EQ(Values(g.groups), std::vector<float>({1, 2, 3, 4, 5, 6, 0, 0}));
  QuantScheme scheme{8, 4, true};
  QdqResult r = QuantDequant(g, scheme, InitialRoundingParams(g));
  EXPECT_EQ(r.dequant.sizes(), at::IntArrayRef({1, 6}));
  // Group 1: s = -1/32, exact. Group 2: s = -6/128 = -3/64, 5 / s = -106.67 -> -107.
  EXPECT_EQ(Values(r.dequant), std::vector<float>({1, 2, 3, 4, 5.015625f, 6}));
  IntegerWeight iw = ToIntegerWeight(g, scheme, r);
  EXPECT_EQ(iw.codes.sizes(), at::IntArrayRef({1, 6}));
  EXPECT_EQ(iw.scales.sizes(), at::IntArrayRef({1, 2}));
}

TEST(Qdq, PerChannelIsOneGroupPerRow) {
  at::Tensor w = at::tensor({0.5f, -1.0f, 0.25f, 2.0f, 1.0f, -0.5f}, at::kFloat).reshape({2, 3});
  for (int gs : {-1, 128}) {  // -1, and a group larger than `in`
    GroupedWeight g = GroupWeight(w, gs);
    EXPECT_EQ(g.groups.sizes(), at::IntArrayRef({2, 3}));
    QdqResult r = QuantDequant(g, {4, gs, true}, InitialRoundingParams(g));
    // Row 0: a = 1 > c = 0.5, s = 1/8. Row 1: c = 2 > a = 0.5, s = -2/8.
    EXPECT_EQ(Values(r.scale), std::vector<float>({0.125f, -0.25f}));
    EXPECT_EQ(Values(r.q), std::vector<float>({4, -8, 2, -8, -4, 2}));
  }
}

TEST(Qdq, AlphaBetaAreClampedToUnitInterval) {
  GroupedWeight g = GroupWeight(Row({0.3f, -0.9f, 0.45f, 0.1f}), 4);
  QuantScheme scheme{2, 4, true};
  RoundingParams p = InitialRoundingParams(g);
  QdqResult base = QuantDequant(g, scheme, p);
  p.alpha.fill_(1.7);  // clamps to 1: unchanged
  p.beta.fill_(3.0);
  EXPECT_TRUE(at::equal(QuantDequant(g, scheme, p).dequant, base.dequant));
  // alpha = -2 clamps to 0: a = 0 <= c = 0.45, s = -0.45 / 2 -> fp16 -0.2249755859375.
  p.alpha.fill_(-2.0);
  p.beta.fill_(1.0);
  EXPECT_EQ(Values(QuantDequant(g, scheme, p).scale), std::vector<float>({-0.2249755859375f}));
  // alpha = 0.5: a = 0.45 is not < c = 0.45, so the max side wins: the same scale.
  p.alpha.fill_(0.5);
  EXPECT_EQ(Values(QuantDequant(g, scheme, p).scale), std::vector<float>({-0.2249755859375f}));
}

TEST(Qdq, AllZeroGroupUsesTheScaleThreshold) {
  QdqResult r = Rtn(Row({0, 0, 0, 0}), {4, 4, true});
  float s = Values(r.scale)[0];
  EXPECT_EQ(s, at::scalar_tensor(1e-5, at::kHalf).item<float>());
  EXPECT_EQ(Values(r.dequant), std::vector<float>({0, 0, 0, 0}));
}

TEST(Qdq, ScalesAreFp16Representable) {
  at::manual_seed(3);
  at::Tensor w = at::randn({8, 96});
  for (bool sym : {true, false}) {
    QdqResult r = Rtn(w, {4, 32, sym});
    EXPECT_TRUE(at::equal(r.scale, r.scale.to(at::kHalf).to(at::kFloat)));
    // And the dequantized weight is exactly scale * (code - zero) with those scales.
    GroupedWeight g = GroupWeight(w, 32);
    at::Tensor again = (r.scale * (r.q - (sym ? at::zeros_like(r.zero) : r.zero))).reshape({8, 96});
    EXPECT_TRUE(at::equal(again, r.dequant));
  }
}

TEST(Qdq, RoundSteRoundsHalfToEvenAndPassesGradient) {
  at::Tensor x = at::tensor({0.5f, 1.5f, 2.5f, -0.5f, 0.49f}, at::kFloat).requires_grad_(true);
  at::Tensor y = RoundSte(x);
  EXPECT_EQ(Values(y), std::vector<float>({0, 2, 2, -0, 0}));
  y.sum().backward();
  EXPECT_EQ(Values(x.grad()), std::vector<float>({1, 1, 1, 1, 1}));
}

TEST(Qdq, GradientFlowsThroughSteAndStopsWhereClampSaturates) {
  GroupedWeight g = GroupWeight(Row({0.3f, -0.9f, 0.45f, 0.1f}), 4);
  RoundingParams p = InitialRoundingParams(g);
  // Element 1 sits at -2.0002; V = -0.8 pushes it to round(-2.8) = -3, clamped to -2.
  p.v.index_put_({0, 1}, -0.8);
  p.v.requires_grad_(true);
  p.alpha.requires_grad_(true);
  p.beta.requires_grad_(true);
  QdqResult r = QuantDequant(g, {2, 4, true}, p);
  r.dequant.sum().backward();
  const float s = 0.449951171875f;
  EXPECT_EQ(Values(p.v.grad()), std::vector<float>({s, 0, s, s}));
  // The min side dominates (a > c): alpha moves the scale, beta does not.
  EXPECT_NE(Values(p.alpha.grad())[0], 0.0f);
  EXPECT_EQ(Values(p.beta.grad())[0], 0.0f);

  // Max side dominates: s = -beta * 0.8 / 8. With the STE, W^ = s * round(W / s) has
  // d sum(W^) / ds = sum(q) - sum(W) / s, and ds / dbeta = -0.1 (the fp16 cast passes
  // the gradient straight through).
  GroupedWeight g2 = GroupWeight(Row({0.8f, -0.2f, 0.4f, 0.0f}), 4);
  RoundingParams p2 = InitialRoundingParams(g2);
  p2.beta.requires_grad_(true);
  p2.alpha.requires_grad_(true);
  QdqResult r2 = QuantDequant(g2, {4, 4, true}, p2);
  r2.dequant.sum().backward();
  const double s2 = -0.0999755859375;
  const double expected = -0.1 * (-10.0 - 1.0 / s2);  // q = [-8, 2, -4, 0], sum(W) = 1
  EXPECT_NEAR(Values(p2.beta.grad())[0], expected, 5e-7);
  EXPECT_LT(Values(p2.beta.grad())[0], 0.0f);
  EXPECT_EQ(Values(p2.alpha.grad())[0], 0.0f);
}

// The float_min scheme (GGUF Q4_1): the group's own min and max, not clamped to 0.
// min 0.2, max 0.8: s = fp16(0.6 / 15) = 1311 / 32768 = 0.040008544921875 and
// m = fp16(0.2) = 6552 / 32768 = 0.199951171875; q = round((W - m) / s) =
// round([0.0012, 7.4996, 14.998, 3.7504]) = [0, 7, 15, 4]; W^ = s * q + m (exact in fp32).
// The integer zero point would have to start the range at 0 (s = 0.8 / 15).
TEST(Qdq, FloatMinUsesTheGroupsOwnMinimum) {
  GroupedWeight g = GroupWeight(Row({0.2f, 0.5f, 0.8f, 0.35f}), 4);
  QuantScheme scheme{4, 4, false, /*float_min=*/true};
  QdqResult r = QuantDequant(g, scheme, InitialRoundingParams(g));
  EXPECT_EQ(Values(r.scale), std::vector<float>({0.040008544921875f}));
  EXPECT_EQ(Values(r.zero), std::vector<float>({0.199951171875f}));
  EXPECT_EQ(Values(r.q), std::vector<float>({0, 7, 15, 4}));
  EXPECT_EQ(Values(r.dequant), std::vector<float>({6552 / 32768.0f, 15729 / 32768.0f,
                                                   26217 / 32768.0f, 11796 / 32768.0f}));
  IntegerWeight iw = ToIntegerWeight(g, scheme, r);
  EXPECT_EQ(Ints(iw.codes), std::vector<int>({0, 7, 15, 4}));
  EXPECT_FALSE(iw.zeros.defined());
  EXPECT_EQ(iw.mins.scalar_type(), at::kHalf);
  EXPECT_EQ(Values(iw.mins), std::vector<float>({0.199951171875f}));
  // The tuning path gives the same W^ as the final quantizer.
  EXPECT_EQ(Values(QuantDequantWeight(g, scheme, InitialRoundingParams(g))), Values(r.dequant));
  // RTN's maximum error is half a step.
  at::Tensor err = (r.dequant - g.groups).abs().max();
  EXPECT_LE(err.item<float>(), 0.040008544921875f / 2);
}

// V moves each value by s within the clamp; alpha moves m (and s), beta only s.
TEST(Qdq, FloatMinGradients) {
  GroupedWeight g = GroupWeight(Row({0.2f, 0.5f, 0.8f, 0.35f}), 4);
  RoundingParams p = InitialRoundingParams(g);
  p.v.index_put_({0, 2}, 0.8);  // 15.8 rounds to 16: clamped, no gradient
  p.v.requires_grad_(true);
  p.alpha.requires_grad_(true);
  p.beta.requires_grad_(true);
  QdqResult r = QuantDequant(g, {4, 4, false, true}, p);
  r.dequant.sum().backward();
  const float s = 0.040008544921875f;
  EXPECT_EQ(Values(p.v.grad()), std::vector<float>({s, s, 0, s}));
  // d sum(W^) / d m = number of clamped values (the others follow m through (W - m) / s).
  // d m / d alpha = min = 0.2; s depends on alpha too: d s / d alpha = -0.2 / 15.
  EXPECT_NE(Values(p.alpha.grad())[0], 0.0f);
  EXPECT_NE(Values(p.beta.grad())[0], 0.0f);
}

// ---- The memory-lean path (QuantDequant, QuantDequantWeight: one custom autograd node per
// layer) against the plain composite-op formulation (QuantDequantReference): forward values
// and gradients in V, alpha and beta, bit for bit. ----

struct Case {
  int64_t out, in;
  QuantScheme scheme;
  std::string Name() const {
    return std::to_string(out) + "x" + std::to_string(in) + " W" + std::to_string(scheme.bits) +
           " G" + std::to_string(scheme.group_size) + (scheme.sym ? " sym" : " asym");
  }
};

// Every bits / sym / group combination on a padded shape (200 % 32 and 200 % 128 != 0),
// an unpadded one, and one narrower than a group.
std::vector<Case> Cases() {
  std::vector<Case> out;
  for (int bits : {2, 3, 4, 8}) {
    for (bool sym : {true, false}) {
      for (int group : {32, 128, -1}) {
        out.push_back({12, 200, {bits, group, sym}});
        out.push_back({16, 256, {bits, group, sym}});
      }
      out.push_back({6, 24, {bits, 32, sym}});
    }
  }
  return out;
}

// Weights ~ N(0, 0.05^2) with a few outliers and an all-zero row (the scale threshold).
at::Tensor RandomWeight(int64_t out, int64_t in, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor w = at::randn({out, in}) * 0.05;
  w.index_put_({at::rand({out, in}) < 0.01}, 0.4);
  w[0].zero_();
  return w;
}

// V in [-0.7, 0.7] (so some levels leave the clamp range), alpha and beta in [-0.2, 1.2]
// (so some are clamped to [0, 1]).
RoundingParams RandomParams(const GroupedWeight& g, uint64_t seed) {
  at::manual_seed(seed);
  RoundingParams p = InitialRoundingParams(g);
  p.v = at::rand(p.v.sizes()) * 1.4 - 0.7;
  p.alpha = at::rand(p.alpha.sizes()) * 1.4 - 0.2;
  p.beta = at::rand(p.beta.sizes()) * 1.4 - 0.2;
  return p;
}

RoundingParams Trainable(const RoundingParams& p, bool minmax = true) {
  RoundingParams t{p.v.detach().clone(), p.alpha.detach().clone(), p.beta.detach().clone()};
  t.v.requires_grad_(true);
  t.alpha.requires_grad_(minmax);
  t.beta.requires_grad_(minmax);
  return t;
}

// Bit-for-bit equality (so +0 and -0 differ), dtype and shape included.
::testing::AssertionResult SameBits(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type()) {
    return ::testing::AssertionFailure()
           << "dtype " << a.scalar_type() << " vs " << b.scalar_type();
  }
  if (a.sizes() != b.sizes()) {
    return ::testing::AssertionFailure() << "shape " << a.sizes() << " vs " << b.sizes();
  }
  const at::ScalarType bits = a.element_size() == 4 ? at::kInt : at::kShort;
  at::Tensor x = a.detach().contiguous().view(bits);
  at::Tensor y = b.detach().contiguous().view(bits);
  const int64_t differing = (x != y).sum().item<int64_t>();
  if (differing == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << differing << " of " << x.numel() << " elements differ";
}

TEST(QdqLean, ForwardIsBitIdenticalToTheReference) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.Name());
    GroupedWeight g = GroupWeight(RandomWeight(c.out, c.in, 7), c.scheme.group_size);
    RoundingParams p = RandomParams(g, 8);
    for (bool grad : {false, true}) {  // the plain path and the autograd node
      SCOPED_TRACE(grad ? "with grad" : "without grad");
      RoundingParams a = grad ? Trainable(p) : p;
      RoundingParams b = grad ? Trainable(p) : p;
      QdqResult ref = QuantDequantReference(g, c.scheme, a);
      QdqResult lean = QuantDequant(g, c.scheme, b);
      EXPECT_TRUE(SameBits(lean.dequant, ref.dequant));
      EXPECT_TRUE(SameBits(lean.q, ref.q));
      EXPECT_TRUE(SameBits(lean.scale, ref.scale));
      EXPECT_TRUE(SameBits(lean.zero, ref.zero));
      EXPECT_EQ(lean.dequant.requires_grad(), grad);
      // The tuner's W^: rounded to the checkpoint's weight dtype, in the compute dtype.
      const std::vector<std::pair<at::ScalarType, at::ScalarType>> dtypes = {
          {at::kFloat, at::kFloat},       {at::kBFloat16, at::kFloat}, {at::kHalf, at::kFloat},
          {at::kBFloat16, at::kBFloat16}, {at::kHalf, at::kBFloat16},  {at::kFloat, at::kBFloat16}};
      for (auto [wd, cd] : dtypes) {
        SCOPED_TRACE(::testing::Message() << "weight " << wd << ", compute " << cd);
        at::Tensor w_hat = QuantDequantWeight(g, c.scheme, b, wd, cd);
        EXPECT_TRUE(SameBits(w_hat, ref.dequant.to(wd).to(cd)));
        EXPECT_TRUE(w_hat.is_contiguous());
      }
    }
  }
}

// Gradients with tolerance 0: dL/dV is the same elementwise product, masked the same way, and
// the node forms dL/ds and dL/dzp from the same elementwise terms as the composite's autograd,
// summed per group and added in the same order (sum g * q, then - sum gy * W / s / s), so
// dL/dalpha and dL/dbeta, through the same small chain, come out bit for bit the same. This
// relies on ATen summing a group's row the same way in a chunk of rows as in the whole tensor
// (seen on LibTorch 1.13 CPU and 2.11 CPU and CUDA). A mathematically equal but reassociated
// form, e.g. sum g * (q - mask * W / s), differs by fp32 ulps that the fp16 cast of the scale
// (its backward rounds dL/ds to fp16) can turn into 2^-11 relative, enough to flip the odd
// SignSGD step of alpha or beta and move the tuned result.
void ExpectSameGradients(const GroupedWeight& g, const QuantScheme& scheme, const RoundingParams& p,
                         at::ScalarType wd, at::ScalarType cd, bool minmax) {
  RoundingParams a = Trainable(p, minmax);
  RoundingParams b = Trainable(p, minmax);
  at::manual_seed(11);
  at::Tensor upstream = at::randn({g.out, g.in});
  (QuantDequantReference(g, scheme, a).dequant.to(wd).to(cd).to(at::kFloat) * upstream)
      .sum()
      .backward();
  (QuantDequantWeight(g, scheme, b, wd, cd).to(at::kFloat) * upstream).sum().backward();
  ASSERT_TRUE(b.v.grad().defined());
  EXPECT_TRUE(at::equal(b.v.grad(), a.v.grad()));
  if (!minmax) {
    EXPECT_FALSE(b.alpha.grad().defined());
    EXPECT_FALSE(b.beta.grad().defined());
    return;
  }
  ASSERT_TRUE(b.alpha.grad().defined());
  ASSERT_TRUE(b.beta.grad().defined());
  EXPECT_TRUE(at::equal(b.alpha.grad(), a.alpha.grad()))
      << "max difference " << (b.alpha.grad() - a.alpha.grad()).abs().max().item<double>();
  EXPECT_TRUE(at::equal(b.beta.grad(), a.beta.grad()))
      << "max difference " << (b.beta.grad() - a.beta.grad()).abs().max().item<double>();
}

TEST(QdqLean, GradientsMatchTheReference) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.Name());
    GroupedWeight g = GroupWeight(RandomWeight(c.out, c.in, 21), c.scheme.group_size);
    RoundingParams p = RandomParams(g, 22);
    ExpectSameGradients(g, c.scheme, p, at::kFloat, at::kFloat, true);
    // Through the casts to the weight dtype and back: the gradient is cast the same way.
    ExpectSameGradients(g, c.scheme, p, at::kBFloat16, at::kFloat, true);
    ExpectSameGradients(g, c.scheme, p, at::kHalf, at::kBFloat16, true);
    // Min-max tuning off: only V trains.
    ExpectSameGradients(g, c.scheme, p, at::kFloat, at::kFloat, false);
  }
}

TEST(QdqLean, LayersLargerThanOneChunk) {
  // 4.5M elements: several chunks of rows (2^20 elements each on CPU), the last one partial.
  for (int group : {128, -1}) {
    for (bool sym : {true, false}) {
      const QuantScheme scheme{4, group, sym};
      SCOPED_TRACE(::testing::Message() << "group " << group << (sym ? " sym" : " asym"));
      GroupedWeight g = GroupWeight(RandomWeight(1100, 4096, 31), group);
      RoundingParams p = RandomParams(g, 32);
      EXPECT_TRUE(
          SameBits(QuantDequantWeight(g, scheme, p, at::kBFloat16, at::kFloat),
                   QuantDequantReference(g, scheme, p).dequant.to(at::kBFloat16).to(at::kFloat)));
      ExpectSameGradients(g, scheme, p, at::kBFloat16, at::kFloat, true);
    }
  }
}

TEST(QdqLean, GradientAccumulatesAcrossCalls) {
  // Two forward/backward passes (gradient accumulation micro-batches) sum into V.grad.
  const QuantScheme scheme{2, 32, false};
  GroupedWeight g = GroupWeight(RandomWeight(8, 96, 41), 32);
  RoundingParams p = RandomParams(g, 42);
  RoundingParams a = Trainable(p), b = Trainable(p);
  for (int k = 0; k < 2; ++k) {
    QuantDequantReference(g, scheme, a).dequant.pow(2).sum().backward();
    QuantDequantWeight(g, scheme, b).pow(2).sum().backward();
  }
  EXPECT_TRUE(at::equal(b.v.grad(), a.v.grad()));
  EXPECT_TRUE(at::equal(b.alpha.grad(), a.alpha.grad()));
  EXPECT_TRUE(at::equal(b.beta.grad(), a.beta.grad()));
}

}  // namespace
}  // namespace signround
