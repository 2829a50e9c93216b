// ParseStorageUri on arbitrary bytes, then the invariants of a parsed URI:
// its canonical form parses back to itself, and the parts follow the rules.
#include <cstddef>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "src/storage/storage_uri.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  (void)signround::ValidateS3BucketName(text);
  absl::StatusOr<signround::StorageUri> uri = signround::ParseStorageUri(text);
  if (!uri.ok()) {
    FUZZ_CHECK(uri.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(uri.status().message().size() < 4096);  // long URIs are shortened
    return 0;
  }
  if (uri->scheme == signround::StorageUri::Scheme::kFile) {
    FUZZ_CHECK(absl::StartsWith(uri->path, "/"));
    FUZZ_CHECK(uri->bucket.empty() && uri->key.empty());
  } else {
    FUZZ_CHECK(signround::ValidateS3BucketName(uri->bucket).ok());
    FUZZ_CHECK(uri->path.empty());
  }
  const std::string canonical = uri->ToString();
  absl::StatusOr<signround::StorageUri> again = signround::ParseStorageUri(canonical);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->scheme == uri->scheme && again->path == uri->path &&
             again->bucket == uri->bucket && again->key == uri->key);
  FUZZ_CHECK(again->ToString() == canonical);
  return 0;
}
