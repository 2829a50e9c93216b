// AWS credentials and region, resolved the way the AWS CLI does for static
// keys: the environment first, then the shared credentials and config files.
// Role, SSO, credential_process and instance-metadata credentials are not
// supported. Secrets (secret key, session token) never appear in an error
// message; log credentials only through Redacted().
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace signround {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: none (long-term keys)

  // "access_key_id=AKID... secret_access_key=<redacted> session_token=<none>"
  // (or "<redacted>"): safe for logs.
  std::string Redacted() const;
};

// OK when the credentials can sign: an access key id without '/', whitespace or
// control characters, a non-empty secret and a token without whitespace or
// control characters. The message names the field, never its value.
absl::Status ValidateAwsCredentials(const AwsCredentials& credentials);

// Reads one environment variable; nullopt when it is unset.
using EnvLookup = std::function<std::optional<std::string>(absl::string_view name)>;

// The process environment (getenv).
EnvLookup ProcessEnv();
// A fixed environment, for tests.
EnvLookup FixedEnv(std::map<std::string, std::string> vars);

// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with AWS_SESSION_TOKEN) when
// set; setting only one of the two is an error. Otherwise profile AWS_PROFILE
// (default "default") of the shared credentials file AWS_SHARED_CREDENTIALS_FILE
// (default $HOME/.aws/credentials): keys aws_access_key_id,
// aws_secret_access_key, aws_session_token. Empty variables count as unset.
// INVALID_ARGUMENT when there are no credentials, naming where they were
// looked for, or when the file is malformed, naming its line.
absl::StatusOr<AwsCredentials> ResolveAwsCredentials(const EnvLookup& env);

// AWS_REGION, else AWS_DEFAULT_REGION, else key `region` of [profile NAME]
// (for "default": [default] or [profile default]) in AWS_CONFIG_FILE (default
// $HOME/.aws/config), NAME being AWS_PROFILE or "default"; else "us-east-1".
// INVALID_ARGUMENT for a malformed config file or region.
absl::StatusOr<std::string> ResolveAwsRegion(const EnvLookup& env);

// The profile `profile` of shared credentials file text; `where` (the path)
// prefixes messages. Exposed for tests.
//
// The format is the AWS CLI's INI: "[name]" sections, "key = value" (or
// "key: value") lines with case-insensitive keys, whole-line comments starting
// with '#' or ';', lines indented deeper than the key above them continuing it
// (nested settings such as "s3 ="). Stricter than the CLI: a line that is none
// of these, a repeated section or key, and a credential value that holds
// whitespace (an inline comment?) are errors. Messages name the line number,
// never echo a value or an unrecognized line (it may be a pasted secret).
absl::StatusOr<AwsCredentials> ParseSharedCredentials(absl::string_view text,
                                                      absl::string_view profile,
                                                      absl::string_view where);

}  // namespace signround
