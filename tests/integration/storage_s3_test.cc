// Object storage against a real S3 API server (OpenStack Swift + s3api on
// loopback, which checks SigV4 like AWS): round trips of 1 KiB and 200 MiB
// (multipart), directories up and down through `signround-worker cp`, list
// paging, a wrong secret, a missing key, and 200 MiB transfers through a proxy
// that fails 20% of requests. Without it: S3 error bodies and answers that quote
// the request's signing material (no secret reaches a status or a log line).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/common/splitmix64.h"
#include "src/storage/file_store.h"
#include "src/storage/s3_store.h"
#include "src/storage/s3_xml.h"
#include "src/storage/transfer.h"
#include "tests/testing/fault_proxy.h"
#include "tests/testing/s3_server.h"
#include "tests/testing/test_files.h"
#include "tests/testing/worker_process.h"

namespace signround {
namespace {

namespace fs = std::filesystem;
using testing::ReadAll;

constexpr uint64_t kBig = 200ull << 20;

// A file of `size` deterministic pseudo-random bytes.
std::string MakeFile(const testing::TempDir& dir, const std::string& name, uint64_t size,
                     uint64_t seed) {
  const std::string path = dir.File(name);
  std::vector<uint64_t> chunk(1 << 17);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  EXPECT_GE(fd, 0);
  uint64_t state = seed, left = size;
  while (left > 0) {
    for (uint64_t& x : chunk) x = SplitMix64(state);
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left, chunk.size() * 8));
    EXPECT_EQ(::write(fd, chunk.data(), n), static_cast<ssize_t>(n));
    left -= n;
  }
  ::close(fd);
  return path;
}

bool SameFile(const std::string& a, const std::string& b) {
  return fs::file_size(a) == fs::file_size(b) && ReadAll(a) == ReadAll(b);
}

class S3StoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new testing::S3TestServer();
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    S3Store admin("signround-test", Options(server_->endpoint().url));
    absl::Status created = admin.CreateBucket();
    ASSERT_TRUE(created.ok()) << created;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static S3Options Options(const std::string& endpoint) {
    S3Options o;
    o.endpoint = endpoint;
    o.region = server_->endpoint().region;
    o.credentials = {server_->endpoint().access_key, server_->endpoint().secret_key, ""};
    o.retry.base = std::chrono::milliseconds(20);
    o.retry.cap = std::chrono::milliseconds(500);
    return o;
  }
  S3Store Store(const std::string& endpoint = "") {
    return S3Store("signround-test",
                   Options(endpoint.empty() ? server_->endpoint().url : endpoint));
  }

  static testing::S3TestServer* server_;
  testing::TempDir dir_;
};

testing::S3TestServer* S3StoreTest::server_ = nullptr;

TEST_F(S3StoreTest, SmallAndMultipartRoundTrips) {
  S3Store store = Store();
  for (uint64_t size : {uint64_t{1024}, kBig}) {
    SCOPED_TRACE(size);
    const std::string name = absl::StrCat("obj-", size);
    const std::string up = MakeFile(dir_, name, size, size);
    uint64_t last = 0;
    absl::Status put = store.Put(up, "round/" + name, [&](uint64_t done, uint64_t total) {
      EXPECT_EQ(total, size);
      last = done;
    });
    ASSERT_TRUE(put.ok()) << put;
    EXPECT_EQ(last, size);
    auto head = store.Head("round/" + name);
    ASSERT_TRUE(head.ok()) << head.status();
    EXPECT_EQ(head->size, size);
    const std::string down = dir_.File(name + ".down");
    absl::Status got = store.Get("round/" + name, down, nullptr);
    ASSERT_TRUE(got.ok()) << got;
    EXPECT_TRUE(SameFile(up, down));
    EXPECT_FALSE(fs::exists(down + ".partial"));
  }
  EXPECT_EQ(store.retries(), 0);
}

