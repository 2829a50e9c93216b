// The S3 test infrastructure itself: the Swift-based S3 server (tests/s3/swift_server.sh,
// S3TestServer) and the fault-injecting proxy (FaultProxy), driven with the curl tool.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "src/common/splitmix64.h"
#include "tests/testing/fault_proxy.h"
#include "tests/testing/s3_server.h"
#include "tests/testing/test_files.h"

namespace signround::testing {
namespace {

// ---------------------------------------------------------------------------------------
// curl helpers

// A URL carrying the credentials for curl's --aws-sigv4: the access key URL-encoded, since
// --user "test:tester:testing" would split at the first colon.
std::string SignedUrl(absl::string_view base_url, const S3Endpoint& s3, absl::string_view path,
                      absl::string_view secret = "") {
  std::string key;
  for (char c : s3.access_key) key += c == ':' ? std::string("%3A") : std::string(1, c);
  absl::string_view rest = base_url;
  rest.remove_prefix(std::string("http://").size());
  return absl::StrCat("http://", key, ":", secret.empty() ? s3.secret_key : secret, "@", rest,
                      path);
}

// curl with a SigV4 signature and `args`; "-w %{http_code}" puts the status last on stdout.
ProcessResult S3Curl(const S3Endpoint& s3, std::vector<std::string> args) {
  std::vector<std::string> argv = {"curl",        "-sS",
                                   "--aws-sigv4", absl::StrCat("aws:amz:", s3.region, ":s3"),
                                   "-H",          "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                                   "-w",          "%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

// The HTTP status curl printed last ("-w %{http_code}"), or 0.
int StatusOf(const ProcessResult& r) {
  int code = 0;
  return r.out.size() >= 3 && absl::SimpleAtoi(r.out.substr(r.out.size() - 3), &code) ? code : 0;
}

// A file of `size` deterministic pseudo-random bytes.
void WriteRandomFile(const std::string& path, uint64_t size, uint64_t seed) {
  std::ofstream out(path, std::ios::binary);
  std::vector<uint64_t> block(1 << 17);  // 1 MiB
  for (uint64_t done = 0; done < size;) {
    for (uint64_t& w : block) w = SplitMix64(seed);
    size_t n = static_cast<size_t>(std::min<uint64_t>(size - done, block.size() * 8));
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
    done += n;
  }
}

// Whether two files have the same bytes (streamed, 1 MiB at a time).
bool SameFiles(const std::string& a, const std::string& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  if (!fa || !fb) return false;
  std::vector<char> ba(1 << 20), bb(1 << 20);
  while (true) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    if (fa.gcount() != fb.gcount()) return false;
    if (fa.gcount() == 0) return true;
    if (!std::equal(ba.begin(), ba.begin() + fa.gcount(), bb.begin())) return false;
  }
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---------------------------------------------------------------------------------------
// The endpoint line

TEST(ParseS3EndpointLineTest, ParsesTheScriptsLine) {
  absl::StatusOr<S3Endpoint> e = ParseS3EndpointLine(
      "endpoint=http://127.0.0.1:40123 access_key=test:tester secret_key=testing "
      "region=us-east-1\n");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->url, "http://127.0.0.1:40123");
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 40123);
  EXPECT_EQ(e->access_key, "test:tester");
  EXPECT_EQ(e->secret_key, "testing");
  EXPECT_EQ(e->region, "us-east-1");
  EXPECT_FALSE(ParseS3EndpointLine("endpoint=http://127.0.0.1:1 access_key=a").ok());
  EXPECT_FALSE(ParseS3EndpointLine("endpoint=ftp://x:1 access_key=a secret_key=b region=c").ok());
}

// ---------------------------------------------------------------------------------------
// The server

TEST(S3TestServerTest, AnswersSignedRequestsAndChecksSignatures) {
  S3TestServer server;
  absl::Status started = server.Start();
  ASSERT_TRUE(started.ok()) << started;
  std::printf("[ INFO     ] S3 server ready after %.2f s\n", server.start_seconds());
  const S3Endpoint& s3 = server.endpoint();

  ProcessResult list = S3Curl(s3, {SignedUrl(s3.url, s3, "/")});
  ASSERT_EQ(StatusOf(list), 200) << list.out << list.err;
  EXPECT_TRUE(absl::StrContains(list.out, "ListAllMyBucketsResult")) << list.out;

  ASSERT_EQ(StatusOf(S3Curl(s3, {"-X", "PUT", SignedUrl(s3.url, s3, "/bucket")})), 200)
      << server.LogTail();
  // A 1500-byte metadata value: over Swift's default limit (256), under the script's (2048),
  // so this also shows the servers read the script's swift.conf.
  TempDir tmp;
  WriteFile(tmp.File("small"), "hello, s3");
  ProcessResult put =
      S3Curl(s3, {"-T", tmp.File("small"), "-H", "x-amz-meta-big: " + std::string(1500, 'm'),
                  SignedUrl(s3.url, s3, "/bucket/dir/small.txt")});
  ASSERT_EQ(StatusOf(put), 200) << put.out << put.err << server.LogTail();
  ProcessResult get = S3Curl(s3, {SignedUrl(s3.url, s3, "/bucket/dir/small.txt")});
  EXPECT_EQ(get.out, "hello, s3200");

  // A wrong secret: 403 SignatureDoesNotMatch, for reads and writes.
  ProcessResult bad = S3Curl(s3, {SignedUrl(s3.url, s3, "/bucket/dir/small.txt", "wrong")});
  EXPECT_EQ(StatusOf(bad), 403);
  EXPECT_TRUE(absl::StrContains(bad.out, "<Code>SignatureDoesNotMatch</Code>")) << bad.out;
  ProcessResult bad_put =
      S3Curl(s3, {"-T", tmp.File("small"), SignedUrl(s3.url, s3, "/bucket/other.txt", "wrong")});
  EXPECT_EQ(StatusOf(bad_put), 403) << bad_put.out;
  EXPECT_EQ(StatusOf(S3Curl(s3, {"-I", SignedUrl(s3.url, s3, "/bucket/other.txt")})), 404);

  // Unsigned: no object (without S3 auth the request is not even taken for S3).
  ProcessResult anonymous =
      RunProcess({"curl", "-sS", "-w", "%{http_code}", s3.url + "/bucket/dir/small.txt"});
  EXPECT_GE(StatusOf(anonymous), 400) << anonymous.out;
  EXPECT_FALSE(absl::StrContains(anonymous.out, "hello, s3")) << anonymous.out;

  ASSERT_TRUE(server.Stop().ok());
  EXPECT_FALSE(server.running());
  ProcessResult after = S3Curl(s3, {"--max-time", "5", SignedUrl(s3.url, s3, "/")});
  EXPECT_EQ(StatusOf(after), 0) << "still answering after Stop(): " << after.out;
}

TEST(S3TestServerTest, TwoServersRunInParallel) {
  S3TestServer a, b;
  absl::Status status_a, status_b;
  std::thread start_a([&] { status_a = a.Start(); });
  status_b = b.Start();
  start_a.join();
  ASSERT_TRUE(status_a.ok()) << status_a;
  ASSERT_TRUE(status_b.ok()) << status_b;
  std::printf("[ INFO     ] two S3 servers ready after %.2f s and %.2f s\n", a.start_seconds(),
              b.start_seconds());
  EXPECT_NE(a.endpoint().port, b.endpoint().port);
  EXPECT_NE(a.state_dir(), b.state_dir());

  const S3Endpoint &ea = a.endpoint(), &eb = b.endpoint();
  ASSERT_EQ(
      StatusOf(S3Curl(ea, {"-o", "/dev/null", "-X", "PUT", SignedUrl(ea.url, ea, "/only-a")})),
      200);
  ProcessResult list_a = S3Curl(ea, {SignedUrl(ea.url, ea, "/")});
  ProcessResult list_b = S3Curl(eb, {SignedUrl(eb.url, eb, "/")});
  EXPECT_EQ(StatusOf(list_a), 200);
  EXPECT_EQ(StatusOf(list_b), 200);
  EXPECT_TRUE(absl::StrContains(list_a.out, "<Name>only-a</Name>")) << list_a.out;
  EXPECT_FALSE(absl::StrContains(list_b.out, "only-a")) << list_b.out;
}

TEST(S3TestServerTest, StopWithoutStartIsFine) {
  S3TestServer server;
  EXPECT_TRUE(server.Stop().ok());
  EXPECT_FALSE(server.running());
}

// ---------------------------------------------------------------------------------------
// The proxy against a scripted upstream (no Swift): HTTP framing and fault injection.

// A one-connection-at-a-time HTTP server on 127.0.0.1 whose answers cover the framings:
//   /len     "hello" with Content-Length     /chunked  "hello world", chunked
//   /close   "until close", close-delimited  /empty    204
//   PUT      reads the Content-Length body (after 100 Continue if asked), answers its size
class ScriptedUpstream {
 public:
  ScriptedUpstream() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 16);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~ScriptedUpstream() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  int connections() const { return connections_; }
  int requests() const { return requests_; }

