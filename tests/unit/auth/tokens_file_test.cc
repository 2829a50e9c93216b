// The tokens file (src/auth/tokens_file.h): parsing, hostile entries, lookups by SHA-256,
// bearer token syntax.
#include "src/auth/tokens_file.h"

#include <optional>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "src/storage/sigv4.h"
#include "tests/unit/auth/auth_fixtures.h"

namespace signround::auth {
namespace {

TEST(TokenTableTest, FindsPrincipalsByTheTokensDigest) {
  absl::StatusOr<TokenTable> t = TokenTable::Parse(TokensJson(), "tokens.json");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->token_count(), 2u);
  EXPECT_EQ(t->tenant_count(), 2u);
  std::optional<Principal> alice = t->Find(kAlice);
  ASSERT_TRUE(alice);
  EXPECT_EQ(alice->tenant, "team-a");
  EXPECT_EQ(alice->role, Role::kSubmitter);
  ASSERT_TRUE(alice->s3_buckets);
  EXPECT_EQ(*alice->s3_buckets, (std::set<std::string>{"bucket-a", "shared.models"}));
  std::optional<Principal> ops = t->Find(kOps);
  ASSERT_TRUE(ops);
  EXPECT_EQ(ops->role, Role::kAdmin);
  EXPECT_FALSE(ops->s3_buckets) << "no tenants entry: any bucket";
  // The digest itself is not a token, nor is a near miss.
  EXPECT_FALSE(t->Find(Sha256Hex(kAlice)));
  EXPECT_FALSE(t->Find(std::string(kAlice) + "x"));
  EXPECT_FALSE(t->Find(""));
}

TEST(TokenTableTest, RefusesHostileFilesNamingTheEntry) {
  const std::string digest = Sha256Hex(kAlice);
  struct Case {
    std::string json;
    std::string message;
  } cases[] = {
      {"[]", "object"},
      {"{}", "'tokens' must be a list"},
      {R"({"tokens": [], "extra": 1})", "unknown key 'extra'"},
      {R"({"tokens": [{"sha256": "abc", "tenant": "a", "role": "admin"}]})",
       "tokens[0]: key 'sha256' is not 64 lowercase hex"},
      {R"({"tokens": [{"sha256": ")" + std::string(64, 'A') +
           R"(", "tenant": "a", "role": "admin"}]})",
       "not 64 lowercase hex"},
      {R"({"tokens": [{"sha256": ")" + digest + R"(", "tenant": "Team A", "role": "admin"}]})",
       "key 'tenant' is not a tenant name"},
      {R"({"tokens": [{"sha256": ")" + digest + R"(", "tenant": "a", "role": "root"}]})",
       "key 'role' is not submitter or admin"},
      {R"({"tokens": [{"sha256": ")" + digest + R"(", "tenant": "a", "role": "admin", "x": 1}]})",
       "tokens[0]: unknown key 'x'"},
      {R"({"tokens": [{"sha256": ")" + digest + R"(", "tenant": "a", "role": "admin"},
                      {"sha256": ")" +
           digest + R"(", "tenant": "b", "role": "admin"}]})",
       "tokens[1]: the same sha256"},
      {R"({"tokens": [], "tenants": {"a": {"s3_buckets": ["Bad_Bucket"]}}})",
       "tenants.a.s3_buckets[0]: 'Bad_Bucket' is not an S3 bucket name"},
      {R"({"tokens": [], "tenants": {"a": {"s3_buckets": "b"}}})", "s3_buckets"},
      {R"({"tokens": [], "tenants": {"-a": {}}})", "not a tenant name"},
      {R"({"tokens": [], "tokens": []})", "duplicate"},
      {"{\"tokens\": [", "tokens.json"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<TokenTable> t = TokenTable::Parse(c.json, "tokens.json");
    ASSERT_FALSE(t.ok()) << c.json;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_NE(t.status().message().find(c.message), std::string::npos)
        << c.json << " -> " << t.status().message();
    EXPECT_NE(t.status().message().find("tokens.json"), std::string::npos) << t.status();
  }
}

TEST(TokenTableTest, BearerTokenSyntax) {
  EXPECT_TRUE(IsValidBearerToken("abc"));
  EXPECT_TRUE(IsValidBearerToken("a-b.c_d~e+f/g=="));
  EXPECT_FALSE(IsValidBearerToken(""));
  EXPECT_FALSE(IsValidBearerToken("=="));
  EXPECT_FALSE(IsValidBearerToken("a b"));
  EXPECT_FALSE(IsValidBearerToken("a=b"));
  EXPECT_FALSE(IsValidBearerToken(std::string("a\0b", 3)));
  EXPECT_FALSE(IsValidBearerToken(std::string(kMaxTokenBytes + 1, 'a')));
  EXPECT_TRUE(IsValidBearerToken(std::string(kMaxTokenBytes, 'a')));
}

}  // namespace
}  // namespace signround::auth
