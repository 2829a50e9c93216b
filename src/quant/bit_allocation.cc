#include "src/quant/bit_allocation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace signround {

absl::StatusOr<BitAllocation> AllocateBits(const std::vector<AllocationGroup>& groups,
                                           const std::vector<int>& bits, double target_bits,
                                           int64_t fixed_weights, double fixed_weight_bits) {
  if (bits.empty()) return absl::InvalidArgumentError("no candidate schemes");
  if (fixed_weights < 0 || fixed_weight_bits < 0) {
    return absl::InvalidArgumentError("negative fixed weights");
  }
  int64_t total = fixed_weights, unit = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const AllocationGroup& group = groups[g];
    if (group.weights <= 0 || group.cost.size() != bits.size()) {
      return absl::InvalidArgumentError(absl::StrCat("allocation group ", g, " is malformed"));
    }
    for (double c : group.cost) {
      if (!std::isfinite(c) || c < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("allocation group ", g, " has a sensitivity that is not finite"));
      }
    }
    total += group.weights;
    unit = std::gcd(unit, group.weights);
  }
  // Candidates by bits, ascending: the tie-break order.
  std::vector<int> order(bits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return bits[a] < bits[b]; });
  const int cheapest = bits[order.front()];
  BitAllocation out;
  out.choice.assign(groups.size(), order.front());
  // The bits above every group's cheapest candidate the target leaves, in units of weights.
  const double budget = target_bits * static_cast<double>(total) - fixed_weight_bits;
  double floor_bits = 0;
  for (const AllocationGroup& g : groups) floor_bits += static_cast<double>(g.weights) * cheapest;
  // A relative 1e-12 absorbs the rounding of target * total.
  const double slack_bits = budget - floor_bits + 1e-12 * std::max(1.0, std::fabs(budget));
  if (slack_bits < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target_bits ", target_bits, " cannot be met: the fixed layers and the cheapest candidate ",
        "average ", (fixed_weight_bits + floor_bits) / static_cast<double>(total), " bits"));
  }
  if (!groups.empty()) {
    int64_t slack = static_cast<int64_t>(std::min(slack_bits / static_cast<double>(unit), 9e15));
    // Coarsen: extra costs rounded up to `step` units, the slack down.
    int64_t step = 1;
    if (slack + 1 > kMaxBudgetStates) step = (slack + kMaxBudgetStates) / kMaxBudgetStates;
    slack /= step;
    const size_t states = static_cast<size_t>(slack) + 1;
    std::vector<double> best(states, 0.0), next(states);
    std::vector<std::vector<uint8_t>> pick(groups.size(), std::vector<uint8_t>(states));
    for (size_t g = 0; g < groups.size(); ++g) {
      const int64_t units = groups[g].weights / unit;
      std::fill(next.begin(), next.end(), std::numeric_limits<double>::infinity());
      for (int c : order) {
        const int64_t extra = (units * (bits[c] - cheapest) + step - 1) / step;
        if (extra > slack) break;
        for (size_t s = static_cast<size_t>(extra); s < states; ++s) {
          const double v = best[s - static_cast<size_t>(extra)] + groups[g].cost[c];
          if (v < next[s]) {
            next[s] = v;
            pick[g][s] = static_cast<uint8_t>(c);
          }
        }
      }
      best.swap(next);
    }
    size_t s = states - 1;
    for (size_t g = groups.size(); g-- > 0;) {
      const int c = pick[g][s];
      out.choice[g] = c;
      s -= static_cast<size_t>((groups[g].weights / unit * (bits[c] - cheapest) + step - 1) / step);
    }
  }
  double used = fixed_weight_bits;
  for (size_t g = 0; g < groups.size(); ++g) {
    used += static_cast<double>(groups[g].weights) * bits[out.choice[g]];
    out.total_cost += groups[g].cost[out.choice[g]];
  }
  out.average_bits = total > 0 ? used / static_cast<double>(total) : 0;
  return out;
}

}  // namespace signround
