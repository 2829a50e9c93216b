#include "server/quantization_service_impl.h"

#include <chrono>

#include "absl/strings/string_view.h"
#include "server/grpc_status.h"
#include "server/proto_convert.h"
#include "server/rpc_auth.h"
#include "spdlog/spdlog.h"

namespace signround::server {
namespace {

// Times one RPC into the latency histogram.
class RpcTimer {
 public:
  RpcTimer(metrics::Family<metrics::Histogram>& family, const char* method)
      : h_(family.With({method})), start_(std::chrono::steady_clock::now()) {}
  ~RpcTimer() {
    h_.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }

 private:
  metrics::Histogram& h_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

QuantizationServiceImpl::QuantizationServiceImpl(jobs::JobService& core,
                                                 metrics::Registry& registry,
                                                 const auth::Authenticator* authenticator)
    : core_(core),
      authenticator_(authenticator),
      rpcs_(registry.AddCounter("signround_rpc_total", "gRPC calls by method and status code",
                                {"method", "code"})),
      rpc_seconds_(registry.AddHistogram("signround_rpc_duration_seconds",
                                         "Seconds per unary gRPC call by method",
                                         metrics::ExponentialBuckets(0.0001, 2, 18), {"method"})),
      watches_(this, core, authenticator,
               [this](const absl::Status& status) { return Finish("WatchJob", status); }) {}

grpc::Status QuantizationServiceImpl::Finish(const char* method, const absl::Status& status) {
  grpc::Status out = ToGrpcStatus(status);
  rpcs_.With({method, GrpcCodeName(out.error_code())}).Inc();
  const bool shutdown_watch =
      status.code() == absl::StatusCode::kUnavailable && absl::string_view(method) == "WatchJob";
  if (!status.ok() && status.code() != absl::StatusCode::kInvalidArgument &&
      status.code() != absl::StatusCode::kNotFound &&
      status.code() != absl::StatusCode::kCancelled && !shutdown_watch) {
    spdlog::warn("rpc={} {}", method, status.ToString());
  }
  return out;
}

grpc::Status QuantizationServiceImpl::SubmitJob(grpc::ServerContext* context,
                                                const v1::SubmitJobRequest* request,
                                                v1::SubmitJobResponse* response) {
  RpcTimer timer(rpc_seconds_, "SubmitJob");
  absl::StatusOr<jobs::Caller> caller = CallerOf(*context, authenticator_);
  if (!caller.ok()) return Finish("SubmitJob", caller.status());
  absl::StatusOr<jobs::CreateResult> r = core_.Submit(FromProto(request->spec()), *caller);
  if (r.ok()) {
    ToProto(r->job, response->mutable_job());
    response->set_created(r->created);
  }
  return Finish("SubmitJob", r.status());
}

grpc::Status QuantizationServiceImpl::GetJob(grpc::ServerContext* context,
                                             const v1::GetJobRequest* request, v1::Job* response) {
  RpcTimer timer(rpc_seconds_, "GetJob");
  absl::StatusOr<jobs::Caller> caller = CallerOf(*context, authenticator_);
  if (!caller.ok()) return Finish("GetJob", caller.status());
  absl::StatusOr<jobs::Job> job = core_.Get(request->job_id(), *caller);
  if (job.ok()) ToProto(*job, response);
  return Finish("GetJob", job.status());
}

grpc::Status QuantizationServiceImpl::ListJobs(grpc::ServerContext* context,
                                               const v1::ListJobsRequest* request,
                                               v1::ListJobsResponse* response) {
  RpcTimer timer(rpc_seconds_, "ListJobs");
  absl::StatusOr<jobs::Caller> caller = CallerOf(*context, authenticator_);
  if (!caller.ok()) return Finish("ListJobs", caller.status());
  absl::StatusOr<jobs::ListQuery> query = FromProto(*request);
  if (!query.ok()) return Finish("ListJobs", query.status());
  absl::StatusOr<jobs::ListPage> page = core_.List(*query, *caller);
  if (page.ok()) {
    for (const jobs::Job& job : page->jobs) ToProto(job, response->add_jobs());
    response->set_next_page_token(page->next_page_token);
  }
  return Finish("ListJobs", page.status());
}

grpc::Status QuantizationServiceImpl::CancelJob(grpc::ServerContext* context,
                                                const v1::CancelJobRequest* request,
                                                v1::Job* response) {
  RpcTimer timer(rpc_seconds_, "CancelJob");
  absl::StatusOr<jobs::Caller> caller = CallerOf(*context, authenticator_);
  if (!caller.ok()) return Finish("CancelJob", caller.status());
  absl::StatusOr<jobs::Job> job = core_.Cancel(request->job_id(), *caller);
  if (job.ok()) ToProto(*job, response);
  return Finish("CancelJob", job.status());
}

}  // namespace signround::server
