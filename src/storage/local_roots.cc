#include "src/storage/local_roots.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace signround {
namespace {

// realpath(3) as a string; empty when it fails (a component is missing, or a loop).
std::string RealPath(const std::string& path) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (real == nullptr) return "";
  std::string out = real;
  std::free(real);
  return out;
}

bool Within(const std::string& path, const std::string& root) {
  if (root == "/") return true;
  return path == root || (absl::StartsWith(path, root) && path[root.size()] == '/');
}

}  // namespace

std::string FileUriPath(absl::string_view uri) {
  if (absl::StartsWith(uri, "/")) return std::string(uri);
  if (uri.size() >= 7 && absl::EqualsIgnoreCase(uri.substr(0, 7), "file://")) {
    absl::string_view rest = uri.substr(7);
    if (absl::StartsWith(rest, "/")) return std::string(rest);
  }
  return "";
}

absl::StatusOr<std::string> LocalRoots::Resolve(absl::string_view path) {
  if (!absl::StartsWith(path, "/")) {
    return absl::InvalidArgumentError("not an absolute path");
  }
  if (path.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("a NUL byte in the path");
  }
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  // The longest prefix the kernel resolves; everything after it is missing.
  size_t k = parts.size();
  std::string base;
  for (;; --k) {
    base = RealPath("/" + absl::StrJoin(parts.begin(), parts.begin() + k, "/"));
    if (!base.empty() || k == 0) break;
  }
  if (base.empty()) return absl::InvalidArgumentError("cannot resolve '/'");
  // A missing component cannot be a symlink: apply the rest by hand.
  std::vector<std::string> out = absl::StrSplit(base, '/', absl::SkipEmpty());
  for (size_t i = k; i < parts.size(); ++i) {
    if (parts[i] == ".") continue;
    if (parts[i] == "..") {
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.push_back(parts[i]);
  }
  return "/" + absl::StrJoin(out, "/");
}

absl::StatusOr<LocalRoots> LocalRoots::Create(const std::vector<std::string>& roots) {
  LocalRoots out;
  for (const std::string& root : roots) {
    if (root.empty()) continue;
    std::string real = absl::StartsWith(root, "/") ? RealPath(root) : "";
    struct stat st {};
    if (real.empty() || ::stat(real.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat("--allowed-local-roots: '",
                                                     absl::CHexEscape(root),
                                                     "' is not an existing absolute directory"));
    }
    out.roots_.push_back(std::move(real));
  }
  return out;
}

absl::Status LocalRoots::Check(absl::string_view field, absl::string_view path) const {
  if (roots_.empty()) return absl::OkStatus();
  absl::StatusOr<std::string> resolved = Resolve(path);
  if (resolved.ok()) {
    for (const std::string& root : roots_) {
      if (Within(*resolved, root)) return absl::OkStatus();
    }
  }
  std::string shown(path.substr(0, 200));
  return absl::PermissionDeniedError(
      absl::StrCat(field, ": '", absl::CHexEscape(shown), path.size() > 200 ? "...'" : "'",
                   " is outside the allowed local roots (--allowed-local-roots) once '..' "
                   "and symlinks are resolved"));
}

}  // namespace signround
