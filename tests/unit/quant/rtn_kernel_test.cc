// The model-free rounding kernel (src/quant/rtn_kernel.h) against the LibTorch quantizer it
// restates: QuantDequant with InitialRoundingParams and ToIntegerWeight (the RTN of a tuned
// run with --iters 0). Every stored byte and W^ in the weight's dtype must agree bit for
// bit, for every scheme kind, dtype and a group size that pads the last group.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "src/contract/scheme.h"
#include "src/quant/qdq.h"
#include "src/quant/rtn_kernel.h"

namespace signround {
namespace {

using contract::DataType;

std::string BytesOf(const at::Tensor& t) {
  if (!t.defined()) return "";
  at::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

// Rows of varied magnitude, some all-positive or all-negative, an all-zero stretch and
// outliers, so every branch of the scale rules is taken.
at::Tensor TestWeight(int64_t out, int64_t in, at::ScalarType dtype, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor w = at::randn({out, in}) * at::rand({out, 1}).add_(0.05);
  w[1] = w[1].abs();
  w[2] = -w[2].abs();
  w[3].narrow(0, 0, std::min<int64_t>(in, 256)).zero_();
  w[4].narrow(0, 7, 3).mul_(8);
  w[5].fill_(0.25);  // a constant row: a zero-width range
  return w.to(dtype);
}

struct Case {
  QuantScheme scheme;
  int64_t in;
};

std::vector<Case> Cases() {
  std::vector<Case> out;
  for (int bits : {2, 3, 4, 8}) {
    for (bool sym : {true, false}) {
      out.push_back({{bits, 32, sym}, 256});
      out.push_back({{bits, 128, sym}, 512});
      out.push_back({{bits, -1, sym}, 96});
      out.push_back({{bits, 48, sym}, 160});  // the last group is padded
    }
  }
  QuantScheme q41{4, 32, false};
  q41.float_min = true;
  out.push_back({q41, 256});
  QuantScheme q41p = q41;
  q41p.group_size = 48;
  out.push_back({q41p, 160});
  for (DataType t :
       {DataType::kQ2_K, DataType::kQ3_K, DataType::kQ4_K, DataType::kQ5_K, DataType::kQ6_K}) {
    out.push_back({contract::KQuantScheme(t), 512});
  }
  return out;
}

std::string Describe(const Case& c, at::ScalarType dtype) {
  return absl::StrCat(contract::DescribeSchemeLong(c.scheme), " in ", c.in, " ",
                      c.scheme.float_min ? "float_min " : "",
                      contract::DataTypeName(c.scheme.data_type), " ", c10::toString(dtype));
}

TEST(RtnKernel, MatchesTheLibTorchQuantizerBitForBit) {
  at::NoGradGuard no_grad;
  const std::vector<std::pair<at::ScalarType, DType>> dtypes = {
      {at::kBFloat16, DType::kBF16}, {at::kHalf, DType::kF16}, {at::kFloat, DType::kF32}};
  uint64_t seed = 1;
  for (const Case& c : Cases()) {
    for (const auto& [torch_dtype, dtype] : dtypes) {
      SCOPED_TRACE(Describe(c, torch_dtype));
      const int64_t out = 24;
      at::Tensor w = TestWeight(out, c.in, torch_dtype, seed++);
      GroupedWeight g = GroupWeight(w, c.scheme.group_size);
      QdqResult r = QuantDequant(g, c.scheme, InitialRoundingParams(g));
      IntegerWeight want = ToIntegerWeight(g, c.scheme, r);
      const std::string want_dequant = BytesOf(r.dequant.to(torch_dtype));

      for (int threads : {1, 3}) {
        RtnOptions o;
        o.dequant_dtype = dtype;
        o.threads = threads;
        absl::StatusOr<RtnLayer> got =
            RoundToNearest("w", BytesOf(w), dtype, out, c.in, c.scheme, o);
        ASSERT_TRUE(got.ok()) << got.status();
        EXPECT_EQ(got->codes, BytesOf(want.codes));
        EXPECT_EQ(got->scales, BytesOf(want.scales));
        EXPECT_EQ(got->zeros, BytesOf(want.zeros));
        EXPECT_EQ(got->mins, BytesOf(want.mins));
        EXPECT_EQ(got->sub_scales, BytesOf(want.sub_scales));
        EXPECT_EQ(got->sub_mins, BytesOf(want.sub_mins));
        EXPECT_EQ(got->d, BytesOf(want.d));
        EXPECT_EQ(got->dmin, BytesOf(want.dmin));
        EXPECT_EQ(got->dequant, want_dequant);
      }
      RtnOptions no_dequant;
      absl::StatusOr<RtnLayer> lean =
          RoundToNearest("w", BytesOf(w), dtype, out, c.in, c.scheme, no_dequant);
      ASSERT_TRUE(lean.ok()) << lean.status();
      EXPECT_EQ(lean->codes, BytesOf(want.codes));
      EXPECT_TRUE(lean->dequant.empty());
    }
  }
}

TEST(RtnKernel, RefusesNonFiniteWeightsNamingTheRow) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    at::Tensor w = at::randn({8, 64});
    w[5][17] = bad;
    for (at::ScalarType t : {at::kBFloat16, at::kHalf, at::kFloat}) {
      at::Tensor x = w.to(t);
      const DType dtype = t == at::kBFloat16 ? DType::kBF16
                          : t == at::kHalf   ? DType::kF16
                                             : DType::kF32;
      absl::StatusOr<RtnLayer> r =
          RoundToNearest("model.layers.0.mlp.up_proj.weight", BytesOf(x), dtype, 8, 64,
                         QuantScheme{4, 32, true}, RtnOptions{std::nullopt, 2});
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(r.status().message(),
                "model.layers.0.mlp.up_proj.weight: row 5 holds a non-finite value");
    }
  }
}

TEST(RtnKernel, RefusesAScaleThatOverflowsFp16) {
  at::Tensor w = at::randn({4, 64});
  w[2][40] = 1e9;  // / 7 levels: far beyond fp16's 65504
  absl::StatusOr<RtnLayer> r =
      RoundToNearest("w", BytesOf(w), DType::kF32, 4, 64, QuantScheme{4, 32, true}, RtnOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "w: row 2 group 1: the scale overflows fp16 (the weights are too large for this "
            "format)");
}

TEST(RtnKernel, RefusesBytesThatAreNotTheShape) {
  const std::string bytes(8 * 64 * 2 - 2, '\0');
  absl::StatusOr<RtnLayer> r =
      RoundToNearest("w", bytes, DType::kBF16, 8, 64, QuantScheme{4, 32, true}, RtnOptions{});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<RtnLayer> k =
      RoundToNearest("w", std::string(4 * 96 * 4, '\0'), DType::kF32, 4, 96,
                     contract::KQuantScheme(DataType::kQ4_K), RtnOptions{});
  EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(k.status().message().find("multiple of 256"), absl::string_view::npos);
}

}  // namespace
}  // namespace signround
