// The job service's API latency against a running signround-server:
// (a) SubmitJob latency at a fixed request rate, open loop (request i is sent at
//     t0 + i/rate whatever happened to the earlier ones; its latency counts from
//     that scheduled time, so a stalled server is not hidden), then every
//     submitted job is cancelled;
// (b) the delivery of one event to N concurrent WatchJob streams: N watchers
//     follow a QUEUED job, CancelJob is called, and each watcher's latency is the
//     time from that call to its receipt of the CANCELLED state change. Streams the
//     server refuses (RESOURCE_EXHAUSTED), that fail, or that end without the event are
//     counted apart and make the exit code 1.
// Percentiles are nearest-rank over all samples. bench/service_bench.sh starts a
// server whose stand-in worker sleeps, so that queued jobs stay queued.
//
//   build/bin/bench_service --server 127.0.0.1:PORT --model-uri file:///abs/model
//       --output-uri file:///abs/out [--rate 50 --seconds 10 --watchers 1,10,100 --trials 20]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "signround/v1/quantization_service.grpc.pb.h"

namespace {

namespace v1 = ::signround::v1;
using Clock = std::chrono::steady_clock;
using Stub = v1::QuantizationService::Stub;

struct Options {
  std::string server;
  std::string model_uri;
  std::string output_uri;
  double rate = 50;
  double seconds = 10;
  std::vector<int> watchers = {1, 10, 100};
  int trials = 20;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Nearest rank: the smallest sample with at least p% of the samples at or below it.
double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100 * static_cast<double>(v.size())));
  return v[std::max<size_t>(rank, 1) - 1];
}

v1::SubmitJobRequest RtnJob(const Options& o, const std::string& name) {
  v1::SubmitJobRequest request;
  v1::JobSpec* spec = request.mutable_spec();
  spec->set_model_uri(o.model_uri);
  spec->set_output_uri(o.output_uri + "/" + name);
  spec->set_recipe(v1::RECIPE_RTN);
  spec->set_group_size(32);
  (*spec->mutable_labels())["bench"] = "service_bench";
  return request;
}

bool Cancel(Stub& stub, const std::string& id) {
  grpc::ClientContext ctx;
  v1::CancelJobRequest request;
  request.set_job_id(id);
  v1::Job job;
  grpc::Status s = stub.CancelJob(&ctx, request, &job);
  // An ended job is FAILED_PRECONDITION: nothing left to cancel.
  return s.ok() || s.error_code() == grpc::StatusCode::FAILED_PRECONDITION;
}

// One SubmitJob in flight: it outlives the call, so it is owned by the caller's vector.
struct Call {
  grpc::ClientContext ctx;
  v1::SubmitJobRequest request;
  v1::SubmitJobResponse response;
  Clock::time_point scheduled;
  double latency_ms = 0;
  bool ok = false;
};

// (a): returns the ids of the jobs created.
std::vector<std::string> SubmitLatency(Stub& stub, const Options& o) {
  const int n = static_cast<int>(std::lround(o.rate * o.seconds));
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < n; ++i) {
    calls.push_back(std::make_unique<Call>());
    calls.back()->request = RtnJob(o, "submit-" + std::to_string(i));
  }
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  double worst_send_lag_ms = 0;
  const Clock::time_point t0 = Clock::now() + std::chrono::milliseconds(100);
  for (int i = 0; i < n; ++i) {
    Call* c = calls[i].get();
    c->scheduled =
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(i / o.rate));
    std::this_thread::sleep_until(c->scheduled);
    worst_send_lag_ms = std::max(worst_send_lag_ms, Ms(Clock::now() - c->scheduled));
    c->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto on_done = [c, &mu, &cv, &done](grpc::Status s) {
      c->latency_ms = Ms(Clock::now() - c->scheduled);
      c->ok = s.ok();
      std::lock_guard<std::mutex> lock(mu);
      ++done;
      cv.notify_all();
    };
    stub.async()->SubmitJob(&c->ctx, &c->request, &c->response, on_done);
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done == n; });
  std::vector<double> latencies;
  std::vector<std::string> ids;
  for (const auto& c : calls) {
    if (!c->ok) continue;
    latencies.push_back(c->latency_ms);
    ids.push_back(c->response.job().id());
  }
  std::printf(
      "SubmitJob, open loop at %.0f req/s for %.0f s: %d requests, %d errors, "
      "worst send lag %.2f ms\n",
      o.rate, o.seconds, n, n - static_cast<int>(ids.size()), worst_send_lag_ms);
  std::printf("  latency ms from scheduled send:  p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n\n",
              Percentile(latencies, 50), Percentile(latencies, 90), Percentile(latencies, 99),
              Percentile(latencies, 100));
  return ids;
}

