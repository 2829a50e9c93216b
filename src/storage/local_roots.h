// --allowed-local-roots: the directories a job's file:// URIs may name. A
// path is checked as the kernel would resolve it: every existing prefix is
// resolved with realpath (so `..` and symlinks count where they lead), and
// a tail that does not exist yet (an output directory) is normalized by hand.
// The resolved path must be a root or lie below one.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace signround {

class LocalRoots {
 public:
  // No roots: every path is allowed (the single-user default).
  LocalRoots() = default;
  // Each root must be an existing directory; it is kept resolved.
  // INVALID_ARGUMENT naming --allowed-local-roots and the root otherwise.
  static absl::StatusOr<LocalRoots> Create(const std::vector<std::string>& roots);

  bool empty() const { return roots_.empty(); }
  const std::vector<std::string>& roots() const { return roots_; }

  // OK when `path` (absolute) resolves inside a root (or there are no roots).
  // PERMISSION_DENIED "<field>: ... is outside the allowed local roots"
  // otherwise; the message does not say where a symlink leads.
  absl::Status Check(absl::string_view field, absl::string_view path) const;

  // The path as the kernel would resolve it (see above); INVALID_ARGUMENT for
  // a relative path or a symlink loop.
  static absl::StatusOr<std::string> Resolve(absl::string_view path);

 private:
  std::vector<std::string> roots_;
};

// If `uri` is a file URI ("file:///..." or "/..."), its path taken literally
// (no URI checks: `..` is kept); nullopt-like empty string otherwise.
std::string FileUriPath(absl::string_view uri);

}  // namespace signround
