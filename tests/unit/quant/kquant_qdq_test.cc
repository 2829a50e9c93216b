// The k-quant quantize-dequantize (qdq.cc KQuantDequant): the integers it stores give
// back W^ bit for bit by llama.cpp's dequantization formulas (ggml-quants.c
// dequantize_row_q*_K, restated here in its operation order), every integer is in
// the range its block field holds, more bits give less error, and the gradient
// reaches V, alpha and beta.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "src/contract/scheme.h"
#include "src/quant/qdq.h"
#include "src/quant/scale_search.h"
#include "src/tensor/half.h"

namespace signround {
namespace {

using contract::DataType;
using contract::KQuantOf;
using contract::KQuantScheme;

std::vector<float> Floats(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kFloat).contiguous().reshape({-1});
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::vector<int> Bytes(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kInt).contiguous().reshape({-1});
  return std::vector<int>(c.data_ptr<int>(), c.data_ptr<int>() + c.numel());
}

std::vector<float> Halfs(const at::Tensor& t) {
  EXPECT_EQ(t.scalar_type(), at::kHalf);
  return Floats(t.to(at::kFloat));
}

// Rows with varied magnitudes, some all-positive and some all-negative (the minimum is
// then clamped to 0 / the maximum to 0), one all-zero super-block.
at::Tensor TestWeight(int64_t out, int64_t in, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor w = at::randn({out, in}) * at::rand({out, 1}).add_(0.05);
  w[1] = w[1].abs();
  w[2] = -w[2].abs();
  w[3].narrow(0, 0, 256).zero_();
  w[4].narrow(0, 7, 3).mul_(8);  // outliers
  return w;
}

QdqResult Rtn(const at::Tensor& w, const QuantScheme& s, GroupedWeight* g) {
  *g = GroupWeight(w, s.group_size);
  return QuantDequant(*g, s, InitialRoundingParams(*g));
}

class KQuantQdqTest : public ::testing::TestWithParam<DataType> {};

TEST_P(KQuantQdqTest, StoredIntegersGiveBackTheDequantBitForBit) {
  const QuantScheme s = KQuantScheme(GetParam());
  const contract::KQuantInfo& k = KQuantOf(GetParam());
  const int64_t out = 6, in = 768, groups = in / k.group_size, supers = in / 256;
  GroupedWeight g;
  QdqResult r = Rtn(TestWeight(out, in, 7), s, &g);
  IntegerWeight iw = ToIntegerWeight(g, s, r);
  ASSERT_EQ(iw.codes.sizes(), (std::vector<int64_t>{out, in}));
  ASSERT_EQ(iw.sub_scales.sizes(), (std::vector<int64_t>{out, groups}));
  ASSERT_EQ(iw.d.sizes(), (std::vector<int64_t>{out, supers}));
  const std::vector<int> codes = Bytes(iw.codes), sc = Bytes(iw.sub_scales);
  const std::vector<float> d = Halfs(iw.d), w_hat = Floats(r.dequant);
  std::vector<int> mins;
  std::vector<float> dmin;
  if (!k.sym) {
    mins = Bytes(iw.sub_mins);
    dmin = Halfs(iw.dmin);
  }
  const int max_code = (1 << k.bits) - 1;
  const int max_scale = (1 << k.scale_bits) - 1;
  for (int64_t n = 0; n < out; ++n) {
    for (int64_t j = 0; j < in; ++j) {
      const int64_t gi = n * groups + j / k.group_size, si = n * supers + j / 256;
      const int q = codes[n * in + j];
      ASSERT_LE(q, max_code);
      ASSERT_LE(sc[gi], max_scale);
      float want;
      if (!k.sym) {
        ASSERT_LE(mins[gi], max_scale);
        const float d1 = d[si] * static_cast<float>(sc[gi]);
        const float m1 = dmin[si] * static_cast<float>(mins[gi]);
        want = d1 * static_cast<float>(q) - m1;
      } else if (k.scale_bits == 6) {  // Q3_K
        const float dl = d[si] * static_cast<float>(sc[gi] - 32);
        want = dl * static_cast<float>(q - 4);
      } else {  // Q6_K
        want = d[si] * static_cast<float>(static_cast<int8_t>(sc[gi])) * static_cast<float>(q - 32);
      }
      uint32_t a, b;
      std::memcpy(&a, &want, 4);
      std::memcpy(&b, &w_hat[n * in + j], 4);
      ASSERT_EQ(a, b) << k.name << " row " << n << " col " << j << ": " << want << " vs "
                      << w_hat[n * in + j];
    }
  }
  // The all-zero super-block (row 3, first 256) dequantizes to zeros, without NaN.
  for (int64_t j = 0; j < 256; ++j) EXPECT_EQ(w_hat[3 * in + j], 0.0f) << j;
  EXPECT_FALSE(at::isnan(r.dequant).any().item<bool>());
}

TEST_P(KQuantQdqTest, TheGradientReachesEveryTuningParameter) {
  const QuantScheme s = KQuantScheme(GetParam());
  GroupedWeight g = GroupWeight(TestWeight(6, 512, 11), s.group_size);
  RoundingParams p = InitialRoundingParams(g);
  p.v.add_(0.1).requires_grad_(true);
  p.alpha.mul_(0.9).requires_grad_(true);
  p.beta.mul_(0.9).requires_grad_(true);
  at::Tensor target = at::randn({6, 512});
  at::Tensor w_hat = QuantDequantWeight(g, s, p);
  (w_hat - target).pow(2).sum().backward();
  for (const at::Tensor* t : {&p.v, &p.alpha, &p.beta}) {
    ASSERT_TRUE(t->grad().defined());
    EXPECT_GT(t->grad().abs().sum().item<double>(), 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Types, KQuantQdqTest,
                         ::testing::Values(DataType::kQ2_K, DataType::kQ3_K, DataType::kQ4_K,
                                           DataType::kQ5_K, DataType::kQ6_K),
                         [](const auto& info) { return std::string(KQuantOf(info.param).name); });

// The scale search (scale_search.h) lowers the importance-weighted squared error of the
// stored weights below plain rounding's, for every type (measured after the sub-block
// scales are quantized, on weights with outliers and a skewed importance).
TEST_P(KQuantQdqTest, TheImportanceSearchLowersTheWeightedError) {
  const QuantScheme s = KQuantScheme(GetParam());
  at::manual_seed(5);
  at::Tensor w = TestWeight(32, 1024, 5);
  at::Tensor importance = at::rand({1024}).pow(4).add_(0.01);
  auto weighted_error = [&](const GroupedWeight& g) {
    at::Tensor err = (QuantDequant(g, s, InitialRoundingParams(g)).dequant - w).pow(2);
    return (err * importance).sum().item<double>();
  };
  GroupedWeight g = GroupWeight(w, s.group_size);
  const double plain = weighted_error(g);
  KQuantSearchRange(g, s, importance);
  const double searched = weighted_error(g);
  EXPECT_LT(searched, plain) << KQuantOf(GetParam()).name;
  EXPECT_FALSE(at::isnan(QuantDequant(g, s, InitialRoundingParams(g)).dequant).any().item<bool>());
}

// Without autograd QuantDequant works a chunk of rows at a time (2^20 elements): the same
// result as the whole layer at once (what the autograd path computes).
TEST_P(KQuantQdqTest, RowChunksGiveTheWholeLayersResult) {
  const QuantScheme s = KQuantScheme(GetParam());
  GroupedWeight g = GroupWeight(TestWeight(4500, 512, 9), s.group_size);  // 2.3M elements
  RoundingParams p = InitialRoundingParams(g);
  const QdqResult chunked = QuantDequant(g, s, p);
  p.v.requires_grad_(true);
  const QdqResult whole = QuantDequant(g, s, p);
  EXPECT_TRUE(at::equal(chunked.dequant, whole.dequant.detach()));
  EXPECT_TRUE(at::equal(chunked.q, whole.q));
  EXPECT_TRUE(at::equal(chunked.sub_scale, whole.sub_scale));
  EXPECT_TRUE(at::equal(chunked.d, whole.d));
  if (!s.sym) EXPECT_TRUE(at::equal(chunked.dmin, whole.dmin));
}

TEST(KQuantQdq, MoreBitsGiveLessError) {
  at::Tensor w = at::randn({64, 1024});
  double previous = 1e30;
  for (DataType t :
       {DataType::kQ2_K, DataType::kQ3_K, DataType::kQ4_K, DataType::kQ5_K, DataType::kQ6_K}) {
    GroupedWeight g;
    const double mse = (Rtn(w, KQuantScheme(t), &g).dequant - w).pow(2).mean().item<double>();
    EXPECT_LT(mse, previous) << KQuantOf(t).name;
    previous = mse;
  }
  EXPECT_LT(previous, 1e-3);  // Q6_K on unit-variance weights
}

}  // namespace
}  // namespace signround
