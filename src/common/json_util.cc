#include "src/common/json_util.h"

#include <limits>
#include <set>

#include "absl/strings/str_cat.h"

namespace signround {
namespace {

using nlohmann::json;

// nlohmann's messages start with "[json.exception.parse_error.101] "; drop that.
std::string CleanParseMessage(const std::string& what) {
  size_t pos = what.find("] ");
  return pos == std::string::npos ? what : what.substr(pos + 2);
}

template <typename Json>
absl::StatusOr<Json> ParseStrict(absl::string_view text, absl::string_view where) {
  std::vector<std::set<std::string>> keys_per_level;
  std::string duplicate;
  typename Json::parser_callback_t on_event = [&](int /*depth*/, typename Json::parse_event_t event,
                                                  Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        keys_per_level.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!keys_per_level.empty()) keys_per_level.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!keys_per_level.empty() && parsed.is_string() &&
            !keys_per_level.back().insert(parsed.template get<std::string>()).second &&
            duplicate.empty()) {
          duplicate = parsed.template get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  Json value;
  try {
    value = Json::parse(text.begin(), text.end(), on_event, /*allow_exceptions=*/true,
                        /*ignore_comments=*/false);
  } catch (const typename Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": not valid JSON: ", CleanParseMessage(e.what())));
  }
  if (!duplicate.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": duplicate key '", duplicate, "'"));
  }
  if (!value.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": expected a JSON object, got ", value.type_name()));
  }
  return value;
}

}  // namespace

absl::StatusOr<json> ParseJsonObject(absl::string_view text, absl::string_view where) {
  return ParseStrict<json>(text, where);
}

absl::StatusOr<nlohmann::ordered_json> ParseOrderedJsonObject(absl::string_view text,
                                                              absl::string_view where) {
  return ParseStrict<nlohmann::ordered_json>(text, where);
}

std::optional<int64_t> JsonToInt64(const json& value) {
  if (value.is_number_unsigned()) {
    uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return std::nullopt;
}

JsonFields::JsonFields(const json& obj, std::string where) : obj_(obj), where_(std::move(where)) {}

const json* JsonFields::Get(absl::string_view key) const {
  auto it = obj_.find(std::string(key));
  if (it == obj_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool JsonFields::Has(absl::string_view key) const { return Get(key) != nullptr; }

absl::Status JsonFields::Error(absl::string_view key, absl::string_view what) const {
  return absl::InvalidArgumentError(absl::StrCat(where_, ": key '", key, "' ", what));
}

absl::Status JsonFields::WrongType(absl::string_view key, absl::string_view expected,
                                   const json& got) const {
  return Error(key, absl::StrCat("must be ", expected, ", got ", got.type_name(),
                                 got.is_primitive() ? absl::StrCat(" ", got.dump()) : ""));
}

absl::StatusOr<std::optional<int64_t>> JsonFields::OptionalInt(absl::string_view key) const {
  const json* v = Get(key);
  if (v == nullptr) return std::optional<int64_t>();
  std::optional<int64_t> i = JsonToInt64(*v);
  if (!i) return WrongType(key, "an integer", *v);
  return i;
}

absl::StatusOr<int64_t> JsonFields::Int(absl::string_view key) const {
  auto v = OptionalInt(key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return Error(key, "is missing");
  return **v;
}

absl::StatusOr<std::optional<double>> JsonFields::OptionalDouble(absl::string_view key) const {
  const json* v = Get(key);
  if (v == nullptr) return std::optional<double>();
  if (!v->is_number()) return WrongType(key, "a number", *v);
  return std::optional<double>(v->get<double>());
}

absl::StatusOr<double> JsonFields::Double(absl::string_view key) const {
  auto v = OptionalDouble(key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return Error(key, "is missing");
  return **v;
}

absl::StatusOr<std::optional<std::string>> JsonFields::OptionalString(absl::string_view key) const {
  const json* v = Get(key);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return WrongType(key, "a string", *v);
  return std::optional<std::string>(v->get<std::string>());
}

absl::StatusOr<std::string> JsonFields::String(absl::string_view key) const {
  auto v = OptionalString(key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return Error(key, "is missing");
  return **v;
}

absl::StatusOr<std::optional<bool>> JsonFields::OptionalBool(absl::string_view key) const {
  const json* v = Get(key);
  if (v == nullptr) return std::optional<bool>();
  if (!v->is_boolean()) return WrongType(key, "true or false", *v);
  return std::optional<bool>(v->get<bool>());
}

absl::StatusOr<std::vector<std::string>> JsonFields::OptionalStringList(
    absl::string_view key) const {
  std::vector<std::string> out;
  const json* v = Get(key);
  if (v == nullptr) return out;
  if (!v->is_array()) return WrongType(key, "a list of strings", *v);
  for (const json& item : *v) {
    if (!item.is_string()) return WrongType(key, "a list of strings", item);
    out.push_back(item.get<std::string>());
  }
  return out;
}

absl::StatusOr<std::vector<int64_t>> JsonFields::OptionalIntOrIntList(absl::string_view key) const {
  std::vector<int64_t> out;
  const json* v = Get(key);
  if (v == nullptr) return out;
  if (!v->is_array()) {
    std::optional<int64_t> i = JsonToInt64(*v);
    if (!i) return WrongType(key, "an integer or a list of integers", *v);
    out.push_back(*i);
    return out;
  }
  for (const json& item : *v) {
    std::optional<int64_t> i = JsonToInt64(item);
    if (!i) return WrongType(key, "an integer or a list of integers", item);
    out.push_back(*i);
  }
  return out;
}

}  // namespace signround
