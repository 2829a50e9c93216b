// The HTTP endpoints on loopback: listen address parsing, /metrics, /healthz, /readyz,
// wrong methods and paths, bind errors and shutdown.
#include "src/metrics/http_endpoints.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace signround::metrics {
namespace {

TEST(ParseHostPortTest, AcceptsTheDocumentedForms) {
  struct Case {
    const char* in;
    const char* host;
    int port;
  };
  for (const Case& c :
       std::vector<Case>{{"127.0.0.1:9464", "127.0.0.1", 9464},
                         {"localhost:0", "localhost", 0},
                         {":8080", "0.0.0.0", 8080},
                         {"0.0.0.0:65535", "0.0.0.0", 65535},
                         {"[::1]:9000", "::1", 9000},
                         {"[::]:1", "::", 1},
                         {"[fe80::1%eth0]:80", "fe80::1%eth0", 80},
                         {"metrics-host.example_1:00080", "metrics-host.example_1", 80}}) {
    auto parsed = ParseHostPort(c.in);
    ASSERT_TRUE(parsed.ok()) << c.in << ": " << parsed.status();
    EXPECT_EQ(parsed->first, c.host) << c.in;
    EXPECT_EQ(parsed->second, c.port) << c.in;
  }
}

TEST(ParseHostPortTest, RejectsMalformedAddressesNamingThem) {
  for (const std::string& in : std::vector<std::string>{"",
                                                        "127.0.0.1",
                                                        "127.0.0.1:",
                                                        ":",
                                                        "127.0.0.1:65536",
                                                        "127.0.0.1:999999",
                                                        "127.0.0.1:-1",
                                                        "127.0.0.1:+80",
                                                        "127.0.0.1:80x",
                                                        "127.0.0.1: 80",
                                                        "::1:80",
                                                        "[::1]",
                                                        "[::1]80",
                                                        "[]:80",
                                                        "[::1:80",
                                                        "[not:v6!]:80",
                                                        "[::1%]:80",
                                                        "host name:80",
                                                        "h\n:80",
                                                        "h\xff:80",
                                                        std::string("a\0b:80", 6),
                                                        std::string(1000, 'a') + ":80"}) {
    auto parsed = ParseHostPort(in);
    ASSERT_FALSE(parsed.ok()) << absl::CHexEscape(in);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(parsed.status().message(), "listen address \""))
        << parsed.status();
    EXPECT_LT(parsed.status().message().size(), 400u) << "bounded message";
  }
}

// A running set of endpoints on an ephemeral loopback port, with a switchable readiness.
class HttpEndpointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpEndpointsOptions options;
    options.listen = "127.0.0.1:0";
    auto started = HttpEndpoints::Start(options, &registry_, [this] { return ready_.load(); });
    ASSERT_TRUE(started.ok()) << started.status();
    endpoints_ = std::move(*started);
  }

  httplib::Client Client() {
    httplib::Client client("127.0.0.1", endpoints_->port());
    client.set_connection_timeout(5);
    client.set_read_timeout(5);
    return client;
  }

  Registry registry_;
  std::atomic<bool> ready_{false};
  std::unique_ptr<HttpEndpoints> endpoints_;
};

// Whether a TCP connection to 127.0.0.1:port is accepted.
bool CanConnect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

TEST_F(HttpEndpointsTest, ReportsItsBoundAddress) {
  EXPECT_GT(endpoints_->port(), 0);
  EXPECT_EQ(endpoints_->address(), absl::StrCat("127.0.0.1:", endpoints_->port()));
}

TEST_F(HttpEndpointsTest, MetricsServesTheRegistryAsItIsNow) {
  Counter& requests = registry_.AddCounter("test_requests_total", "Requests.").With({});
  requests.Inc(5);
  auto client = Client();
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_TRUE(absl::StrContains(res->body, "\ntest_requests_total 5\n")) << res->body;
  requests.Inc(2);
  res = client.Get("/metrics?ignored=1");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(absl::StrContains(res->body, "\ntest_requests_total 7\n")) << res->body;
  EXPECT_EQ(res->body, registry_.Render());
}

TEST_F(HttpEndpointsTest, HealthzAndReadyzFollowReadiness) {
  auto client = Client();
  auto res = client.Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok");
  for (bool ready : {false, true, false}) {
    ready_ = ready;
    res = client.Get("/readyz");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, ready ? 200 : 503);
    EXPECT_EQ(res->body, ready ? "ready" : "not ready");
  }
}

TEST_F(HttpEndpointsTest, WrongMethodIs405UnknownPathIs404) {
  auto client = Client();
  for (const char* path : {"/metrics", "/healthz", "/readyz"}) {
    auto post = client.Post(path, "x", "text/plain");
    ASSERT_TRUE(post) << httplib::to_string(post.error());
    EXPECT_EQ(post->status, 405) << path;
    EXPECT_EQ(post->get_header_value("Allow"), "GET, HEAD") << path;
    auto del = client.Delete(path);
    ASSERT_TRUE(del) << httplib::to_string(del.error());
    EXPECT_EQ(del->status, 405) << path;
  }
  for (const char* path : {"/", "/metrics/", "/metricsx", "/healthz/extra", "/../metrics"}) {
    auto res = client.Get(path);
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 404) << path;
  }
}

