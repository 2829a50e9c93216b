// Strict JSON parsing for hostile input: duplicate keys are rejected, and field
// access reports the file and key that is wrong.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace signround {

// Parses `text` as one JSON value that must be an object. `where` names the
// source in error messages (a file path, or "path: header"). Duplicate keys at
// any depth are an error, as are invalid UTF-8 and trailing garbage.
absl::StatusOr<nlohmann::json> ParseJsonObject(absl::string_view text, absl::string_view where);
// The same, keeping keys in file order (for settings where order matters).
absl::StatusOr<nlohmann::ordered_json> ParseOrderedJsonObject(absl::string_view text,
                                                              absl::string_view where);

// Typed access to the fields of one JSON object. A key holding `null` counts
// as absent for the Optional* getters.
class JsonFields {
 public:
  // `obj` must outlive this reader. `where` prefixes every error message.
  JsonFields(const nlohmann::json& obj, std::string where);

  bool Has(absl::string_view key) const;
  const nlohmann::json* Get(absl::string_view key) const;  // nullptr when absent or null

  absl::StatusOr<int64_t> Int(absl::string_view key) const;
  absl::StatusOr<std::optional<int64_t>> OptionalInt(absl::string_view key) const;
  absl::StatusOr<double> Double(absl::string_view key) const;
  absl::StatusOr<std::optional<double>> OptionalDouble(absl::string_view key) const;
  absl::StatusOr<std::string> String(absl::string_view key) const;
  absl::StatusOr<std::optional<std::string>> OptionalString(absl::string_view key) const;
  absl::StatusOr<std::optional<bool>> OptionalBool(absl::string_view key) const;
  // A list of strings, or absent.
  absl::StatusOr<std::vector<std::string>> OptionalStringList(absl::string_view key) const;
  // An integer or a list of integers (e.g. eos_token_id), or absent.
  absl::StatusOr<std::vector<int64_t>> OptionalIntOrIntList(absl::string_view key) const;

  const std::string& where() const { return where_; }

  // "<where>: key '<key>' <what>" as INVALID_ARGUMENT.
  absl::Status Error(absl::string_view key, absl::string_view what) const;

 private:
  absl::Status WrongType(absl::string_view key, absl::string_view expected,
                         const nlohmann::json& got) const;

  const nlohmann::json& obj_;
  std::string where_;
};

// An integer JSON value that fits in int64, or nullopt.
std::optional<int64_t> JsonToInt64(const nlohmann::json& value);

}  // namespace signround
