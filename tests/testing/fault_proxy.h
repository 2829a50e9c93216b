// A loopback HTTP/1.1 proxy that injects faults: it forwards each request byte for byte to
// an upstream server (so AWS SigV4 signatures, which cover the Host header, stay valid) and,
// for a configurable fraction of requests, instead answers 503 SlowDown with an S3-style XML
// error or drops the connection. For the object storage tests (tests/integration).
//
//   FaultProxyOptions options;
//   options.upstream_port = server.endpoint().port;
//   options.fault_rate = 0.2;
//   FaultProxy proxy(options);
//   ASSERT_TRUE(proxy.Start().ok());
//   ... point the S3 client at proxy.endpoint() ...
//   EXPECT_GT(proxy.counters().slow_downs, 0u);
//
// One thread accepts; each client connection gets a thread with blocking I/O and its own
// upstream connection (kept alive between requests). Keep-alive, Content-Length and chunked
// bodies both ways, close-delimited responses, HEAD, 1xx interim responses (Expect:
// 100-continue is forwarded and the upstream's 100 Continue relayed) are handled. Bodies
// stream through a fixed buffer, never held whole. Faults are drawn per request from a
// seeded splitmix64 sequence: of the faulted requests, half get 503 SlowDown, a quarter are
// dropped right after the request head, and a quarter are dropped mid-request (after half of
// the request body, or after the upstream's response head and half of its body: the request
// may have taken effect upstream, the client never learns its outcome).
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"

namespace signround::testing {

struct FaultProxyOptions {
  std::string upstream_host = "127.0.0.1";  // a numeric IPv4 address
  int upstream_port = 0;
  double fault_rate = 0.0;       // the fraction of requests that get a fault, in [0, 1]
  double slow_down_share = 0.5;  // of the faults: the fraction answered 503 (else dropped)
  uint64_t seed = 1;             // the fault sequence depends only on this and request order
  int io_timeout_seconds = 120;  // a connection idle this long (either side) is closed
};

class FaultProxy {
 public:
  struct Counters {
    uint64_t connections = 0;        // client connections accepted
    uint64_t requests = 0;           // request heads read from clients
    uint64_t forwarded = 0;          // requests forwarded whose response was relayed whole
    uint64_t slow_downs = 0;         // 503 SlowDown answers injected
    uint64_t drops = 0;              // connections dropped on purpose (both kinds)
    uint64_t drops_after_head = 0;   // ... right after reading the request head
    uint64_t drops_mid_request = 0;  // ... in the middle of the request or response body
    uint64_t upstream_errors = 0;    // 502s: the upstream could not be reached or failed
  };

  explicit FaultProxy(FaultProxyOptions options);
  ~FaultProxy();  // Stop()
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // Listens on 127.0.0.1 on a free port and starts serving.
  absl::Status Start();
  // Closes the listening socket and every connection (also mid-transfer), joins all threads.
  void Stop();

  int port() const { return port_; }
  std::string endpoint() const;  // "http://127.0.0.1:PORT"

  // Changes the fault rate for requests read from now on.
  void set_fault_rate(double rate);
  Counters counters() const;

 private:
  enum class Fault { kNone, kSlowDown, kDropAfterHead, kDropMidRequest };
  struct Conn;

  Fault NextFault();
  void AcceptLoop();
  void Serve(Conn* conn);
  int ConnectUpstream();
  void ReapFinished();

  FaultProxyOptions options_;
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};  // a pipe: written to stop the accept loop
  int port_ = 0;
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};

  std::mutex rng_mu_;
  double fault_rate_;
  uint64_t rng_state_;

  mutable std::mutex conns_mu_;  // guards conns_ and the fds inside each Conn
  std::list<std::unique_ptr<Conn>> conns_;

  std::atomic<uint64_t> connections_{0}, requests_{0}, forwarded_{0}, slow_downs_{0},
      drops_after_head_{0}, drops_mid_request_{0}, upstream_errors_{0};
};

}  // namespace signround::testing