// The streams of one trial: how many are live (have seen the job's stored events) or
// over, to wait on.
struct Tally {
  std::mutex mu;
  std::condition_variable cv;
  int live = 0;
  int done = 0;
  void Bump(int Tally::*counter) {
    std::lock_guard<std::mutex> lock(mu);
    ++(this->*counter);
    cv.notify_all();
  }
  void WaitUntil(int Tally::*counter, int n, Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_until(lock, deadline, [&] { return this->*counter >= n; });
  }
};

// One WatchJob stream through the callback API (no client thread per stream): live once
// it has seen the job's stored events up to `live_sequence`; `received` when the
// CANCELLED state change arrives; `status` when the stream ends.
class Watcher : public grpc::ClientReadReactor<v1::JobEvent> {
 public:
  Watcher(Stub& stub, const std::string& job_id, int64_t live_sequence, Tally* tally)
      : live_sequence_(live_sequence), tally_(tally) {
    request_.set_job_id(job_id);
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    stub.async()->WatchJob(&ctx_, &request_, this);
    StartRead(&event_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended: OnDone follows
    if (!live_ && event_.sequence() >= live_sequence_) MarkLive();
    if (event_.has_state_change() && event_.state_change().to() == v1::JOB_STATE_CANCELLED) {
      received = Clock::now();
      got_cancelled = true;
    }
    StartRead(&event_);
  }
  void OnDone(const grpc::Status& s) override {
    status = s;
    if (!live_) MarkLive();  // ended early: do not wait for it
    tally_->Bump(&Tally::done);
  }
  void Cancel() { ctx_.TryCancel(); }

  Clock::time_point received{};
  bool got_cancelled = false;
  grpc::Status status;  // valid once done

 private:
  void MarkLive() {
    live_ = true;
    tally_->Bump(&Tally::live);
  }
  grpc::ClientContext ctx_;
  v1::WatchJobRequest request_;
  v1::JobEvent event_;
  const int64_t live_sequence_;
  Tally* tally_;
  bool live_ = false;
};

v1::JobState StateOf(Stub& stub, const std::string& id) {
  grpc::ClientContext ctx;
  v1::GetJobRequest request;
  request.set_job_id(id);
  v1::Job job;
  return stub.GetJob(&ctx, request, &job).ok() ? job.state() : v1::JOB_STATE_UNSPECIFIED;
}

struct TrialResult {
  std::vector<double> delivery_ms;  // one per watcher that got the event
  double cancel_rpc_ms = 0;
  double open_ms = 0;  // until every stream was live
  bool cancel_ok = false;
  bool was_queued = false;  // QUEUED just before CancelJob
  int refused = 0;          // streams the server refused (RESOURCE_EXHAUSTED)
  int errors = 0;           // streams that ended with another error
  int missed = 0;           // streams that ended OK without the event
};

// (b) once: N watchers on a fresh job, then CancelJob.
TrialResult WatchTrial(Stub& stub, const Options& o, int n, int trial) {
  TrialResult r;
  v1::SubmitJobRequest request =
      RtnJob(o, "watch-" + std::to_string(n) + "-" + std::to_string(trial));
  v1::SubmitJobResponse submitted;
  grpc::ClientContext ctx;
  if (!stub.SubmitJob(&ctx, request, &submitted).ok()) {
    r.errors = n;
    return r;
  }
  const v1::Job& job = submitted.job();
  Tally tally;
  std::vector<std::unique_ptr<Watcher>> watchers;
  const Clock::time_point opened = Clock::now();
  for (int i = 0; i < n; ++i) {
    watchers.push_back(std::make_unique<Watcher>(stub, job.id(), job.last_sequence(), &tally));
  }
  tally.WaitUntil(&Tally::live, n, Clock::now() + std::chrono::seconds(120));
  r.open_ms = Ms(Clock::now() - opened);
  r.was_queued = StateOf(stub, job.id()) == v1::JOB_STATE_QUEUED;
  grpc::ClientContext cancel_ctx;
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.id());
  v1::Job before_cancel;
  const Clock::time_point t0 = Clock::now();
  grpc::Status s = stub.CancelJob(&cancel_ctx, cancel, &before_cancel);
  r.cancel_rpc_ms = Ms(Clock::now() - t0);
  r.cancel_ok = s.ok();
  tally.WaitUntil(&Tally::done, n, Clock::now() + std::chrono::seconds(120));
  for (auto& w : watchers) w->Cancel();  // any still open (a lost event) ends now
  tally.WaitUntil(&Tally::done, n, Clock::now() + std::chrono::seconds(30));
  for (const auto& w : watchers) {
    if (w->got_cancelled) {
      r.delivery_ms.push_back(Ms(w->received - t0));
    } else if (w->status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++r.refused;
    } else if (!w->status.ok()) {
      ++r.errors;
    } else {
      ++r.missed;
    }
  }
  return r;
}