 private:
  void Run() {
    while (true) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      ++connections_;
      Serve(c);
      ::close(c);
    }
  }

  void Serve(int c) {
    std::string buf;
    char chunk[65536];
    while (true) {
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::read(c, chunk, sizeof(chunk));
        if (n <= 0) return;
        buf.append(chunk, static_cast<size_t>(n));
      }
      std::string head = buf.substr(0, end + 4);
      buf.erase(0, end + 4);
      ++requests_;
      const bool is_head = absl::StartsWith(head, "HEAD ");
      std::string path = head.substr(head.find(' ') + 1);
      path = path.substr(0, path.find(' '));
      std::string reply;
      if (absl::StartsWith(head, "PUT ")) {
        uint64_t length = 0;
        size_t cl = head.find("Content-Length: ");
        if (cl != std::string::npos) {
          absl::SimpleAtoi(head.substr(cl + 16, head.find("\r\n", cl) - cl - 16), &length);
        }
        if (absl::StrContains(head, "Expect: 100-continue")) {
          Send(c, "HTTP/1.1 100 Continue\r\n\r\n");
        }
        uint64_t got = std::min<uint64_t>(buf.size(), length);
        buf.erase(0, got);
        while (got < length) {
          ssize_t n = ::read(c, chunk, std::min<uint64_t>(sizeof(chunk), length - got));
          if (n <= 0) return;
          got += static_cast<uint64_t>(n);
        }
        std::string body = absl::StrCat(got);
        reply = absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
      } else if (path == "/len") {
        reply =
            absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", is_head ? "" : "hello");
      } else if (path == "/chunked") {
        reply =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
      } else if (path == "/close") {
        Send(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close");
        return;
      } else if (path == "/empty") {
        reply = "HTTP/1.1 204 No Content\r\n\r\n";
      } else {
        reply = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
      }
      Send(c, reply);
    }
  }

