// Helpers shared by the tests of src/auth: two tokens and a tokens file naming them.
#pragma once

#include <string>

#include "src/storage/sigv4.h"

namespace signround::auth {

inline constexpr char kAlice[] = "alice-token-0123456789";
inline constexpr char kOps[] = "ops-token-abcdefghij";

// A tokens file with alice (team-a, submitter) and ops (admin), and `extra_token` for team-b
// when it is not empty.
inline std::string TokensJson(const std::string& extra_token = "") {
  std::string json = R"({"tokens": [
    {"sha256": ")" + Sha256Hex(kAlice) +
                     R"(", "tenant": "team-a", "role": "submitter"},
    {"sha256": ")" + Sha256Hex(kOps) +
                     R"(", "tenant": "ops", "role": "admin"})";
  if (!extra_token.empty()) {
    json += R"(, {"sha256": ")" + Sha256Hex(extra_token) +
            R"(", "tenant": "team-b", "role": "submitter"})";
  }
  json += R"(], "tenants": {"team-a": {"s3_buckets": ["bucket-a", "shared.models"]}}})";
  return json;
}

}  // namespace signround::auth
