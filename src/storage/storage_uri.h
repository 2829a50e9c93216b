// Storage locations given by users: "file:///abs/path", "/abs/path" (the same)
// and "s3://bucket/key/prefix". Every input is treated as hostile.
//
// Rules, for both schemes:
// - The text is taken literally: no percent-decoding ("%20" is three
//   characters), and '?' and '#' are ordinary characters (as in the AWS CLI).
// - Valid UTF-8 without control characters (bytes 0x00-0x1F and 0x7F).
// - No "." or ".." segment and no empty segment ("a//b"); one trailing '/' is
//   allowed (a directory or prefix). A location is named directly, so prefix
//   checks on it mean what they say, and a key maps to one local path.
// - Schemes are case-insensitive ("S3://" is "s3://").
// file: an absolute path: "file:///" then the path; "file://host/..." (even
// localhost) and relative paths ("out/model", "file:out") are refused, since a
// service's working directory is nobody's business. At most 4095 bytes, and
// segments of at most 255.
// s3: the bucket follows S3's naming rules (3-63 characters: lowercase letters,
// digits, '.' and '-'; starting and ending with a letter or digit; no "..", not
// an IPv4 address, no "xn--"/"sthree-" prefix, no "-s3alias"/"--ol-s3" suffix).
// The key may be empty ("s3://bucket" or "s3://bucket/"), at most 1024 bytes.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace signround {

struct StorageUri {
  enum class Scheme { kFile, kS3 };

  Scheme scheme = Scheme::kFile;
  std::string path;    // kFile: the absolute path ("/data/out" or "/data/out/")
  std::string bucket;  // kS3
  std::string key;     // kS3: key or prefix as given ("runs/a/"), may be empty

  // The canonical URI: "file:///data/out" (also for a plain path),
  // "s3://bucket/key", "s3://bucket" for an empty key.
  std::string ToString() const;
};

// Parses a storage URI (see the rules above). INVALID_ARGUMENT quoting the URI
// (escaped, shortened when long) and saying what is wrong.
absl::StatusOr<StorageUri> ParseStorageUri(absl::string_view uri);

// OK for a bucket name that follows S3's rules; the message names the rule.
absl::Status ValidateS3BucketName(absl::string_view bucket);

}  // namespace signround
