// Mixed bits (AutoScheme, settings target_bits and scheme_candidates): before tuning, the
// calibration tokens run once through the original model block by block; each block's
// layers are scored under every candidate (BlockSensitivity, src/quant/sensitivity.h), the
// scores are summed over the groups of layers that must share a scheme (vLLM's fused
// q/k/v and gate/up, an MoE layer's experts), and AllocateBits (src/quant/bit_allocation.h)
// picks one candidate per group: the least summed sensitivity whose average weight bits
// over the decoder Linears the job quantizes stay within target_bits. Layers a user's layer
// override matches keep their scheme and count toward the average; layers the plan keeps in
// 16 bits (for their shape, or by an override) are not part of it. The result is a layer override
// per allocated layer, which the plan, the tuning, every export and the resume key then take like
// any other.
#pragma once

#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "src/contract/settings.h"
#include "src/model/block_registry.h"
#include "src/model/checkpoint.h"
#include "src/quant/layer_plan.h"

namespace signround {

struct SchemeAllocation {
  std::vector<LayerOverride> overrides;  // one per allocated layer, exact-name patterns
  // report.json's "auto_scheme": target_bits, average_bits, candidates, seconds, and per
  // group its layers, weights, chosen scheme and sensitivity under each candidate.
  nlohmann::json report;
};

// `plans`: the job's plan under its own scheme and layer overrides; `ids` the calibration
// tokens [nsamples, seqlen]. The forward runs in `dtype` on `device`, in batches of the
// settings' batch_size.
absl::StatusOr<SchemeAllocation> AllocateSchemes(const Checkpoint& ckpt, const BlockImpl& impl,
                                                 at::Device device, at::ScalarType dtype,
                                                 const contract::QuantizeSettings& settings,
                                                 const std::vector<LayerPlan>& plans,
                                                 const at::Tensor& ids);

}  // namespace signround
