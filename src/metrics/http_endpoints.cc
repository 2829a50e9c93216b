#include "src/metrics/http_endpoints.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <thread>

#include <httplib.h>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"

namespace signround::metrics {
namespace {

constexpr size_t kMaxAddressLength = 300;
constexpr size_t kListenerThreads = 8;
constexpr size_t kMaxRequestBody = 64 * 1024;
constexpr int kListenBacklog = 128;
constexpr auto kStartTimeout = std::chrono::seconds(10);
constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kEndpointPaths[] = "/(metrics|healthz|readyz)";

absl::Status BadAddress(absl::string_view address, absl::string_view why) {
  std::string shown = absl::CHexEscape(address.substr(0, 100));
  if (address.size() > 100) shown += "...";
  return absl::InvalidArgumentError(absl::StrCat("listen address \"", shown, "\": ", why,
                                                 " (expected host:port, [ipv6]:port or :port)"));
}

bool IsHostNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// An IPv6 literal, optionally with a %zone.
bool IsIpv6Literal(absl::string_view host) {
  const size_t zone = host.find('%');
  const absl::string_view address = host.substr(0, zone);
  if (address.empty() || address.find(':') == absl::string_view::npos) return false;
  const bool address_ok = std::all_of(address.begin(), address.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
           c == '.';
  });
  if (!address_ok) return false;
  if (zone == absl::string_view::npos) return true;
  const absl::string_view zone_id = host.substr(zone + 1);
  return !zone_id.empty() && std::all_of(zone_id.begin(), zone_id.end(), IsHostNameChar);
}

// Only SO_REUSEADDR: httplib's default also sets SO_REUSEPORT, which would let a second
// server bind a port that is already being served. Records the socket in `*last` (the last
// one created is the one bound).
httplib::SocketOptions ListenSocketOptions(std::shared_ptr<std::atomic<int>> last) {
  return [last](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    last->store(sock);
  };
}

void SetText(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "text/plain; charset=utf-8");
}

HttpRequest ToRequest(const httplib::Request& req) {
  HttpRequest out;
  out.path = req.path;
  for (size_t i = 1; i < req.matches.size(); ++i) out.path_params.push_back(req.matches[i].str());
  out.query.insert(req.params.begin(), req.params.end());
  const auto range = req.headers.equal_range("Authorization");
  for (auto it = range.first; it != range.second; ++it) out.authorization.push_back(it->second);
  return out;
}

void AddRoutes(httplib::Server* server, Registry* registry, std::function<bool()> ready,
               const std::vector<HttpRoute>& routes) {
  server->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.status = 200;
    res.set_content(registry->Render(), kMetricsContentType);
  });
  server->Get("/healthz",
              [](const httplib::Request&, httplib::Response& res) { SetText(res, 200, "ok"); });
  server->Get("/readyz",
              [ready = std::move(ready)](const httplib::Request&, httplib::Response& res) {
                if (ready && ready()) {
                  SetText(res, 200, "ready");
                } else {
                  SetText(res, 503, "not ready");
                }
              });
  for (const HttpRoute& route : routes) {
    server->Get(route.pattern,
                [handle = route.handle](const httplib::Request& req, httplib::Response& res) {
                  HttpReply reply = handle(ToRequest(req));
                  res.status = reply.status;
                  for (auto& [name, value] : reply.headers) res.set_header(name, value);
                  res.set_content(std::move(reply.body), reply.content_type);
                });
  }
  server->Get(".*", [](const httplib::Request&, httplib::Response& res) {
    SetText(res, 404, "not found");
  });
  const auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Allow", "GET, HEAD");
    SetText(res, 405, "method not allowed");
  };
  std::vector<std::string> patterns = {kEndpointPaths};
  for (const HttpRoute& route : routes) patterns.push_back(route.pattern);
  for (const std::string& pattern : patterns) {
    server->Post(pattern, not_allowed);
    server->Put(pattern, not_allowed);
    server->Patch(pattern, not_allowed);
    server->Delete(pattern, not_allowed);
    server->Options(pattern, not_allowed);
  }
  // No exception text in the response (httplib's default puts it in a header).
  server->set_exception_handler([](const httplib::Request&, httplib::Response& res,
                                   std::exception_ptr) { SetText(res, 500, "internal error"); });
}

}  // namespace

