// Which decoder Linears get quantized, and how (ALGORITHM.md section 2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "src/model/layout.h"

namespace signround {

// Integer weight quantization settings of one layer.
struct QuantScheme {
  int bits = 4;          // 2, 3, 4 or 8
  int group_size = 128;  // > 0, or -1 for one group per output row
  bool sym = true;
};

// INVALID_ARGUMENT naming the bad field when `scheme` is not supported.
absl::Status ValidateQuantScheme(const QuantScheme& scheme);

// Layers whose in or out is not a multiple of this stay 16-bit.
inline constexpr int64_t kQuantDimMultiple = 32;

struct LayerPlan {
  LinearLayer layer;
  bool quantized = false;
  QuantScheme scheme;  // meaningful when quantized
  std::string reason;  // why it stays 16-bit, when it does
};

// The plan for every decoder Linear under one scheme.
std::vector<LayerPlan> PlanLayers(const std::vector<LinearLayer>& layers,
                                  const QuantScheme& scheme);

}  // namespace signround