TEST_F(S3StoreTest, ListPagesInKeyOrder) {
  S3Store store = Store();
  const std::string one = MakeFile(dir_, "one", 10, 1);
  std::vector<std::string> keys;
  for (int i = 0; i < 7; ++i) keys.push_back(absl::StrCat("list/k", i));
  for (const std::string& k : keys) ASSERT_TRUE(store.Put(one, k, nullptr).ok());
  ASSERT_TRUE(store.Put(one, "listx/other", nullptr).ok());
  std::vector<std::string> seen;
  std::vector<size_t> pages;
  std::string token;
  do {
    auto page = store.List("list/", token, 3);
    ASSERT_TRUE(page.ok()) << page.status();
    pages.push_back(page->objects.size());
    for (const ObjectInfo& o : page->objects) {
      seen.push_back(o.key);
      EXPECT_EQ(o.size, 10u);
    }
    token = page->next_page_token;
  } while (!token.empty() && pages.size() < 10);
  EXPECT_EQ(seen, keys);
  EXPECT_EQ(pages, std::vector<size_t>({3, 3, 1}));
  ASSERT_TRUE(store.Delete("list/k0").ok());
  EXPECT_TRUE(absl::IsNotFound(store.Head("list/k0").status()));
  EXPECT_TRUE(store.Delete("list/k0").ok());  // deleting twice is fine
}