TEST_F(HttpEndpointsTest, ServesConcurrentScrapesWithoutStalling) {
  constexpr int kThreads = 16;
  constexpr int kRequests = 10;
  const auto start = std::chrono::steady_clock::now();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      auto client = Client();
      for (int i = 0; i < kRequests; ++i) {
        auto res = client.Get("/metrics");
        if (res && res->status == 200) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kRequests);
  // A dropped SYN (a full listen backlog) is retried after 1 s; unstalled this takes ~20 ms.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
}

TEST_F(HttpEndpointsTest, DestructionStopsPromptlyEvenWithAnOpenConnection) {
  const int port = endpoints_->port();
  auto client = Client();
  client.set_keep_alive(true);
  auto res = client.Get("/healthz");  // a client that asked to keep its connection
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  const auto start = std::chrono::steady_clock::now();
  endpoints_.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_FALSE(CanConnect(port));
}

TEST(HttpEndpointsStartTest, MalformedListenAddressIsInvalidArgument) {
  Registry registry;
  HttpEndpointsOptions options;
  options.listen = "127.0.0.1";
  auto started = HttpEndpoints::Start(options, &registry, [] { return true; });
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(started.status().message(), "127.0.0.1")) << started.status();
}

// A socket listening on an ephemeral loopback port, with or without SO_REUSEPORT.
class Occupier {
 public:
  explicit Occupier(bool reuse_port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int yes = 1;
    if (reuse_port) setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &yes, sizeof(yes));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bound_ =
        bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(fd_, 4) == 0;
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~Occupier() { close(fd_); }
  bool bound() const { return bound_; }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  bool bound_ = false;
  int port_ = 0;
};

TEST(HttpEndpointsStartTest, PortInUseIsUnavailableNamingTheAddress) {
  Registry registry;
  // With SO_REUSEPORT on the other socket too: httplib's default socket options would
  // have let both bind.
  for (bool reuse_port : {false, true}) {
    Occupier occupier(reuse_port);
    ASSERT_TRUE(occupier.bound());
    HttpEndpointsOptions options;
    options.listen = absl::StrCat("127.0.0.1:", occupier.port());
    auto started = HttpEndpoints::Start(options, &registry, nullptr);
    ASSERT_FALSE(started.ok()) << "bound a port in use, reuse_port=" << reuse_port;
    EXPECT_EQ(started.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_TRUE(absl::StrContains(started.status().message(), options.listen)) << started.status();
  }
}

TEST(HttpEndpointsStartTest, SecondServerOnTheSamePortFailsAndThePortIsReusableAfterStop) {
  Registry registry;
  HttpEndpointsOptions options;
  options.listen = "127.0.0.1:0";
  auto first = HttpEndpoints::Start(options, &registry, nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  options.listen = (*first)->address();
  auto second = HttpEndpoints::Start(options, &registry, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  first->reset();
  auto again = HttpEndpoints::Start(options, &registry, nullptr);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->address(), options.listen);
  // No readiness function: never ready.
  httplib::Client client("127.0.0.1", (*again)->port());
  auto res = client.Get("/readyz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 503);
}

TEST(HttpEndpointsStartTest, StartStopCyclesDoNotHang) {
  Registry registry;
  HttpEndpointsOptions options;
  options.listen = "127.0.0.1:0";
  for (int i = 0; i < 50; ++i) {
    auto started = HttpEndpoints::Start(options, &registry, nullptr);
    ASSERT_TRUE(started.ok()) << started.status();
  }
}

TEST(HttpEndpointsRoutesTest, AddedRoutesSeeCapturesQueryAndAuthorization) {
  Registry registry;
  HttpEndpointsOptions options;
  options.listen = "127.0.0.1:0";
  HttpRequest seen;
  options.routes.push_back({"/things/([a-z]+)", [&seen](const HttpRequest& req) {
                              seen = req;
                              HttpReply reply;
                              reply.status = 201;
                              reply.content_type = "application/json";
                              reply.body = "{}";
                              reply.headers.emplace_back("X-Test", "yes");
                              return reply;
                            }});
  auto started = HttpEndpoints::Start(options, &registry, nullptr);
  ASSERT_TRUE(started.ok()) << started.status();
  httplib::Client client("127.0.0.1", (*started)->port());
  auto res = client.Get("/things/abc?x=1&x=2&y=%3Cb%3E", {{"Authorization", "Bearer t0k"}});
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 201);
  EXPECT_EQ(res->body, "{}");
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(res->get_header_value("X-Test"), "yes");
  EXPECT_EQ(seen.path, "/things/abc");
  EXPECT_EQ(seen.path_params, std::vector<std::string>{"abc"});
  EXPECT_EQ(seen.query.count("x"), 2u);
  EXPECT_EQ(seen.query.find("y")->second, "<b>");
  EXPECT_EQ(seen.authorization, std::vector<std::string>{"Bearer t0k"});
  // Not matched in full: the built-in 404; other methods on the route: 405.
  EXPECT_EQ(client.Get("/things/ABC")->status, 404);
  EXPECT_EQ(client.Put("/things/abc", "", "text/plain")->status, 405);
  EXPECT_EQ(client.Get("/metrics")->status, 200);
}

TEST(HttpEndpointsRoutesTest, ARouteWithoutAHandlerIsInvalidArgument) {
  Registry registry;
  HttpEndpointsOptions options;
  options.listen = "127.0.0.1:0";
  options.routes.push_back({"/x", nullptr});
  auto started = HttpEndpoints::Start(options, &registry, nullptr);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace signround::metrics
