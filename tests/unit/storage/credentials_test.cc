#include "src/storage/credentials.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr char kToken[] = "IQoJb3JpZ2luX2VjEXAMPLETOKEN/abc+def==";

// A home directory with ~/.aws/credentials and ~/.aws/config.
class AwsHome {
 public:
  AwsHome() { EXPECT_TRUE(MakeDirectories(dir_.File(".aws")).ok()); }
  const std::string& path() const { return dir_.path(); }
  std::string CredentialsFile() const { return dir_.File(".aws/credentials"); }
  std::string ConfigFile() const { return dir_.File(".aws/config"); }
  void WriteCredentials(absl::string_view text) const {
    testing::WriteFile(CredentialsFile(), text);
  }
  void WriteConfig(absl::string_view text) const { testing::WriteFile(ConfigFile(), text); }

 private:
  testing::TempDir dir_;
};

// Case-insensitive: INI keys are lowercased, so an echoed secret might be too.
void ExpectNoSecret(const absl::Status& status) {
  const std::string message = absl::AsciiStrToLower(status.message());
  for (const char* fragment : {"wjalrxutnfemi", "examplekey", "iqojb3jpz2lu", "examplet"}) {
    EXPECT_FALSE(absl::StrContains(message, fragment)) << status.message();
  }
}

