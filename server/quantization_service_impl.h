// signround.v1.QuantizationService over the job service core: each RPC
// converts its request, calls the core, maps the status and counts itself.
#pragma once

#include "signround/v1/quantization_service.grpc.pb.h"
#include "src/auth/authenticator.h"
#include "src/jobs/job_service.h"
#include "src/metrics/metrics.h"

namespace signround::server {

class QuantizationServiceImpl final : public ::signround::v1::QuantizationService::Service {
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
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobEvent>* writer) override;

 private:
  // Maps `status`, counts the call by method and code, and logs failures.
  grpc::Status Finish(const char* method, const absl::Status& status);

  jobs::JobService& core_;
  const auth::Authenticator* authenticator_;
  metrics::Family<metrics::Counter>& rpcs_;
  metrics::Family<metrics::Histogram>& rpc_seconds_;
};

}  // namespace signround::server
