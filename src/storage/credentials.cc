#include "src/storage/credentials.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"

namespace signround {
namespace {

constexpr char kDefaultRegion[] = "us-east-1";
constexpr uint64_t kMaxConfigFileBytes = 1 << 20;

// Keys this module reads: the only key names an error message may quote.
constexpr absl::string_view kKnownKeys[] = {"aws_access_key_id", "aws_secret_access_key",
                                            "aws_session_token", "region"};

bool IsKnownKey(absl::string_view key) {
  for (absl::string_view k : kKnownKeys) {
    if (k == key) return true;
  }
  return false;
}

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

// Why `value` cannot be a credential field, or "" when it can.
std::string FieldProblem(absl::string_view value, bool allow_slash) {
  if (value.empty()) return "is empty";
  for (unsigned char c : value) {
    if (c <= 0x20 || c == 0x7F) return "contains whitespace or a control character";
    if (c == '/' && !allow_slash) return "contains '/'";
  }
  return "";
}

std::optional<std::string> NonEmpty(std::optional<std::string> v) {
  if (v.has_value() && v->empty()) return std::nullopt;
  return v;
}

// One "key = value" line of an INI file.
struct IniEntry {
  std::string value;
  int line = 0;
  bool continued = false;  // indented lines followed it
};

struct IniSection {
  int line = 0;
  std::map<std::string, IniEntry> entries;
};

using IniFile = std::map<std::string, IniSection>;

// The AWS CLI's INI dialect, strictly (see ParseSharedCredentials).
absl::StatusOr<IniFile> ParseIni(absl::string_view text, absl::string_view where) {
  IniFile file;
  IniSection* section = nullptr;
  IniEntry* last_entry = nullptr;
  size_t last_indent = 0;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    absl::ConsumeSuffix(&line, "\r");
    const std::string at = absl::StrCat(where, ":", number, ": ");
    for (unsigned char c : line) {
      if (c == 0 || (c < 0x20 && c != '\t') || c == 0x7F) {
        return Invalid(absl::StrCat(at, "control character in the line"));
      }
    }
    const absl::string_view t = absl::StripAsciiWhitespace(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    // A line indented deeper than the last key continues it (nested settings).
    const size_t indent = line.find_first_not_of(" \t");
    if (last_entry != nullptr && indent > last_indent) {
      last_entry->continued = true;
      continue;
    }
    if (t[0] == '[') {
      if (t.back() != ']') return Invalid(absl::StrCat(at, "section header without ']'"));
      const std::string name(absl::StripAsciiWhitespace(t.substr(1, t.size() - 2)));
      if (name.empty()) return Invalid(absl::StrCat(at, "empty section name"));
      auto [it, inserted] = file.emplace(name, IniSection{number, {}});
      if (!inserted) {
        return Invalid(absl::StrCat(at, "section [", absl::CHexEscape(name),
                                    "] repeats (first at line ", it->second.line, ")"));
      }
      section = &it->second;
      last_entry = nullptr;
      continue;
    }
    const size_t split = t.find_first_of("=:");
    if (split == absl::string_view::npos) {
      return Invalid(absl::StrCat(at, "expected '[section]' or 'key = value'"));
    }
    const std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(t.substr(0, split)));
    if (key.empty()) return Invalid(absl::StrCat(at, "'=' without a key before it"));
    const std::string shown = IsKnownKey(key) ? absl::StrCat("key ", key) : "a key";
    if (section == nullptr) {
      return Invalid(absl::StrCat(at, shown, " before any [section]"));
    }
    auto [it, inserted] = section->entries.emplace(
        key, IniEntry{std::string(absl::StripAsciiWhitespace(t.substr(split + 1))), number});
    if (!inserted) {
      return Invalid(absl::StrCat(at, shown, " repeats (first at line ", it->second.line, ")"));
    }
    last_entry = &it->second;
    last_indent = indent;
  }
  return file;
}

// The path named by `var`, else $HOME/`home_relative`; "~/" is expanded.
absl::StatusOr<std::string> ConfigPath(const EnvLookup& env, absl::string_view var,
                                       absl::string_view home_relative) {
  const std::optional<std::string> home = NonEmpty(env("HOME"));
  std::optional<std::string> path = NonEmpty(env(var));
  if (!path.has_value()) {
    if (!home.has_value()) {
      return Invalid(absl::StrCat("neither ", var, " nor HOME is set, so there is no ",
                                  home_relative, " to read"));
    }
    return absl::StrCat(*home, "/", home_relative);
  }
  if (absl::StartsWith(*path, "~/")) {
    if (!home.has_value()) return Invalid(absl::StrCat(var, " starts with '~/' but HOME is unset"));
    return absl::StrCat(*home, path->substr(1));
  }
  return *path;
}

// The file's contents, or nullopt when it does not exist.
absl::StatusOr<std::optional<std::string>> ReadIfExists(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) return std::nullopt;
  SR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, kMaxConfigFileBytes));
  return std::optional<std::string>(std::move(text));
}

