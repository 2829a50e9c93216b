#include "tests/testing/fault_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "src/common/splitmix64.h"

namespace signround::testing {
namespace {

constexpr size_t kBufferSize = 256 * 1024;  // per direction and connection
constexpr size_t kMaxHeadSize = 64 * 1024;
constexpr size_t kMaxLineSize = 8 * 1024;

constexpr absl::string_view kBadRequest =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
constexpr absl::string_view kBadGateway =
    "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

// Writes all of `data` to `fd`; a negative fd discards. False on error.
bool WriteAll(int fd, const char* data, size_t n) {
  if (fd < 0) return true;
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool WriteAll(int fd, absl::string_view s) { return WriteAll(fd, s.data(), s.size()); }

void SetSocketOptions(int fd, int timeout_seconds) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  timeval tv{};
  tv.tv_sec = timeout_seconds;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// Buffered reads from a socket, with the copy operations HTTP framing needs. Every copy
// goes through the one fixed buffer.
class Reader {
 public:
  enum class HeadResult { kOk, kEof, kError };

  explicit Reader(int fd) : fd_(fd), buf_(kBufferSize) {}

  size_t buffered() const { return end_ - begin_; }
  // Whether the last failed copy failed on the writing side.
  bool write_failed() const { return write_failed_; }

  // Reads a message head up to and including its blank line. kEof: the peer closed (or
  // timed out) before sending a byte of it.
  HeadResult ReadHead(std::string* head) {
    head->clear();
    while (true) {
      if (buffered() == 0 && !Fill()) return head->empty() ? HeadResult::kEof : HeadResult::kError;
      const size_t old_size = head->size();
      head->append(buf_.data() + begin_, buffered());
      size_t pos = head->find("\r\n\r\n", old_size >= 3 ? old_size - 3 : 0);
      if (pos != std::string::npos) {
        const size_t head_size = pos + 4;
        begin_ += head_size - old_size;  // the rest stays buffered
        head->resize(head_size);
        return HeadResult::kOk;
      }
      begin_ = end_;
      // Blank lines before a request line are allowed (RFC 9112 2.2).
      if (head->find_first_not_of("\r\n") == std::string::npos) head->clear();
      if (head->size() > kMaxHeadSize) return HeadResult::kError;
    }
  }

  // Copies exactly `n` bytes to `out` (negative: discards them).
  bool CopyBytes(uint64_t n, int out) {
    while (n > 0) {
      if (buffered() == 0 && !Fill()) return false;
      size_t take = static_cast<size_t>(std::min<uint64_t>(n, buffered()));
      if (!Write(out, buf_.data() + begin_, take)) return false;
      begin_ += take;
      n -= take;
    }
    return true;
  }

  // Copies whatever arrives next (at most a buffer) to `out`.
  bool CopySome(int out) {
    if (buffered() == 0 && !Fill()) return false;
    size_t take = buffered();
    begin_ += take;
    return Write(out, buf_.data() + begin_ - take, take);
  }

  // Copies everything up to the peer's end of stream.
  bool CopyToEof(int out) {
    while (true) {
      if (buffered() == 0 && !Fill()) return eof_;
      if (!Write(out, buf_.data() + begin_, buffered())) return false;
      begin_ = end_;
    }
  }

  // Copies a chunked body verbatim: chunk-size lines, data, last chunk, trailers.
  bool CopyChunked(int out) {
    std::string line;
    while (true) {
      if (!ReadLine(&line) || !Write(out, line.data(), line.size())) return false;
      absl::string_view size_text = line;
      size_text = size_text.substr(0, size_text.find_first_of(";\r\n"));
      uint64_t size = 0;
      if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(size_text), &size)) return false;
      if (size == 0) break;
      if (!CopyBytes(size + 2, out)) return false;  // data and its CRLF
    }
    while (true) {  // trailer fields, then the empty line
      if (!ReadLine(&line) || !Write(out, line.data(), line.size())) return false;
      if (line == "\r\n" || line == "\n") return true;
    }
  }

 private:
  bool Write(int out, const char* data, size_t n) {
    write_failed_ = !WriteAll(out, data, n);
    return !write_failed_;
  }

  // Reads a line including its "\n".
  bool ReadLine(std::string* line) {
    line->clear();
    while (true) {
      if (buffered() == 0 && !Fill()) return false;
      const char* start = buf_.data() + begin_;
      const char* nl = static_cast<const char*>(memchr(start, '\n', buffered()));
      size_t take = nl ? static_cast<size_t>(nl - start) + 1 : buffered();
      line->append(start, take);
      begin_ += take;
      if (nl) return true;
      if (line->size() > kMaxLineSize) return false;
    }
  }

