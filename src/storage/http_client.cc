#include "src/storage/http_client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace signround {
namespace {

constexpr size_t kMaxBodyInMemory = 1 << 20;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  const HttpRequest* request;
  HttpResponse* response;
  uint64_t sent = 0;
  int write_errno = 0;
};

size_t ReadBody(char* buffer, size_t size, size_t count, void* user) {
  Transfer* t = static_cast<Transfer*>(user);
  const HttpRequest& r = *t->request;
  const size_t want = std::min<uint64_t>(
      size * count, r.body_fd >= 0 ? r.body_size - t->sent : r.body.size() - t->sent);
  if (want == 0) return 0;
  if (r.body_fd < 0) {
    std::copy_n(r.body.data() + t->sent, want, buffer);
  } else {
    ssize_t n;
    do {
      n = ::pread(r.body_fd, buffer, want, static_cast<off_t>(r.body_offset + t->sent));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return CURL_READFUNC_ABORT;
    t->sent += static_cast<uint64_t>(n);
    if (r.progress) r.progress(t->sent, r.body_size);
    return static_cast<size_t>(n);
  }
  t->sent += want;
  return want;
}

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  Transfer* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  HttpResponse& resp = *t->response;
  const bool to_file = t->request->response_fd >= 0 && resp.status >= 200 && resp.status < 300;
  if (to_file) {
    size_t done = 0;
    while (done < n) {
      ssize_t w = ::write(t->request->response_fd, data + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        t->write_errno = errno;
        return 0;  // aborts the transfer
      }
      done += static_cast<size_t>(w);
    }
  } else if (resp.body.size() < kMaxBodyInMemory) {
    resp.body.append(data, std::min(n, kMaxBodyInMemory - resp.body.size()));
  }
  resp.body_bytes += n;
  if (to_file && t->request->progress) t->request->progress(resp.body_bytes, 0);
  return n;
}

size_t Header(char* data, size_t size, size_t count, void* user) {
  Transfer* t = static_cast<Transfer*>(user);
  absl::string_view line(data, size * count);
  if (absl::StartsWith(line, "HTTP/")) {  // a new response (after 100 Continue or a redirect)
    t->response->headers.clear();
    const size_t sp = line.find(' ');
    long status = 0;
    if (sp != absl::string_view::npos) status = std::strtol(line.data() + sp + 1, nullptr, 10);
    t->response->status = status;
    return size * count;
  }
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    t->response->headers[name] = std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * count;
}

}  // namespace

HttpClient::HttpClient() {
  GlobalInit();
  curl_ = curl_easy_init();
}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

absl::StatusOr<HttpResponse> HttpClient::Perform(const HttpRequest& request) {
  CURL* c = static_cast<CURL*>(curl_);
  if (c == nullptr) return absl::InternalError("curl_easy_init failed");
  curl_easy_reset(c);
  HttpResponse response;
  Transfer transfer{&request, &response};
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);  // S3 keys may hold "..", "//": send them as signed
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, request.connect_timeout_s);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, request.low_speed_timeout_s);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, Header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  const uint64_t body_size = request.body_fd >= 0 ? request.body_size : request.body.size();
  if (request.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT" || request.method == "POST") {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, ReadBody);
    curl_easy_setopt(c, CURLOPT_READDATA, &transfer);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body_size));
    if (request.method == "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (request.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  curl_slist* headers = nullptr;
  for (const auto& [name, value] : request.headers) {
    headers = curl_slist_append(headers, absl::StrCat(name, ": ", value).c_str());
  }
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  const CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (transfer.write_errno != 0) {
    return absl::InternalError(
        absl::StrCat("writing the download failed: ", std::strerror(transfer.write_errno)));
  }
  if (rc != CURLE_OK) {
    const std::string why = absl::StrCat(request.method, " ", curl_easy_strerror(rc));
    if (rc == CURLE_OPERATION_TIMEDOUT) return absl::DeadlineExceededError(why);
    return absl::UnavailableError(why);
  }
  return response;
}

}  // namespace signround
