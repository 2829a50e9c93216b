// The Linears that vLLM fuses into one module when it loads a packed checkpoint:
// q_proj, k_proj and v_proj of a decoder layer become qkv_proj, gate_proj and
// up_proj become gate_up_proj. A fused module has one quantization scheme, so
// vLLM refuses (auto-round's loader: "Fused module ... requires consistent quant
// config") or misreads (GPTQ `dynamic`, matched against the fused name) a
// checkpoint whose members differ. transformers / auto-round and GPTQModel do
// not fuse. No LibTorch.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "src/quant/layer_plan.h"

namespace signround {

// One kind of fused module: the members are the Linears `<block>.<parent>.<member>`
// of one decoder layer ("model.layers.3" + "self_attn" + "q_proj"). Besides these,
// the experts of an MoE layer (the Linears whose LinearLayer::expert is set) form
// one group: vLLM's FusedMoE takes one scheme for all experts of a layer.
struct FusedGroupKind {
  std::string parent;                // "self_attn"
  std::string fused;                 // vLLM's module: "qkv_proj"
  std::vector<std::string> members;  // "q_proj", "k_proj", "v_proj"
};

// The dense decoder's groups: self_attn.{q_proj,k_proj,v_proj} -> qkv_proj and
// mlp.{gate_proj,up_proj} -> gate_up_proj.
const std::vector<FusedGroupKind>& FusedGroupKinds();

// "4-bit g128 sym", "2-bit g-1 asym", "16-bit" (an unquantized layer).
std::string DescribeLayerScheme(const LayerPlan& plan);

// Every fused group of `plans` (in plan order, then the expert groups by layer)
// whose members do not all have the same `quantized` flag and scheme, one line each:
// "model.layers.0.self_attn.{q_proj,k_proj,v_proj} (vLLM's qkv_proj): q_proj 4-bit
// g128 sym, k_proj 8-bit g128 sym, v_proj 4-bit g128 sym". A group counts only
// when all its members are in `plans`.
std::vector<std::string> SplitFusedGroups(const std::vector<LayerPlan>& plans);

// OK when no fused group is split; otherwise INVALID_ARGUMENT, prefixed with
// `format_name` ("auto_round"), naming the first split group and its layers'
// schemes, how many more there are, and the remedies (the same scheme in the
// layer config, or --allow-split-fused).
absl::Status CheckFusedGroups(absl::string_view format_name, const std::vector<LayerPlan>& plans);

}  // namespace signround
