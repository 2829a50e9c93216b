// AWS Signature Version 4 (AWS4-HMAC-SHA256) for S3 and S3-compatible servers:
// canonical request, string to sign, signing key and signature, sent either as
// headers (Authorization) or as query parameters (presigned URLs).
//
// Secrets: the secret key never leaves this module; the session token and the
// signature do (they are sent), and so does the canonical request, which holds
// the token when it is signed. Never log them. Error messages hold no secret.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/storage/credentials.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace signround {

// The payload hash of a body that is not signed (S3 allows it over TLS and for
// presigned URLs).
inline constexpr char kUnsignedPayload[] = "UNSIGNED-PAYLOAD";
// SHA-256 of the empty string: the payload hash of a request without a body.
inline constexpr char kEmptyPayloadSha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// SHA-256 of `data` as 64 lowercase hex digits.
std::string Sha256Hex(absl::string_view data);

// SHA-256 (hex) of `size` bytes of the open file `fd` from `offset`; errors name `what`.
absl::StatusOr<std::string> Sha256FileRange(int fd, uint64_t offset, uint64_t size,
                                            const std::string& what);

// SHA-256 (hex) of a whole regular file; `size` receives its byte count.
absl::StatusOr<std::string> Sha256File(const std::string& path, uint64_t* size);

// Incremental SHA-256, to hash a file part without holding it in memory.
// (OpenSSL fails here only when out of memory; that aborts the process.)
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  // The digest of everything passed to Update as lowercase hex; the hasher is
  // then reset, ready for the next input.
  std::string FinalHex();

 private:
  evp_md_ctx_st* ctx_;
};

// The SigV4 URI-encode: every byte except the unreserved A-Z a-z 0-9 - . _ ~
// (and '/' when !encode_slash) becomes %XY with uppercase hex. Object keys in
// a path: UriEncode(key, false); query names and values: UriEncode(s, true).
std::string UriEncode(absl::string_view s, bool encode_slash);

// Decodes %XY escapes (either case); '+' stays '+'. INVALID_ARGUMENT naming
// the offset of a malformed escape (the input is not echoed).
absl::StatusOr<std::string> UriDecode(absl::string_view s);

// The SigV4 timestamp "20150830T123600Z" (UTC, truncated to the second), or
// "" when `t` is outside years 1000..9999.
std::string FormatAmzDate(std::chrono::system_clock::time_point t);

// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
// "aws4_request") as 32 raw bytes; `date` is "YYYYMMDD". A secret: never log it.
std::string DeriveSigningKey(absl::string_view secret_access_key, absl::string_view date,
                             absl::string_view region, absl::string_view service);

struct HttpHeader {
  std::string name;
  std::string value;
};

// One query parameter, decoded (the signer encodes it).
struct QueryParam {
  std::string name;
  std::string value;
};

// The canonical query string: names and values URI-encoded, sorted by name then
// value, joined by '&' ("a=1&b=" for {b, ""}, {a, "1"}). S3 accepts it as the
// query sent on the wire too.
std::string CanonicalQueryString(const std::vector<QueryParam>& params);

// How to sign. The defaults are S3's rules.
struct SigV4Options {
  std::string region;  // "us-east-1"; Swift s3api: its configured location
  std::string service = "s3";
  // false (S3): the path as sent, already URI-encoded once, is the canonical
  // URI, and must be in canonical form (UriEncode of its decoded self). true
  // (other AWS services, the generic test suite): it is URI-encoded again.
  bool double_encode_path = false;
  // Remove "." and ".." segments and merge repeated slashes before encoding.
  // Never for S3, where "a//b" and "a/../b" are keys of their own.
  bool normalize_path = false;
  // Header signing: send and sign x-amz-content-sha256 (S3 requires it).
  bool add_content_sha256_header = true;
  // Sign X-Amz-Security-Token when the credentials carry a session token
  // (S3 requires it); false sends it unsigned (for services that want that).
  bool sign_session_token = true;
};

