#include "src/storage/s3_xml.h"

#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "src/storage/sigv4.h"

namespace signround {
namespace {

// The text of the next <tag>...</tag> in body[from, end) (entities decoded),
// with `*next` just past it; nullopt when there is none.
std::optional<std::string> Element(absl::string_view body, absl::string_view tag, size_t from,
                                   size_t end, size_t* next) {
  const std::string open = absl::StrCat("<", tag, ">");
  const std::string close = absl::StrCat("</", tag, ">");
  size_t a = body.find(open, from);
  if (a == absl::string_view::npos || a >= end) return std::nullopt;
  a += open.size();
  size_t b = body.find(close, a);
  if (b == absl::string_view::npos || b > end) return std::nullopt;
  if (next) *next = b + close.size();
  absl::string_view raw = body.substr(a, b - a);
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '&') {
      out.push_back(raw[i]);
      continue;
    }
    static constexpr std::pair<absl::string_view, char> kEntities[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    bool matched = false;
    for (const auto& [entity, c] : kEntities) {
      if (raw.substr(i, entity.size()) == entity) {
        out.push_back(c);
        i += entity.size() - 1;
        matched = true;
        break;
      }
    }
    if (!matched) out.push_back('&');  // numeric entities are left as they are
  }
  return out;
}

}  // namespace

S3Error ParseS3Error(absl::string_view body) {
  S3Error e;
  // Only these two: the other elements of an error body may quote the request's signing
  // material (StringToSign, SignatureProvided, CanonicalRequest with the session token) or
  // the token itself (Token-0). The text is the server's, so signatures and tokens are
  // redacted from it too, before it is cut (so a cut cannot hide a key from the redaction).
  e.code = RedactSigV4Secrets(Element(body, "Code", 0, body.size(), nullptr).value_or(""));
  if (e.code.size() > 64) e.code.resize(64);
  e.message = RedactSigV4Secrets(Element(body, "Message", 0, body.size(), nullptr).value_or(""));
  if (e.message.size() > 512) e.message.resize(512);
  return e;
}

absl::StatusOr<ObjectList> ParseListObjectsV2(absl::string_view body) {
  if (body.find("<ListBucketResult") == absl::string_view::npos) {
    return absl::InvalidArgumentError("ListObjectsV2 answer has no <ListBucketResult>");
  }
  ObjectList out;
  size_t pos = 0;
  for (;;) {
    size_t contents_end = 0;
    std::optional<std::string> contents =
        Element(body, "Contents", pos, body.size(), &contents_end);
    if (!contents) break;
    ObjectInfo info;
    std::optional<std::string> key = Element(*contents, "Key", 0, contents->size(), nullptr);
    std::optional<std::string> size = Element(*contents, "Size", 0, contents->size(), nullptr);
    if (!key || !size || !absl::SimpleAtoi(*size, &info.size)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ListObjectsV2 answer: a <Contents> entry lacks a <Key> or a numeric <Size>"));
    }
    info.key = std::move(*key);
    info.etag = Element(*contents, "ETag", 0, contents->size(), nullptr).value_or("");
    out.objects.push_back(std::move(info));
    pos = contents_end;
  }
  const std::string truncated =
      Element(body, "IsTruncated", 0, body.size(), nullptr).value_or("false");
  if (truncated == "true") {
    std::optional<std::string> token =
        Element(body, "NextContinuationToken", 0, body.size(), nullptr);
    if (!token || token->empty()) {
      return absl::InvalidArgumentError(
          "ListObjectsV2 answer is truncated but has no <NextContinuationToken>");
    }
    out.next_page_token = std::move(*token);
  }
  return out;
}

absl::StatusOr<std::string> ParseUploadId(absl::string_view body) {
  std::optional<std::string> id = Element(body, "UploadId", 0, body.size(), nullptr);
  if (!id || id->empty()) {
    return absl::InvalidArgumentError("CreateMultipartUpload answer has no <UploadId>");
  }
  return *id;
}

std::string XmlEscape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace signround
