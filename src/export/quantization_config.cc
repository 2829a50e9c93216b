#include "src/export/quantization_config.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "src/contract/settings.h"

namespace signround {
namespace {

using ojson = nlohmann::ordered_json;

// The auto-round release whose checkpoint layout these exports follow.
constexpr char kAutoRoundVersion[] = "0.12.3";

// Our version as GPTQModel's meta.quantizer records producers ("name:version";
// GPTQModel compares the version only for its own name). SIGNROUND_VERSION is the
// top-level project(signround VERSION ...).
constexpr char kQuantizer[] = "signround:" SIGNROUND_VERSION;

// "model.layers.0.mlp.up_proj" as an anchored regex for GPTQModel's `dynamic`
// (matched from the start of the name).
std::string ExactRegex(const std::string& name) {
  return absl::StrReplaceAll(name, {{".", "\\."}}) + "$";
}

// The keys of `scheme` that differ from `base`.
ojson SchemeDiff(const QuantScheme& scheme, const QuantScheme& base) {
  ojson diff = ojson::object();
  if (scheme.bits != base.bits) diff["bits"] = scheme.bits;
  if (scheme.group_size != base.group_size) diff["group_size"] = scheme.group_size;
  if (scheme.sym != base.sym) diff["sym"] = scheme.sym;
  return diff;
}

// The tuning settings that differ from auto-round's defaults (informational).
void AddTuningSettings(const nlohmann::json& settings, ojson& out) {
  auto differs = [&](const char* key, const nlohmann::json& default_value) {
    auto it = settings.find(key);
    if (it != settings.end() && *it != default_value) out[key] = *it;
  };
  const int64_t iters = settings.value("iters", int64_t{200});
  differs("iters", 200);
  if (iters > 0) {
    differs("lr", 1.0 / static_cast<double>(iters));
    if (settings.contains("lr")) differs("minmax_lr", settings["lr"]);
  }
  differs("nsamples", 128);
  differs("seqlen", 2048);
  differs("batch_size", 8);
  differs("gradient_accumulate_steps", 1);
  differs("enable_minmax_tuning", true);
  differs("enable_quanted_input", true);
}

}  // namespace

ZeroPointFormat ZeroPointsFor(const std::vector<LayerPlan>& plans) {
  for (const LayerPlan& p : plans) {
    if (p.quantized && !p.scheme.sym) return ZeroPointFormat::kV2;
  }
  return ZeroPointFormat::kV1;
}

ojson MakeQuantizationConfig(PackedFormat format, const ExportOptions& options,
                             const std::vector<LayerPlan>& plans) {
  const QuantScheme& base = options.scheme;
  ojson c = ojson::object();
  if (format == PackedFormat::kAutoRound) {
    c["quant_method"] = "auto-round";
    c["packing_format"] =
        ZeroPointsFor(plans) == ZeroPointFormat::kV1 ? "auto_round:auto_gptq" : "auto_round";
    c["bits"] = base.bits;
    c["group_size"] = base.group_size;
    c["sym"] = base.sym;
    c["data_type"] = "int";
    c["autoround_version"] = kAutoRoundVersion;
    c["block_name_to_quantize"] = "model.layers";
    AddTuningSettings(options.settings, c);
    ojson extra = ojson::object();
    for (const LayerPlan& p : plans) {
      if (!p.quantized) {
        extra[p.layer.name] = {{"bits", 16}, {"data_type", "fp"}};
      } else if (ojson diff = SchemeDiff(p.scheme, base); !diff.empty()) {
        extra[p.layer.name] = diff;
      }
    }
    if (!extra.empty()) c["extra_config"] = extra;
    return c;
  }
  c["quant_method"] = "gptq";
  c["bits"] = base.bits;
  c["group_size"] = base.group_size;
  c["sym"] = base.sym;
  c["desc_act"] = false;
  c["true_sequential"] = false;
  c["damp_percent"] = 0.01;
  c["lm_head"] = false;
  // vLLM's gptq path and GPTQModel read v2 zero points as stored; GPTQModel refuses
  // sym=false in "gptq" (v1) unless its own meta.quantizer says it wrote the file.
  c["checkpoint_format"] = ZeroPointsFor(plans) == ZeroPointFormat::kV1 ? "gptq" : "gptq_v2";
  ojson dynamic = ojson::object();
  for (const LayerPlan& p : plans) {
    if (!p.quantized) {
      dynamic["-:" + ExactRegex(p.layer.name)] = ojson::object();
    } else if (!SchemeDiff(p.scheme, base).empty()) {
      dynamic["+:" + ExactRegex(p.layer.name)] = {
          {"bits", p.scheme.bits}, {"group_size", p.scheme.group_size}, {"sym", p.scheme.sym}};
    }
  }
  if (!dynamic.empty()) c["dynamic"] = dynamic;
  c["meta"] = {{"quantizer", ojson::array({kQuantizer})}};
  return c;
}

absl::Status ValidatePackedTorchDtype(absl::string_view dtype) {
  absl::Status s = contract::CheckPackedDtype(dtype);
  if (s.ok()) return s;
  return absl::InvalidArgumentError(absl::StrCat("packed dtype ", s.message()));
}

void SetConfigTorchDtype(ojson& config, const std::string& dtype) {
  bool set = false;
  for (const char* key : {"torch_dtype", "dtype"}) {
    if (!config.contains(key)) continue;
    config[key] = dtype;
    set = true;
  }
  if (!set) config["torch_dtype"] = dtype;
}

}  // namespace signround
