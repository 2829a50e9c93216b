#include "src/storage/sigv4.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "src/common/file_util.h"
#include "src/common/json_util.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

Clock::time_point Utc(int year, int month, int day, int hour, int minute, int second) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return Clock::from_time_t(timegm(&tm));
}

std::string Hex(absl::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) absl::StrAppend(&out, absl::Hex(c, absl::kZeroPad2));
  return out;
}

// ---------------------------------------------------------------------------
// The AWS SigV4 test suite (awslabs/aws-c-auth, tests/aws-signing-test-suite/v4).

// A raw HTTP request as written in request.txt.
struct RawRequest {
  std::string method, target, version;
  std::vector<std::string> header_lines;  // as in the file, continuation lines included
  std::vector<HttpHeader> headers;        // obs-fold (a continuation line) becomes a space
  std::string body;
};

RawRequest ParseRawRequest(absl::string_view text) {
  RawRequest r;
  absl::string_view head = text;
  const size_t blank = text.find("\n\n");
  if (blank != absl::string_view::npos) {
    head = text.substr(0, blank);
    r.body = std::string(text.substr(blank + 2));
  } else {
    absl::ConsumeSuffix(&head, "\n");
  }
  std::vector<absl::string_view> lines = absl::StrSplit(head, '\n');
  // The target may hold spaces ("GET /example space/ HTTP/1.1").
  const absl::string_view request_line = lines[0];
  const size_t first = request_line.find(' ');
  const size_t last = request_line.rfind(' ');
  EXPECT_NE(first, last) << request_line;
  r.method = std::string(request_line.substr(0, first));
  r.target = std::string(request_line.substr(first + 1, last - first - 1));
  r.version = std::string(request_line.substr(last + 1));
  for (size_t i = 1; i < lines.size(); ++i) {
    r.header_lines.emplace_back(lines[i]);
    if (lines[i][0] == ' ' || lines[i][0] == '\t') {
      EXPECT_FALSE(r.headers.empty());
      absl::StrAppend(&r.headers.back().value, " ", lines[i]);
      continue;
    }
    const size_t colon = lines[i].find(':');
    EXPECT_NE(colon, absl::string_view::npos) << lines[i];
    r.headers.push_back(
        {std::string(lines[i].substr(0, colon)), std::string(lines[i].substr(colon + 1))});
  }
  return r;
}

// The SigV4Request for a raw request: the target split into path and decoded
// query parameters.
SigV4Request ToSigV4Request(const RawRequest& raw) {
  SigV4Request request;
  request.method = raw.method;
  const size_t question = raw.target.find('?');
  request.path = raw.target.substr(0, question);
  if (question != std::string::npos) {
    for (absl::string_view param : absl::StrSplit(raw.target.substr(question + 1), '&')) {
      const size_t eq = param.find('=');
      absl::StatusOr<std::string> name = UriDecode(param.substr(0, eq));
      absl::StatusOr<std::string> value =
          UriDecode(eq == absl::string_view::npos ? "" : param.substr(eq + 1));
      EXPECT_TRUE(name.ok() && value.ok()) << param;
      request.query.push_back({name.value_or(""), value.value_or("")});
    }
  }
  request.headers = raw.headers;
  request.payload_hash = Sha256Hex(raw.body);
  return request;
}

struct SuiteContext {
  AwsCredentials credentials;
  SigV4Options options;
  Clock::time_point now;
  int64_t expires_seconds = 0;
};

