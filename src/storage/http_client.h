// One HTTP/1.1 client connection (a libcurl easy handle, reused so requests
// keep the connection alive). Bodies stream from and to files, so a 10 GB
// object never sits in memory. Not thread-safe: one client per thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/storage/object_store.h"

namespace signround {

struct HttpRequest {
  std::string method = "GET";  // GET, PUT, POST, HEAD, DELETE
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  // The body: `body` in memory, or `body_size` bytes of file `body_fd` from `body_offset`.
  std::string body;
  int body_fd = -1;
  uint64_t body_offset = 0;
  uint64_t body_size = 0;
  // When >= 0, a 2xx answer's body is written to this file at its current
  // offset instead of HttpResponse::body.
  int response_fd = -1;
  TransferProgressFn progress;  // bytes of this request's body (up) or answer (down)
  long connect_timeout_s = 10;
  long low_speed_timeout_s = 60;  // abort when under 1 KiB/s for this long
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;                            // error and XML bodies (capped at 1 MiB)
  uint64_t body_bytes = 0;                     // bytes received (also when streamed to a file)
};

class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `request`. A transport failure (refused, reset, timeout) is
  // UNAVAILABLE or DEADLINE_EXCEEDED with curl's reason; any HTTP status is a
  // response.
  absl::StatusOr<HttpResponse> Perform(const HttpRequest& request);

 private:
  void* curl_;  // CURL*
};

}  // namespace signround
