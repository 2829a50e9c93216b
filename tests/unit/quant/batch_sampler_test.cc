// The seeded batch sampler SignRound tuning draws from (src/quant/batch_sampler.h).
#include "src/quant/batch_sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

namespace signround {
namespace {

TEST(BatchSamplerTest, EachEpochIsAPermutation) {
  const int64_t n = 12, batch = 4;
  BatchSampler s(n, batch, 5);
  std::vector<int64_t> previous_epoch;
  for (int epoch = 0; epoch < 4; ++epoch) {
    std::vector<int64_t> seen;
    for (int draw = 0; draw < n / batch; ++draw) {
      std::vector<int64_t> b = s.Next();
      ASSERT_EQ(b.size(), static_cast<size_t>(batch));
      seen.insert(seen.end(), b.begin(), b.end());
    }
    std::vector<int64_t> sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(sorted[i], i) << "epoch " << epoch;
    if (epoch > 0) {
      EXPECT_NE(seen, previous_epoch) << "reshuffled each epoch";
    }
    previous_epoch = seen;
  }
}

TEST(BatchSamplerTest, BatchesAreDistinctWhenBatchDoesNotDivideN) {
  BatchSampler s(10, 4, 9);
  for (int draw = 0; draw < 20; ++draw) {
    std::vector<int64_t> b = s.Next();
    ASSERT_EQ(b.size(), 4u);
    EXPECT_EQ(std::set<int64_t>(b.begin(), b.end()).size(), 4u);
    for (int64_t i : b) {
      EXPECT_GE(i, 0);
      EXPECT_LT(i, 10);
    }
  }
}

TEST(BatchSamplerTest, DeterministicPerSeed) {
  BatchSampler a(32, 8, 42), b(32, 8, 42), c(32, 8, 43);
  std::vector<int64_t> sa, sb, sc;
  for (int draw = 0; draw < 10; ++draw) {
    for (int64_t i : a.Next()) sa.push_back(i);
    for (int64_t i : b.Next()) sb.push_back(i);
    for (int64_t i : c.Next()) sc.push_back(i);
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
}

TEST(BatchSamplerTest, BatchClampedToN) {
  BatchSampler s(5, 8, 1);
  for (int draw = 0; draw < 3; ++draw) {
    std::vector<int64_t> b = s.Next();
    std::sort(b.begin(), b.end());
    EXPECT_EQ(b, std::vector<int64_t>({0, 1, 2, 3, 4}));
  }
}

}  // namespace
}  // namespace signround
