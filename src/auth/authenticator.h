// Bearer-token authentication over a --tokens-file that can be re-read while
// the server runs (SIGHUP). Thread-safe: Authenticate may run on every RPC
// thread while Reload swaps the table.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/auth/tokens_file.h"

namespace signround::auth {

class Authenticator {
 public:
  // Reads and parses `path`; INVALID_ARGUMENT / NOT_FOUND naming the path.
  static absl::StatusOr<std::unique_ptr<Authenticator>> Load(const std::string& path);

  // Re-reads the file. On any error the previous table stays in force and
  // the error is returned (naming the path and the entry, never a token).
  absl::Status Reload();

  // auth::Authenticate over the current table.
  absl::StatusOr<Principal> Authenticate(const std::vector<absl::string_view>& values) const;

  const std::string& path() const { return path_; }
  size_t token_count() const;

 private:
  explicit Authenticator(std::string path) : path_(std::move(path)) {}
  std::string path_;
  mutable std::mutex mu_;
  std::shared_ptr<const TokenTable> table_;
};

}  // namespace signround::auth
