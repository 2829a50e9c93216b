#include "src/quant/layer_plan.h"

#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"

namespace signround {

bool SameScheme(const QuantScheme& a, const QuantScheme& b) {
  return a.bits == b.bits && a.group_size == b.group_size && a.sym == b.sym &&
         a.float_min == b.float_min;
}

absl::Status ValidateQuantScheme(const QuantScheme& s) {
  if (s.bits != 2 && s.bits != 3 && s.bits != 4 && s.bits != 8) {
    return absl::InvalidArgumentError(absl::StrCat("bits must be 2, 3, 4 or 8, got ", s.bits));
  }
  if (s.group_size != -1 && s.group_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("group_size must be positive or -1 (per output channel), got ", s.group_size));
  }
  if (s.float_min && s.sym) {
    return absl::InvalidArgumentError("a real-valued minimum needs an asymmetric scheme");
  }
  return absl::OkStatus();
}

namespace {

absl::StatusOr<LayerOverride> ParseOverride(const std::string& pattern,
                                            const nlohmann::ordered_json& value,
                                            absl::string_view label) {
  std::string where = absl::StrCat(label, ": '", pattern, "'");
  if (!value.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": must be an object"));
  }
  LayerOverride o;
  o.pattern = pattern;
  try {
    o.regex = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not a valid regex: ", e.what()));
  }
  nlohmann::json fields(value);
  JsonFields f(fields, where);
  for (const auto& [key, unused] : value.items()) {
    if (key != "bits" && key != "group_size" && key != "sym" && key != "data_type") {
      return f.Error(key, "is not a layer setting (bits, group_size, sym)");
    }
  }
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> bits, f.OptionalInt("bits"));
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> group_size, f.OptionalInt("group_size"));
  SR_ASSIGN_OR_RETURN(o.sym, f.OptionalBool("sym"));
  if (bits) {
    if (*bits != 16 && !ValidateQuantScheme({static_cast<int>(*bits), 128, true}).ok()) {
      return f.Error("bits", absl::StrCat("must be 2, 3, 4, 8 or 16, got ", *bits));
    }
    o.bits = static_cast<int>(*bits);
  }
  if (group_size) {
    if (*group_size != -1 && (*group_size <= 0 || *group_size > (1 << 24))) {
      return f.Error("group_size", absl::StrCat("must be positive or -1, got ", *group_size));
    }
    o.group_size = static_cast<int>(*group_size);
  }
  return o;
}

}  // namespace

absl::StatusOr<std::vector<LayerOverride>> ParseLayerConfig(absl::string_view json_text,
                                                            absl::string_view label) {
  SR_ASSIGN_OR_RETURN(nlohmann::ordered_json root, ParseOrderedJsonObject(json_text, label));
  std::vector<LayerOverride> out;
  for (const auto& [pattern, value] : root.items()) {
    SR_ASSIGN_OR_RETURN(LayerOverride o, ParseOverride(pattern, value, label));
    out.push_back(std::move(o));
  }
  return out;
}

absl::StatusOr<std::vector<LayerOverride>> LoadLayerConfig(const std::string& path) {
  SR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, 16 << 20));
  return ParseLayerConfig(text, path);
}

std::vector<LayerPlan> PlanLayers(const std::vector<LinearLayer>& layers, const QuantScheme& scheme,
                                  const std::vector<LayerOverride>& overrides) {
  std::vector<LayerPlan> out;
  out.reserve(layers.size());
  for (const LinearLayer& l : layers) {
    LayerPlan plan{l, true, scheme, ""};
    int bits = scheme.bits;
    for (const LayerOverride& o : overrides) {
      if (!std::regex_search(l.name, o.regex)) continue;
      if (o.bits) bits = *o.bits;
      if (o.group_size) plan.scheme.group_size = *o.group_size;
      if (o.sym) plan.scheme.sym = *o.sym;
    }
    if (bits == 16) {
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