SuiteContext ParseContext(const std::string& path) {
  SuiteContext c;
  absl::StatusOr<std::string> text = ReadFileToString(path, 1 << 20);
  EXPECT_TRUE(text.ok()) << text.status();
  absl::StatusOr<nlohmann::json> json = ParseJsonObject(text.value_or("{}"), path);
  EXPECT_TRUE(json.ok()) << json.status();
  if (!json.ok()) return c;
  JsonFields fields(*json, path);
  const nlohmann::json* credentials = fields.Get("credentials");
  EXPECT_NE(credentials, nullptr);
  if (credentials == nullptr) return c;
  JsonFields creds(*credentials, path + ": credentials");
  c.credentials.access_key_id = creds.String("access_key_id").value();
  c.credentials.secret_access_key = creds.String("secret_access_key").value();
  c.credentials.session_token = creds.OptionalString("token").value().value_or("");
  c.options.region = fields.String("region").value();
  c.options.service = fields.String("service").value();
  c.options.double_encode_path = true;  // every service but S3
  c.options.normalize_path = fields.OptionalBool("normalize").value().value_or(true);
  c.options.add_content_sha256_header = fields.OptionalBool("sign_body").value().value_or(false);
  c.options.sign_session_token = !fields.OptionalBool("omit_session_token").value().value_or(false);
  c.expires_seconds = fields.Int("expiration_in_seconds").value();
  const std::string timestamp = fields.String("timestamp").value();
  int y, mo, d, h, mi, s;
  EXPECT_EQ(std::sscanf(timestamp.c_str(), "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &s), 6);
  c.now = Utc(y, mo, d, h, mi, s);
  return c;
}

std::string SuiteDir() {
  const std::string shared = testing::SharedDir();
  return shared.empty() ? "" : shared + "/testdata/aws-sigv4";
}

std::vector<std::string> SuiteCases(const std::string& dir) {
  std::vector<std::string> cases;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (e.is_directory() && fs::exists(e.path() / "context.json")) {
      cases.push_back(e.path().filename().string());
    }
  }
  std::sort(cases.begin(), cases.end());
  return cases;
}

std::string Read(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path, 1 << 20);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.value_or("");
}

TEST(AwsSigV4Suite, HasEveryCase) {
  const std::string dir = SuiteDir();
  if (dir.empty()) GTEST_SKIP() << "no ../shared directory";
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  EXPECT_EQ(SuiteCases(dir).size(), 38u) << "the suite changed: update this count";
}

TEST(AwsSigV4Suite, HeaderSigning) {
  const std::string dir = SuiteDir();
  if (dir.empty()) GTEST_SKIP() << "no ../shared directory";
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  for (const std::string& name : SuiteCases(dir)) {
    SCOPED_TRACE(name);
    const std::string base = dir + "/" + name + "/";
    const SuiteContext context = ParseContext(base + "context.json");
    const RawRequest raw = ParseRawRequest(Read(base + "request.txt"));
    absl::StatusOr<SigV4Result> result =
        SignRequestHeaders(context.credentials, context.options, ToSigV4Request(raw), context.now);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->canonical_request, Read(base + "header-canonical-request.txt"));
    EXPECT_EQ(result->string_to_sign, Read(base + "header-string-to-sign.txt"));
    EXPECT_EQ(result->signature, Read(base + "header-signature.txt"));
    EXPECT_TRUE(result->query.empty());
    std::string signed_request = absl::StrCat(raw.method, " ", raw.target, " ", raw.version, "\n");
    for (const std::string& line : raw.header_lines) absl::StrAppend(&signed_request, line, "\n");
    for (const HttpHeader& h : result->headers) {
      absl::StrAppend(&signed_request, h.name, ":", h.value, "\n");
    }
    absl::StrAppend(&signed_request, "\n", raw.body);
    EXPECT_EQ(signed_request, Read(base + "header-signed-request.txt"));
  }
}

TEST(AwsSigV4Suite, QuerySigning) {
  const std::string dir = SuiteDir();
  if (dir.empty()) GTEST_SKIP() << "no ../shared directory";
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  for (const std::string& name : SuiteCases(dir)) {
    SCOPED_TRACE(name);
    const std::string base = dir + "/" + name + "/";
    const SuiteContext context = ParseContext(base + "context.json");
    const RawRequest raw = ParseRawRequest(Read(base + "request.txt"));
    absl::StatusOr<SigV4Result> result =
        SignRequestQuery(context.credentials, context.options, ToSigV4Request(raw), context.now,
                         context.expires_seconds);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->canonical_request, Read(base + "query-canonical-request.txt"));
    EXPECT_EQ(result->string_to_sign, Read(base + "query-string-to-sign.txt"));
    EXPECT_EQ(result->signature, Read(base + "query-signature.txt"));
    EXPECT_TRUE(result->headers.empty());
    std::vector<std::string> params;
    for (const QueryParam& p : result->query) {
      params.push_back(absl::StrCat(UriEncode(p.name, true), "=", UriEncode(p.value, true)));
    }
    std::string signed_request =
        absl::StrCat(raw.method, " ", raw.target, absl::StrContains(raw.target, "?") ? "&" : "?",
                     absl::StrJoin(params, "&"), " ", raw.version, "\n");
    for (const std::string& line : raw.header_lines) absl::StrAppend(&signed_request, line, "\n");
    absl::StrAppend(&signed_request, "\n", raw.body);
    EXPECT_EQ(signed_request, Read(base + "query-signed-request.txt"));
  }
}

