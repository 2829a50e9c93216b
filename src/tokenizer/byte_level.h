// Byte-level BPE helpers: GPT-2's byte-to-unicode table, strict UTF-8
// validation, and regex pre-tokenization (Hugging Face's Split / ByteLevel
// pre-tokenizers) on ICU regular expressions with offsets in UTF-8 bytes.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "unicode/uversion.h"

U_NAMESPACE_BEGIN
class RegexPattern;
U_NAMESPACE_END

namespace signround {

// The GPT-2 pre-tokenization regex (ByteLevel with use_regex).
inline constexpr absl::string_view kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// GPT-2's bytes_to_unicode(): byte b -> the UTF-8 of the printable code
// point that stands for it in byte-level vocabularies.
const std::array<std::string, 256>& ByteToUnicode();

// Appends the byte-level form of `bytes` (each byte as its table entry).
void AppendByteLevel(absl::string_view bytes, std::string* out);

// OK when `text` is valid UTF-8 (no overlongs, surrogates or code points
// above U+10FFFF); otherwise INVALID_ARGUMENT naming the first bad byte offset.
absl::Status ValidateUtf8(absl::string_view text);

// How a Split pre-tokenizer treats the matches (Hugging Face's names).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

absl::StatusOr<SplitBehavior> ParseSplitBehavior(absl::string_view name);

// A compiled Split pattern. Thread-safe: every Split() call uses its own matcher.
class RegexSplitter {
 public:
  // `pattern` is an Oniguruma-style regex as tokenizer.json writes it (\s and
  // \S are rewritten to Unicode White_Space so they match what Oniguruma
  // does), or a literal string when `literal`.
  static absl::StatusOr<std::unique_ptr<RegexSplitter>> Create(absl::string_view pattern,
                                                               bool literal,
                                                               SplitBehavior behavior);
  ~RegexSplitter();

  // Splits valid UTF-8 `text` into non-empty pieces (views into `text`).
  absl::Status Split(absl::string_view text, std::vector<absl::string_view>* pieces) const;

 private:
  RegexSplitter() = default;
  absl::Status Matches(absl::string_view text,
                       std::vector<std::pair<size_t, size_t>>* matches) const;

  std::unique_ptr<icu::RegexPattern> pattern_;
  SplitBehavior behavior_ = SplitBehavior::kIsolated;
};

}  // namespace signround
