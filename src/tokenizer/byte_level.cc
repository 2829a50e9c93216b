#include "src/tokenizer/byte_level.h"

#include <unicode/regex.h>
#include <unicode/unistr.h>

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "src/common/utf8.h"

namespace signround {
namespace {

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the UTF-8 sequence at text[i] (0 when invalid there).
size_t Utf8Length(absl::string_view text, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(text[i + k]); };
  const uint8_t c = b(0);
  size_t n;
  uint32_t v;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if (c >= 0xC2 && c <= 0xDF) {
    n = 2, v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, v = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, v = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(k) & 0x3F);
  }
  if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF))) return 0;
  if (v >= 0xD800 && v <= 0xDFFF) return 0;
  *cp = v;
  return n;
}

// Rewrites \s and \S to White_Space classes (Oniguruma's \s includes \v and
// U+0085, ICU's does not).
std::string RewriteWhitespaceClasses(absl::string_view pattern) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[++i];
      if (next == 's') {
        out += "\\p{White_Space}";
      } else if (next == 'S') {
        out += "\\P{White_Space}";
      } else {
        out.push_back('\\');
        out.push_back(next);
      }
    } else {
      out.push_back(pattern[i]);
    }
  }
  return out;
}

}  // namespace

const std::array<std::string, 256>& ByteToUnicode() {
  static const std::array<std::string, 256>* table = [] {
    auto* t = new std::array<std::string, 256>();
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      AppendUtf8(printable ? b : next++, &(*t)[b]);
    }
    return t;
  }();
  return *table;
}

void AppendByteLevel(absl::string_view bytes, std::string* out) {
  const auto& table = ByteToUnicode();
  for (const char c : bytes) *out += table[static_cast<uint8_t>(c)];
}

absl::Status ValidateUtf8(absl::string_view text) {
  const int64_t bad = FirstInvalidUtf8Offset(text);
  if (bad >= 0) {
    return absl::InvalidArgumentError(absl::StrCat("text is not valid UTF-8 at byte offset ", bad));
  }
  return absl::OkStatus();
}

absl::StatusOr<SplitBehavior> ParseSplitBehavior(absl::string_view name) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat("Split behavior '", name, "' is not supported"));
}

RegexSplitter::~RegexSplitter() = default;

absl::StatusOr<std::unique_ptr<RegexSplitter>> RegexSplitter::Create(absl::string_view pattern,
                                                                     bool literal,
                                                                     SplitBehavior behavior) {
  const std::string rewritten = literal ? std::string(pattern) : RewriteWhitespaceClasses(pattern);
  const icu::UnicodeString upattern = icu::UnicodeString::fromUTF8(
      icu::StringPiece(rewritten.data(), static_cast<int32_t>(rewritten.size())));
  UErrorCode status = U_ZERO_ERROR;
  UParseError parse_error;
  std::unique_ptr<icu::RegexPattern> compiled(
      icu::RegexPattern::compile(upattern, literal ? UREGEX_LITERAL : 0, parse_error, status));
  if (U_FAILURE(status) || compiled == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("regex '", pattern,
                                                   "' does not compile: ", u_errorName(status),
                                                   " at offset ", parse_error.offset));
  }
  std::unique_ptr<RegexSplitter> splitter(new RegexSplitter());
  splitter->pattern_ = std::move(compiled);
  splitter->behavior_ = behavior;
  return splitter;
}

// The [start, end) byte ranges of the non-empty matches in `text`.
absl::Status RegexSplitter::Matches(absl::string_view text,
                                    std::vector<std::pair<size_t, size_t>>* matches) const {
  // UTF-16 copy of the text with the UTF-8 offset of every UTF-16 index.
  icu::UnicodeString utext;
  std::vector<size_t> u8_at;
  u8_at.reserve(text.size() + 1);
  size_t i = 0;
  while (i < text.size()) {
    uint32_t cp;
    const size_t n = Utf8Length(text, i, &cp);
    if (n == 0) return ValidateUtf8(text);
    utext.append(static_cast<UChar32>(cp));
    u8_at.push_back(i);
    if (cp >= 0x10000) u8_at.push_back(i);  // low surrogate: never a match boundary
    i += n;
  }
  u8_at.push_back(text.size());
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<icu::RegexMatcher> matcher(pattern_->matcher(utext, status));
  if (U_FAILURE(status)) {
    return absl::InternalError(absl::StrCat("regex matcher: ", u_errorName(status)));
  }
  matcher->setTimeLimit(0, status);
  while (matcher->find(status) && U_SUCCESS(status)) {
    const int32_t s = matcher->start(status);
    const int32_t e = matcher->end(status);
    if (U_FAILURE(status)) break;
    if (e > s) matches->emplace_back(u8_at[s], u8_at[e]);
  }
  if (U_FAILURE(status)) {
    return absl::InternalError(absl::StrCat("regex search: ", u_errorName(status)));
  }
  return absl::OkStatus();
}

absl::Status RegexSplitter::Split(absl::string_view text,
                                  std::vector<absl::string_view>* pieces) const {
  std::vector<std::pair<size_t, size_t>> matches;
  absl::Status st = Matches(text, &matches);
  if (!st.ok()) return st;
  // Segments covering the text: (start, end, is_match).
  struct Segment {
    size_t start, end;
    bool match;
  };
  std::vector<Segment> segs;
  size_t pos = 0;
  for (const auto& m : matches) {
    if (m.first > pos) segs.push_back({pos, m.first, false});
    segs.push_back({m.first, m.second, true});
    pos = m.second;
  }
  if (pos < text.size()) segs.push_back({pos, text.size(), false});

  std::vector<std::pair<size_t, size_t>> out;
  bool prev_match = false;
  for (const Segment& seg : segs) {
    bool append = false;  // extend the last output piece instead of starting one
    switch (behavior_) {
      case SplitBehavior::kRemoved:
        if (seg.match) continue;
        break;
      case SplitBehavior::kIsolated:
        break;
      case SplitBehavior::kMergedWithPrevious:  // a match joins the non-match before it
        append = seg.match && !prev_match && !out.empty();
        break;
      case SplitBehavior::kMergedWithNext:  // a match joins the non-match after it
        append = !seg.match && prev_match && !out.empty();
        break;
      case SplitBehavior::kContiguous:  // runs of matches become one piece
        append = seg.match && prev_match && !out.empty();
        break;
    }
    if (append) {
      out.back().second = seg.end;
    } else {
      out.emplace_back(seg.start, seg.end);
    }
    prev_match = seg.match;
  }
  for (const auto& p : out) pieces->push_back(text.substr(p.first, p.second - p.first));
  return absl::OkStatus();
}

}  // namespace signround
