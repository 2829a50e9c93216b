// The memory-lean quantize-dequantize (QuantDequant, QuantDequantWeight: one custom autograd
// node per layer) against the plain composite-op formulation (QuantDequantReference):
// forward values and gradients in V, alpha and beta, bit for bit.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "src/quant/qdq.h"

namespace signround {
namespace {

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
