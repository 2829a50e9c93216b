// The tokens file (src/auth/tokens_file.h) and the authenticator over it:
// parsing, hostile entries, lookups by SHA-256, SIGHUP-style reloads.
#include <fstream>

#include "gtest/gtest.h"
#include "src/auth/authenticator.h"
#include "src/auth/tokens_file.h"
#include "src/storage/sigv4.h"
#include "tests/testing/test_files.h"

namespace signround::auth {
namespace {

constexpr char kAlice[] = "alice-token-0123456789";
constexpr char kOps[] = "ops-token-abcdefghij";

std::string TokensJson(const std::string& extra_token = "") {
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

class AuthenticatorTest : public ::testing::Test {
 protected:
  void Write(const std::string& text) { std::ofstream(path_, std::ios::trunc) << text; }
  testing::TempDir dir_;
  std::string path_ = dir_.File("tokens.json");
};

TEST_F(AuthenticatorTest, AuthenticatesBearerMetadataWithoutEchoingTokens) {
  Write(TokensJson());
  absl::StatusOr<std::unique_ptr<Authenticator>> a = Authenticator::Load(path_);
  ASSERT_TRUE(a.ok()) << a.status();
  const std::string bearer = std::string("Bearer ") + kAlice;
  absl::StatusOr<Principal> p = (*a)->Authenticate({bearer});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->tenant, "team-a");
  const std::string lower = std::string("bearer  ") + kOps;
  ASSERT_TRUE((*a)->Authenticate({lower}).ok()) << "the scheme is case-insensitive";

  const std::string wrong = "Bearer wrong-secret-value-42";
  const std::string basic = std::string("Basic ") + kAlice;
  for (const std::vector<absl::string_view>& values : std::vector<std::vector<absl::string_view>>{
           {}, {wrong}, {basic}, {"Bearer"}, {"Bearer "}, {bearer, bearer}}) {
    absl::StatusOr<Principal> r = (*a)->Authenticate(values);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(r.status().message().find("wrong-secret"), std::string::npos) << r.status();
    EXPECT_EQ(r.status().message().find(kAlice), std::string::npos) << r.status();
  }
}

TEST_F(AuthenticatorTest, ReloadSwapsTheTableAndKeepsItOnErrors) {
  Write(TokensJson());
  absl::StatusOr<std::unique_ptr<Authenticator>> a = Authenticator::Load(path_);
  ASSERT_TRUE(a.ok()) << a.status();
  const std::string newcomer = "team-b-token-987654321";
  const std::string bearer = "Bearer " + newcomer;
  EXPECT_FALSE((*a)->Authenticate({bearer}).ok());

  Write(TokensJson(newcomer));
  ASSERT_TRUE((*a)->Reload().ok());
  EXPECT_EQ((*a)->token_count(), 3u);
  absl::StatusOr<Principal> p = (*a)->Authenticate({bearer});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->tenant, "team-b");

  Write("{\"tokens\": [");  // a half-written file: the old table stays
  absl::Status bad = (*a)->Reload();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*a)->Authenticate({bearer}).ok());

  Write(TokensJson());  // the token is revoked
  ASSERT_TRUE((*a)->Reload().ok());
  EXPECT_FALSE((*a)->Authenticate({bearer}).ok());
}

TEST_F(AuthenticatorTest, MissingFileNamesThePath) {
  absl::StatusOr<std::unique_ptr<Authenticator>> a = Authenticator::Load(dir_.File("none.json"));
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("none.json"), std::string::npos) << a.status();
}

}  // namespace
}  // namespace signround::auth