// Submits a job that takes the only slot for the whole run (its stand-in worker
// sleeps), so that every later job stays QUEUED; its id.
std::string Blocker(Stub& stub, const Options& o) {
  grpc::ClientContext ctx;
  v1::SubmitJobRequest request = RtnJob(o, "blocker");
  request.mutable_spec()->set_priority(1000);
  v1::SubmitJobResponse response;
  grpc::Status s = stub.SubmitJob(&ctx, request, &response);
  if (!s.ok()) {
    std::fprintf(stderr, "bench_service: blocker job: %s\n", s.error_message().c_str());
    return "";
  }
  return response.job().id();
}

// Returns the number of streams that did not get the event (refused, failed or missed).
int WatchLatency(Stub& stub, const Options& o) {
  std::printf(
      "WatchJob delivery: CancelJob call -> CANCELLED event on each of N streams, "
      "%d trials per N, ms\n",
      o.trials);
  std::printf("  %5s %8s %8s %8s %8s %8s %7s %6s %6s   %s\n", "N", "samples", "median", "p90",
              "p99", "max", "refused", "errors", "missed", "CancelJob rpc / open median");
  int lost = 0;
  for (int n : o.watchers) {
    std::vector<double> all, rpc, open;
    int refused = 0, errors = 0, missed = 0, queued = 0, cancelled = 0;
    for (int t = 0; t < o.trials; ++t) {
      TrialResult r = WatchTrial(stub, o, n, t);
      all.insert(all.end(), r.delivery_ms.begin(), r.delivery_ms.end());
      rpc.push_back(r.cancel_rpc_ms);
      open.push_back(r.open_ms);
      refused += r.refused;
      errors += r.errors;
      missed += r.missed;
      queued += r.was_queued;
      cancelled += r.cancel_ok;
    }
    std::printf("  %5d %8zu %8.2f %8.2f %8.2f %8.2f %7d %6d %6d   %.2f / %.0f\n", n, all.size(),
                Percentile(all, 50), Percentile(all, 90), Percentile(all, 99), Percentile(all, 100),
                refused, errors, missed, Percentile(rpc, 50), Percentile(open, 50));
    if (queued != o.trials || cancelled != o.trials) {
      std::printf(
          "  (N=%d: %d of %d jobs were QUEUED when cancelled, %d CancelJob calls "
          "failed)\n",
          n, queued, o.trials, o.trials - cancelled);
    }
    lost += refused + errors + missed;
  }
  if (lost > 0) {
    std::fprintf(stderr,
                 "bench_service: %d WatchJob streams were refused, failed or missed "
                 "the event\n",
                 lost);
  }
  return lost;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app("SubmitJob latency at a fixed rate and WatchJob event fan-out latency");
  app.add_option("--server", o.server, "signround-server gRPC address")->required();
  app.add_option("--model-uri", o.model_uri, "A small checkpoint the jobs name")->required();
  app.add_option("--output-uri", o.output_uri, "Where the jobs' outputs would go")->required();
  app.add_option("--rate", o.rate, "SubmitJob requests per second")->check(CLI::Range(1, 10000));
  app.add_option("--seconds", o.seconds, "Duration of the SubmitJob run")
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--watchers", o.watchers, "Stream counts N")
      ->delimiter(',')
      ->check(CLI::Range(1, 20000));
  app.add_option("--trials", o.trials, "CancelJob trials per N")->check(CLI::Range(1, 10000));
  CLI11_PARSE(app, argc, argv);

  auto channel = grpc::CreateChannel(o.server, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    std::fprintf(stderr, "bench_service: cannot connect to %s\n", o.server.c_str());
    return 1;
  }
  auto stub = v1::QuantizationService::NewStub(channel);
  std::string blocker = Blocker(*stub, o);
  if (blocker.empty()) return 1;

  std::vector<std::string> ids = SubmitLatency(*stub, o);
  int failed = 0;
  for (const std::string& id : ids) failed += !Cancel(*stub, id);
  if (failed) std::fprintf(stderr, "bench_service: %d cancels failed\n", failed);

  const int lost = WatchLatency(*stub, o);
  Cancel(*stub, blocker);
  return failed || lost ? 1 : 0;
}
