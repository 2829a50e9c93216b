// Helpers of the job service end-to-end tests: small models and calibration
// files made with the real worker, the `signround submit` flags of a job, a
// gRPC client for the checks (GetJob polling, ListJobs, the full event log),
// the CLI's --json output parsed back into protos, and checks of event logs and
// of the artifacts at an output URI.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "signround/v1/quantization_service.grpc.pb.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_files.h"

namespace signround::e2e {

namespace v1 = ::signround::v1;

// `signround-worker make-test-model` into DIR/NAME: hidden 64, intermediate
// 128, 4 heads (2 kv), vocab 256, f32, seed 3. "" and a test failure on error.
std::string MakeTestModel(const testing::TempDir& dir, const std::string& name, int layers);

// `rows` JSONL rows of `len` deterministic token ids below 256, written to DIR/NAME.
std::string WriteCalib(const testing::TempDir& dir, const std::string& name, int rows, int len);

// The flags of `signround submit` for one job (only those given are sent).
struct JobFlags {
  std::string model, calib, out;  // URIs
  std::vector<std::string> formats = {"auto_round", "auto_gptq"};
  int bits = 4, group_size = 32, iters = 5, nsamples = 16, seqlen = 64, batch_size = 4;
  std::vector<std::string> extra;  // e.g. {"--priority", "5"}

  std::vector<std::string> Args() const;
};

// A gRPC client of the server for the tests' own checks.
class Api {
 public:
  // `token` not empty: sent as a bearer token on every call.
  explicit Api(const std::string& address, const std::string& token = "");

  absl::StatusOr<v1::Job> Get(const std::string& id);
  // Every job, following page tokens.
  absl::StatusOr<std::vector<v1::Job>> List();
  // WatchJob from the first event until the stream ends (the job must end
  // within `timeout_seconds`).
  absl::StatusOr<std::vector<v1::JobEvent>> Events(const std::string& id,
                                                   double timeout_seconds = 60);
  // Polls GetJob every 25 ms until `done(job)` or the timeout; the last job seen.
  absl::StatusOr<v1::Job> WaitFor(const std::string& id,
                                  const std::function<bool(const v1::Job&)>& done,
                                  double timeout_seconds);
  absl::StatusOr<v1::Job> WaitEnded(const std::string& id, double timeout_seconds) {
    return WaitFor(id, IsEnded, timeout_seconds);
  }

  static bool IsEnded(const v1::Job& job);

 private:
  void Prepare(grpc::ClientContext* ctx, double timeout_seconds) const;

  std::unique_ptr<v1::QuantizationService::Stub> stub_;
  std::string token_;
};

// The CLI's --json output: a Job (or {"job": Job, ...} of submit), and event lines.
absl::StatusOr<v1::Job> ParseJobJson(const std::string& text);
absl::StatusOr<std::vector<v1::JobEvent>> ParseEventLines(const std::string& text);

// Runs `signround --server ADDRESS ARGS...` and describes the result (for messages).
std::string Describe(const testing::CliResult& r);

// --- event logs ---------------------------------------------------------------

// Sequences 1..k without gaps, every event of `job_id`, exactly one event that
// moves the job into `final_state` and it is the last one.
void ExpectWellFormedLog(const std::vector<v1::JobEvent>& events, const std::string& job_id,
                         v1::JobState final_state);
// How many events move the job into `to` (from any state).
int CountTransitions(const std::vector<v1::JobEvent>& events, v1::JobState to);
// The BlockProgress events of attempt `attempt` (every attempt: -1).
std::vector<v1::BlockProgress> BlockEvents(const std::vector<v1::JobEvent>& events,
                                           int attempt = -1);
// Block indices 0..n-1, each once, in order, each with block_count n.
void ExpectBlocksInOrder(const std::vector<v1::BlockProgress>& blocks, int n);
// The exact log of a job that succeeded at its first attempt: QUEUED,
// RUNNING, n blocks, UPLOADING, one ArtifactUploaded per job artifact, SUCCEEDED.
void ExpectCleanSuccessLog(const std::vector<v1::JobEvent>& events, const v1::Job& job, int n);

// --- artifacts ----------------------------------------------------------------

// Copies the object at `uri` to a local file and returns its path.
using Fetcher = std::function<absl::StatusOr<std::string>(const std::string& uri)>;
// file:// URIs: the path itself.
Fetcher FileFetcher();

// Every artifact of `job` lies under `output_uri` as <format dir>/<file> or
// report.json, exists, and has the stated bytes and sha256 (computed here);
// each of `formats` has a model.safetensors and a config.json.
void ExpectArtifactsAt(const v1::Job& job, const std::string& output_uri,
                       const std::vector<std::string>& formats, const Fetcher& fetch);

// Relative path -> content of every file under `dir` except report.json
// (which holds timings).
std::map<std::string, std::string> ModelFiles(const std::string& dir);

}  // namespace signround::e2e