  // Refills the (empty) buffer; false at end of stream (eof_ set) or on an error.
  bool Fill() {
    begin_ = end_ = 0;
    while (true) {
      ssize_t n = ::read(fd_, buf_.data(), buf_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof_ = n == 0;
        return false;
      }
      end_ = static_cast<size_t>(n);
      return true;
    }
  }

  int fd_;
  std::vector<char> buf_;
  size_t begin_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
  bool write_failed_ = false;
};

// A parsed request or response head; `raw` is what is forwarded.
struct Head {
  std::string raw;
  std::vector<std::string> start;  // the start line's three parts
  std::vector<std::pair<std::string, std::string>> fields;

  // All values of a field, joined with ", ".
  std::string Get(absl::string_view name) const {
    std::string out;
    for (const auto& [n, v] : fields) {
      if (absl::EqualsIgnoreCase(n, name)) absl::StrAppend(&out, out.empty() ? "" : ", ", v);
    }
    return out;
  }
  bool Has(absl::string_view name) const {
    for (const auto& f : fields) {
      if (absl::EqualsIgnoreCase(f.first, name)) return true;
    }
    return false;
  }
  int status() const {  // responses
    int code = 0;
    return start.size() >= 2 && absl::SimpleAtoi(start[1], &code) ? code : 0;
  }
};

bool ParseHead(Head* head) {
  absl::string_view raw = head->raw;
  raw.remove_suffix(4);
  std::vector<absl::string_view> lines = absl::StrSplit(raw, "\r\n");
  if (lines.empty()) return false;
  for (absl::string_view part : absl::StrSplit(lines[0], absl::MaxSplits(' ', 2))) {
    head->start.emplace_back(part);
  }
  if (head->start.size() < 2) return false;
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos || colon == 0) return false;
    head->fields.emplace_back(std::string(lines[i].substr(0, colon)),
                              std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }
  return true;
}

bool HasToken(absl::string_view list, absl::string_view token) {
  for (absl::string_view t : absl::StrSplit(list, ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(t), token)) return true;
  }
  return false;
}

// Whether the sender of `head` (HTTP version `version`) keeps the connection open.
bool KeepAlive(const Head& head, absl::string_view version) {
  std::string connection = head.Get("connection");
  if (version == "HTTP/1.1") return !HasToken(connection, "close");
  return HasToken(connection, "keep-alive");
}

enum class Framing { kNone, kLength, kChunked, kUntilClose };
struct Body {
  Framing framing = Framing::kNone;
  uint64_t length = 0;
};

// The framing of a message body from its head (RFC 9112 6.3); false if malformed.
bool BodyOf(const Head& head, bool is_request, Body* body) {
  if (head.Has("transfer-encoding")) {
    if (!HasToken(head.Get("transfer-encoding"), "chunked")) {
      if (is_request) return false;
      body->framing = Framing::kUntilClose;
      return true;
    }
    body->framing = Framing::kChunked;
    return true;
  }
  if (head.Has("content-length")) {
    // Repeated identical values come joined as "N, N".
    std::vector<absl::string_view> values = absl::StrSplit(head.Get("content-length"), ", ");
    if (!absl::SimpleAtoi(values[0], &body->length)) return false;
    for (absl::string_view v : values) {
      if (v != values[0]) return false;
    }
    body->framing = body->length > 0 ? Framing::kLength : Framing::kNone;
    return true;
  }
  body->framing = is_request ? Framing::kNone : Framing::kUntilClose;
  return true;
}

bool CopyBody(Reader& from, const Body& body, int out) {
  switch (body.framing) {
    case Framing::kNone:
      return true;
    case Framing::kLength:
      return from.CopyBytes(body.length, out);
    case Framing::kChunked:
      return from.CopyChunked(out);
    case Framing::kUntilClose:
      return from.CopyToEof(out);
  }
  return false;
}

// Some of a body (about half), for a connection dropped mid-transfer.
void CopyPartOfBody(Reader& from, const Body& body, int out) {
  if (body.framing == Framing::kLength) {
    from.CopyBytes(body.length / 2, out);
  } else if (body.framing != Framing::kNone) {
    from.CopySome(out);
  }
}

std::string SlowDownResponse(bool head_request, bool keep_alive, uint64_t id) {
  std::string request_id = absl::StrCat("FAULTPROXY", id);
  std::string body = absl::StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
      "<Message>Please reduce your request rate.</Message><RequestId>",
      request_id, "</RequestId></Error>");
  return absl::StrCat("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n",
                      "Content-Length: ", body.size(), "\r\nx-amz-request-id: ", request_id,
                      "\r\nConnection: ", keep_alive ? "keep-alive" : "close", "\r\n\r\n",
                      head_request ? "" : body);
}

// After a final answer to a request whose body was not read: stop sending, then read and
// discard what the client still sends (briefly), so that closing does not reset the
// connection before the client has read the answer.
void LingeringClose(int fd) {
  ::shutdown(fd, SHUT_WR);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  char scratch[16384];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) < 0 && errno != EINTR) return;
    if (p.revents == 0) continue;
    ssize_t n = ::read(fd, scratch, sizeof(scratch));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
  }
}

