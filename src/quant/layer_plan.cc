#include "src/quant/layer_plan.h"

#include "absl/strings/str_cat.h"

namespace signround {

absl::Status ValidateQuantScheme(const QuantScheme& s) {
  if (s.bits != 2 && s.bits != 3 && s.bits != 4 && s.bits != 8) {
    return absl::InvalidArgumentError(absl::StrCat("bits must be 2, 3, 4 or 8, got ", s.bits));
  }
  if (s.group_size != -1 && s.group_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("group_size must be positive or -1 (per output channel), got ", s.group_size));
  }
  return absl::OkStatus();
}

std::vector<LayerPlan> PlanLayers(const std::vector<LinearLayer>& layers,
                                  const QuantScheme& scheme) {
  std::vector<LayerPlan> out;
  out.reserve(layers.size());
  for (const LinearLayer& l : layers) {
    LayerPlan plan{l, true, scheme, ""};
    if (l.in % kQuantDimMultiple != 0) {
      plan.quantized = false;
      plan.reason = absl::StrCat("in ", l.in, " is not a multiple of ", kQuantDimMultiple);
    } else if (l.out % kQuantDimMultiple != 0) {
      plan.quantized = false;
      plan.reason = absl::StrCat("out ", l.out, " is not a multiple of ", kQuantDimMultiple);
    }
    out.push_back(std::move(plan));
  }
  return out;
}

}  // namespace signround
