#include "src/pipeline/auto_scheme.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <regex>
#include <string>

#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"
#include "src/contract/auto_scheme.h"
#include "src/export/fused_groups.h"
#include "src/model/block_ops.h"
#include "src/model/model_ends.h"
#include "src/quant/bit_allocation.h"
#include "src/quant/sensitivity.h"
#include "src/quant/signround_tuner.h"

namespace signround {
namespace {

using contract::SchemeCandidate;
using nlohmann::json;

// "model.layers.3.mlp.up_proj" as a regex matching that name alone.
std::string ExactPattern(const std::string& name) {
  std::string out = "^";
  for (char ch : name) {
    if (std::string("\\^$.|?*+()[]{}").find(ch) != std::string::npos) out += '\\';
    out += ch;
  }
  return out + "$";
}

bool MatchesAny(const std::string& name, const std::vector<std::regex>& patterns) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::regex& re) { return std::regex_search(name, re); });
}

// The groups of the allocated layers (indices into `plans`), in plan order of their first
// member: a fused kind's members of one decoder layer, an MoE layer's experts, else one layer.
std::vector<std::vector<size_t>> GroupLayers(const std::vector<LayerPlan>& plans,
                                             const std::vector<bool>& allocated) {
  std::map<std::string, size_t> group_of;
  std::vector<std::vector<size_t>> groups;
  for (size_t i = 0; i < plans.size(); ++i) {
    if (!allocated[i]) continue;
    const LinearLayer& l = plans[i].layer;
    const std::string block = absl::StrCat("model.layers.", l.layer, ".");
    std::string key = l.name;
    if (l.expert >= 0) {
      key = absl::StrCat(block, "experts");
    } else {
      for (const FusedGroupKind& kind : FusedGroupKinds()) {
        for (const std::string& member : kind.members) {
          if (l.name == absl::StrCat(block, kind.parent, ".", member)) {
            key = absl::StrCat(block, kind.parent, ".", kind.fused);
          }
        }
      }
    }
    auto [it, inserted] = group_of.emplace(key, groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  return groups;
}

}  // namespace

absl::StatusOr<SchemeAllocation> AllocateSchemes(const Checkpoint& ckpt, const BlockImpl& impl,
                                                 at::Device device, at::ScalarType dtype,
                                                 const contract::QuantizeSettings& settings,
                                                 const std::vector<LayerPlan>& plans,
                                                 const at::Tensor& ids) {
  const auto start = std::chrono::steady_clock::now();
  const ModelConfig& c = ckpt.config();
  std::vector<SchemeCandidate> candidates;
  std::vector<int> bits;
  std::vector<QuantScheme> schemes;  // the quantized candidates'
  std::vector<int> scheme_of;        // candidate -> index in schemes, or -1 (16-bit)
  for (const std::string& name : settings.scheme_candidates) {
    SR_ASSIGN_OR_RETURN(SchemeCandidate cand, contract::ParseSchemeCandidate(name));
    candidates.push_back(cand);
    bits.push_back(cand.bits);
    scheme_of.push_back(cand.keep() ? -1 : static_cast<int>(schemes.size()));
    if (!cand.keep()) {
      QuantScheme s = settings.scheme();
      s.bits = cand.bits;
      s.group_size = cand.group_size;
      schemes.push_back(s);
    }
  }
  // The allocated layers: quantized by the plan and matched by no user override. Layers the
  // plan keeps in 16 bits (for their shape, or by an override) are outside the average.
  std::vector<std::regex> user;
  for (const LayerOverride& o : settings.layer_overrides) {
    user.emplace_back(o.pattern, std::regex::ECMAScript);
  }
  std::vector<bool> allocated(plans.size());
  int64_t fixed_weights = 0;
  double fixed_bits = 0;
  for (size_t i = 0; i < plans.size(); ++i) {
    const LayerPlan& p = plans[i];
    if (!p.quantized) continue;
    allocated[i] = !MatchesAny(p.layer.name, user);
    if (!allocated[i]) {
      const int64_t n = p.layer.in * p.layer.out;
      fixed_weights += n;
      fixed_bits += static_cast<double>(n) * p.scheme.bits;
    }
  }
  const std::vector<std::vector<size_t>> members = GroupLayers(plans, allocated);
  std::vector<AllocationGroup> groups;
  for (const std::vector<size_t>& g : members) {
    AllocationGroup group;
    group.cost.assign(candidates.size(), 0);
    for (size_t i : g) {
      group.layers.push_back(plans[i].layer.name);
      group.weights += plans[i].layer.in * plans[i].layer.out;
    }
    groups.push_back(std::move(group));
  }
  if (groups.empty()) {
    return absl::InvalidArgumentError(
        "target_bits: no layer is left to allocate (every quantized layer has an override)");
  }
  // A target the cheapest candidates cannot meet fails before the measurement.
  if (absl::Status st =
          AllocateBits(groups, bits, settings.target_bits, fixed_weights, fixed_bits).status();
      !st.ok()) {
    return absl::InvalidArgumentError(st.message());
  }
  // Sensitivity of every allocated layer under every quantized candidate, block by block.
  std::vector<std::vector<double>> score(plans.size(), std::vector<double>(candidates.size(), 0));
  try {
    SR_ASSIGN_OR_RETURN(at::Tensor embed, LoadEmbedding(ckpt, dtype, device));
    at::Tensor x = Embed(c, embed, ids.to(device));
    embed = at::Tensor();
    const RopeTables rope = MakeRopeTables(c, ids.size(1), device);
    for (int64_t b = 0; b < c.num_hidden_layers; ++b) {
      const std::string prefix = absl::StrCat("model.layers.", b, ".");
      std::vector<size_t> in_block;  // plan indices of the block's allocated layers
      std::vector<std::string> names;
      for (size_t i = 0; i < plans.size(); ++i) {
        if (allocated[i] && plans[i].layer.layer == b) {
          in_block.push_back(i);
          names.push_back(plans[i].layer.name.substr(prefix.size()));
        }
      }
      SR_ASSIGN_OR_RETURN(BlockWeights original, impl.load(ckpt, b, at::kFloat, device));
      const BlockWeights base = WithQuantizedWeights(original, {}, dtype);
      const at::Tensor out = ForwardAll(c, impl.forward, base, rope, x, settings.batch_size);
      if (!names.empty()) {
        SensitivityOptions so;
        so.batch_size = settings.batch_size;
        so.compute_dtype = dtype;
        SR_ASSIGN_OR_RETURN(so.weight_dtype, WeightDType(ckpt, prefix + names[0]));
        SR_ASSIGN_OR_RETURN(
            auto s, BlockSensitivity(c, impl.forward, original, rope, names, schemes, x, out, so));
        for (size_t m = 0; m < in_block.size(); ++m) {
          for (size_t k = 0; k < candidates.size(); ++k) {
            score[in_block[m]][k] = scheme_of[k] < 0 ? 0.0 : s[m][scheme_of[k]];
          }
        }
      }
      x = out;
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("auto_scheme failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("auto_scheme failed: ", e.what()));
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t i : members[g]) {
      for (size_t k = 0; k < candidates.size(); ++k) groups[g].cost[k] += score[i][k];
    }
  }
  absl::StatusOr<BitAllocation> allocation =
      AllocateBits(groups, bits, settings.target_bits, fixed_weights, fixed_bits);
  if (!allocation.ok()) {
    return absl::InvalidArgumentError(allocation.status().message());
  }
  SchemeAllocation out;
  json report_groups = json::array();
  for (size_t g = 0; g < groups.size(); ++g) {
    const SchemeCandidate& chosen = candidates[allocation->choice[g]];
    json sensitivity = json::object();
    for (size_t k = 0; k < candidates.size(); ++k) {
      sensitivity[contract::SchemeCandidateName(candidates[k])] = groups[g].cost[k];
    }
    report_groups.push_back({{"layers", groups[g].layers},
                             {"weights", groups[g].weights},
                             {"scheme", contract::SchemeCandidateName(chosen)},
                             {"sensitivity", sensitivity}});
    for (const std::string& name : groups[g].layers) {
      LayerOverride o;
      o.pattern = ExactPattern(name);
      o.bits = chosen.bits;
      if (!chosen.keep()) o.group_size = chosen.group_size;
      out.overrides.push_back(std::move(o));
    }
  }
  out.report = {
      {"target_bits", settings.target_bits},
      {"average_bits", allocation->average_bits},
      {"candidates", settings.scheme_candidates},
      {"fixed_weights", fixed_weights},
      {"groups", report_groups},
      {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}};
  return out;
}

}  // namespace signround
