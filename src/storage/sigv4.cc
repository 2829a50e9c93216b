#include "src/storage/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"

namespace signround {
namespace {

constexpr char kAlgorithm[] = "AWS4-HMAC-SHA256";
constexpr int64_t kMaxExpiresSeconds = 7 * 24 * 3600;  // S3's limit for presigned URLs

// Only allocation failure makes OpenSSL's SHA-256 and HMAC fail.
[[noreturn]] void OpenSslFailed(const char* what) {
  std::fprintf(stderr, "signround: OpenSSL %s failed (out of memory?)\n", what);
  std::abort();
}

std::string HexEncode(const unsigned char* data, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * size, '\0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kHex[data[i] >> 4];
    out[2 * i + 1] = kHex[data[i] & 0xF];
  }
  return out;
}

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  static const unsigned char kEmpty = 0;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  const void* key_ptr = key.empty() ? static_cast<const void*>(&kEmpty) : key.data();
  const unsigned char* data_ptr =
      data.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(data.data());
  if (HMAC(EVP_sha256(), key_ptr, static_cast<int>(key.size()), data_ptr, data.size(), out,
           &size) == nullptr) {
    OpenSslFailed("HMAC-SHA256");
  }
  return std::string(reinterpret_cast<const char*>(out), size);
}

std::string HexOf(absl::string_view bytes) {
  return HexEncode(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

bool IsUnreserved(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// RFC 7230 tchar: the characters of a method or header name.
bool IsTokenChar(unsigned char c) {
  return absl::ascii_isalnum(c) ||
         absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
}

bool IsToken(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return IsTokenChar(c); });
}

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7F; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("SigV4: ", what));
}

// Quotes non-secret request text for a message.
std::string Quote(absl::string_view s) { return absl::StrCat("'", absl::CHexEscape(s), "'"); }

