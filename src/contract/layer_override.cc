#include "src/contract/layer_override.h"

#include <regex>

#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"
#include "src/contract/scheme.h"

namespace signround::contract {
namespace {

// Layer config files are small; refuse anything absurd before parsing it.
constexpr uint64_t kMaxLayerConfigBytes = 16 << 20;

// Reads the settings of one override from `fields` (an object whose other keys
// the caller has checked) into `o`.
absl::Status ReadFields(const JsonFields& f, LayerOverride& o) {
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> bits, f.OptionalInt("bits"));
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> group_size, f.OptionalInt("group_size"));
  SR_ASSIGN_OR_RETURN(o.sym, f.OptionalBool("sym"));
  if (bits) {
    if (!IsOverrideBits(static_cast<int>(*bits)) || *bits != static_cast<int>(*bits)) {
      return f.Error(
          "bits", absl::StrCat("must be ", SchemeBitsList(), " or ", kKeepBits, ", got ", *bits));
    }
    o.bits = static_cast<int>(*bits);
  }
  if (group_size) {
    if (*group_size != -1 && (*group_size <= 0 || *group_size > (1 << 24))) {
      return f.Error("group_size", absl::StrCat("must be positive or -1, got ", *group_size));
    }
    o.group_size = static_cast<int>(*group_size);
  }
  return absl::OkStatus();
}

absl::Status CheckRegex(const std::string& pattern, absl::string_view where) {
  try {
    std::regex re(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not a valid regex: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsOverrideBits(int bits) { return bits == kKeepBits || IsSchemeBits(bits); }

nlohmann::json LayerOverridesToJson(const std::vector<LayerOverride>& overrides) {
  nlohmann::json out = nlohmann::json::array();
  for (const LayerOverride& o : overrides) {
    nlohmann::json one = {{"pattern", o.pattern}};
    if (o.bits) one["bits"] = *o.bits;
    if (o.group_size) one["group_size"] = *o.group_size;
    if (o.sym) one["sym"] = *o.sym;
    out.push_back(std::move(one));
  }
  return out;
}

absl::StatusOr<std::vector<LayerOverride>> LayerOverridesFromJson(const nlohmann::json& list,
                                                                  absl::string_view where) {
  if (!list.is_array()) return absl::InvalidArgumentError(absl::StrCat(where, ": not a list"));
  std::vector<LayerOverride> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = absl::StrCat(where, "[", i, "]");
    if (!list[i].is_object()) return absl::InvalidArgumentError(at + ": not an object");
    JsonFields f(list[i], at);
    for (const auto& [key, unused] : list[i].items()) {
      if (key != "pattern" && key != "bits" && key != "group_size" && key != "sym") {
        return f.Error(key, "is not a layer override field (pattern, bits, group_size, sym)");
      }
    }
    LayerOverride o;
    SR_ASSIGN_OR_RETURN(o.pattern, f.String("pattern"));
    SR_RETURN_IF_ERROR(ReadFields(f, o));
    out.push_back(std::move(o));
  }
  return out;
}

absl::Status CheckLayerOverridePatterns(const std::vector<LayerOverride>& overrides,
                                        absl::string_view where) {
  for (size_t i = 0; i < overrides.size(); ++i) {
    SR_RETURN_IF_ERROR(CheckRegex(overrides[i].pattern, absl::StrCat(where, "[", i, "]")));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<LayerOverride>> ParseLayerConfig(absl::string_view json_text,
                                                            absl::string_view label) {
  SR_ASSIGN_OR_RETURN(nlohmann::ordered_json root, ParseOrderedJsonObject(json_text, label));
  std::vector<LayerOverride> out;
  for (const auto& [pattern, value] : root.items()) {
    const std::string where = absl::StrCat(label, ": '", pattern, "'");
    if (!value.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": must be an object"));
    }
    SR_RETURN_IF_ERROR(CheckRegex(pattern, where));
    nlohmann::json fields(value);
    JsonFields f(fields, where);
    for (const auto& [key, unused] : value.items()) {
      // data_type: the reference tool's layer configs carry it; only "int" exists here.
      if (key != "bits" && key != "group_size" && key != "sym" && key != "data_type") {
        return f.Error(key, "is not a layer setting (bits, group_size, sym)");
      }
    }
    LayerOverride o;
    o.pattern = pattern;
    SR_RETURN_IF_ERROR(ReadFields(f, o));
    out.push_back(std::move(o));
  }
  return out;
}

absl::StatusOr<std::vector<LayerOverride>> LoadLayerConfig(const std::string& path) {
  SR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, kMaxLayerConfigBytes));
  return ParseLayerConfig(text, path);
}

}  // namespace signround::contract
