// The few S3 XML responses the client reads: errors, ListObjectsV2 pages and
// CreateMultipartUpload. The parser is small and strict: responses are
// hostile input, and anything it cannot read is INVALID_ARGUMENT naming the
// element, never a crash.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/storage/object_store.h"

namespace signround {

struct S3Error {
  std::string code;     // "SignatureDoesNotMatch", "NoSuchKey", ... (may be empty)
  std::string message;  // the server's text, signatures and tokens redacted
};

// <Error><Code>..</Code><Message>..</Message></Error>; empty fields when the
// body is not such a document (a proxy's HTML page, say). Nothing else of the
// body is read (its StringToSign, SignatureProvided, CanonicalRequest,
// AWSAccessKeyId, Token-0...), and RedactSigV4Secrets() is applied to both
// fields; the code is cut to 64 bytes, the message to 512.
S3Error ParseS3Error(absl::string_view body);

// A ListObjectsV2 page: <Contents><Key>, <Size>, and
// <NextContinuationToken> when <IsTruncated> is true.
absl::StatusOr<ObjectList> ParseListObjectsV2(absl::string_view body);

// <UploadId> of a CreateMultipartUpload answer.
absl::StatusOr<std::string> ParseUploadId(absl::string_view body);

// The XML text of `s` with &, <, >, ", ' escaped.
std::string XmlEscape(absl::string_view s);

}  // namespace signround
