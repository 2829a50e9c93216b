// Which decoder Linears get quantized, and how (ALGORITHM.md section 2).
#pragma once

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/model/layout.h"

namespace signround {

// Integer weight quantization settings of one layer.
struct QuantScheme {
  int bits = 4;          // 2, 3, 4 or 8
  int group_size = 128;  // > 0, or -1 for one group per output row
  bool sym = true;
  // Asymmetric only: the group's zero is a real-valued minimum m (fp16) instead of an
  // integer zero point: W^ = s * q + m, q in [0, 2^bits - 1], from the group's own min and
  // max (not clamped to include 0). What GGUF's Q4_1 stores (d = s, m); the quantize
  // pipeline sets it on the layers of a GGUF job that Q4_1 holds. auto_round and
  // auto_gptq cannot store it.
  bool float_min = false;
};

// The same bits, group size, symmetry and zero representation.
bool SameScheme(const QuantScheme& a, const QuantScheme& b);

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

// A per-layer override: layers whose name matches `pattern` (a regex searched
// in the full name, e.g. "mlp\\.down_proj") get the fields that are set;
// bits 16 keeps the layer in 16-bit.
struct LayerOverride {
  std::string pattern;
  std::regex regex;
  std::optional<int> bits;
  std::optional<int> group_size;
  std::optional<bool> sym;
};

// Parses a layer config: a JSON object {"<regex>": {"bits": 2|3|4|8|16,
// "group_size": g, "sym": bool}, ...}. Overrides apply in file order, later
// ones winning. INVALID_ARGUMENT names the pattern and the bad field.
absl::StatusOr<std::vector<LayerOverride>> ParseLayerConfig(absl::string_view json_text,
                                                            absl::string_view label);
absl::StatusOr<std::vector<LayerOverride>> LoadLayerConfig(const std::string& path);

// The plan for every decoder Linear under one scheme and the overrides.
std::vector<LayerPlan> PlanLayers(const std::vector<LinearLayer>& layers, const QuantScheme& scheme,
                                  const std::vector<LayerOverride>& overrides = {});

}  // namespace signround
