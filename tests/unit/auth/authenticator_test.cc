// The authenticator (src/auth/authenticator.h) over a tokens file: bearer metadata,
// SIGHUP-style reloads, a missing file.
#include "src/auth/authenticator.h"

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/test_files.h"
#include "tests/unit/auth/auth_fixtures.h"

namespace signround::auth {
namespace {

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
