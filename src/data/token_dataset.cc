#include "src/data/token_dataset.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "src/common/file_util.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"

namespace signround {
namespace {

using nlohmann::json;

// Token files are a few bytes per token; 4 GiB is far above any eval set.
constexpr uint64_t kMaxFileBytes = uint64_t{4} << 30;

// A short rendering of a bad JSON value for an error message.
std::string Describe(const json& v) {
  if (!v.is_primitive() || v.is_null()) return v.type_name();
  std::string dumped = v.dump();
  if (dumped.size() > 40) dumped = dumped.substr(0, 37) + "...";
  return absl::StrCat(v.type_name(), " ", dumped);
}

// One non-empty line; `where` is "<path>:<line>".
absl::StatusOr<TokenRow> ParseLine(absl::string_view line, const std::string& where) {
  SR_ASSIGN_OR_RETURN(json obj, ParseJsonObject(line, where));
  auto it = obj.find("input_ids");
  if (it == obj.end()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": no 'input_ids' key"));
  }
  if (!it->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": 'input_ids' must be a list of non-negative integers, got ", Describe(*it)));
  }
  TokenRow row;
  row.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    // Parsed JSON holds non-negative integers as unsigned; "-0" is signed 0.
    const bool negative = v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0;
    if (!v.is_number_integer() || negative) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": input_ids[", i, "] must be a non-negative integer, got ", Describe(v)));
    }
    const uint64_t id =
        v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
    if (id > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": input_ids[", i, "] = ", id, " is too large for int32"));
    }
    row.push_back(static_cast<int32_t>(id));
  }
  return row;
}

}  // namespace

absl::StatusOr<std::vector<TokenRow>> ParseTokenRows(absl::string_view text,
                                                     absl::string_view label) {
  std::vector<TokenRow> rows;
  int64_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t end = text.find('\n');
    absl::string_view line = text.substr(0, end);
    text = end == absl::string_view::npos ? absl::string_view() : text.substr(end + 1);
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    SR_ASSIGN_OR_RETURN(TokenRow row, ParseLine(line, absl::StrCat(label, ":", line_no)));
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::StatusOr<std::vector<TokenRow>> LoadTokenRows(const std::string& jsonl_path) {
  SR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(jsonl_path, kMaxFileBytes));
  return ParseTokenRows(text, jsonl_path);
}

absl::Status CheckTokenIds(const std::vector<TokenRow>& rows, int64_t vocab_size,
                           absl::string_view label) {
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t p = 0; p < rows[r].size(); ++p) {
      if (rows[r][p] >= vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(label, ": row ", r + 1, ", position ", p + 1,
                                                       ": token id ", rows[r][p],
                                                       " is not below vocab_size ", vocab_size));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TokenRow>> SelectSamples(const std::vector<TokenRow>& rows,
                                                    int64_t nsamples, int64_t seqlen) {
  if (nsamples < 1 || seqlen < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("nsamples (", nsamples, ") and seqlen (", seqlen, ") must be positive"));
  }
  std::vector<TokenRow> out;
  int64_t eligible = 0;
  for (const TokenRow& row : rows) {
    if (static_cast<int64_t>(row.size()) < seqlen) continue;
    ++eligible;
    if (static_cast<int64_t>(out.size()) < nsamples) {
      out.emplace_back(row.begin(), row.begin() + seqlen);
    }
  }
  if (eligible < nsamples) {
    return absl::InvalidArgumentError(absl::StrCat("only ", eligible, " rows have at least ",
                                                   seqlen, " tokens, need ", nsamples));
  }
  return out;
}

}  // namespace signround
