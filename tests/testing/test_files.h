// Test helpers: scratch directories, raw safetensors files built byte by byte,
// and the optional ../shared directory.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace signround::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on
// destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(absl::string_view name) const;

 private:
  std::string path_;
};

// Writes `contents` to `path` (creating or replacing it).
void WriteFile(const std::string& path, absl::string_view contents);

// The bytes of a safetensors file whose header is exactly `header_json`
// (unpadded), followed by `data`.
std::string SafetensorsBytes(absl::string_view header_json, absl::string_view data);

// The bytes of a file that starts with the 8-byte length `header_len`,
// followed by `rest`.
std::string WithHeaderLength(uint64_t header_len, absl::string_view rest);

// The ../shared directory beside the checkout (models and data for optional
// tests), or "" when it is absent. Tests that need it GTEST_SKIP() on "".
std::string SharedDir();

}  // namespace signround::testing
