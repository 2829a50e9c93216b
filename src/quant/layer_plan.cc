#include "src/quant/layer_plan.h"

#include <optional>
#include <regex>

#include "absl/strings/str_cat.h"

namespace signround {

std::vector<LayerPlan> PlanLayers(const std::vector<LinearLayer>& layers, const QuantScheme& scheme,
                                  const std::vector<LayerOverride>& overrides) {
  // Patterns were checked where the overrides were read (layer_override.h); one
  // that does not compile matches nothing.
  std::vector<std::optional<std::regex>> regexes;
  for (const LayerOverride& o : overrides) {
    try {
      regexes.emplace_back(std::regex(o.pattern, std::regex::ECMAScript));
    } catch (const std::regex_error&) {
      regexes.emplace_back(std::nullopt);
    }
  }
  std::vector<LayerPlan> out;
  out.reserve(layers.size());
  for (const LinearLayer& l : layers) {
    LayerPlan plan{l, true, scheme, ""};
    int bits = scheme.bits;
    for (size_t i = 0; i < overrides.size(); ++i) {
      const LayerOverride& o = overrides[i];
      if (!regexes[i] || !std::regex_search(l.name, *regexes[i])) continue;
      if (o.bits) bits = *o.bits;
      if (o.group_size) plan.scheme.group_size = *o.group_size;
      if (o.sym) plan.scheme.sym = *o.sym;
    }
    if (bits == contract::kKeepBits) {
      plan.quantized = false;
      plan.reason = "kept 16-bit by the layer config";
    } else if (l.in % kQuantDimMultiple != 0) {
      plan.quantized = false;
      plan.reason = absl::StrCat("in ", l.in, " is not a multiple of ", kQuantDimMultiple);
    } else if (l.out % kQuantDimMultiple != 0) {
      plan.quantized = false;
      plan.reason = absl::StrCat("out ", l.out, " is not a multiple of ", kQuantDimMultiple);
    }
    plan.scheme.bits = bits;
    out.push_back(std::move(plan));
  }
  return out;
}

}  // namespace signround
