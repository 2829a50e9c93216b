// The bearer-token table of --tokens-file: who may call the service, as which
// tenant, in which role, and which S3 buckets each tenant's jobs may use.
// The file holds SHA-256 digests of tokens, never tokens:
//
//   {"tokens": [{"sha256": "<64 lowercase hex>", "tenant": "team-a", "role": "submitter"},
//               {"sha256": "...", "tenant": "ops", "role": "admin"}],
//    "tenants": {"team-a": {"s3_buckets": ["team-a-models", "team-a-out"]}}}
//
// A tenant absent from "tenants" (or without "s3_buckets") may use any bucket
// the server's credentials reach. Unknown keys, duplicate digests, bad names
// and bad roles are errors that name the entry; a token itself is never
// printed (it is not in the file, and Find never echoes its argument).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace signround::auth {

enum class Role { kSubmitter, kAdmin };

struct Principal {
  std::string tenant;
  Role role = Role::kSubmitter;
  // The S3 buckets this tenant's job URIs may name; nullopt: any.
  std::optional<std::set<std::string>> s3_buckets;
};

inline constexpr size_t kMaxTokenBytes = 4096;
inline constexpr size_t kMaxTokensFileBytes = 4 << 20;

class TokenTable {
 public:
  // Parses the file's text; `where` (the path) prefixes every error.
  static absl::StatusOr<TokenTable> Parse(absl::string_view json_text, absl::string_view where);

  // The principal whose digest is SHA-256(token), or nullopt.
  std::optional<Principal> Find(absl::string_view token) const;

  size_t token_count() const { return by_digest_.size(); }
  size_t tenant_count() const;

 private:
  std::map<std::string, Principal> by_digest_;  // lowercase hex digest -> principal
};

// The caller of an RPC whose `authorization` metadata values are `values`:
// exactly one, "Bearer TOKEN" (the scheme in any case), with a token of
// `table`. UNAUTHENTICATED otherwise; the message never contains the token.
absl::StatusOr<Principal> Authenticate(const TokenTable& table,
                                       const std::vector<absl::string_view>& values);

// Tenant names: 1-63 of [a-z0-9._-], starting with a letter or digit.
bool IsValidTenantName(absl::string_view name);

// A token as RFC 6750 allows it after "Bearer ": 1..kMaxTokenBytes of
// A-Z a-z 0-9 - . _ ~ + / followed by optional '=' padding.
bool IsValidBearerToken(absl::string_view token);

}  // namespace signround::auth
