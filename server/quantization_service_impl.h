// signround.v1.QuantizationService over the job service core: each RPC
// converts its request, calls the core, maps the status and counts itself.
#pragma once

#include "server/watch_stream.h"
#include "signround/v1/quantization_service.grpc.pb.h"
#include "src/auth/authenticator.h"
#include "src/jobs/job_service.h"
#include "src/metrics/metrics.h"

namespace signround::server {

// The unary methods are synchronous; WatchJob runs on a completion queue
// (server/watch_stream.h): give the ServerBuilder's queue to StartWatches once started.
class QuantizationServiceImpl final : public WatchStreams::Service {
 public:
  // `authenticator` null: no authentication (every caller is an admin).
  QuantizationServiceImpl(jobs::JobService& core, metrics::Registry& registry,
                          const auth::Authenticator* authenticator = nullptr);

  grpc::Status SubmitJob(grpc::ServerContext* context, const v1::SubmitJobRequest* request,
                         v1::SubmitJobResponse* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                      v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                         v1::Job* response) override;
  // WatchJob: serves it through `cq` until StopWatches (after the server's Shutdown).
  void StartWatches(std::unique_ptr<grpc::ServerCompletionQueue> cq) {
    watches_.Start(std::move(cq));
  }
  void StopWatches() { watches_.Stop(); }

 private:
  // Maps `status`, counts the call by method and code, and logs failures (but not the
  // client's own mistakes, nor a watch ended UNAVAILABLE by a shutdown).
  grpc::Status Finish(const char* method, const absl::Status& status);

  jobs::JobService& core_;
  const auth::Authenticator* authenticator_;
  metrics::Family<metrics::Counter>& rpcs_;
  metrics::Family<metrics::Histogram>& rpc_seconds_;
  WatchStreams watches_;
};

}  // namespace signround::server