absl::Status CheckScopePart(absl::string_view value, absl::string_view what) {
  if (value.empty()) return Invalid(absl::StrCat(what, " is empty"));
  for (unsigned char c : value) {
    if (c <= 0x20 || c >= 0x7F || c == '/') {
      return Invalid(
          absl::StrCat(what, " ", Quote(value), " holds '/', whitespace or a non-ASCII character"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPayloadHash(absl::string_view hash) {
  if (hash == kUnsignedPayload) return absl::OkStatus();
  if (absl::StartsWith(hash, "STREAMING-") && hash.size() > 10 &&
      std::all_of(hash.begin(), hash.end(), [](char c) {
        return absl::ascii_isupper(c) || absl::ascii_isdigit(c) || c == '-';
      })) {
    return absl::OkStatus();
  }
  if (hash.size() == 64 && std::all_of(hash.begin(), hash.end(), [](char c) {
        return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
      })) {
    return absl::OkStatus();
  }
  return Invalid(absl::StrCat("payload hash ", Quote(hash),
                              " is not 64 lowercase hex digits, UNSIGNED-PAYLOAD or STREAMING-*"));
}

// Removes "." and ".." segments and empty segments; keeps a trailing '/'.
std::string NormalizePath(absl::string_view path) {
  std::vector<absl::string_view> segments = absl::StrSplit(path, '/');
  std::vector<absl::string_view> kept;
  bool trailing_slash = false;
  for (size_t i = 1; i < segments.size(); ++i) {  // segments[0] is before the leading '/'
    const absl::string_view s = segments[i];
    const bool last = i + 1 == segments.size();
    if (s.empty() || s == "." || s == "..") {
      if (s == ".." && !kept.empty()) kept.pop_back();
      if (last) trailing_slash = true;
      continue;
    }
    kept.push_back(s);
  }
  if (kept.empty()) return "/";
  return absl::StrCat("/", absl::StrJoin(kept, "/"), trailing_slash ? "/" : "");
}

absl::StatusOr<std::string> CanonicalUri(absl::string_view path, const SigV4Options& options) {
  if (path.empty() || path[0] != '/') {
    return Invalid(absl::StrCat("request path ", Quote(path), " does not start with '/'"));
  }
  for (size_t i = 0; i < path.size(); ++i) {
    const unsigned char c = path[i];
    if (IsControl(c)) {
      return Invalid(absl::StrCat("request path ", Quote(path), " holds a control character"));
    }
    if (c == '?' || c == '#') {
      return Invalid(absl::StrCat("request path ", Quote(path), " holds '", path.substr(i, 1),
                                  "' (pass the query in SigV4Request::query)"));
    }
  }
  std::string normalized = options.normalize_path ? NormalizePath(path) : std::string(path);
  if (options.double_encode_path) return UriEncode(normalized, /*encode_slash=*/false);
  // Single encoding: the path is already encoded, and the server re-derives
  // the canonical URI by decoding and encoding it; both must agree.
  absl::StatusOr<std::string> decoded = UriDecode(normalized);
  if (!decoded.ok()) {
    return Invalid(absl::StrCat("request path ", Quote(path), ": ", decoded.status().message()));
  }
  std::string canonical = UriEncode(*decoded, /*encode_slash=*/false);
  if (canonical != normalized) {
    return Invalid(absl::StrCat("request path ", Quote(path),
                                " is not URI-encoded the way S3 expects: that is ",
                                Quote(canonical), " (encode keys with UriEncode(key, false))"));
  }
  return canonical;
}

// Trims and collapses runs of spaces and tabs to one space.
std::string CanonicalHeaderValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

// Checks the caller's headers: names are tokens, values single lines, exactly
// one Host, and none of the headers in `set_by_signer` (lowercase).
absl::Status CheckHeaders(const std::vector<HttpHeader>& headers,
                          const std::vector<absl::string_view>& set_by_signer) {
  int hosts = 0;
  for (const HttpHeader& h : headers) {
    if (!IsToken(h.name)) {
      return Invalid(absl::StrCat("header name ", Quote(h.name), " is not an HTTP token"));
    }
    // The value is not quoted: it may be a secret.
    for (unsigned char c : h.value) {
      if (IsControl(c) && c != '\t') {
        return Invalid(absl::StrCat("header ", Quote(h.name),
                                    " has a control character (CR, LF, NUL...) in its value"));
      }
    }
    const std::string lower = absl::AsciiStrToLower(h.name);
    if (lower == "host") ++hosts;
    for (absl::string_view reserved : set_by_signer) {
      if (lower == reserved) {
        return Invalid(absl::StrCat("header ", Quote(h.name), " is set by the signer"));
      }
    }
  }
  if (hosts != 1) {
    return Invalid(hosts == 0 ? "the Host header is missing (SigV4 signs it)"
                              : "more than one Host header");
  }
  return absl::OkStatus();
}

struct CanonicalHeaders {
  std::string block;    // "name:value\n" per header, sorted
  std::string signed_;  // "name;name"
};

CanonicalHeaders Canonicalize(const std::vector<HttpHeader>& headers) {
  std::map<std::string, std::string> by_name;  // lowercase name -> values joined by ','
  for (const HttpHeader& h : headers) {
    auto [it, inserted] =
        by_name.emplace(absl::AsciiStrToLower(h.name), CanonicalHeaderValue(h.value));
    if (!inserted) absl::StrAppend(&it->second, ",", CanonicalHeaderValue(h.value));
  }
  CanonicalHeaders out;
  for (const auto& [name, value] : by_name) {
    absl::StrAppend(&out.block, name, ":", value, "\n");
    absl::StrAppend(&out.signed_, out.signed_.empty() ? "" : ";", name);
  }
  return out;
}

constexpr absl::string_view kAuthQueryParams[] = {
    "X-Amz-Algorithm",     "X-Amz-Credential",     "X-Amz-Date",      "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature",
};

absl::Status CheckQuery(const std::vector<QueryParam>& query, bool presign) {
  for (const QueryParam& p : query) {
    if (p.name.empty()) return Invalid("a query parameter has an empty name");
    if (!presign) continue;
    for (absl::string_view reserved : kAuthQueryParams) {
      if (absl::EqualsIgnoreCase(p.name, reserved)) {
        return Invalid(absl::StrCat("query parameter ", Quote(p.name), " is set by the signer"));
      }
    }
  }
  return absl::OkStatus();
}

// What every signature needs: valid inputs, the timestamp and the scope.
struct Scope {
  std::string amz_date;  // 20150830T123600Z
  std::string date;      // 20150830
  std::string scope;     // 20150830/us-east-1/s3/aws4_request
  std::string canonical_uri;
};

absl::StatusOr<Scope> Prepare(const AwsCredentials& credentials, const SigV4Options& options,
                              const SigV4Request& request,
                              std::chrono::system_clock::time_point now) {
  if (absl::Status valid = ValidateAwsCredentials(credentials); !valid.ok()) {
    return Invalid(valid.message());
  }
  SR_RETURN_IF_ERROR(CheckScopePart(options.region, "region"));
  SR_RETURN_IF_ERROR(CheckScopePart(options.service, "service"));
  if (!IsToken(request.method)) {
    return Invalid(absl::StrCat("method ", Quote(request.method), " is not an HTTP token"));
  }
  SR_RETURN_IF_ERROR(CheckPayloadHash(request.payload_hash));
  Scope s;
  SR_ASSIGN_OR_RETURN(s.canonical_uri, CanonicalUri(request.path, options));
  s.amz_date = FormatAmzDate(now);
  if (s.amz_date.empty()) return Invalid("the signing time is outside years 1000..9999");
  s.date = s.amz_date.substr(0, 8);
  s.scope = absl::StrCat(s.date, "/", options.region, "/", options.service, "/aws4_request");
  return s;
}

// Fills canonical_request, string_to_sign and signature.
void Sign(const AwsCredentials& credentials, const SigV4Options& options, const Scope& s,
          const SigV4Request& request, const std::string& canonical_query,
          const CanonicalHeaders& headers, SigV4Result* result) {
  result->canonical_request =
      absl::StrCat(request.method, "\n", s.canonical_uri, "\n", canonical_query, "\n",
                   headers.block, "\n", headers.signed_, "\n", request.payload_hash);
  result->string_to_sign = absl::StrCat(kAlgorithm, "\n", s.amz_date, "\n", s.scope, "\n",
                                        Sha256Hex(result->canonical_request));
  result->signature = HexOf(HmacSha256(
      DeriveSigningKey(credentials.secret_access_key, s.date, options.region, options.service),
      result->string_to_sign));
}

}  // namespace

std::string Sha256Hex(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), md, &size, EVP_sha256(), nullptr) != 1) {
    OpenSslFailed("SHA-256");
  }
  return HexEncode(md, size);
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    OpenSslFailed("SHA-256 init");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::Update(absl::string_view data) {
  if (data.empty()) return;
  if (EVP_DigestUpdate(ctx_, data.data(), data.size()) != 1) OpenSslFailed("SHA-256 update");
}

std::string Sha256::FinalHex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(ctx_, md, &size) != 1 ||
      EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    OpenSslFailed("SHA-256 final");
  }
  return HexEncode(md, size);
}