TEST(AwsCredentials, EnvironmentComesFirst) {
  AwsHome home;
  home.WriteCredentials(
      "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = filesecret\n");
  absl::StatusOr<AwsCredentials> c = ResolveAwsCredentials(FixedEnv({
      {"HOME", home.path()},
      {"AWS_ACCESS_KEY_ID", "ENVKEY"},
      {"AWS_SECRET_ACCESS_KEY", kSecret},
      {"AWS_SESSION_TOKEN", kToken},
  }));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ENVKEY");
  EXPECT_EQ(c->secret_access_key, kSecret);
  EXPECT_EQ(c->session_token, kToken);

  // Empty variables count as unset: the file is used.
  c = ResolveAwsCredentials(FixedEnv({{"HOME", home.path()},
                                      {"AWS_ACCESS_KEY_ID", ""},
                                      {"AWS_SECRET_ACCESS_KEY", ""},
                                      {"AWS_SESSION_TOKEN", kToken}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "FILEKEY");
  EXPECT_EQ(c->session_token, "") << "the env token goes only with env keys";
}

TEST(AwsCredentials, HalfTheEnvironmentIsAnError) {
  absl::Status s = ResolveAwsCredentials(FixedEnv({{"AWS_ACCESS_KEY_ID", "AKID"}})).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
  s = ResolveAwsCredentials(FixedEnv({{"AWS_SECRET_ACCESS_KEY", kSecret}})).status();
  EXPECT_EQ(s.message(), "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
  ExpectNoSecret(s);
}

TEST(AwsCredentials, BadEnvironmentValuesAreNotEchoed) {
  for (const auto& [var, value] : std::map<std::string, std::string>{
           {"AWS_ACCESS_KEY_ID", "AK/ID"},
           {"AWS_SECRET_ACCESS_KEY", std::string(kSecret) + " # comment"},
           {"AWS_SESSION_TOKEN", std::string(kToken) + "\n"}}) {
    std::map<std::string, std::string> env = {{"AWS_ACCESS_KEY_ID", "AKID"},
                                              {"AWS_SECRET_ACCESS_KEY", kSecret}};
    env[var] = value;
    absl::Status s = ResolveAwsCredentials(FixedEnv(env)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << var;
    EXPECT_TRUE(absl::StartsWith(s.message(), var + " contains ")) << s.message();
    ExpectNoSecret(s);
  }
}

TEST(AwsCredentials, SharedFileProfiles) {
  AwsHome home;
  home.WriteCredentials(absl::StrCat(
      "# written by aws configure\r\n", "[default]\r\n", "aws_access_key_id = AKIDDEFAULT\r\n",
      "aws_secret_access_key = ", kSecret, "\r\n", "\r\n",
      "; another profile, keys in any case, ':' as separator, indented uniformly\n", "[work]\n",
      "  AWS_Access_Key_Id: AKIDWORK\n", "  aws_secret_access_key:secretwork\n",
      "  aws_session_token =", kToken, "\n", "  s3 =\n", "      max_concurrent_requests = 20\n",
      "[role]\n", "role_arn = arn:aws:iam::123456789012:role/x\n", "source_profile = default\n"));
  absl::StatusOr<AwsCredentials> c = ResolveAwsCredentials(FixedEnv({{"HOME", home.path()}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "AKIDDEFAULT");
  EXPECT_EQ(c->secret_access_key, kSecret) << "CRLF line ends are stripped";
  EXPECT_EQ(c->session_token, "");

  c = ResolveAwsCredentials(FixedEnv({{"HOME", home.path()}, {"AWS_PROFILE", "work"}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "AKIDWORK");
  EXPECT_EQ(c->secret_access_key, "secretwork");
  EXPECT_EQ(c->session_token, kToken);

  absl::Status s =
      ResolveAwsCredentials(FixedEnv({{"HOME", home.path()}, {"AWS_PROFILE", "nope"}})).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            absl::StrCat("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                         "add profile 'nope' to ",
                         home.CredentialsFile(), " (no such profile)"));

  s = ResolveAwsCredentials(FixedEnv({{"HOME", home.path()}, {"AWS_PROFILE", "role"}})).status();
  EXPECT_TRUE(absl::StrContains(s.message(), "add profile 'role'")) << s.message();
  EXPECT_TRUE(absl::StrContains(s.message(),
                                "role, SSO and credential_process profiles are not "
                                "supported"))
      << s.message();
}

TEST(AwsCredentials, FileLocation) {
  AwsHome home;
  const std::string other = home.path() + "/elsewhere";
  testing::WriteFile(other, "[default]\naws_access_key_id=AKIDOTHER\naws_secret_access_key=s\n");
  absl::StatusOr<AwsCredentials> c = ResolveAwsCredentials(
      FixedEnv({{"HOME", home.path()}, {"AWS_SHARED_CREDENTIALS_FILE", other}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "AKIDOTHER");
  c = ResolveAwsCredentials(
      FixedEnv({{"HOME", home.path()}, {"AWS_SHARED_CREDENTIALS_FILE", "~/elsewhere"}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "AKIDOTHER");

  absl::Status s = ResolveAwsCredentials(FixedEnv({{"HOME", home.path()}})).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            absl::StrCat("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                         "add profile 'default' to ",
                         home.CredentialsFile(), " (the file does not exist)"));

  s = ResolveAwsCredentials(FixedEnv({})).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      s.message(),
      "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (neither "
      "AWS_SHARED_CREDENTIALS_FILE nor HOME is set, so there is no .aws/credentials to read)");

  s = ResolveAwsCredentials(
          FixedEnv({{"HOME", home.path()}, {"AWS_SHARED_CREDENTIALS_FILE", home.path()}}))
          .status();
  EXPECT_FALSE(s.ok()) << "a directory";
  EXPECT_TRUE(absl::StrContains(s.message(), home.path())) << s.message();
}

// Malformed files: the message names the file and line and never echoes a
// secret, even when the bad line is one.
TEST(AwsCredentials, MalformedFilesNeverEchoSecrets) {
  const std::string secret = kSecret;
  const std::string good = "[default]\naws_access_key_id = AKID\n";
  struct Case {
    std::string text;
    std::string message;  // after "<file>:"
  };
  const std::vector<Case> cases = {
      {good + secret + "\n", "3: expected '[section]' or 'key = value'"},
      {good + "aws_secret_access_key " + secret + "\n", "3: expected '[section]' or 'key = value'"},
      {good + "aws_secret_access_key = " + secret + " # my key\n",
       "3: aws_secret_access_key contains whitespace or a control character (inline comments are "
       "not supported)"},
      {good + "aws_secret_access_key = " + secret + "\naws_secret_access_key = " + secret + "\n",
       "4: key aws_secret_access_key repeats (first at line 3)"},
      {"aws_secret_access_key = " + secret + "\n[default]\n",
       "1: key aws_secret_access_key before any [section]"},
      {secret + "= 1\n[default]\n", "1: a key before any [section]"},
      {good + "aws_secret_access_key = " + secret + "\n[default]\n",
       "4: section [default] repeats (first at line 1)"},
      {good + "[broken\n", "3: section header without ']'"},
      {good + "[ ]\n", "3: empty section name"},
      {good + "= " + secret + "\n", "3: '=' without a key before it"},
      {good + "aws_secret_access_key = " + secret + "\x01\n", "3: control character in the line"},
      {good + "aws_secret_access_key = " + secret + "\n   more" + secret + "\n",
       "3: aws_secret_access_key continues on an indented line"},
      {good + "aws_secret_access_key =\n", "3: aws_secret_access_key is empty"},
      {good, " profile 'default' has aws_access_key_id but no aws_secret_access_key"},
      {"[default]\naws_access_key_id = AK/ID\naws_secret_access_key = " + secret + "\n",
       "2: aws_access_key_id contains '/'"},
      {"[default]\naws_access_key_id = AKID\naws_secret_access_key = " + secret +
           "\naws_session_token = " + kToken + " x\n",
       "4: aws_session_token contains whitespace or a control character (inline comments are not "
       "supported)"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    absl::StatusOr<AwsCredentials> c =
        ParseSharedCredentials(cases[i].text, "default", "/home/u/.aws/credentials");
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    ExpectNoSecret(c.status());
    EXPECT_EQ(c.status().message(), "/home/u/.aws/credentials:" + cases[i].message);
  }
}

TEST(AwsCredentials, UnknownKeysAreNeverNamed) {
  const std::string text = absl::StrCat("[default]\n", kSecret, " = 1\n", kSecret, " = 2\n");
  absl::Status s = ParseSharedCredentials(text, "default", "f").status();
  EXPECT_EQ(s.message(), "f:3: a key repeats (first at line 2)");
  ExpectNoSecret(s);
}

TEST(AwsCredentials, RedactedAndValidate) {
  AwsCredentials c{"AKIDEXAMPLE", kSecret, kToken};
  EXPECT_EQ(c.Redacted(),
            "access_key_id=AKIDEXAMPLE secret_access_key=<redacted> session_token=<redacted>");
  c.session_token.clear();
  EXPECT_EQ(c.Redacted(),
            "access_key_id=AKIDEXAMPLE secret_access_key=<redacted> session_token=<none>");
  EXPECT_TRUE(ValidateAwsCredentials(c).ok());
  c.secret_access_key = std::string(kSecret) + "\r";
  absl::Status s = ValidateAwsCredentials(c);
  EXPECT_EQ(s.message(), "AWS secret access key contains whitespace or a control character");
  ExpectNoSecret(s);
}

TEST(AwsRegion, Precedence) {
  AwsHome home;
  home.WriteConfig(
      "[default]\nregion = eu-west-1\n"
      "[profile work]\nregion=RegionOne\noutput = json\n"
      "[work]\nregion = ignored-in-config\n"
      "[profile noregion]\noutput = json\n");
  auto region = [&](std::map<std::string, std::string> env) {
    env.emplace("HOME", home.path());
    absl::StatusOr<std::string> r = ResolveAwsRegion(FixedEnv(env));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or("");
  };
  EXPECT_EQ(region({{"AWS_REGION", "ap-south-1"}, {"AWS_DEFAULT_REGION", "us-west-2"}}),
            "ap-south-1");
  EXPECT_EQ(region({{"AWS_REGION", ""}, {"AWS_DEFAULT_REGION", "us-west-2"}}), "us-west-2");
  EXPECT_EQ(region({}), "eu-west-1");
  EXPECT_EQ(region({{"AWS_PROFILE", "work"}}), "RegionOne");
  EXPECT_EQ(region({{"AWS_PROFILE", "noregion"}}), "us-east-1");
  EXPECT_EQ(region({{"AWS_PROFILE", "missing"}}), "us-east-1");

  home.WriteConfig("[profile default]\nregion = ca-central-1\n");
  EXPECT_EQ(region({}), "ca-central-1");

  const std::string other = home.path() + "/config2";
  testing::WriteFile(other, "[default]\nregion = sa-east-1\n");
  EXPECT_EQ(region({{"AWS_CONFIG_FILE", other}}), "sa-east-1");
  EXPECT_EQ(region({{"AWS_CONFIG_FILE", home.path() + "/none"}}), "us-east-1");

  absl::StatusOr<std::string> r = ResolveAwsRegion(FixedEnv({}));
  EXPECT_EQ(r.value_or(""), "us-east-1") << "no HOME: no config file";
}

TEST(AwsRegion, Errors) {
  AwsHome home;
  absl::Status s = ResolveAwsRegion(FixedEnv({{"AWS_REGION", "us east"}})).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "AWS_REGION: region 'us east' holds '/', whitespace or a non-ASCII "
            "character");
  home.WriteConfig(absl::StrCat("[default]\nregion = us-east-2\n", kSecret, "\n"));
  s = ResolveAwsRegion(FixedEnv({{"HOME", home.path()}})).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), home.ConfigFile() + ":3: expected '[section]' or 'key = value'");
  ExpectNoSecret(s);
  home.WriteConfig("[default]\nregion = a/b\n");
  s = ResolveAwsRegion(FixedEnv({{"HOME", home.path()}})).status();
  EXPECT_EQ(s.message(),
            home.ConfigFile() + ":2: region 'a/b' holds '/', whitespace or a non-ASCII character");
}

TEST(AwsCredentials, ProcessEnvReadsTheEnvironment) {
  ::setenv("SIGNROUND_CREDENTIALS_TEST_VAR", "v", 1);
  EXPECT_EQ(ProcessEnv()("SIGNROUND_CREDENTIALS_TEST_VAR"), "v");
  ::unsetenv("SIGNROUND_CREDENTIALS_TEST_VAR");
  EXPECT_EQ(ProcessEnv()("SIGNROUND_CREDENTIALS_TEST_VAR"), std::nullopt);
}

}  // namespace
}  // namespace signround
