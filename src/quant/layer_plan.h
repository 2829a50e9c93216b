// Which decoder Linears get quantized, and how (ALGORITHM.md section 2). The
// scheme and override types and their rules are the contract's
// (src/contract/scheme.h, layer_override.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/contract/layer_override.h"
#include "src/contract/scheme.h"
#include "src/model/layout.h"

namespace signround {

using contract::LayerOverride;
using contract::LoadLayerConfig;
using contract::ParseLayerConfig;
using contract::QuantScheme;
using contract::SameScheme;
using contract::ValidateQuantScheme;

// Layers whose in or out is not a multiple of this stay 16-bit.
inline constexpr int64_t kQuantDimMultiple = 32;

struct LayerPlan {
  LinearLayer layer;
  bool quantized = false;
  QuantScheme scheme;  // meaningful when quantized
  std::string reason;  // why it stays 16-bit, when it does
};

// The plan for every decoder Linear under one scheme and the overrides (in
// order, later ones winning; their patterns compiled once here).
std::vector<LayerPlan> PlanLayers(const std::vector<LinearLayer>& layers, const QuantScheme& scheme,
                                  const std::vector<LayerOverride>& overrides = {});

}  // namespace signround
