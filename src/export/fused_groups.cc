#include "src/export/fused_groups.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace signround {
namespace {

bool SameLayerScheme(const LayerPlan& a, const LayerPlan& b) {
  if (a.quantized != b.quantized) return false;
  return !a.quantized || SameScheme(a.scheme, b.scheme);
}

// One fused group of one layer whose members differ.
struct SplitGroup {
  std::string module;                     // "model.layers.0.self_attn"
  const FusedGroupKind* kind;             // nullptr: the experts of an MoE layer
  std::vector<const LayerPlan*> members;  // in kind->members order (experts: plan order)
};

// The module holding expert Linear `p` ("model.layers.0.mlp.experts" for
// "model.layers.0.mlp.experts.3.gate_proj").
std::string ExpertsModule(const LayerPlan& p) {
  const std::string& name = p.layer.name;
  const size_t at = name.rfind(absl::StrCat(".", p.layer.expert, "."));
  return at == std::string::npos ? name : name.substr(0, at);
}

// The experts of each MoE layer whose Linears do not all share a scheme: vLLM's
// FusedMoE holds every expert of a layer in one module of one scheme.
void FindSplitExperts(const std::vector<LayerPlan>& plans, std::vector<SplitGroup>& out) {
  std::map<int64_t, SplitGroup> by_layer;
  for (const LayerPlan& p : plans) {
    if (p.layer.expert < 0) continue;
    SplitGroup& g = by_layer[p.layer.layer];
    if (g.members.empty()) g.module = ExpertsModule(p);
    g.kind = nullptr;
    g.members.push_back(&p);
  }
  for (auto& [layer, g] : by_layer) {
    bool same = true;
    for (const LayerPlan* m : g.members) same &= SameLayerScheme(*m, *g.members.front());
    if (!same) out.push_back(std::move(g));
  }
}

std::vector<SplitGroup> FindSplitGroups(const std::vector<LayerPlan>& plans) {
  std::map<std::string, const LayerPlan*, std::less<>> by_name;
  for (const LayerPlan& p : plans) by_name.emplace(p.layer.name, &p);
  std::vector<SplitGroup> out;
  std::set<std::pair<std::string, const FusedGroupKind*>> seen;
  for (const LayerPlan& p : plans) {
    for (const FusedGroupKind& kind : FusedGroupKinds()) {
      for (const std::string& member : kind.members) {
        const std::string suffix = absl::StrCat(".", kind.parent, ".", member);
        if (!absl::EndsWith(p.layer.name, suffix)) continue;
        SplitGroup g;
        g.module = absl::StrCat(p.layer.name.substr(0, p.layer.name.size() - suffix.size()), ".",
                                kind.parent);
        g.kind = &kind;
        if (!seen.emplace(g.module, &kind).second) continue;
        for (const std::string& m : kind.members) {
          auto it = by_name.find(absl::StrCat(g.module, ".", m));
          if (it == by_name.end()) break;
          g.members.push_back(it->second);
        }
        if (g.members.size() != kind.members.size()) continue;  // not every member is there
        bool same = true;
        for (const LayerPlan* m : g.members) same &= SameLayerScheme(*m, *g.members.front());
        if (!same) out.push_back(std::move(g));
      }
    }
  }
  FindSplitExperts(plans, out);
  return out;
}

// "model.layers.0.self_attn.{q_proj,k_proj,v_proj}", "model.layers.0.mlp.experts.*"
std::string GroupName(const SplitGroup& g) {
  if (g.kind == nullptr) return absl::StrCat(g.module, ".*");
  return absl::StrCat(g.module, ".{", absl::StrJoin(g.kind->members, ","), "}");
}

// vLLM's module: "qkv_proj", "MoE" (its FusedMoE).
std::string FusedName(const SplitGroup& g) { return g.kind == nullptr ? "MoE" : g.kind->fused; }

// "q_proj 4-bit g128 sym, k_proj 8-bit g128 sym, v_proj 4-bit g128 sym"; for
// experts, the first Linear of each distinct scheme ("0.gate_proj 4-bit g32
// sym, 3.down_proj 8-bit g32 sym").
std::string MemberSchemes(const SplitGroup& g) {
  std::vector<std::string> parts, seen;
  for (size_t i = 0; i < g.members.size(); ++i) {
    const std::string scheme = DescribeLayerScheme(*g.members[i]);
    if (g.kind != nullptr) {
      parts.push_back(absl::StrCat(g.kind->members[i], " ", scheme));
    } else if (std::find(seen.begin(), seen.end(), scheme) == seen.end()) {
      seen.push_back(scheme);
      parts.push_back(
          absl::StrCat(g.members[i]->layer.name.substr(g.module.size() + 1), " ", scheme));
    }
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace

const std::vector<FusedGroupKind>& FusedGroupKinds() {
  static const std::vector<FusedGroupKind>* kinds = new std::vector<FusedGroupKind>{
      {"self_attn", "qkv_proj", {"q_proj", "k_proj", "v_proj"}},
      {"mlp", "gate_up_proj", {"gate_proj", "up_proj"}},
  };
  return *kinds;
}

std::string DescribeLayerScheme(const LayerPlan& plan) {
  if (!plan.quantized) return "16-bit";
  return contract::DescribeScheme(plan.scheme);
}

std::vector<std::string> SplitFusedGroups(const std::vector<LayerPlan>& plans) {
  std::vector<std::string> out;
  for (const SplitGroup& g : FindSplitGroups(plans)) {
    out.push_back(absl::StrCat(GroupName(g), " (vLLM's ", FusedName(g), "): ", MemberSchemes(g)));
  }
  return out;
}

absl::Status CheckFusedGroups(absl::string_view format_name, const std::vector<LayerPlan>& plans) {
  const std::vector<SplitGroup> split = FindSplitGroups(plans);
  if (split.empty()) return absl::OkStatus();
  const SplitGroup& g = split.front();
  std::string more;
  if (split.size() > 1) {
    more = absl::StrCat(
        "; ", split.size() - 1,
        split.size() > 2 ? " more fused groups differ" : " more fused group differs", " likewise");
  }
  return absl::InvalidArgumentError(absl::StrCat(
      format_name, ": ", GroupName(g), " form vLLM's fused ", FusedName(g),
      " but have different schemes (", MemberSchemes(g), ")", more,
      "; give them the same scheme in the layer config, or pass --allow-split-fused to write it "
      "anyway (vLLM will not load it; transformers and GPTQModel do not fuse and will)"));
}

}  // namespace signround
