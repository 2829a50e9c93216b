// The operational HTTP endpoints of a server: GET /metrics (the Registry in Prometheus text
// format), /healthz (liveness) and /readyz (readiness), served on their own listener thread,
// and the GET routes its owner adds (the dashboard, src/dashboard/).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/metrics/metrics.h"

namespace signround::metrics {

// A GET (or HEAD) request to an added route, as its handler sees it.
struct HttpRequest {
  std::string path;                               // as sent, without the query
  std::vector<std::string> path_params;           // the route pattern's capture groups
  std::multimap<std::string, std::string> query;  // percent-decoded
  std::vector<std::string> authorization;         // the Authorization header values
};

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // added to the response
};

// A route: GET and HEAD on paths that fully match `pattern` (an ECMAScript regex, tried in
// order before the built-in 404); other methods on them get 405. `handle` runs on the
// listener's threads, concurrently.
struct HttpRoute {
  std::string pattern;
  std::function<HttpReply(const HttpRequest&)> handle;
};

struct HttpEndpointsOptions {
  std::string listen = "127.0.0.1:9464";  // host:port; port 0 picks a free port
  std::vector<HttpRoute> routes;
};

// Splits a listen address into host and port: "host:port", "[v6-address]:port" (the host is
// returned without brackets), ":port" (host 0.0.0.0). The port is decimal in 0..65535.
// INVALID_ARGUMENT naming the address otherwise.
absl::StatusOr<std::pair<std::string, int>> ParseHostPort(absl::string_view address);

class HttpEndpoints {
 public:
  // Binds `options.listen` and starts serving. GET /metrics answers registry->Render() as
  // "text/plain; version=0.0.4; charset=utf-8"; /healthz 200 "ok"; /readyz 200 "ready" when
  // ready() is true, else 503 "not ready"; other methods on these paths 405; other paths 404.
  // `registry` must outlive the endpoints; `ready` is called from the listener's threads.
  // INVALID_ARGUMENT for a malformed address, UNAVAILABLE when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpEndpoints>> Start(const HttpEndpointsOptions& options,
                                                              Registry* registry,
                                                              std::function<bool()> ready);

  HttpEndpoints(const HttpEndpoints&) = delete;
  HttpEndpoints& operator=(const HttpEndpoints&) = delete;
  // Stops listening and joins the listener.
  ~HttpEndpoints();

  int port() const { return port_; }
  // host:port as bound, e.g. "127.0.0.1:9464" or "[::1]:9464".
  std::string address() const;

 private:
  struct Impl;
  explicit HttpEndpoints(std::unique_ptr<Impl> impl, std::string host, int port);

  std::unique_ptr<Impl> impl_;
  std::string host_;
  int port_ = 0;
};

}  // namespace signround::metrics