TEST_F(S3StoreTest, WrongSecretIsAClearPermissionErrorWithoutRetries) {
  testing::FaultProxyOptions po;
  po.upstream_port = server_->endpoint().port;
  testing::FaultProxy proxy(po);  // no faults: it counts the requests
  ASSERT_TRUE(proxy.Start().ok());
  S3Options o = Options(proxy.endpoint());
  o.credentials.secret_access_key = "not-the-secret-5x7q";
  S3Store store("signround-test", o);
  const std::string file = MakeFile(dir_, "f", 100, 3);
  absl::Status s = store.Put(file, "denied", nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_NE(
      s.message().find("s3://signround-test/denied: access denied (403 SignatureDoesNotMatch"),
      std::string::npos)
      << s;
  EXPECT_EQ(s.message().find("not-the-secret-5x7q"), std::string::npos);
  EXPECT_EQ(s.message().find("Signature="), std::string::npos);
  EXPECT_EQ(store.retries(), 0);
  EXPECT_EQ(proxy.counters().requests, 1u);
}

TEST_F(S3StoreTest, MissingKeyIsNotFound) {
  S3Store store = Store();
  absl::Status s = store.Get("no/such/key", dir_.File("x"), nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_EQ(s.message(), "s3://signround-test/no/such/key: not found (404)");
  EXPECT_FALSE(fs::exists(dir_.File("x")));
  EXPECT_EQ(store.retries(), 0);
}

// 20% of requests get 503 SlowDown or a dropped connection; 200 MiB still goes
// up (multipart) and comes down byte-identical, and every retry is logged.
TEST_F(S3StoreTest, FaultsAreRetriedUntilTheBytesArrive) {
  testing::FaultProxyOptions po;
  po.upstream_port = server_->endpoint().port;
  po.fault_rate = 0.2;
  po.seed = 7;
  testing::FaultProxy proxy(po);
  ASSERT_TRUE(proxy.Start().ok());
  S3Options o = Options(proxy.endpoint());
  o.retry.max_attempts = 20;
  std::vector<std::string> log;
  std::mutex mu;
  o.log = [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(mu);
    log.push_back(line);
  };
  S3Store store("signround-test", o);
  const std::string up = MakeFile(dir_, "big", kBig, 11);
  absl::Status put = store.Put(up, "faults/big", nullptr);
  ASSERT_TRUE(put.ok()) << put;
  const std::string down = dir_.File("big.down");
  absl::Status got = store.Get("faults/big", down, nullptr);
  ASSERT_TRUE(got.ok()) << got;
  EXPECT_TRUE(SameFile(up, down));
  const auto c = proxy.counters();
  EXPECT_GT(c.slow_downs + c.drops, 0u);
  EXPECT_GT(store.retries(), 0);
  EXPECT_EQ(static_cast<int64_t>(log.size()), store.retries());
  for (const std::string& line : log) {
    EXPECT_NE(line.find("retrying "), std::string::npos) << line;
    EXPECT_EQ(line.find(server_->endpoint().secret_key), std::string::npos) << line;
  }
  std::printf("fault injection: %llu requests, %llu 503s, %llu drops, %lld retries\n",
              static_cast<unsigned long long>(c.requests),
              static_cast<unsigned long long>(c.slow_downs),
              static_cast<unsigned long long>(c.drops), static_cast<long long>(store.retries()));
}

// The CLI: a directory up and down, a single file, and the errors users see.
TEST_F(S3StoreTest, CpCopiesDirectoriesBothWays) {
  const std::string src = dir_.File("ckpt");
  fs::create_directories(src + "/sub");
  testing::WriteFile(src + "/config.json", "{}");
  testing::WriteFile(src + "/sub/a.bin", std::string(5000, 'a'));
  MakeFile(dir_, "ckpt/model.safetensors", 3 << 20, 5);
  const auto& e = server_->endpoint();
  const std::vector<std::string> env = {"AWS_ACCESS_KEY_ID=" + e.access_key,
                                        "AWS_SECRET_ACCESS_KEY=" + e.secret_key,
                                        "AWS_REGION=" + e.region, "AWS_ENDPOINT_URL=" + e.url};
  auto cp = [&](const std::string& from, const std::string& to) {
    return testing::RunWorkerWithEnv({"cp", from, to, "--json"}, env);
  };
  testing::Result up = cp(src, "s3://signround-test/runs/ckpt");
  ASSERT_EQ(up.exit_code, 0) << up.err;
  EXPECT_NE(up.out.find("\"files\":3"), std::string::npos) << up.out;
  testing::Result down = cp("s3://signround-test/runs/ckpt", dir_.File("back"));
  ASSERT_EQ(down.exit_code, 0) << down.err;
  for (const char* f : {"/config.json", "/sub/a.bin", "/model.safetensors"}) {
    EXPECT_TRUE(SameFile(src + f, dir_.File("back") + f)) << f;
  }
  testing::Result one = cp("s3://signround-test/runs/ckpt/config.json", dir_.File("back") + "/");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  testing::Result missing = cp("s3://signround-test/runs/nothing", dir_.File("x"));
  testing::ExpectOneLineError(missing,
                              "s3://signround-test/runs/nothing: no such object or directory");
  testing::Result denied = testing::RunWorkerWithEnv(
      {"cp", src + "/config.json", "s3://signround-test/x"},
      {"AWS_ACCESS_KEY_ID=" + e.access_key, "AWS_SECRET_ACCESS_KEY=wrong-secret-zz9",
       "AWS_REGION=" + e.region, "AWS_ENDPOINT_URL=" + e.url});
  testing::ExpectOneLineError(denied, "access denied (403 SignatureDoesNotMatch");
  EXPECT_EQ(denied.err.find("wrong-secret-zz9"), std::string::npos);
  testing::Result no_creds =
      testing::RunWorkerWithEnv({"cp", src + "/config.json", "s3://signround-test/x"},
                                {"HOME=" + dir_.path(), "AWS_ENDPOINT_URL=" + e.url});
  testing::ExpectOneLineError(no_creds, "no AWS credentials");
}

// --- secrets in S3 answers ------------------------------------------------------------

// Swift's SignatureDoesNotMatch body (s3api, as AWS's): everything of the request's signing
// is quoted back. Only Code and Message are read; a Message that quotes signing material
// itself loses it.
TEST(S3ErrorTest, OnlyCodeAndMessageAreReadAndSigningMaterialIsRedacted) {
  const std::string signature(64, 'f');
  const std::string token = "TokenTokenToken123";
  const std::string body =
      "<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>SignatureDoesNotMatch</Code>"
      "<Message>The request signature we calculated does not match the signature you "
      "provided. Check your key and signing method.</Message><AWSAccessKeyId>test:tester"
      "</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256\n20240101T000000Z\n20240101/us-east-1/"
      "s3/aws4_request\n" +
      std::string(64, 'a') + "</StringToSign><SignatureProvided>" + signature +
      "</SignatureProvided><StringToSignBytes>41 57 53</StringToSignBytes><CanonicalRequest>"
      "GET\n/e2e\nlist-type=2\nhost:127.0.0.1:1\nx-amz-security-token:" +
      token +
      "\n&lt;Message&gt;x&lt;/Message&gt;</CanonicalRequest><RequestId>tx1</RequestId>"
      "</Error>";
  S3Error e = ParseS3Error(body);
  EXPECT_EQ(e.code, "SignatureDoesNotMatch");
  EXPECT_EQ(e.message,
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.");
  // No Message element: nothing is taken from elsewhere (the escaped one above is text).
  std::string no_message = body;
  no_message.erase(no_message.find("<Message>"),
                   no_message.find("</Message>") + 10 - no_message.find("<Message>"));
  EXPECT_EQ(ParseS3Error(no_message).message, "");
  // A server that quotes the Authorization header or a presigned URL in its Message.
  e = ParseS3Error(
      "<Error><Code>IncompleteSignature</Code><Message>Authorization=AWS4-HMAC-SHA256 "
      "Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" +
      signature + " url ?X-Amz-Security-Token=" + token + "&amp;X-Amz-Signature=" + signature +
      "</Message></Error>");
  EXPECT_EQ(e.message,
            "Authorization=AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, "
            "SignedHeaders=host, Signature=<redacted> url ?X-Amz-Security-Token=<redacted>&"
            "X-Amz-Signature=<redacted>");
  EXPECT_EQ(ParseS3Error("<Error><Code>" + std::string(100, 'C') + "</Code></Error>").code.size(),
            64u);
}

// A loopback HTTP server that answers every request with `status` and an S3 error whose
// Message quotes the request's Authorization and X-Amz-Security-Token headers and whatever
// `also_quoted` holds: a server (or proxy) that echoes what it was sent.
class EchoingS3Server {
 public:
  EchoingS3Server(int status, std::string also_quoted)
      : status_(status), also_quoted_(std::move(also_quoted)) {}
  ~EchoingS3Server() {
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  bool Start() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 8) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len)) {
      return false;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (int c; (c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC)) >= 0;) Answer(c);
    });
    return true;
  }
  std::string endpoint() const { return absl::StrCat("http://127.0.0.1:", port_); }
  // The request heads received so far.
  std::vector<std::string> heads() {
    std::lock_guard<std::mutex> lock(mu_);
    return heads_;
  }

 private:
  static std::string Header(const std::string& head, const std::string& lower_name) {
    std::string lower = head;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const size_t at = lower.find("\r\n" + lower_name + ":");
    if (at == std::string::npos) return "";
    const size_t from = at + 3 + lower_name.size();
    return head.substr(from, head.find("\r\n", from) - from);
  }
  void Answer(int c) {
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::read(c, buf, sizeof(buf));
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
    }
    const std::string head = in.substr(0, in.find("\r\n\r\n"));
    {
      std::lock_guard<std::mutex> lock(mu_);
      heads_.push_back(head);
    }
    const std::string body =
        "<Error><Code>" + std::string(status_ == 503 ? "SlowDown" : "AccessDenied") +
        "</Code><Message>" +
        XmlEscape("you sent Authorization: " + Header(head, "authorization") +
                  "; x-amz-security-token: " + Header(head, "x-amz-security-token") + "; " +
                  also_quoted_) +
        "</Message></Error>";
    const std::string out =
        absl::StrCat("HTTP/1.1 ", status_, " Oops\r\nContent-Length: ", body.size(),
                     "\r\nConnection: close\r\n\r\n", body);
    ssize_t ignored = ::send(c, out.data(), out.size(), MSG_NOSIGNAL);
    (void)ignored;
    ::shutdown(c, SHUT_WR);
    while (::read(c, buf, sizeof(buf)) > 0) {
    }
    ::close(c);
  }

  const int status_;
  const std::string also_quoted_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> heads_;
};

