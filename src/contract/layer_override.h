// Per-layer overrides of the job's scheme: the one type and the one JSON shape
// they travel in (settings file, job store, report.json, settings of the work
// directory), plus the reader of a person's --layer-config file.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace signround::contract {

// Layers whose name matches `pattern` (an ECMAScript regex searched in the full
// name, e.g. "mlp\\.down_proj") get the fields that are set; bits kKeepBits (16)
// keeps the layer in 16 bits. Overrides apply in order, later ones winning.
struct LayerOverride {
  std::string pattern;
  std::optional<int> bits;
  std::optional<int> group_size;
  std::optional<bool> sym;
};

// Bits an override may set: a scheme's bits or kKeepBits.
bool IsOverrideBits(int bits);

// The one JSON shape: [{"pattern": "<regex>", "bits": b, "group_size": g, "sym": s}, ...],
// each entry with the fields that are set.
nlohmann::json LayerOverridesToJson(const std::vector<LayerOverride>& overrides);
// Reads that shape back. INVALID_ARGUMENT "<where>[i]...: ..." for a bad entry
// (unknown key, wrong type, bits or group size). Patterns are not compiled here:
// the job store reads its own rows, checked when submitted; a file from elsewhere
// also goes through CheckLayerOverridePatterns.
absl::StatusOr<std::vector<LayerOverride>> LayerOverridesFromJson(const nlohmann::json& list,
                                                                  absl::string_view where);
// INVALID_ARGUMENT "<where>[i]: not a valid regex: ..." for the first pattern that
// does not compile (ECMAScript).
absl::Status CheckLayerOverridePatterns(const std::vector<LayerOverride>& overrides,
                                        absl::string_view where);

// A person's layer config file: a JSON object {"<regex>": {"bits": 2|3|4|8|16,
// "group_size": g, "sym": bool}, ...} in file order. INVALID_ARGUMENT names
// `label`, the pattern and the bad field.
absl::StatusOr<std::vector<LayerOverride>> ParseLayerConfig(absl::string_view json_text,
                                                            absl::string_view label);
absl::StatusOr<std::vector<LayerOverride>> LoadLayerConfig(const std::string& path);

}  // namespace signround::contract