absl::StatusOr<std::string> Sha256FileRange(int fd, uint64_t offset, uint64_t size,
                                            const std::string& what) {
  Sha256 hash;
  std::vector<char> buffer(1 << 20);
  uint64_t done = 0;
  while (done < size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - done));
    ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, what);
    if (n == 0) return absl::DataLossError(absl::StrCat(what, ": the file shrank while read"));
    hash.Update(absl::string_view(buffer.data(), static_cast<size_t>(n)));
    done += static_cast<uint64_t>(n);
  }
  return hash.FinalHex();
}

absl::StatusOr<std::string> Sha256File(const std::string& path, uint64_t* size) {
  SR_ASSIGN_OR_RETURN(int fd, OpenRegularFile(path, size));
  absl::StatusOr<std::string> hash = Sha256FileRange(fd, 0, *size, path);
  ::close(fd);
  return hash;
}

std::string UriEncode(absl::string_view s, bool encode_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (IsUnreserved(c) || (c == '/' && !encode_slash)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

absl::StatusOr<std::string> UriDecode(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    const int hi = i + 1 < s.size() ? HexValue(s[i + 1]) : -1;
    const int lo = i + 2 < s.size() ? HexValue(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed percent-escape at byte ", i, " (expected '%' and 2 hex digits)"));
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string FormatAmzDate(std::chrono::system_clock::time_point t) {
  const std::time_t seconds =
      std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(t));
  std::tm tm{};
  if (gmtime_r(&seconds, &tm) == nullptr) return "";
  const long long year = tm.tm_year + 1900LL;
  if (year < 1000 || year > 9999) return "";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04lld%02d%02dT%02d%02d%02dZ", year, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string DeriveSigningKey(absl::string_view secret_access_key, absl::string_view date,
                             absl::string_view region, absl::string_view service) {
  std::string key = HmacSha256(absl::StrCat("AWS4", secret_access_key), date);
  key = HmacSha256(key, region);
  key = HmacSha256(key, service);
  return HmacSha256(key, "aws4_request");
}

std::string CanonicalQueryString(const std::vector<QueryParam>& params) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(params.size());
  for (const QueryParam& p : params) {
    encoded.emplace_back(UriEncode(p.name, true), UriEncode(p.value, true));
  }
  std::sort(encoded.begin(), encoded.end());
  return absl::StrJoin(encoded, "&", absl::PairFormatter("="));
}

absl::StatusOr<SigV4Result> SignRequestHeaders(const AwsCredentials& credentials,
                                               const SigV4Options& options,
                                               const SigV4Request& request,
                                               std::chrono::system_clock::time_point now) {
  SR_ASSIGN_OR_RETURN(Scope s, Prepare(credentials, options, request, now));
  SR_RETURN_IF_ERROR(CheckQuery(request.query, /*presign=*/false));
  std::vector<absl::string_view> set_by_signer = {"authorization", "x-amz-date",
                                                  "x-amz-security-token"};
  if (options.add_content_sha256_header) set_by_signer.push_back("x-amz-content-sha256");
  SR_RETURN_IF_ERROR(CheckHeaders(request.headers, set_by_signer));

  const bool has_token = !credentials.session_token.empty();
  SigV4Result result;
  if (has_token) result.headers.push_back({"X-Amz-Security-Token", credentials.session_token});
  result.headers.push_back({"X-Amz-Date", s.amz_date});
  if (options.add_content_sha256_header) {
    result.headers.push_back({"x-amz-content-sha256", request.payload_hash});
  }
  std::vector<HttpHeader> to_sign = request.headers;
  for (const HttpHeader& h : result.headers) {
    if (has_token && !options.sign_session_token && h.name == "X-Amz-Security-Token") continue;
    to_sign.push_back(h);
  }
  const CanonicalHeaders headers = Canonicalize(to_sign);
  Sign(credentials, options, s, request, CanonicalQueryString(request.query), headers, &result);
  result.headers.push_back(
      {"Authorization",
       absl::StrCat(kAlgorithm, " Credential=", credentials.access_key_id, "/", s.scope,
                    ", SignedHeaders=", headers.signed_, ", Signature=", result.signature)});
  return result;
}

absl::StatusOr<SigV4Result> SignRequestQuery(const AwsCredentials& credentials,
                                             const SigV4Options& options,
                                             const SigV4Request& request,
                                             std::chrono::system_clock::time_point now,
                                             int64_t expires_seconds) {
  SR_ASSIGN_OR_RETURN(Scope s, Prepare(credentials, options, request, now));
  SR_RETURN_IF_ERROR(CheckQuery(request.query, /*presign=*/true));
  SR_RETURN_IF_ERROR(
      CheckHeaders(request.headers, {"authorization", "x-amz-date", "x-amz-security-token"}));
  if (expires_seconds < 1 || expires_seconds > kMaxExpiresSeconds) {
    return Invalid(
        absl::StrCat("expiry of ", expires_seconds, " s is outside 1..", kMaxExpiresSeconds, " s"));
  }
  const CanonicalHeaders headers = Canonicalize(request.headers);
  const bool has_token = !credentials.session_token.empty();

  SigV4Result result;
  result.query = {
      {"X-Amz-Algorithm", kAlgorithm},
      {"X-Amz-Credential", absl::StrCat(credentials.access_key_id, "/", s.scope)},
      {"X-Amz-Date", s.amz_date},
      {"X-Amz-SignedHeaders", headers.signed_},
      {"X-Amz-Expires", absl::StrCat(expires_seconds)},
  };
  if (has_token) result.query.push_back({"X-Amz-Security-Token", credentials.session_token});
  std::vector<QueryParam> to_sign = request.query;
  for (const QueryParam& p : result.query) {
    if (has_token && !options.sign_session_token && p.name == "X-Amz-Security-Token") continue;
    to_sign.push_back(p);
  }
  Sign(credentials, options, s, request, CanonicalQueryString(to_sign), headers, &result);
  result.query.push_back({"X-Amz-Signature", result.signature});
  return result;
}

absl::StatusOr<std::string> PresignUrl(const AwsCredentials& credentials,
                                       const SigV4Options& options, absl::string_view endpoint,
                                       const SigV4Request& request,
                                       std::chrono::system_clock::time_point now,
                                       int64_t expires_seconds) {
  absl::string_view host = endpoint;
  if (!absl::ConsumePrefix(&host, "https://") && !absl::ConsumePrefix(&host, "http://")) {
    return Invalid(
        absl::StrCat("endpoint ", Quote(endpoint), " does not start with https:// or http://"));
  }
  if (host.empty() || std::any_of(host.begin(), host.end(), [](unsigned char c) {
        return c <= 0x20 || c >= 0x7F || c == '/' || c == '?' || c == '#' || c == '@';
      })) {
    return Invalid(absl::StrCat("endpoint ", Quote(endpoint),
                                " is not scheme://host[:port] (no path, user or query)"));
  }
  for (const HttpHeader& h : request.headers) {
    if (absl::EqualsIgnoreCase(h.name, "host")) {
      return Invalid("PresignUrl takes the Host header from the endpoint; the request has one");
    }
  }
  SigV4Request with_host = request;
  with_host.headers.push_back({"Host", std::string(host)});
  SR_ASSIGN_OR_RETURN(SigV4Result signed_query,
                      SignRequestQuery(credentials, options, with_host, now, expires_seconds));
  std::vector<QueryParam> all = request.query;
  all.insert(all.end(), signed_query.query.begin(), signed_query.query.end());
  std::vector<std::string> params;
  for (const QueryParam& p : all) {
    params.push_back(absl::StrCat(UriEncode(p.name, true), "=", UriEncode(p.value, true)));
  }
  return absl::StrCat(endpoint, request.path, "?", absl::StrJoin(params, "&"));
}

namespace {

constexpr char kRedacted[] = "<redacted>";
constexpr size_t kRedactedSize = sizeof(kRedacted) - 1;

// The end of the value that starts at `from` (see RedactSigV4Secrets).
size_t ValueEnd(absl::string_view text, size_t from) {
  size_t end = from;
  while (end < text.size() && !absl::ascii_isspace(static_cast<unsigned char>(text[end])) &&
         absl::string_view(",&;\"'<>").find(text[end]) == absl::string_view::npos) {
    ++end;
  }
  return end;
}

// Replaces the value after every "...Signature" / "...Security-Token" key.
std::string RedactKeyValues(absl::string_view text) {
  static constexpr absl::string_view kKeys[] = {"signature", "security-token"};
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t key_len = 0;
    const bool boundary = i == 0 || !absl::ascii_isalnum(static_cast<unsigned char>(text[i - 1]));
    for (absl::string_view key : kKeys) {
      if (boundary && absl::StartsWithIgnoreCase(text.substr(i), key)) key_len = key.size();
    }
    if (key_len == 0) {
      out.push_back(text[i++]);
      continue;
    }
    size_t j = i + key_len;
    while (j < text.size() && text[j] == ' ') ++j;
    if (j >= text.size() || (text[j] != '=' && text[j] != ':')) {
      absl::StrAppend(&out, text.substr(i, key_len));
      i += key_len;
      continue;
    }
    ++j;
    while (j < text.size() && text[j] == ' ') ++j;
    size_t value_begin = j, value_end;
    if (j < text.size() && (text[j] == '"' || text[j] == '\'')) {
      value_begin = j + 1;
      value_end = text.find(text[j], value_begin);
      if (value_end == absl::string_view::npos) value_end = text.size();
    } else {
      value_end = ValueEnd(text, j);
    }
    absl::StrAppend(&out, text.substr(i, value_begin - i));
    if (value_end > value_begin) absl::StrAppend(&out, kRedacted);
    i = value_end;
  }
  return out;
}

}  // namespace

std::string RedactSigV4Secrets(absl::string_view text, const AwsCredentials& credentials) {
  std::string out(text);
  for (const std::string* secret : {&credentials.secret_access_key, &credentials.session_token}) {
    if (secret->size() < 4) continue;
    for (size_t p = out.find(*secret); p != std::string::npos;
         p = out.find(*secret, p + kRedactedSize)) {
      out.replace(p, secret->size(), kRedacted);
    }
  }
  for (absl::string_view tag : {"SignatureProvided", "StringToSign", "StringToSignBytes",
                                "CanonicalRequest", "CanonicalRequestBytes", "Token-0"}) {
    const std::string open = absl::StrCat("<", tag, ">");
    const std::string close = absl::StrCat("</", tag, ">");
    for (size_t a = out.find(open); a != std::string::npos; a = out.find(open, a)) {
      a += open.size();
      size_t b = out.find(close, a);
      if (b == std::string::npos) b = out.size();  // cut short: all the rest
      out.replace(a, b - a, kRedacted);
      a += kRedactedSize;
    }
  }
  return RedactKeyValues(out);
}

}  // namespace signround