// The request to sign, as the HTTP client will send it.
struct SigV4Request {
  std::string method;  // "GET", "PUT", ...
  // The path as sent: starts with '/', percent-encoded (for S3, "/" + bucket +
  // "/" + UriEncode(key, false)), without query.
  std::string path = "/";
  std::vector<QueryParam> query;  // any order
  // Every header to sign; Host is required. Headers the HTTP client adds later
  // (User-Agent, Expect, ...) stay unsigned, which SigV4 allows. Headers the
  // signer sets (Authorization, X-Amz-Date, X-Amz-Security-Token, and
  // x-amz-content-sha256 when it adds it) are refused here.
  std::vector<HttpHeader> headers;
  // Sha256Hex(body), kUnsignedPayload, or a STREAMING-* value (chunked upload).
  std::string payload_hash = kEmptyPayloadSha256;
};

struct SigV4Result {
  // Header signing: the headers to add, in this order: X-Amz-Security-Token
  // (when there is a token), X-Amz-Date, x-amz-content-sha256 (when asked),
  // Authorization. Query signing: empty.
  std::vector<HttpHeader> headers;
  // Query signing: the parameters to append to the request's query, in this
  // order (decoded; encode with UriEncode(s, true)): X-Amz-Algorithm,
  // X-Amz-Credential, X-Amz-Date, X-Amz-SignedHeaders, X-Amz-Expires,
  // X-Amz-Security-Token (when there is a token), X-Amz-Signature. Header
  // signing: empty.
  std::vector<QueryParam> query;
  // The intermediate values, to compare with a server's SignatureDoesNotMatch
  // report. Never log them (see the top of this file).
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;  // 64 hex digits
};

// Signs `request` with an Authorization header. INVALID_ARGUMENT for an
// invalid request, options, credentials or time, naming what is wrong.
absl::StatusOr<SigV4Result> SignRequestHeaders(const AwsCredentials& credentials,
                                               const SigV4Options& options,
                                               const SigV4Request& request,
                                               std::chrono::system_clock::time_point now);

// Signs `request` with query parameters valid for `expires_seconds` (1 to
// 604800, S3's limit) from `now`. The query must not already hold X-Amz-*
// authentication parameters.
absl::StatusOr<SigV4Result> SignRequestQuery(const AwsCredentials& credentials,
                                             const SigV4Options& options,
                                             const SigV4Request& request,
                                             std::chrono::system_clock::time_point now,
                                             int64_t expires_seconds);

// A presigned URL: `endpoint` ("https://host[:port]", no path, written as the
// HTTP client will send Host: without a default port), then the request path,
// its query and the authentication parameters. `request` must have no Host
// header: it is the endpoint's host[:port].
absl::StatusOr<std::string> PresignUrl(const AwsCredentials& credentials,
                                       const SigV4Options& options, absl::string_view endpoint,
                                       const SigV4Request& request,
                                       std::chrono::system_clock::time_point now,
                                       int64_t expires_seconds);

// `text` (a message from a server, a log line) with SigV4 secrets replaced by
// "<redacted>": the secret access key and the session token of `credentials`
// wherever they occur (when at least 4 bytes long: a shorter one would mangle
// any text); the value after a "Signature" or "Security-Token" key
// ("Signature=..." of an Authorization header, "X-Amz-Signature=..." and
// "X-Amz-Security-Token=..." of a presigned URL, "x-amz-security-token:..." of
// a canonical request; keys case-insensitive, '=' or ':') up to whitespace or
// one of , & ; " ' < > (or the closing quote of a quoted value); and the text
// of the elements S3 error bodies quote a request's signing material or token
// in (<SignatureProvided>, <StringToSign>, <StringToSignBytes>,
// <CanonicalRequest>, <CanonicalRequestBytes>, <Token-0>). Everything else is
// kept as it is.
std::string RedactSigV4Secrets(absl::string_view text, const AwsCredentials& credentials = {});

}  // namespace signround