// ---------------------------------------------------------------------------
// S3: the worked examples of the AWS S3 API reference ("Signature Calculations
// for the Authorization Header: Transferring Payload in a Single Chunk" and
// "Authenticating Requests: Using Query Parameters"), with their published
// canonical requests, strings to sign and signatures.

const AwsCredentials kS3Example = {"AKIAIOSFODNN7EXAMPLE",
                                   "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
constexpr char kExampleHost[] = "examplebucket.s3.amazonaws.com";

SigV4Options S3Options() {
  SigV4Options options;
  options.region = "us-east-1";
  return options;
}

Clock::time_point S3ExampleTime() { return Utc(2013, 5, 24, 0, 0, 0); }

TEST(SigV4S3Examples, GetObject) {
  SigV4Request request;
  request.method = "GET";
  request.path = "/test.txt";
  request.headers = {{"Host", kExampleHost}, {"Range", "bytes=0-9"}};
  absl::StatusOr<SigV4Result> r =
      SignRequestHeaders(kS3Example, S3Options(), request, S3ExampleTime());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(
      r->canonical_request,
      "GET\n/test.txt\n\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "range:bytes=0-9\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n\n"
      "host;range;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(r->string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(r->signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  ASSERT_EQ(r->headers.size(), 3u);
  EXPECT_EQ(r->headers[0].name, "X-Amz-Date");
  EXPECT_EQ(r->headers[0].value, "20130524T000000Z");
  EXPECT_EQ(r->headers[1].name, "x-amz-content-sha256");
  EXPECT_EQ(r->headers[1].value, kEmptyPayloadSha256);
  EXPECT_EQ(r->headers[2].name, "Authorization");
  EXPECT_EQ(r->headers[2].value,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4S3Examples, PutObjectKeyIsEncodedOnce) {
  const std::string body = "Welcome to Amazon S3.";
  SigV4Request request;
  request.method = "PUT";
  request.path = "/" + UriEncode("test$file.text", false);
  EXPECT_EQ(request.path, "/test%24file.text");
  request.headers = {{"Host", kExampleHost},
                     {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                     {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  request.payload_hash = Sha256Hex(body);
  EXPECT_EQ(request.payload_hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  absl::StatusOr<SigV4Result> r =
      SignRequestHeaders(kS3Example, S3Options(), request, S3ExampleTime());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(
      r->canonical_request,
      "PUT\n/test%24file.text\n\n"
      "date:Fri, 24 May 2013 00:00:00 GMT\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
      "x-amz-date:20130524T000000Z\n"
      "x-amz-storage-class:REDUCED_REDUNDANCY\n\n"
      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
      "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(r->string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  EXPECT_EQ(r->signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");

  // The same path under the generic rules is encoded a second time.
  SigV4Options generic = S3Options();
  generic.double_encode_path = true;
  r = SignRequestHeaders(kS3Example, generic, request, S3ExampleTime());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(absl::StartsWith(r->canonical_request, "PUT\n/test%2524file.text\n"));
}

TEST(SigV4S3Examples, BucketSubresourceAndListQueries) {
  SigV4Request request;
  request.method = "GET";
  request.path = "/";
  request.headers = {{"Host", kExampleHost}};
  request.query = {{"lifecycle", ""}};
  absl::StatusOr<SigV4Result> r =
      SignRequestHeaders(kS3Example, S3Options(), request, S3ExampleTime());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(absl::StartsWith(r->canonical_request, "GET\n/\nlifecycle=\n"));
  EXPECT_EQ(r->signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");

  request.query = {{"prefix", "J"}, {"max-keys", "2"}};  // unsorted on purpose
  r = SignRequestHeaders(kS3Example, S3Options(), request, S3ExampleTime());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(absl::StartsWith(r->canonical_request, "GET\n/\nmax-keys=2&prefix=J\n"));
  EXPECT_EQ(r->signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4S3Examples, PresignedGetObject) {
  SigV4Request request;
  request.method = "GET";
  request.path = "/test.txt";
  request.headers = {{"Host", kExampleHost}};
  request.payload_hash = kUnsignedPayload;
  absl::StatusOr<SigV4Result> r =
      SignRequestQuery(kS3Example, S3Options(), request, S3ExampleTime(), 86400);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->canonical_request,
            "GET\n/test.txt\n"
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
            "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"
            "X-Amz-SignedHeaders=host\n"
            "host:examplebucket.s3.amazonaws.com\n\n"
            "host\n"
            "UNSIGNED-PAYLOAD");
  EXPECT_EQ(r->string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04");
  EXPECT_EQ(r->signature, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");

  request.headers.clear();
  absl::StatusOr<std::string> url =
      PresignUrl(kS3Example, S3Options(), "https://examplebucket.s3.amazonaws.com", request,
                 S3ExampleTime(), 86400);
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(*url,
            "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
            "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&"
            "X-Amz-Date=20130524T000000Z&X-Amz-SignedHeaders=host&X-Amz-Expires=86400&"
            "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

// The published derivation example of the AWS General Reference.
TEST(SigV4, DeriveSigningKey) {
  EXPECT_EQ(Hex(DeriveSigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215",
                                 "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

// S3 keys are not paths: "//", "." and ".." are signed as sent.
TEST(SigV4, S3PathIsNotNormalized) {
  SigV4Request request;
  request.method = "GET";
  request.path = "/bucket/a//b/../c/./d%20e";
  request.headers = {{"Host", "s3.example.com"}};
  absl::StatusOr<SigV4Result> r =
      SignRequestHeaders(kS3Example, S3Options(), request, S3ExampleTime());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(absl::StartsWith(r->canonical_request, "GET\n/bucket/a//b/../c/./d%20e\n\n"))
      << r->canonical_request;

  SigV4Options generic = S3Options();
  generic.double_encode_path = true;
  generic.normalize_path = true;
  r = SignRequestHeaders(kS3Example, generic, request, S3ExampleTime());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(absl::StartsWith(r->canonical_request, "GET\n/bucket/a/c/d%2520e\n\n"))
      << r->canonical_request;
}

TEST(SigV4, S3PathMustBeEncodedOnce) {
  SigV4Request request;
  request.method = "GET";
  request.headers = {{"Host", "s3.example.com"}};
  for (const char* path : {"/a b", "/a%2fb", "/a%2Fb", "/%41", "/a%zz", "/a%2", "/caf\xc3\xa9"}) {
    request.path = path;
    absl::StatusOr<SigV4Result> r =
        SignRequestHeaders(kS3Example, S3Options(), request, S3ExampleTime());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << path;
  }
  request.path = "/a b";
  EXPECT_EQ(
      SignRequestHeaders(kS3Example, S3Options(), request, S3ExampleTime()).status().message(),
      "SigV4: request path '/a b' is not URI-encoded the way S3 expects: that is '/a%20b' "
      "(encode keys with UriEncode(key, false))");
  request.path = "/" + UriEncode("caf\xc3\xa9 (1)+~.txt", false);
  EXPECT_EQ(request.path, "/caf%C3%A9%20%281%29%2B~.txt");
  EXPECT_TRUE(SignRequestHeaders(kS3Example, S3Options(), request, S3ExampleTime()).ok());
}

TEST(SigV4, UnsignedPayloadHeader) {
  SigV4Request request;
  request.method = "PUT";
  request.path = "/bucket/key";
  request.headers = {{"Host", "s3.example.com"}, {"Content-Length", "5"}};
  request.payload_hash = kUnsignedPayload;
  absl::StatusOr<SigV4Result> r =
      SignRequestHeaders(kS3Example, S3Options(), request, S3ExampleTime());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->canonical_request,
            "PUT\n/bucket/key\n\n"
            "content-length:5\nhost:s3.example.com\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n"
            "x-amz-date:20130524T000000Z\n\n"
            "content-length;host;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD");
  EXPECT_EQ(r->headers[1].name, "x-amz-content-sha256");
  EXPECT_EQ(r->headers[1].value, "UNSIGNED-PAYLOAD");
}

TEST(SigV4, SessionTokenIsSentAndSigned) {
  AwsCredentials credentials = kS3Example;
  credentials.session_token = "FQoGZXIvYXdzEXAMPLE/token+==";
  SigV4Request request;
  request.method = "GET";
  request.path = "/b/k";
  request.headers = {{"Host", "s3.example.com"}};
  absl::StatusOr<SigV4Result> r =
      SignRequestHeaders(credentials, S3Options(), request, S3ExampleTime());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->headers[0].name, "X-Amz-Security-Token");
  EXPECT_EQ(r->headers[0].value, credentials.session_token);
  EXPECT_TRUE(absl::StrContains(r->canonical_request,
                                "\nx-amz-security-token:FQoGZXIvYXdzEXAMPLE/token+==\n"));
  EXPECT_TRUE(absl::StrContains(r->headers.back().value,
                                "SignedHeaders=host;x-amz-content-sha256;x-amz-date;"
                                "x-amz-security-token, "));

  absl::StatusOr<std::string> url =
      PresignUrl(credentials, S3Options(), "http://127.0.0.1:8080",
                 SigV4Request{"GET", "/b/k", {}, {}, kUnsignedPayload}, S3ExampleTime(), 60);
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_TRUE(absl::StartsWith(url.value(), "http://127.0.0.1:8080/b/k?X-Amz-Algorithm="));
  EXPECT_TRUE(absl::StrContains(
      url.value(),
      "&X-Amz-Expires=60&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLE%2Ftoken%2B%3D%3D&"
      "X-Amz-Signature="));
}

TEST(SigV4, PresignKeepsTheCallersQuery) {
  SigV4Request request{
      "PUT", "/b/big.bin", {{"uploadId", "a/b c"}, {"partNumber", "3"}}, {}, kUnsignedPayload};
  absl::StatusOr<std::string> url =
      PresignUrl(kS3Example, S3Options(), "https://s3.example.com", request, S3ExampleTime(), 3600);
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_TRUE(absl::StartsWith(
      *url, "https://s3.example.com/b/big.bin?uploadId=a%2Fb%20c&partNumber=3&X-Amz-Algorithm="))
      << *url;
}

TEST(SigV4, Sha256) {
  EXPECT_EQ(Sha256Hex(""), kEmptyPayloadSha256);
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string big;
  for (int i = 0; i < (1 << 20) + 77; ++i) big += static_cast<char>(i * 7 + (i >> 9));
  Sha256 streaming;
  for (size_t pos = 0, step = 1; pos < big.size(); pos += step, step = step * 3 + 1) {
    streaming.Update(absl::string_view(big).substr(pos, step));
  }
  EXPECT_EQ(streaming.FinalHex(), Sha256Hex(big));
  streaming.Update("abc");  // reset after FinalHex
  EXPECT_EQ(streaming.FinalHex(), Sha256Hex("abc"));
  EXPECT_EQ(streaming.FinalHex(), kEmptyPayloadSha256);
}

TEST(SigV4, UriEncodeAndDecode) {
  EXPECT_EQ(UriEncode("AZaz09-._~", true), "AZaz09-._~");
  EXPECT_EQ(UriEncode("a/b c+d=e&f%", true), "a%2Fb%20c%2Bd%3De%26f%25");
  EXPECT_EQ(UriEncode("a/b c", false), "a/b%20c");
  EXPECT_EQ(UriEncode(std::string("\x00\xff", 2), true), "%00%FF");
  EXPECT_EQ(UriDecode("a%2Fb%2fc+d").value(), "a/b/c+d");
  EXPECT_EQ(UriDecode("%E1%88%B4").value(), "\xe1\x88\xb4");
  for (const char* bad : {"%", "%4", "%g0", "a%0g"}) {
    EXPECT_EQ(UriDecode(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(UriDecode("ab%4").status().message(),
            "malformed percent-escape at byte 2 (expected '%' and 2 hex digits)");
}

TEST(SigV4, CanonicalQueryString) {
  EXPECT_EQ(CanonicalQueryString({}), "");
  // By name, then by value; "Param" before "Param-3" although '-' < '='.
  EXPECT_EQ(CanonicalQueryString({{"Param-3", "3"}, {"b", "2"}, {"Param", "z"}, {"b", "1"}}),
            "Param=z&Param-3=3&b=1&b=2");
  EXPECT_EQ(CanonicalQueryString({{"prefix", "a b/c+"}, {"delimiter", "/"}, {"empty", ""}}),
            "delimiter=%2F&empty=&prefix=a%20b%2Fc%2B");
}

TEST(SigV4, FormatAmzDate) {
  EXPECT_EQ(FormatAmzDate(Utc(2015, 8, 30, 12, 36, 0) + std::chrono::milliseconds(999)),
            "20150830T123600Z");
  EXPECT_EQ(FormatAmzDate(Utc(2000, 1, 2, 3, 4, 5)), "20000102T030405Z");
  EXPECT_EQ(FormatAmzDate(Utc(2262, 4, 11, 23, 47, 16)), "22620411T234716Z");
  EXPECT_EQ(FormatAmzDate(Utc(1970, 1, 1, 0, 0, 0) - std::chrono::seconds(1)), "19691231T235959Z");
}

TEST(SigV4, HeaderValuesAreTrimmedCollapsedAndJoined) {
  SigV4Request request;
  request.method = "GET";
  request.path = "/";
  request.headers = {{"Host", "h"}, {"X-Meta", "  a \t  b  "}, {"x-meta", "c"}, {"X-Empty", ""}};
  SigV4Options options = S3Options();
  options.add_content_sha256_header = false;
  absl::StatusOr<SigV4Result> r = SignRequestHeaders(kS3Example, options, request, S3ExampleTime());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->canonical_request,
            absl::StrCat("GET\n/\n\nhost:h\nx-amz-date:20130524T000000Z\nx-empty:\nx-meta:a b,c\n\n"
                         "host;x-amz-date;x-empty;x-meta\n",
                         kEmptyPayloadSha256));
}

// Every invalid input is INVALID_ARGUMENT, and no message holds a secret.
TEST(SigV4, InvalidInputsAndSecretsStayOut) {
  const std::string secret = "SECRETsecretSECRET0123456789abcdefghijkl";
  const std::string token = "TOKENtokenTOKEN0123456789";
  const AwsCredentials credentials = {"AKIDEXAMPLE", secret, token};
  const SigV4Request good{"GET", "/b/k", {}, {{"Host", "h"}}, kEmptyPayloadSha256};
  ASSERT_TRUE(SignRequestHeaders(credentials, S3Options(), good, S3ExampleTime()).ok());

  struct Case {
    const char* what;
    std::function<void(AwsCredentials&, SigV4Options&, SigV4Request&)> change;
    const char* message;  // a fragment of the expected message
  };
  const std::vector<Case> cases = {
      {"no host", [](auto&, auto&, auto& q) { q.headers.clear(); }, "Host header is missing"},
      {"two hosts",
       [](auto&, auto&, auto& q) {
         q.headers.push_back({"host", "h2"});
       },
       "more than one Host"},
      {"bad header name",
       [](auto&, auto&, auto& q) {
         q.headers.push_back({"Bad Name", "v"});
       },
       "header name 'Bad Name' is not an HTTP token"},
      {"CRLF in a value",
       [&](auto&, auto&, auto& q) {
         q.headers.push_back({"X-A", secret + "\r\nX-B: " + token});
       },
       "header 'X-A' has a control character"},
      {"caller's token header",
       [&](auto&, auto&, auto& q) {
         q.headers.push_back({"X-Amz-Security-Token", token});
       },
       "header 'X-Amz-Security-Token' is set by the signer"},
      {"caller's Authorization",
       [&](auto&, auto&, auto& q) {
         q.headers.push_back({"authorization", secret});
       },
       "is set by the signer"},
      {"caller's content hash",
       [](auto&, auto&, auto& q) {
         q.headers.push_back({"X-Amz-Content-SHA256", "x"});
       },
       "is set by the signer"},
      {"bad method", [](auto&, auto&, auto& q) { q.method = "GE T"; }, "method 'GE T'"},
      {"empty method", [](auto&, auto&, auto& q) { q.method = ""; }, "method ''"},
      {"relative path", [](auto&, auto&, auto& q) { q.path = "b/k"; }, "does not start with '/'"},
      {"query in path", [](auto&, auto&, auto& q) { q.path = "/b/k?x=1"; }, "holds '?'"},
      {"control in path", [](auto&, auto&, auto& q) { q.path = "/b/\n"; }, "control character"},
      {"payload hash", [](auto&, auto&, auto& q) { q.payload_hash = "E3B0"; }, "payload hash"},
      {"empty query name",
       [](auto&, auto&, auto& q) {
         q.query.push_back({"", "v"});
       },
       "empty name"},
      {"no region", [](auto&, auto& o, auto&) { o.region = ""; }, "region is empty"},
      {"slash in region", [](auto&, auto& o, auto&) { o.region = "us/east"; }, "region 'us/east'"},
      {"space in service", [](auto&, auto& o, auto&) { o.service = "s 3"; }, "service 's 3'"},
      {"no access key", [](auto& c, auto&, auto&) { c.access_key_id = ""; },
       "access key id is empty"},
      {"slash in access key", [](auto& c, auto&, auto&) { c.access_key_id = "A/B"; },
       "access key id contains '/'"},
      {"no secret", [](auto& c, auto&, auto&) { c.secret_access_key = ""; },
       "secret access key is empty"},
      {"space in secret", [&](auto& c, auto&, auto&) { c.secret_access_key = secret + " x"; },
       "secret access key contains whitespace"},
      {"newline in token", [&](auto& c, auto&, auto&) { c.session_token = token + "\n"; },
       "session token contains whitespace"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    AwsCredentials creds = credentials;
    SigV4Options options = S3Options();
    SigV4Request request = good;
    c.change(creds, options, request);
    for (const absl::Status& status :
         {SignRequestHeaders(creds, options, request, S3ExampleTime()).status(),
          SignRequestQuery(creds, options, request, S3ExampleTime(), 60).status()}) {
      if (absl::StrContains(c.what, "content hash") && status.ok()) continue;  // query: fine
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_TRUE(absl::StartsWith(status.message(), "SigV4: ")) << status.message();
      EXPECT_TRUE(absl::StrContains(status.message(), c.message)) << status.message();
      EXPECT_FALSE(absl::StrContains(status.message(), secret.substr(0, 12))) << status.message();
      EXPECT_FALSE(absl::StrContains(status.message(), token.substr(0, 12))) << status.message();
    }
  }

  // Query signing only.
  for (int64_t expires : {0, -1, 604801}) {
    EXPECT_EQ(SignRequestQuery(credentials, S3Options(), good, S3ExampleTime(), expires)
                  .status()
                  .message(),
              absl::StrCat("SigV4: expiry of ", expires, " s is outside 1..604800 s"));
  }
  EXPECT_TRUE(SignRequestQuery(credentials, S3Options(), good, S3ExampleTime(), 604800).ok());
  SigV4Request presigned = good;
  presigned.query.push_back({"x-amz-signature", "abc"});
  EXPECT_EQ(
      SignRequestQuery(credentials, S3Options(), presigned, S3ExampleTime(), 60).status().message(),
      "SigV4: query parameter 'x-amz-signature' is set by the signer");

  // PresignUrl: the endpoint gives Host.
  SigV4Request no_host = good;
  no_host.headers.clear();
  for (const char* endpoint : {"s3.example.com", "ftp://h", "https://", "https://h/path",
                               "https://user@h", "https://h?x", "https://h h"}) {
    EXPECT_EQ(PresignUrl(credentials, S3Options(), endpoint, no_host, S3ExampleTime(), 60)
                  .status()
                  .code(),
              absl::StatusCode::kInvalidArgument)
        << endpoint;
  }
  EXPECT_EQ(PresignUrl(credentials, S3Options(), "https://h", good, S3ExampleTime(), 60)
                .status()
                .message(),
            "SigV4: PresignUrl takes the Host header from the endpoint; the request has one");
}

// What a server may quote back (an Authorization header, a presigned URL, the canonical
// request with the token, Swift's and AWS's error-body elements) loses its signatures, token
// and secret; plain text and the not-secret parts (access key id, scope) stay.
TEST(SigV4, RedactSigV4SecretsRemovesSignaturesTokensAndTheSecret) {
  const std::string secret = "SECRETsecretSECRET0123456789abcdefghijkl";
  const std::string token = "TOKENtokenTOKEN0123456789/+=";
  const AwsCredentials credentials = {"AKIDEXAMPLE", secret, token};
  SigV4Request request{"GET", "/b/k", {}, {{"Host", "h"}}, kEmptyPayloadSha256};
  absl::StatusOr<SigV4Result> sig =
      SignRequestHeaders(credentials, S3Options(), request, S3ExampleTime());
  ASSERT_TRUE(sig.ok()) << sig.status();
  std::string authorization;
  for (const HttpHeader& h : sig->headers) {
    if (h.name == "Authorization") authorization = h.value;
  }
  request.headers.clear();
  absl::StatusOr<std::string> url =
      PresignUrl(credentials, S3Options(), "https://h", request, S3ExampleTime(), 60);
  ASSERT_TRUE(url.ok()) << url.status();
  absl::StatusOr<SigV4Result> query = SignRequestQuery(
      credentials, S3Options(), {"GET", "/b/k", {}, {{"Host", "h"}}}, S3ExampleTime(), 60);
  ASSERT_TRUE(query.ok());

  const std::vector<std::string> texts = {
      "Authorization: " + authorization,
      "GET " + *url + " HTTP/1.1",
      sig->canonical_request,  // holds "x-amz-security-token:TOKEN"
      "<Error><Code>SignatureDoesNotMatch</Code><Message>m</Message><AWSAccessKeyId>AKIDEXAMPLE"
      "</AWSAccessKeyId><StringToSign>" +
          sig->string_to_sign + "</StringToSign><SignatureProvided>" + sig->signature +
          "</SignatureProvided><StringToSignBytes>41 57</StringToSignBytes><CanonicalRequest>" +
          sig->canonical_request + "</CanonicalRequest></Error>",
      "<Error><Code>ExpiredToken</Code><Token-0>" + token + "</Token-0></Error>",
      "signature=\"" + sig->signature + "\" and X-Amz-Security-Token : '" + token + "'",
      "the server said: key " + secret + " token " + token,
  };
  for (const std::string& text : texts) {
    const std::string out = RedactSigV4Secrets(text, credentials);
    SCOPED_TRACE(out);
    EXPECT_TRUE(absl::StrContains(out, "<redacted>"));
    for (const std::string& hidden :
         {secret, token, sig->signature, query->signature, sig->string_to_sign,
          std::string("TOKENtokenTOKEN"), UriEncode(token, true)}) {
      EXPECT_FALSE(absl::StrContains(out, hidden)) << hidden;
    }
  }
  EXPECT_EQ(RedactSigV4Secrets("Authorization: " + authorization),
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20130524/us-east-1/s3/"
            "aws4_request, SignedHeaders=" +
                std::string(absl::StrContains(authorization, "x-amz-security-token")
                                ? "host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
                                : "host;x-amz-content-sha256;x-amz-date") +
                ", Signature=<redacted>");
  // Without the credentials, the key=value forms and elements still go.
  EXPECT_EQ(RedactSigV4Secrets("a?X-Amz-Signature=abc&X-Amz-Security-Token=t%2B&b=1"),
            "a?X-Amz-Signature=<redacted>&X-Amz-Security-Token=<redacted>&b=1");
  EXPECT_EQ(RedactSigV4Secrets("<SignatureProvided>abc"), "<SignatureProvided><redacted>");
  // Plain text stays as it is, and so do words that only contain a key.
  for (const char* plain :
       {"The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        "NoSignature=1 MySecurity-Token=2 Signatures: x", "SignatureDoesNotMatch", ""}) {
    EXPECT_EQ(RedactSigV4Secrets(plain, credentials), plain);
  }
  // Secrets under 4 bytes are not searched for (they would mangle any text).
  EXPECT_EQ(RedactSigV4Secrets("abc abc", {"AKID", "abc", "ab"}), "abc abc");
  EXPECT_EQ(RedactSigV4Secrets("x abcd x", {"AKID", "abcd", ""}), "x <redacted> x");
}

}  // namespace
}  // namespace signround
