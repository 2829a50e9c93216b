#include "src/auth/tokens_file.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"
#include "src/storage/sigv4.h"
#include "src/storage/storage_uri.h"

namespace signround::auth {
namespace {

using nlohmann::json;

absl::Status OnlyKeys(const json& obj, std::initializer_list<absl::string_view> allowed,
                      const std::string& where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool known = false;
    for (absl::string_view k : allowed) known = known || it.key() == k;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown key '", absl::CHexEscape(it.key().substr(0, 64)), "'"));
    }
  }
  return absl::OkStatus();
}

bool IsLowerHexDigest(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

absl::StatusOr<std::set<std::string>> ParseTenantPolicy(const json& policy,
                                                        const std::string& where) {
  if (!policy.is_object())
    return absl::InvalidArgumentError(absl::StrCat(where, ": not an object"));
  SR_RETURN_IF_ERROR(OnlyKeys(policy, {"s3_buckets"}, where));
  JsonFields fields(policy, where);
  SR_ASSIGN_OR_RETURN(std::vector<std::string> buckets, fields.OptionalStringList("s3_buckets"));
  std::set<std::string> out;
  for (size_t i = 0; i < buckets.size(); ++i) {
    const std::string& b = buckets[i];
    if (absl::Status valid = ValidateS3BucketName(b); !valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".s3_buckets[", i, "]: '",
                                                     absl::CHexEscape(b.substr(0, 64)),
                                                     "' is not an S3 bucket name: ",
                                                     valid.message()));
    }
    out.insert(b);
  }
  return out;
}

}  // namespace

bool IsValidTenantName(absl::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  if (!absl::ascii_islower(name[0]) && !absl::ascii_isdigit(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

bool IsValidBearerToken(absl::string_view token) {
  if (token.empty() || token.size() > kMaxTokenBytes) return false;
  size_t i = 0;
  for (; i < token.size(); ++i) {
    const char c = token[i];
    if (!(absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' ||
          c == '/')) {
      break;
    }
  }
  if (i == 0) return false;
  for (; i < token.size(); ++i) {
    if (token[i] != '=') return false;
  }
  return true;
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view json_text, absl::string_view where) {
  if (json_text.size() > kMaxTokensFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": larger than ", kMaxTokensFileBytes, " bytes"));
  }
  SR_ASSIGN_OR_RETURN(json root, ParseJsonObject(json_text, where));
  SR_RETURN_IF_ERROR(OnlyKeys(root, {"tokens", "tenants"}, std::string(where)));

  std::map<std::string, std::set<std::string>> buckets;
  if (root.contains("tenants")) {
    const json& tenants = root["tenants"];
    if (!tenants.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": 'tenants' is not an object"));
    }
    for (auto it = tenants.begin(); it != tenants.end(); ++it) {
      const std::string entry =
          absl::StrCat(where, ": tenants.", absl::CHexEscape(it.key().substr(0, 64)));
      if (!IsValidTenantName(it.key())) {
        return absl::InvalidArgumentError(
            absl::StrCat(entry, ": not a tenant name (1-63 of a-z 0-9 . _ -)"));
      }
      SR_ASSIGN_OR_RETURN(std::set<std::string> b, ParseTenantPolicy(it.value(), entry));
      if (it.value().contains("s3_buckets")) buckets[it.key()] = std::move(b);
    }
  }

  if (!root.contains("tokens") || !root["tokens"].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": 'tokens' must be a list"));
  }
  TokenTable table;
  const json& tokens = root["tokens"];
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string entry = absl::StrCat(where, ": tokens[", i, "]");
    if (!tokens[i].is_object())
      return absl::InvalidArgumentError(absl::StrCat(entry, ": not an object"));
    SR_RETURN_IF_ERROR(OnlyKeys(tokens[i], {"sha256", "tenant", "role"}, entry));
    JsonFields fields(tokens[i], entry);
    SR_ASSIGN_OR_RETURN(std::string digest, fields.String("sha256"));
    SR_ASSIGN_OR_RETURN(std::string tenant, fields.String("tenant"));
    SR_ASSIGN_OR_RETURN(std::string role, fields.String("role"));
    if (!IsLowerHexDigest(digest)) {
      return fields.Error("sha256", "is not 64 lowercase hex digits (printf %s TOKEN | sha256sum)");
    }
    if (!IsValidTenantName(tenant)) {
      return fields.Error("tenant", "is not a tenant name (1-63 of a-z 0-9 . _ -)");
    }
    Principal p;
    p.tenant = tenant;
    if (role == "admin") {
      p.role = Role::kAdmin;
    } else if (role != "submitter") {
      return fields.Error("role", "is not submitter or admin");
    }
    if (auto b = buckets.find(tenant); b != buckets.end()) p.s3_buckets = b->second;
    if (!table.by_digest_.emplace(digest, std::move(p)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(entry, ": the same sha256 as an earlier entry"));
    }
  }
  return table;
}

std::optional<Principal> TokenTable::Find(absl::string_view token) const {
  if (!IsValidBearerToken(token)) return std::nullopt;
  auto it = by_digest_.find(Sha256Hex(token));
  if (it == by_digest_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<Principal> Authenticate(const TokenTable& table,
                                       const std::vector<absl::string_view>& values) {
  if (values.empty()) {
    return absl::UnauthenticatedError(
        "this server requires a bearer token: send metadata 'authorization: Bearer TOKEN' "
        "(the CLI reads $SIGNROUND_TOKEN or --token-file)");
  }
  if (values.size() > 1) {
    return absl::UnauthenticatedError("more than one 'authorization' metadata entry");
  }
  absl::string_view v = values[0];
  constexpr absl::string_view kScheme = "bearer ";
  if (v.size() <= kScheme.size() || !absl::StartsWithIgnoreCase(v, kScheme)) {
    return absl::UnauthenticatedError("'authorization' metadata is not 'Bearer TOKEN'");
  }
  v.remove_prefix(kScheme.size());
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  std::optional<Principal> p = table.Find(v);
  if (!p) return absl::UnauthenticatedError("the bearer token is not valid");
  return *p;
}

size_t TokenTable::tenant_count() const {
  std::set<std::string> tenants;
  for (const auto& [digest, p] : by_digest_) tenants.insert(p.tenant);
  return tenants.size();
}

}  // namespace signround::auth