// Whatever an S3 answer quotes (the signature, the token, even the secret key), the
// store's statuses and retry log lines carry none of it.
TEST(S3StoreSecretsTest, AnswersQuotingTheRequestLeakNoSecret) {
  const std::string secret = "StoreSecretKey0123456789";
  const std::string token = "StoreSessionToken0123456789";
  for (int status : {503, 403}) {
    SCOPED_TRACE(status);
    EchoingS3Server server(status, "key " + secret);
    ASSERT_TRUE(server.Start());
    S3Options o;
    o.endpoint = server.endpoint();
    o.credentials = {"AKIDSTORE", secret, token};
    o.retry.max_attempts = 3;
    o.retry.base = std::chrono::milliseconds(1);
    std::vector<std::string> log;
    o.log = [&](const std::string& line) { log.push_back(line); };
    S3Store store("bucket", o);
    absl::StatusOr<ObjectList> listed = store.List("p/", "", 10);
    ASSERT_FALSE(listed.ok());
    const std::string message(listed.status().message());
    EXPECT_EQ(listed.status().code(),
              status == 503 ? absl::StatusCode::kUnavailable : absl::StatusCode::kPermissionDenied)
        << message;
    EXPECT_TRUE(absl::StrContains(message, "Signature=<redacted>")) << message;
    EXPECT_EQ(log.size(), status == 503 ? 2u : 0u);
    std::vector<std::string> signatures;
    for (const std::string& head : server.heads()) {
      const size_t at = head.find("Signature=");
      ASSERT_NE(at, std::string::npos) << head;
      signatures.push_back(head.substr(at + 10, 64));
    }
    ASSERT_EQ(signatures.size(), status == 503 ? 3u : 1u);
    std::vector<std::string> texts = log;
    texts.push_back(message);
    for (const std::string& text : texts) {
      EXPECT_TRUE(absl::StrContains(text, status == 503 ? "503 SlowDown" : "403 AccessDenied"))
          << text;
      for (const std::string& hidden : signatures) EXPECT_FALSE(absl::StrContains(text, hidden));
      EXPECT_FALSE(absl::StrContains(text, secret)) << text;
      EXPECT_FALSE(absl::StrContains(text, token)) << text;
      EXPECT_TRUE(absl::StrContains(text, "AKIDSTORE")) << "the key id is not a secret: " << text;
    }
  }
}