  static void Send(int c, absl::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(c, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      s.remove_prefix(static_cast<size_t>(n));
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> connections_{0}, requests_{0};
};

FaultProxyOptions ProxyTo(int port, double fault_rate = 0, uint64_t seed = 1) {
  FaultProxyOptions options;
  options.upstream_port = port;
  options.fault_rate = fault_rate;
  options.seed = seed;
  return options;
}

TEST(FaultProxyTest, RelaysEveryFramingOnOneKeptAliveConnection) {
  ScriptedUpstream upstream;
  FaultProxy proxy(ProxyTo(upstream.port()));
  ASSERT_TRUE(proxy.Start().ok());
  const std::string u = proxy.endpoint();
  // One curl, several URLs: one connection to the proxy, reused.
  ProcessResult r = RunProcess({"curl", "-sS", u + "/len", u + "/chunked", u + "/empty", u + "/len",
                                u + "/missing", u + "/close"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hellohello worldhellountil close");
  FaultProxy::Counters c = proxy.counters();
  EXPECT_EQ(c.connections, 1u);
  EXPECT_EQ(c.requests, 6u);
  EXPECT_EQ(c.forwarded, 6u);
  EXPECT_EQ(c.slow_downs + c.drops + c.upstream_errors, 0u);
  EXPECT_EQ(upstream.connections(), 1);  // the upstream connection was kept alive too

  // HEAD: the Content-Length is relayed, no body follows; the connection stays usable.
  ProcessResult head = RunProcess({"curl", "-sS", "-I", u + "/len", u + "/len"});
  ASSERT_EQ(head.exit_code, 0) << head.err;
  EXPECT_TRUE(absl::StrContains(head.out, "Content-Length: 5")) << head.out;
  EXPECT_EQ(proxy.counters().connections, 2u);
}

TEST(FaultProxyTest, StreamsRequestBodiesWithAndWithoutExpectContinue) {
  ScriptedUpstream upstream;
  FaultProxy proxy(ProxyTo(upstream.port()));
  ASSERT_TRUE(proxy.Start().ok());
  TempDir tmp;
  WriteRandomFile(tmp.File("body"), 3 << 20, 5);
  for (const char* expect : {"Expect: 100-continue", "Expect:"}) {
    ProcessResult r = RunProcess({"curl", "-sS", "--expect100-timeout", "30", "-H", expect, "-T",
                                  tmp.File("body"), proxy.endpoint() + "/upload"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, absl::StrCat(3 << 20)) << expect;
  }
  EXPECT_EQ(proxy.counters().forwarded, 2u);
}

TEST(FaultProxyTest, AllSlowDownsKeepTheConnection) {
  ScriptedUpstream upstream;
  FaultProxyOptions options = ProxyTo(upstream.port(), 1.0);
  options.slow_down_share = 1.0;
  FaultProxy proxy(options);
  ASSERT_TRUE(proxy.Start().ok());
  const std::string u = proxy.endpoint();
  ProcessResult r = RunProcess({"curl", "-sS", "-w", "[%{http_code}]", u + "/len", u + "/chunked"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "<Error><Code>SlowDown</Code>")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "[503]")) << r.out;
  ProcessResult head = RunProcess({"curl", "-sS", "-I", u + "/len"});
  EXPECT_TRUE(absl::StartsWith(head.out, "HTTP/1.1 503 Service Unavailable")) << head.out;
  // A PUT's body is read past (or, with Expect: 100-continue, never asked for).
  TempDir tmp;
  WriteRandomFile(tmp.File("body"), 2 << 20, 6);
  for (const char* expect : {"Expect: 100-continue", "Expect:"}) {
    ProcessResult put = RunProcess({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                                    expect, "-T", tmp.File("body"), u + "/upload"});
    EXPECT_EQ(put.out, "503") << expect << ": " << put.err;
  }
  FaultProxy::Counters c = proxy.counters();
  EXPECT_EQ(c.connections, 4u);
  EXPECT_EQ(c.slow_downs, 5u);
  EXPECT_EQ(c.forwarded, 0u);
  EXPECT_EQ(upstream.requests(), 0);
}

TEST(FaultProxyTest, AllDropsFailTheClient) {
  ScriptedUpstream upstream;
  FaultProxyOptions options = ProxyTo(upstream.port(), 1.0, 3);
  options.slow_down_share = 0.0;
  FaultProxy proxy(options);
  ASSERT_TRUE(proxy.Start().ok());
  for (int i = 0; i < 8; ++i) {
    ProcessResult r = RunProcess({"curl", "-sS", proxy.endpoint() + "/len"});
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out, "hello");
  }
  FaultProxy::Counters c = proxy.counters();
  EXPECT_EQ(c.drops, 8u);
  EXPECT_GT(c.drops_after_head, 0u);
  EXPECT_GT(c.drops_mid_request, 0u);
  EXPECT_EQ(c.forwarded, 0u);
  // Mid-request drops reached the upstream; drops after the head did not.
  EXPECT_EQ(static_cast<uint64_t>(upstream.requests()), c.drops_mid_request);
}

TEST(FaultProxyTest, TheFaultSequenceDependsOnTheSeed) {
  ScriptedUpstream upstream;
  auto run = [&](uint64_t seed) {
    FaultProxy proxy(ProxyTo(upstream.port(), 0.5, seed));
    EXPECT_TRUE(proxy.Start().ok());
    std::string outcomes;
    for (int i = 0; i < 12; ++i) {
      ProcessResult r = RunProcess(
          {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", proxy.endpoint() + "/len"});
      absl::StrAppend(&outcomes, r.out, " ");
    }
    return outcomes;
  };
  std::string a = run(42);
  EXPECT_EQ(a, run(42));
  EXPECT_NE(a, run(43));
}

TEST(FaultProxyTest, AnswersBadGatewayWithoutUpstream) {
  int port;
  {
    ScriptedUpstream gone;
    port = gone.port();
  }
  FaultProxy proxy(ProxyTo(port));
  ASSERT_TRUE(proxy.Start().ok());
  ProcessResult r = RunProcess(
      {"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", proxy.endpoint() + "/len"});
  EXPECT_EQ(r.out, "502");
  EXPECT_EQ(proxy.counters().upstream_errors, 1u);
}

// ---------------------------------------------------------------------------------------
// The proxy in front of the real server.

class S3ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::Status started = server_.Start();
    ASSERT_TRUE(started.ok()) << started;
    const S3Endpoint& s3 = server_.endpoint();
    ASSERT_EQ(StatusOf(S3Curl(s3, {"-X", "PUT", SignedUrl(s3.url, s3, "/bucket")})), 200)
        << server_.LogTail();
  }

  S3TestServer server_;
  TempDir tmp_;
};

TEST_F(S3ProxyTest, ForwardsObjectsByteIdentically) {
  const S3Endpoint& s3 = server_.endpoint();
  FaultProxy proxy(ProxyTo(s3.port));
  ASSERT_TRUE(proxy.Start().ok());
  for (uint64_t mib : {1, 64}) {
    const std::string name = absl::StrCat("obj", mib);
    const std::string path = tmp_.File(name);
    WriteRandomFile(path, mib << 20, mib);
    // Signed for the proxy's host:port, forwarded verbatim: the signature holds.
    auto t0 = std::chrono::steady_clock::now();
    ProcessResult put =
        S3Curl(s3, {"-T", path, SignedUrl(proxy.endpoint(), s3, "/bucket/" + name)});
    double put_s = Seconds(t0);
    ASSERT_EQ(StatusOf(put), 200) << put.out << put.err << server_.LogTail();
    t0 = std::chrono::steady_clock::now();
    ProcessResult get =
        S3Curl(s3, {"-o", path + ".back", SignedUrl(proxy.endpoint(), s3, "/bucket/" + name)});
    double get_s = Seconds(t0);
    ASSERT_EQ(StatusOf(get), 200) << get.out << get.err;
    EXPECT_TRUE(SameFiles(path, path + ".back")) << name;
    std::printf(
        "[ INFO     ] %llu MiB through the proxy: PUT %.2f s (%.0f MiB/s), "
        "GET %.2f s (%.0f MiB/s)\n",
        static_cast<unsigned long long>(mib), put_s, mib / put_s, get_s, mib / get_s);
    ::unlink((path + ".back").c_str());
  }
  // The 64 MiB GET straight from the server, for comparison.
  auto t0 = std::chrono::steady_clock::now();
  ProcessResult direct =
      S3Curl(s3, {"-o", tmp_.File("direct"), SignedUrl(s3.url, s3, "/bucket/obj64")});
  ASSERT_EQ(StatusOf(direct), 200);
  std::printf("[ INFO     ] 64 MiB GET without the proxy: %.2f s (%.0f MiB/s)\n", Seconds(t0),
              64 / Seconds(t0));
  EXPECT_TRUE(SameFiles(tmp_.File("obj64"), tmp_.File("direct")));

  FaultProxy::Counters c = proxy.counters();
  EXPECT_EQ(c.forwarded, 4u);
  EXPECT_EQ(c.requests, 4u);
  EXPECT_EQ(c.slow_downs + c.drops + c.upstream_errors, 0u);
}

TEST_F(S3ProxyTest, RetryingClientCompletesDespiteFaults) {
  const S3Endpoint& s3 = server_.endpoint();
  FaultProxy proxy(ProxyTo(s3.port, 0.2, 2024));
  ASSERT_TRUE(proxy.Start().ok());
  // A client that retries any failure (503, reset, truncated body) up to 10 times.
  int attempts = 0;
  auto with_retries = [&](std::vector<std::string> args, int want_status) {
    for (int attempt = 0; attempt < 10; ++attempt) {
      ++attempts;
      ProcessResult r = S3Curl(s3, args);
      if (r.exit_code == 0 && StatusOf(r) == want_status) return true;
    }
    return false;
  };
  constexpr int kObjects = 12;
  for (int i = 0; i < kObjects; ++i) {
    const std::string path = tmp_.File(absl::StrCat("o", i));
    // Mostly small objects, two of 8 MiB so that drops hit bodies in flight.
    WriteRandomFile(path, i % 6 == 5 ? 8 << 20 : 100000 + i, 100 + i);
    ASSERT_TRUE(with_retries({"-o", "/dev/null", "-T", path,
                              SignedUrl(proxy.endpoint(), s3, absl::StrCat("/bucket/o", i))},
                             200))
        << "PUT o" << i;
  }
  for (int i = 0; i < kObjects; ++i) {
    const std::string path = tmp_.File(absl::StrCat("o", i));
    ASSERT_TRUE(with_retries(
        {"-o", path + ".back", SignedUrl(proxy.endpoint(), s3, absl::StrCat("/bucket/o", i))}, 200))
        << "GET o" << i;
    EXPECT_TRUE(SameFiles(path, path + ".back")) << "o" << i;
  }
  ProcessResult list = S3Curl(s3, {SignedUrl(s3.url, s3, "/bucket?list-type=2")});
  EXPECT_TRUE(absl::StrContains(list.out, "<KeyCount>12</KeyCount>")) << list.out;

  FaultProxy::Counters c = proxy.counters();
  std::printf(
      "[ INFO     ] %d attempts: %llu forwarded, %llu 503s, %llu drops (%llu after the "
      "head, %llu mid-request)\n",
      attempts, static_cast<unsigned long long>(c.forwarded),
      static_cast<unsigned long long>(c.slow_downs), static_cast<unsigned long long>(c.drops),
      static_cast<unsigned long long>(c.drops_after_head),
      static_cast<unsigned long long>(c.drops_mid_request));
  EXPECT_GT(c.slow_downs, 0u);
  EXPECT_GT(c.drops, 0u);
  EXPECT_EQ(c.requests, static_cast<uint64_t>(attempts));
  EXPECT_EQ(c.forwarded + c.slow_downs + c.drops, c.requests);
  EXPECT_EQ(c.upstream_errors, 0u);
}

}  // namespace
}  // namespace signround::testing
