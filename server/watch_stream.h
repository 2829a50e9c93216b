// WatchJob on gRPC's completion-queue API, beside the synchronous unary methods: one
// completion queue and one thread serve every stream, so a stream holds no thread. (gRPC
// 1.51's callback API was tried first: its polling threads held the synchronous methods
// up, SubmitJob's p99 going from 3 ms to 90 ms.)
//
// The core's fan-out (src/jobs/watch_fanout.h) hands each stream its events; a stream
// queues them and has one write in flight at a time. With kMaxQueued events unwritten (a
// slow reader) it asks the fan-out for no more until half of them are written; the
// fan-out then reads them again from the store.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "signround/v1/quantization_service.grpc.pb.h"
#include "src/auth/authenticator.h"
#include "src/jobs/job_service.h"

namespace signround::server {

class WatchStreams {
 public:
  static constexpr size_t kMaxQueued = 64;
  using Service =
      v1::QuantizationService::WithAsyncMethod_WatchJob<v1::QuantizationService::Service>;
  // Maps a stream's end to its status (and counts it).
  using Finisher = std::function<grpc::Status(const absl::Status&)>;

  // `authenticator` null: every caller is an admin. All outlive this.
  WatchStreams(Service* service, jobs::JobService& core, const auth::Authenticator* authenticator,
               Finisher finisher);
  ~WatchStreams();  // Stop()
  WatchStreams(const WatchStreams&) = delete;
  WatchStreams& operator=(const WatchStreams&) = delete;

  // Once the server is started: serves WatchJob calls through `cq` (ServerBuilder's).
  void Start(std::unique_ptr<grpc::ServerCompletionQueue> cq);
  // After the server's Shutdown: shuts the queue down, drains it and joins its thread.
  void Stop();

 private:
  friend class WatchCall;
  void Loop();

  Service* const service_;
  jobs::JobService& core_;
  const auth::Authenticator* const authenticator_;
  const Finisher finisher_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::thread thread_;
};

}  // namespace signround::server
