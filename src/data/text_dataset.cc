#include "src/data/text_dataset.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "src/common/status_macros.h"
#include "src/tokenizer/sentencepiece_tokenizer.h"

namespace signround {
namespace {

absl::Status LineError(absl::string_view path, int64_t line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ":", line, ": ", what));
}

absl::Status CheckUtf8(absl::string_view path, int64_t line, absl::string_view text) {
  const int64_t bad = FirstInvalidUtf8Offset(text);
  if (bad < 0) return absl::OkStatus();
  return LineError(path, line, absl::StrCat("not valid UTF-8 at byte offset ", bad));
}

absl::StatusOr<std::ifstream> Open(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  return in;
}

// The "text" of one JSONL line.
absl::StatusOr<std::string> JsonText(const std::string& path, int64_t line,
                                     const std::string& raw) {
  nlohmann::json j = nlohmann::json::parse(raw, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return LineError(path, line, "not valid JSON");
  if (!j.is_object()) return LineError(path, line, "expected a JSON object");
  auto it = j.find("text");
  if (it == j.end()) return LineError(path, line, "no \"text\" field");
  if (!it->is_string()) return LineError(path, line, "\"text\" is not a string");
  return it->get<std::string>();
}

}  // namespace

absl::StatusOr<DatasetKind> DetectDatasetKind(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return DatasetKind::kTokenIds;  // LoadTokenRows names the reason
  std::string raw;
  while (std::getline(in, raw)) {
    absl::string_view s = absl::StripAsciiWhitespace(raw);
    if (s.empty()) continue;
    if (s.front() != '{') return DatasetKind::kPlainText;
    nlohmann::json j = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("text") && !j.contains("input_ids")) {
      return DatasetKind::kTextJsonl;
    }
    return DatasetKind::kTokenIds;  // LoadTokenRows reports what is wrong
  }
  return absl::InvalidArgumentError(absl::StrCat(path, ": the file is empty (no texts)"));
}

absl::StatusOr<std::vector<TextRecord>> LoadTexts(const std::string& path, DatasetKind kind) {
  SR_ASSIGN_OR_RETURN(std::ifstream in, Open(path));
  std::vector<TextRecord> texts;
  std::string raw;
  int64_t line = 0;
  while (std::getline(in, raw)) {
    ++line;
    if (!raw.empty() && raw.back() == '\r') raw.pop_back();
    SR_RETURN_IF_ERROR(CheckUtf8(path, line, raw));
    if (absl::StripAsciiWhitespace(raw).empty()) continue;
    if (kind == DatasetKind::kPlainText) {
      texts.push_back({raw, line});
      continue;
    }
    SR_ASSIGN_OR_RETURN(std::string text, JsonText(path, line, raw));
    SR_RETURN_IF_ERROR(CheckUtf8(path, line, text));
    texts.push_back({std::move(text), line});
  }
  if (texts.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no texts"));
  return texts;
}

absl::StatusOr<std::vector<TokenRow>> TokenizeTexts(const std::vector<TextRecord>& texts,
                                                    const Tokenizer& tokenizer,
                                                    const TextRowsOptions& options,
                                                    absl::string_view label) {
  if (options.concat && options.seqlen <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": seqlen must be positive to concatenate texts"));
  }
  std::vector<TokenRow> rows;
  TokenRow pending;  // concat: tokens not yet cut into a chunk
  for (const TextRecord& t : texts) {
    absl::StatusOr<std::vector<int64_t>> ids = tokenizer.Encode(t.text, true);
    if (!ids.ok()) return LineError(label, t.line, ids.status().message());
    TokenRow row(ids->begin(), ids->end());
    if (!options.concat) {
      rows.push_back(std::move(row));
      continue;
    }
    pending.insert(pending.end(), row.begin(), row.end());
    size_t start = 0;
    while (pending.size() - start >= static_cast<size_t>(options.seqlen)) {
      rows.emplace_back(pending.begin() + start, pending.begin() + start + options.seqlen);
      start += options.seqlen;
    }
    pending.erase(pending.begin(), pending.begin() + start);
  }
  return rows;
}

TextRowsOptions EvalTextOptions(const ModelConfig& config, int64_t fallback_len) {
  TextRowsOptions o;
  o.concat = true;
  o.seqlen = config.max_position_embeddings > 0 ? config.max_position_embeddings : fallback_len;
  return o;
}

absl::StatusOr<std::vector<TokenRow>> LoadDatasetRows(const std::string& path,
                                                      const std::string& model_dir,
                                                      const TextRowsOptions& options) {
  SR_ASSIGN_OR_RETURN(DatasetKind kind, DetectDatasetKind(path));
  if (kind == DatasetKind::kTokenIds) return LoadTokenRows(path);
  SR_ASSIGN_OR_RETURN(std::vector<TextRecord> texts, LoadTexts(path, kind));
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(model_dir);
  if (!tok.ok()) {
    return absl::Status(tok.status().code(),
                        absl::StrCat(path, " is text, and the model's tokenizer did not load: ",
                                     tok.status().message()));
  }
  return TokenizeTexts(texts, **tok, options, path);
}

}  // namespace signround