std::string NoCredentials(absl::string_view profile, absl::string_view file,
                          absl::string_view why) {
  return absl::StrCat("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ",
                      "or add profile '", absl::CHexEscape(profile), "' to ", file, " (", why, ")");
}

}  // namespace

std::string AwsCredentials::Redacted() const {
  return absl::StrCat("access_key_id=", absl::CHexEscape(access_key_id),
                      " secret_access_key=", secret_access_key.empty() ? "<none>" : "<redacted>",
                      " session_token=", session_token.empty() ? "<none>" : "<redacted>");
}

absl::Status ValidateAwsCredentials(const AwsCredentials& credentials) {
  std::string problem = FieldProblem(credentials.access_key_id, /*allow_slash=*/false);
  if (!problem.empty()) return Invalid(absl::StrCat("AWS access key id ", problem));
  problem = FieldProblem(credentials.secret_access_key, /*allow_slash=*/true);
  if (!problem.empty()) return Invalid(absl::StrCat("AWS secret access key ", problem));
  if (!credentials.session_token.empty()) {
    problem = FieldProblem(credentials.session_token, /*allow_slash=*/true);
    if (!problem.empty()) return Invalid(absl::StrCat("AWS session token ", problem));
  }
  return absl::OkStatus();
}

EnvLookup ProcessEnv() {
  return [](absl::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

EnvLookup FixedEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](absl::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

absl::StatusOr<AwsCredentials> ParseSharedCredentials(absl::string_view text,
                                                      absl::string_view profile,
                                                      absl::string_view where) {
  SR_ASSIGN_OR_RETURN(IniFile file, ParseIni(text, where));
  auto section = file.find(std::string(profile));
  if (section == file.end()) return Invalid(NoCredentials(profile, where, "no such profile"));
  const auto& entries = section->second.entries;
  const std::string in_profile = absl::StrCat(where, ": profile '", absl::CHexEscape(profile), "'");
  if (entries.count("aws_access_key_id") == 0) {
    return Invalid(NoCredentials(
        profile, where,
        "the profile has no aws_access_key_id; role, SSO and credential_process profiles are "
        "not supported"));
  }
  if (entries.count("aws_secret_access_key") == 0) {
    return Invalid(absl::StrCat(in_profile, " has aws_access_key_id but no aws_secret_access_key"));
  }
  AwsCredentials credentials;
  struct Field {
    const char* key;
    std::string* out;
    bool allow_slash;
  };
  for (const Field& f : {Field{"aws_access_key_id", &credentials.access_key_id, false},
                         Field{"aws_secret_access_key", &credentials.secret_access_key, true},
                         Field{"aws_session_token", &credentials.session_token, true}}) {
    auto it = entries.find(f.key);
    if (it == entries.end()) continue;
    const std::string at = absl::StrCat(where, ":", it->second.line, ": ", f.key);
    if (it->second.continued) {
      return Invalid(absl::StrCat(at, " continues on an indented line"));
    }
    const std::string problem = FieldProblem(it->second.value, f.allow_slash);
    if (!problem.empty()) {
      return Invalid(absl::StrCat(
          at, " ", problem,
          absl::StrContains(problem, "whitespace") ? " (inline comments are not supported)" : ""));
    }
    *f.out = it->second.value;
  }
  return credentials;
}

absl::StatusOr<AwsCredentials> ResolveAwsCredentials(const EnvLookup& env) {
  const std::optional<std::string> id = NonEmpty(env("AWS_ACCESS_KEY_ID"));
  const std::optional<std::string> secret = NonEmpty(env("AWS_SECRET_ACCESS_KEY"));
  if (id.has_value() != secret.has_value()) {
    return Invalid(id.has_value() ? "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
                                  : "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
  }
  if (id.has_value()) {
    AwsCredentials credentials{*id, *secret, NonEmpty(env("AWS_SESSION_TOKEN")).value_or("")};
    struct Field {
      const char* var;
      const std::string& value;
      bool allow_slash;
    };
    for (const Field& f : {Field{"AWS_ACCESS_KEY_ID", credentials.access_key_id, false},
                           Field{"AWS_SECRET_ACCESS_KEY", credentials.secret_access_key, true},
                           Field{"AWS_SESSION_TOKEN", credentials.session_token, true}}) {
      if (f.value.empty()) continue;  // only the optional token
      const std::string problem = FieldProblem(f.value, f.allow_slash);
      if (!problem.empty()) return Invalid(absl::StrCat(f.var, " ", problem));
    }
    return credentials;
  }
  const std::string profile = NonEmpty(env("AWS_PROFILE")).value_or("default");
  absl::StatusOr<std::string> path =
      ConfigPath(env, "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
  if (!path.ok()) {
    return Invalid(
        absl::StrCat("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (",
                     path.status().message(), ")"));
  }
  SR_ASSIGN_OR_RETURN(std::optional<std::string> text, ReadIfExists(*path));
  if (!text.has_value()) return Invalid(NoCredentials(profile, *path, "the file does not exist"));
  return ParseSharedCredentials(*text, profile, *path);
}

absl::StatusOr<std::string> ResolveAwsRegion(const EnvLookup& env) {
  auto check = [](const std::string& region, absl::string_view where) -> absl::Status {
    for (unsigned char c : region) {
      if (c <= 0x20 || c >= 0x7F || c == '/') {
        return Invalid(absl::StrCat(where, ": region '", absl::CHexEscape(region),
                                    "' holds '/', whitespace or a non-ASCII character"));
      }
    }
    return absl::OkStatus();
  };
  for (const char* var : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    if (std::optional<std::string> region = NonEmpty(env(var))) {
      SR_RETURN_IF_ERROR(check(*region, var));
      return *region;
    }
  }
  absl::StatusOr<std::string> path = ConfigPath(env, "AWS_CONFIG_FILE", ".aws/config");
  if (!path.ok()) return std::string(kDefaultRegion);  // no HOME: no config file
  SR_ASSIGN_OR_RETURN(std::optional<std::string> text, ReadIfExists(*path));
  if (!text.has_value()) return std::string(kDefaultRegion);
  SR_ASSIGN_OR_RETURN(IniFile file, ParseIni(*text, *path));
  const std::string profile = NonEmpty(env("AWS_PROFILE")).value_or("default");
  std::vector<std::string> sections = {absl::StrCat("profile ", profile)};
  if (profile == "default") sections.insert(sections.begin(), "default");
  for (const std::string& name : sections) {
    auto section = file.find(name);
    if (section == file.end()) continue;
    auto it = section->second.entries.find("region");
    if (it == section->second.entries.end() || it->second.value.empty()) continue;
    SR_RETURN_IF_ERROR(check(it->second.value, absl::StrCat(*path, ":", it->second.line)));
    return it->second.value;
  }
  return std::string(kDefaultRegion);
}

}  // namespace signround