// Whether an idle kept-alive connection is still usable (not closed by the peer).
bool StillOpen(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

}  // namespace

struct FaultProxy::Conn {
  std::thread thread;
  int client_fd = -1;
  int upstream_fd = -1;
  std::atomic<bool> finished{false};
};

FaultProxy::FaultProxy(FaultProxyOptions options)
    : options_(std::move(options)), fault_rate_(options_.fault_rate), rng_state_(options_.seed) {}

FaultProxy::~FaultProxy() { Stop(); }

std::string FaultProxy::endpoint() const { return absl::StrCat("http://127.0.0.1:", port_); }

void FaultProxy::set_fault_rate(double rate) {
  std::lock_guard<std::mutex> lock(rng_mu_);
  fault_rate_ = rate;
}

FaultProxy::Counters FaultProxy::counters() const {
  Counters c;
  c.connections = connections_;
  c.requests = requests_;
  c.forwarded = forwarded_;
  c.slow_downs = slow_downs_;
  c.drops_after_head = drops_after_head_;
  c.drops_mid_request = drops_mid_request_;
  c.drops = c.drops_after_head + c.drops_mid_request;
  c.upstream_errors = upstream_errors_;
  return c;
}

absl::Status FaultProxy::Start() {
  if (listen_fd_ >= 0) return absl::FailedPreconditionError("fault proxy already started");
  if (::pipe2(wake_fds_, O_CLOEXEC) != 0) return absl::InternalError("pipe2 failed");
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return absl::InternalError("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::InternalError(absl::StrCat("cannot listen on 127.0.0.1: errno ", errno));
  }
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void FaultProxy::Stop() {
  if (stopping_.exchange(true)) return;
  if (accept_thread_.joinable()) {
    char c = 0;
    (void)!::write(wake_fds_[1], &c, 1);
    accept_thread_.join();
  }
  std::list<std::unique_ptr<Conn>> conns;
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    for (auto& conn : conns_) {
      if (conn->client_fd >= 0) ::shutdown(conn->client_fd, SHUT_RDWR);
      if (conn->upstream_fd >= 0) ::shutdown(conn->upstream_fd, SHUT_RDWR);
    }
    conns.swap(conns_);
  }
  for (auto& conn : conns) conn->thread.join();
  for (int* fd : {&listen_fd_, &wake_fds_[0], &wake_fds_[1]}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

FaultProxy::Fault FaultProxy::NextFault() {
  std::lock_guard<std::mutex> lock(rng_mu_);
  auto uniform = [this] { return static_cast<double>(SplitMix64(rng_state_) >> 11) * 0x1.0p-53; };
  if (uniform() >= fault_rate_) return Fault::kNone;
  if (uniform() < options_.slow_down_share) return Fault::kSlowDown;
  return uniform() < 0.5 ? Fault::kDropAfterHead : Fault::kDropMidRequest;
}

int FaultProxy::ConnectUpstream() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(options_.upstream_port));
  if (::inet_pton(AF_INET, options_.upstream_host.c_str(), &addr.sin_addr) != 1 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  SetSocketOptions(fd, options_.io_timeout_seconds);
  return fd;
}

void FaultProxy::ReapFinished() {
  std::lock_guard<std::mutex> lock(conns_mu_);
  for (auto it = conns_.begin(); it != conns_.end();) {
    if ((*it)->finished) {
      (*it)->thread.join();
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

void FaultProxy::AcceptLoop() {
  while (!stopping_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    SetSocketOptions(fd, options_.io_timeout_seconds);
    ++connections_;
    ReapFinished();
    auto conn = std::make_unique<Conn>();
    conn->client_fd = fd;
    Conn* raw = conn.get();
    std::lock_guard<std::mutex> lock(conns_mu_);
    conns_.push_back(std::move(conn));
    raw->thread = std::thread([this, raw] { Serve(raw); });
  }
}

void FaultProxy::Serve(Conn* conn) {
  const int client = conn->client_fd;
  Reader from_client(client);
  std::unique_ptr<Reader> from_upstream;
  int upstream = -1;
  auto close_upstream = [&] {
    std::lock_guard<std::mutex> lock(conns_mu_);
    if (conn->upstream_fd >= 0) ::close(conn->upstream_fd);
    conn->upstream_fd = upstream = -1;
    from_upstream.reset();
  };
  auto bad_gateway = [&] {
    ++upstream_errors_;
    WriteAll(client, kBadGateway);
  };

  while (!stopping_) {
    Head req;
    if (from_client.ReadHead(&req.raw) != Reader::HeadResult::kOk) break;
    const uint64_t request_number = ++requests_;
    Body body;
    if (!ParseHead(&req) || req.start.size() != 3 || !BodyOf(req, true, &body)) {
      WriteAll(client, kBadRequest);
      LingeringClose(client);
      break;
    }
    const bool head_request = req.start[0] == "HEAD";
    const bool expect_continue =
        body.framing != Framing::kNone && HasToken(req.Get("expect"), "100-continue");
    bool keep_alive = KeepAlive(req, req.start[2]);
    const Fault fault = NextFault();

    if (fault == Fault::kSlowDown) {
      ++slow_downs_;
      // With Expect: 100-continue the client waits for us before sending its body: answer
      // at once and close. Otherwise the body is on its way: read past it first.
      if (expect_continue) {
        keep_alive = false;
      } else if (!CopyBody(from_client, body, -1)) {
        break;
      }
      WriteAll(client, SlowDownResponse(head_request, keep_alive, request_number));
      if (keep_alive) continue;
      LingeringClose(client);
      break;
    }
    if (fault == Fault::kDropAfterHead) {
      ++drops_after_head_;
      break;
    }
    const bool drop_mid = fault == Fault::kDropMidRequest;

    // Forward the head, on the kept-alive upstream connection if it is still open.
    if (upstream >= 0 && (from_upstream->buffered() > 0 || !StillOpen(upstream))) {
      close_upstream();
    }
    if (upstream < 0) {
      upstream = ConnectUpstream();
      if (upstream < 0) {
        bad_gateway();
        break;
      }
      std::lock_guard<std::mutex> lock(conns_mu_);
      conn->upstream_fd = upstream;
      from_upstream = std::make_unique<Reader>(upstream);
    }
    if (!WriteAll(upstream, req.raw)) {
      bad_gateway();
      break;
    }

    Head resp;
    // Reads response heads from upstream, relaying interim ones (1xx), up to the final one
    // or (if `stop_at_continue`) a 100 Continue. False when there is none (after a 502 if
    // `answer_failure`).
    auto read_response = [&](bool stop_at_continue, bool answer_failure) {
      while (true) {
        resp = Head();
        if (from_upstream->ReadHead(&resp.raw) != Reader::HeadResult::kOk || !ParseHead(&resp) ||
            resp.status() < 100) {
          if (answer_failure) bad_gateway();
          return false;
        }
        if (resp.status() >= 200 || (stop_at_continue && resp.status() == 100)) return true;
        if (!WriteAll(client, resp.raw)) return false;
      }
    };
    bool have_response = false;  // the final response came before the request body was sent
    if (body.framing != Framing::kNone) {
      if (expect_continue) {
        if (!read_response(true, true)) break;
        if (resp.status() == 100) {
          if (!WriteAll(client, resp.raw)) break;
        } else {
          have_response = true;  // the body is not wanted: this connection ends after this
          keep_alive = false;
        }
      }
      if (!have_response) {
        if (drop_mid) {
          CopyPartOfBody(from_client, body, upstream);
          ++drops_mid_request_;
          break;
        }
        if (!CopyBody(from_client, body, upstream)) {
          // The upstream stopped reading: it may have answered early (say 403 to a PUT).
          if (!from_client.write_failed() || !read_response(false, false)) break;
          have_response = true;
          keep_alive = false;
        }
      }
    }
    if (!have_response && !read_response(false, true)) break;

    Body resp_body;
    const int status = resp.status();
    if (head_request || status == 204 || status == 304) {
      resp_body.framing = Framing::kNone;
    } else if (!BodyOf(resp, false, &resp_body)) {
      bad_gateway();
      break;
    }
    if (drop_mid) {
      // The request reached the upstream (and may have taken effect); the client gets the
      // response head and part of the body, or nothing when there is no body.
      if (resp_body.framing != Framing::kNone &&
          (resp_body.framing != Framing::kLength || resp_body.length >= 2) &&
          WriteAll(client, resp.raw)) {
        CopyPartOfBody(*from_upstream, resp_body, client);
      }
      ++drops_mid_request_;
      break;
    }
    if (!WriteAll(client, resp.raw) || !CopyBody(*from_upstream, resp_body, client)) break;
    ++forwarded_;
    const bool upstream_open =
        KeepAlive(resp, resp.start[0]) && resp_body.framing != Framing::kUntilClose;
    if (!upstream_open) close_upstream();
    if (!keep_alive || !upstream_open) {
      if (have_response) LingeringClose(client);  // the client may still be sending its body
      break;
    }
  }

  std::lock_guard<std::mutex> lock(conns_mu_);
  if (conn->upstream_fd >= 0) ::close(conn->upstream_fd);
  if (conn->client_fd >= 0) ::close(conn->client_fd);
  conn->upstream_fd = conn->client_fd = -1;
  conn->finished = true;
}

}  // namespace signround::testing
