// Test-only: an in-process QuantizationService on 127.0.0.1 that answers with
// canned responses and records every request, for driving the real `signround`
// binary without signround-server. Header-only (tests include it directly).
#pragma once

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "signround/v1/quantization_service.grpc.pb.h"

namespace signround::cli::testing {

namespace v1 = ::signround::v1;

// Configure the public canned fields before the CLI runs; read the recorded
// requests (through the accessors, which lock) after it exits.
class FakeService final : public v1::QuantizationService::Service {
 public:
  // SubmitJob
  grpc::Status submit_status;
  v1::SubmitJobResponse submit_response;
  // GetJob and CancelJob: the job with the requested id, else NOT_FOUND.
  std::map<std::string, v1::Job> jobs;
  grpc::Status cancel_status;
  // ListJobs: page i answers page token pages[i - 1].next_page_token ("" for page 0).
  std::vector<v1::ListJobsResponse> pages;
  // WatchJob: `events` from the requested sequence on, then OK.
  std::vector<v1::JobEvent> events;
  int drop_after = -1;     // first call only: UNAVAILABLE after this many events
  int hang_after = -1;     // first call only: after this many events, wait to be cancelled
  int replay_overlap = 0;  // later calls resend this many events before the one asked for
  bool always_unavailable = false;

  grpc::Status SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest* request,
                         v1::SubmitJobResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    submits_.push_back(*request);
    if (!submit_status.ok()) return submit_status;
    *response = submit_response;
    return grpc::Status::OK;
  }

  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest* request,
                      v1::Job* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    gets_.push_back(request->job_id());
    return FindJob(request->job_id(), response);
  }

  grpc::Status CancelJob(grpc::ServerContext*, const v1::CancelJobRequest* request,
                         v1::Job* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    cancels_.push_back(request->job_id());
    if (!cancel_status.ok()) return cancel_status;
    return FindJob(request->job_id(), response);
  }

  grpc::Status ListJobs(grpc::ServerContext*, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    lists_.push_back(*request);
    for (size_t i = 0; i < pages.size(); ++i) {
      const std::string want = i == 0 ? "" : pages[i - 1].next_page_token();
      if (request->page_token() == want) {
        *response = pages[i];
        return grpc::Status::OK;
      }
    }
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_token: unknown");
  }

  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobEvent>* writer) override {
    size_t call;
    {
      std::lock_guard<std::mutex> lock(mu_);
      watches_.push_back(*request);
      call = watches_.size();
    }
    if (always_unavailable) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake: down");
    int64_t from = std::max<int64_t>(1, request->from_sequence());
    if (call > 1) from = std::max<int64_t>(1, from - replay_overlap);
    int sent = 0;
    for (const v1::JobEvent& e : events) {
      if (e.sequence() < from) continue;
      if (call == 1 && sent == drop_after) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake: server restarting");
      }
      if (call == 1 && sent == hang_after) {
        while (!context->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        return grpc::Status(grpc::StatusCode::CANCELLED, "fake: shut down");
      }
      writer->Write(e);
      ++sent;
    }
    return grpc::Status::OK;
  }

  std::vector<v1::SubmitJobRequest> submits() const { return Locked(submits_); }
  std::vector<std::string> gets() const { return Locked(gets_); }
  std::vector<std::string> cancels() const { return Locked(cancels_); }
  std::vector<v1::ListJobsRequest> lists() const { return Locked(lists_); }
  std::vector<v1::WatchJobRequest> watches() const { return Locked(watches_); }

 private:
  grpc::Status FindJob(const std::string& id, v1::Job* out) {
    auto it = jobs.find(id);
    if (it == jobs.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "job " + id + " not found");
    }
    *out = it->second;
    return grpc::Status::OK;
  }
  template <typename T>
  T Locked(const T& value) const {
    std::lock_guard<std::mutex> lock(mu_);
    return value;
  }

  mutable std::mutex mu_;
  std::vector<v1::SubmitJobRequest> submits_;
  std::vector<std::string> gets_;
  std::vector<std::string> cancels_;
  std::vector<v1::ListJobsRequest> lists_;
  std::vector<v1::WatchJobRequest> watches_;
};

// A gRPC server for `service` on 127.0.0.1 (`port` 0: a free port).
class FakeServer {
 public:
  explicit FakeServer(FakeService* service, int port = 0) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
  }
  ~FakeServer() { Stop(); }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  bool ok() const { return server_ != nullptr && port_ > 0; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Stops serving: open streams are cancelled, connections closed.
  void Stop() {
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    server_->Wait();
    server_.reset();
  }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace signround::cli::testing
