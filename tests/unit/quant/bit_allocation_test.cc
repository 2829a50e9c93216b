// The mixed-bits allocation: on random instances small enough to enumerate every choice,
// AllocateBits meets the target and finds the least total cost (the enumeration is the
// reference); ties go to fewer bits; a target below the cheapest choice is refused; the
// coarsened budget of a huge instance still meets the target.
#include "src/quant/bit_allocation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace signround {
namespace {

struct Best {
  double cost = std::numeric_limits<double>::infinity();
  double bits = 0;
};

// Every choice, by enumeration.
Best Enumerate(const std::vector<AllocationGroup>& groups, const std::vector<int>& bits,
               double target, int64_t fixed, double fixed_bits) {
  int64_t total = fixed;
  for (const AllocationGroup& g : groups) total += g.weights;
  Best best;
  std::vector<int> choice(groups.size(), 0);
  while (true) {
    double used = fixed_bits, cost = 0;
    for (size_t g = 0; g < groups.size(); ++g) {
      used += static_cast<double>(groups[g].weights) * bits[choice[g]];
      cost += groups[g].cost[choice[g]];
    }
    if (used <= target * static_cast<double>(total) + 1e-9 && cost < best.cost) {
      best = {cost, used / static_cast<double>(total)};
    }
    size_t g = 0;
    while (g < groups.size() && ++choice[g] == static_cast<int>(bits.size())) choice[g++] = 0;
    if (g == groups.size()) return best;
  }
}

TEST(AllocateBits, MatchesEnumerationOnRandomInstances) {
  std::mt19937_64 rng(7);
  const std::vector<int> bits = {2, 3, 4, 8, 16};
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<AllocationGroup> groups(1 + rng() % 6);
    for (AllocationGroup& g : groups) {
      g.weights = 32 * static_cast<int64_t>(1 + rng() % 40);
      double c = 1 + static_cast<double>(rng() % 1000);
      for (size_t k = 0; k < bits.size(); ++k) {
        g.cost.push_back(c);
        c *= std::uniform_real_distribution<double>(0.0, 0.9)(rng);  // more bits, less loss
      }
      g.cost.back() = 0;  // 16-bit
    }
    const int64_t fixed = (trial % 3 == 0) ? 64 : 0;
    const double fixed_bits = 16.0 * static_cast<double>(fixed);
    const double target = 2.0 + 0.25 * static_cast<double>(rng() % 40);
    const Best want = Enumerate(groups, bits, target, fixed, fixed_bits);
    absl::StatusOr<BitAllocation> got = AllocateBits(groups, bits, target, fixed, fixed_bits);
    SCOPED_TRACE(testing::Message() << "trial " << trial << " target " << target);
    if (std::isinf(want.cost)) {
      EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_LE(got->average_bits, target + 1e-12);
    // Sums of the same doubles in another order: 1e-9 relative.
    EXPECT_NEAR(got->total_cost, want.cost, 1e-9 * std::max(1.0, want.cost));
  }
}

TEST(AllocateBits, TiesGoToFewerBitsAndSensitiveGroupsGetMore) {
  // Two equal groups; the second loses far more at 2 bits. Target 3: one at 2, one at 4.
  std::vector<AllocationGroup> groups = {{{"a"}, 1024, {1.0, 0.5, 0.1}},
                                         {{"b"}, 1024, {100.0, 1.0, 0.2}}};
  absl::StatusOr<BitAllocation> r = AllocateBits(groups, {2, 3, 4}, 3.0);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->choice, (std::vector<int>{0, 2}));
  EXPECT_DOUBLE_EQ(r->average_bits, 3.0);
  // All costs equal: the fewest bits.
  groups = {{{"a"}, 64, {0, 0, 0}}};
  r = AllocateBits(groups, {4, 2, 3}, 4.0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->choice, std::vector<int>{1});
}

TEST(AllocateBits, RefusesAnUnreachableTargetAndBadGroups) {
  std::vector<AllocationGroup> groups = {{{"a"}, 100, {1, 0}}};
  absl::StatusOr<BitAllocation> r = AllocateBits(groups, {2, 4}, 1.5);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("cannot be met"), std::string::npos) << r.status();
  // 100 fixed 16-bit weights: even all at 2 bits averages 9.
  EXPECT_FALSE(AllocateBits(groups, {2, 4}, 8.0, 100, 1600).ok());
  EXPECT_TRUE(AllocateBits(groups, {2, 4}, 9.0, 100, 1600).ok());
  groups[0].cost = {1, std::nan("")};
  EXPECT_FALSE(AllocateBits(groups, {2, 4}, 3.0).ok());
  groups[0].cost = {1};
  EXPECT_FALSE(AllocateBits(groups, {2, 4}, 3.0).ok());
}

// Weights with no common factor make the budget far larger than kMaxBudgetStates units: the
// coarsened allocation still meets the target and lands close to it.
TEST(AllocateBits, CoarsenedBudgetStillMeetsTheTarget) {
  std::vector<AllocationGroup> groups;
  for (int g = 0; g < 40; ++g) {
    groups.push_back({{"g"}, 1'000'003 + 7919 * g, {10.0 + g, 4.0, 1.0, 0.0}});
  }
  absl::StatusOr<BitAllocation> r = AllocateBits(groups, {2, 3, 4, 8}, 3.5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LE(r->average_bits, 3.5);
  EXPECT_GT(r->average_bits, 3.3);
}

}  // namespace
}  // namespace signround
