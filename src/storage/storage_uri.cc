#include "src/storage/storage_uri.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace signround {
namespace {

constexpr size_t kMaxShownBytes = 160;
constexpr size_t kMaxPathBytes = 4095;    // PATH_MAX - 1
constexpr size_t kMaxSegmentBytes = 255;  // NAME_MAX
constexpr size_t kMaxKeyBytes = 1024;     // S3's limit

// The URI for a message: escaped, and shortened when long.
std::string Shown(absl::string_view uri) {
  if (uri.size() <= kMaxShownBytes) return absl::CHexEscape(uri);
  return absl::StrCat(absl::CHexEscape(uri.substr(0, kMaxShownBytes)), "...");
}

absl::Status Bad(absl::string_view uri, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("storage URI '", Shown(uri), "': ", what));
}

// Length of the UTF-8 sequence starting at s[i], or 0 when it is not valid
// (truncated, overlong, a surrogate or above U+10FFFF).
size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  const unsigned char c = s[i];
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const unsigned char b = s[i + k];
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
  }
  return n;
}

absl::Status CheckText(absl::string_view uri) {
  for (size_t i = 0; i < uri.size();) {
    const unsigned char c = uri[i];
    if (c < 0x20 || c == 0x7F) {
      return Bad(uri, absl::StrFormat("control character 0x%02X at byte %d", c, i));
    }
    const size_t n = Utf8SequenceLength(uri, i);
    if (n == 0) return Bad(uri, absl::StrCat("not valid UTF-8 at byte ", i));
    i += n;
  }
  if (absl::ascii_isspace(uri.front()) || absl::ascii_isspace(uri.back())) {
    return Bad(uri, "leading or trailing whitespace");
  }
  return absl::OkStatus();
}

// Checks the '/'-separated segments of `path` (a file path without its leading
// '/', or an S3 key): none empty, "." or "..", except one trailing '/'.
absl::Status CheckSegments(absl::string_view uri, absl::string_view path, absl::string_view what,
                           size_t max_segment_bytes) {
  if (path.empty()) return absl::OkStatus();
  std::vector<absl::string_view> segments = absl::StrSplit(path, '/');
  if (segments.back().empty()) segments.pop_back();  // the trailing '/'
  for (absl::string_view s : segments) {
    if (s.empty()) return Bad(uri, absl::StrCat("empty segment ('//') in the ", what));
    if (s == "." || s == "..") {
      return Bad(uri,
                 absl::StrCat("'", s, "' segment in the ", what, " (name the location directly)"));
    }
    if (s.size() > max_segment_bytes) {
      return Bad(uri, absl::StrCat("a segment of the ", what, " is ", s.size(),
                                   " bytes, over the limit of ", max_segment_bytes));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<StorageUri> FilePath(absl::string_view uri, absl::string_view path) {
  if (path.size() > kMaxPathBytes) {
    return Bad(uri, absl::StrCat("the path is ", path.size(), " bytes, over the limit of ",
                                 kMaxPathBytes));
  }
  absl::Status segments = CheckSegments(uri, path.substr(1), "path", kMaxSegmentBytes);
  if (!segments.ok()) return segments;
  StorageUri out;
  out.scheme = StorageUri::Scheme::kFile;
  out.path = std::string(path);
  return out;
}

absl::StatusOr<StorageUri> S3Location(absl::string_view uri, absl::string_view rest) {
  const size_t slash = rest.find('/');
  const absl::string_view bucket = rest.substr(0, slash);
  const absl::string_view key =
      slash == absl::string_view::npos ? absl::string_view() : rest.substr(slash + 1);
  if (bucket.empty()) return Bad(uri, "no bucket name after s3://");
  absl::Status valid = ValidateS3BucketName(bucket);
  if (!valid.ok()) return Bad(uri, valid.message());
  if (key.size() > kMaxKeyBytes) {
    return Bad(
        uri, absl::StrCat("the key is ", key.size(), " bytes, over S3's limit of ", kMaxKeyBytes));
  }
  absl::Status segments = CheckSegments(uri, key, "key", kMaxKeyBytes);
  if (!segments.ok()) return segments;
  StorageUri out;
  out.scheme = StorageUri::Scheme::kS3;
  out.bucket = std::string(bucket);
  out.key = std::string(key);
  return out;
}

bool IsScheme(absl::string_view s) {
  if (s.empty() || !absl::ascii_isalpha(s[0])) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

}  // namespace

std::string StorageUri::ToString() const {
  if (scheme == Scheme::kFile) return absl::StrCat("file://", path);
  return key.empty() ? absl::StrCat("s3://", bucket) : absl::StrCat("s3://", bucket, "/", key);
}

absl::Status ValidateS3BucketName(absl::string_view bucket) {
  const std::string shown = absl::StrCat("bucket name '", Shown(bucket), "'");
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(shown, " ", what));
  };
  if (bucket.size() < 3 || bucket.size() > 63) return bad("is not 3 to 63 characters long");
  bool all_digits_and_dots = true;
  for (char c : bucket) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '.' && c != '-') {
      return bad("may hold only lowercase letters, digits, '.' and '-'");
    }
    if (!absl::ascii_isdigit(c) && c != '.') all_digits_and_dots = false;
  }
  if (!absl::ascii_isalnum(bucket.front()) || !absl::ascii_isalnum(bucket.back())) {
    return bad("must start and end with a letter or digit");
  }
  if (absl::StrContains(bucket, "..")) return bad("has two adjacent periods");
  if (all_digits_and_dots &&
      std::vector<absl::string_view>(absl::StrSplit(bucket, '.')).size() == 4) {
    return bad("is formatted as an IP address");
  }
  for (absl::string_view prefix : {"xn--", "sthree-", "amzn-s3-demo-"}) {
    if (absl::StartsWith(bucket, prefix)) return bad(absl::StrCat("starts with '", prefix, "'"));
  }
  for (absl::string_view suffix : {"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"}) {
    if (absl::EndsWith(bucket, suffix)) return bad(absl::StrCat("ends with '", suffix, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<StorageUri> ParseStorageUri(absl::string_view uri) {
  if (uri.empty()) return absl::InvalidArgumentError("empty storage URI");
  absl::Status text = CheckText(uri);
  if (!text.ok()) return text;
  if (uri[0] == '/') return FilePath(uri, uri);

  const size_t colon = uri.find(':');
  const absl::string_view scheme_text =
      colon == absl::string_view::npos ? absl::string_view() : uri.substr(0, colon);
  if (!IsScheme(scheme_text)) {
    return Bad(uri, "a relative path; use an absolute path, file:///abs/path or s3://bucket/key");
  }
  const std::string scheme = absl::AsciiStrToLower(scheme_text);
  absl::string_view rest = uri.substr(colon + 1);
  const bool slashes = absl::ConsumePrefix(&rest, "//");
  if (scheme != "file" && scheme != "s3") {
    if (!slashes) {
      return Bad(uri, "a relative path; use an absolute path, file:///abs/path or s3://bucket/key");
    }
    return Bad(uri, absl::StrCat("unsupported scheme '", Shown(scheme_text),
                                 "' (expected file:// or s3://)"));
  }
  if (!slashes) return Bad(uri, absl::StrCat("expected '", scheme, "://'"));
  if (scheme == "s3") return S3Location(uri, rest);
  if (rest.empty()) return Bad(uri, "no path after file://");
  if (rest[0] != '/') {
    return Bad(uri, absl::StrCat("file URIs take no host ('", Shown(rest.substr(0, rest.find('/'))),
                                 "'); write file:///abs/path"));
  }
  return FilePath(uri, rest);
}

}  // namespace signround
