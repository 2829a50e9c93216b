// The mixed-bits allocation (AutoScheme): one candidate scheme per group of layers,
// minimising the groups' summed sensitivity under an average of weight bits, exactly, by
// dynamic programming over the bit budget. No LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace signround {

// Layers that take one scheme together (q/k/v, gate/up, an MoE layer's experts).
struct AllocationGroup {
  std::vector<std::string> layers;
  int64_t weights = 0;       // the layers' weights, > 0
  std::vector<double> cost;  // per candidate: the layers' summed sensitivity, finite, >= 0
};

struct BitAllocation {
  std::vector<int> choice;  // per group: the candidate's index
  double average_bits = 0;  // over every weight, the fixed ones included
  double total_cost = 0;
};

// `bits[c]` is candidate c's weight bits (16 for a layer kept in 16 bits). Weights outside
// the groups (`fixed_weights`, holding `fixed_weight_bits` bits in all) count toward the
// average. The result has average_bits <= target_bits and the least total cost among all
// choices that do; ties go to fewer bits. Exact while the budget above every group's
// cheapest candidate, in units of the groups' greatest common weight count, is below
// kMaxBudgetStates units; beyond that the units are coarsened (each choice's extra bits
// rounded up, so the target still holds; at most one coarse unit per group is left
// unused). INVALID_ARGUMENT when even the cheapest candidates exceed the target, or for
// malformed groups.
absl::StatusOr<BitAllocation> AllocateBits(const std::vector<AllocationGroup>& groups,
                                           const std::vector<int>& bits, double target_bits,
                                           int64_t fixed_weights = 0, double fixed_weight_bits = 0);

inline constexpr int64_t kMaxBudgetStates = int64_t{1} << 16;

}  // namespace signround