// The file:// backend: atomic writes, listing, hostile keys.
TEST(FileStoreTest, PutGetListDeleteAndHostileKeys) {
  testing::TempDir dir;
  FileStore store(dir.path());
  testing::WriteFile(dir.File("src"), "hello");
  for (const char* key : {"b/2", "a/1", "a/3", "a/2"}) {
    ASSERT_TRUE(store.Put(dir.File("src"), key, nullptr).ok()) << key;
  }
  auto page = store.List("a/", "", 2);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "a/1");
  EXPECT_EQ(page->objects[1].key, "a/2");
  auto rest = store.List("a/", page->next_page_token, 2);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->objects.size(), 1u);
  EXPECT_EQ(rest->objects[0].key, "a/3");
  EXPECT_TRUE(rest->next_page_token.empty());
  ASSERT_TRUE(store.Get("a/3", dir.File("out/copy"), nullptr).ok());
  EXPECT_EQ(ReadAll(dir.File("out/copy")), "hello");
  EXPECT_TRUE(absl::IsNotFound(store.Head("a/9").status()));
  for (const char* bad : {"../x", "a/../../x", "a//b", "", "./a"}) {
    absl::Status s = store.Put(dir.File("src"), bad, nullptr);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  ASSERT_TRUE(store.Delete("a/1").ok());
  EXPECT_TRUE(store.Delete("a/1").ok());
  // No temporary file is left beside the results.
  for (const auto& e : fs::recursive_directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos) << e.path();
  }
}

}  // namespace
}  // namespace signround