absl::StatusOr<std::pair<std::string, int>> ParseHostPort(absl::string_view address) {
  if (address.empty()) return BadAddress(address, "empty");
  if (address.size() > kMaxAddressLength) return BadAddress(address, "too long");
  std::string host;
  absl::string_view port_text;
  if (address[0] == '[') {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos) return BadAddress(address, "missing ']'");
    host = std::string(address.substr(1, close - 1));
    if (!IsIpv6Literal(host)) return BadAddress(address, "not an IPv6 address in brackets");
    const absl::string_view rest = address.substr(close + 1);
    if (rest.empty() || rest[0] != ':') return BadAddress(address, "missing ':port' after ']'");
    port_text = rest.substr(1);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) return BadAddress(address, "missing ':port'");
    host = std::string(address.substr(0, colon));
    if (host.find(':') != std::string::npos) {
      return BadAddress(address, "an IPv6 address must be in brackets");
    }
    if (host.empty()) host = "0.0.0.0";
    if (!std::all_of(host.begin(), host.end(), IsHostNameChar)) {
      return BadAddress(address, "the host has characters other than letters, digits, '.-_'");
    }
    port_text = address.substr(colon + 1);
  }
  if (port_text.empty()) return BadAddress(address, "missing port");
  const bool digits =
      std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || port_text.size() > 5) {
    return BadAddress(address, "the port must be a decimal number in 0..65535");
  }
  int port = 0;
  for (char c : port_text) port = port * 10 + (c - '0');
  if (port > 65535) return BadAddress(address, "the port must be a decimal number in 0..65535");
  return std::make_pair(std::move(host), port);
}

struct HttpEndpoints::Impl {
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> listen_done{false};

  ~Impl() {
    if (!thread.joinable()) return;
    // stop() does nothing before the listener runs (and must not be called twice).
    while (!server.is_running() && !listen_done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    server.stop();
    thread.join();
  }
};

absl::StatusOr<std::unique_ptr<HttpEndpoints>> HttpEndpoints::Start(
    const HttpEndpointsOptions& options, Registry* registry, std::function<bool()> ready) {
  SR_ASSIGN_OR_RETURN(auto host_port, ParseHostPort(options.listen));
  if (registry == nullptr) return absl::InvalidArgumentError("HttpEndpoints: no registry");
  auto impl = std::make_unique<Impl>();
  httplib::Server& server = impl->server;
  for (const HttpRoute& route : options.routes) {
    if (!route.handle) return absl::InvalidArgumentError("HttpEndpoints: a route has no handler");
  }
  AddRoutes(&server, registry, std::move(ready), options.routes);
  auto listen_socket = std::make_shared<std::atomic<int>>(-1);
  server.set_socket_options(ListenSocketOptions(listen_socket));
  server.set_payload_max_length(kMaxRequestBody);
  // One request per connection: an idle kept-alive scraper would otherwise hold one of the
  // few listener threads for seconds, delaying health probes.
  server.set_keep_alive_max_count(1);
  server.new_task_queue = [] { return new httplib::ThreadPool(kListenerThreads); };

  const std::string& host = host_port.first;
  int port = host_port.second;
  if (port == 0) {
    port = server.bind_to_any_port(host);
  } else if (!server.bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen,
        " for the metrics and health endpoints: bind failed (port in use, or the host is not "
        "a local address)"));
  }
  // httplib listens with a backlog of 5, so a burst of connections (scrapers and probes)
  // would see SYNs dropped and retried a second later: raise it (Linux allows re-listen).
  ::listen(listen_socket->load(), kListenBacklog);

  Impl* raw = impl.get();
  raw->thread = std::thread([raw] {
    raw->server.listen_after_bind();
    raw->listen_done = true;
  });
  // stop() is a no-op until the server runs: wait for it, so the destructor can stop it.
  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (!server.is_running() && !raw->listen_done && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!server.is_running()) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve on ", options.listen, ": the listener did not start"));
  }
  return std::unique_ptr<HttpEndpoints>(
      new HttpEndpoints(std::move(impl), std::move(host_port.first), port));
}

HttpEndpoints::HttpEndpoints(std::unique_ptr<Impl> impl, std::string host, int port)
    : impl_(std::move(impl)), host_(std::move(host)), port_(port) {}

HttpEndpoints::~HttpEndpoints() = default;

std::string HttpEndpoints::address() const {
  if (host_.find(':') != std::string::npos) return absl::StrCat("[", host_, "]:", port_);
  return absl::StrCat(host_, ":", port_);
}

}  // namespace signround::metrics
