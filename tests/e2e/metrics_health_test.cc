// /metrics, /healthz, /readyz and gRPC health of the real signround-server:
// the exposition parses (strict line checks here, and Python's prometheus_client
// through tests/unit/metrics/check_exposition.py when installed) and its series
// move exactly with the jobs and calls this test makes.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <future>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "signround/v1/quantization_service.grpc.pb.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_files.h"
#include "tests/testing/worker_process.h"

namespace signround {
namespace {

namespace v1 = ::signround::v1;
using testing::ServerProcess;

// Samples by series: `name{label="value",...}` with labels sorted by name.
using Samples = std::map<std::string, double>;

std::string SeriesKey(const std::string& name, const std::map<std::string, std::string>& labels) {
  if (labels.empty()) return name;
  std::string key = name + "{";
  for (const auto& [k, v] : labels) absl::StrAppend(&key, k, "=\"", v, "\",");
  key.back() = '}';
  return key;
}

// Parses a label list (`a="x",b="y"`, the text between the braces); false on any deviation.
bool ParseLabels(const std::string& text, std::map<std::string, std::string>* labels) {
  static const std::regex kLabel(
      R"re(^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$))re");
  std::string rest = text;
  while (!rest.empty()) {
    std::smatch m;
    if (!std::regex_search(rest, m, kLabel)) return false;
    if (!labels->emplace(m[1].str(), m[2].str()).second) return false;  // duplicate label
    rest = m.suffix().str();
  }
  return true;
}

// A strict reading of the text exposition format 0.0.4: every line is a HELP or TYPE
// comment or a sample `name{labels} value`; each sample belongs to a declared family.
Samples ParseExposition(const std::string& body) {
  static const std::regex kHelp(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$)");
  static const std::regex kType(
      R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  static const std::regex kSample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([-+]?(?:[0-9.eE+-]+|Inf|NaN))$)");
  Samples samples;
  std::map<std::string, std::string> types;
  EXPECT_FALSE(body.empty());
  EXPECT_EQ(body.back(), '\n') << "the exposition ends with a newline";
  std::istringstream in(body);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) continue;
    if (std::regex_match(line, m, kType)) {
      EXPECT_TRUE(types.emplace(m[1].str(), m[2].str()).second) << "TYPE twice: " << line;
      continue;
    }
    if (!std::regex_match(line, m, kSample)) {
      ADD_FAILURE() << "line " << n << " is not a sample: '" << line << "'";
      continue;
    }
    std::string name = m[1].str();
    std::map<std::string, std::string> labels;
    EXPECT_TRUE(ParseLabels(m[2].str(), &labels)) << "line " << n << ": " << line;
    std::string family = std::regex_replace(name, std::regex("_(bucket|sum|count)$"), "");
    EXPECT_TRUE(types.count(name) || types.count(family)) << "no TYPE for " << line;
    char* end = nullptr;
    double value = std::strtod(m[3].str().c_str(), &end);
    EXPECT_EQ(*end, '\0') << "line " << n << ": bad value in " << line;
    EXPECT_TRUE(samples.emplace(SeriesKey(name, labels), value).second) << "twice: " << line;
  }
  return samples;
}

// Runs Python's prometheus_client parser over `body` (check_exposition.py): "" when it
// parses or the client is missing, else its complaint.
std::string ReferenceParseError(const std::string& body, const testing::TempDir& dir) {
  const std::string file = dir.File("metrics.txt"), out = dir.File("parsed.json");
  testing::WriteFile(file, body);
  std::string cmd = absl::StrCat("/usr/bin/python3 ", SIGNROUND_CHECK_EXPOSITION_PY, " ", file,
                                 " > ", out, " 2>&1");
  int status = std::system(cmd.c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3) return "";  // no prometheus_client
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    auto parsed = nlohmann::json::parse(testing::ReadAll(out), nullptr, false);
    return parsed.is_array() && !parsed.empty() ? "" : "empty parse";
  }
  return testing::ReadAll(out);
}

double Value(const Samples& samples, const std::string& key) {
  auto it = samples.find(key);
  return it == samples.end() ? 0 : it->second;
}

class MetricsHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::Result made = testing::RunWorker(
        {"make-test-model", "--out", dir_.File("model"), "--hidden", "64", "--intermediate", "128",
         "--layers", "3", "--heads", "2", "--kv-heads", "1", "--vocab", "128"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    std::string calib;
    for (int row = 0; row < 8; ++row) {
      std::string ids;
      for (int t = 0; t < 32; ++t) absl::StrAppend(&ids, t ? "," : "", (row * 31 + t * 7) % 128);
      absl::StrAppend(&calib, "{\"input_ids\": [", ids, "]}\n");
    }
    testing::WriteFile(dir_.File("calib.jsonl"), calib);
    testing::ServerProcessOptions options;
    options.data_dir = dir_.File("data");
    options.extra_args = {"--devices=cpu"};
    auto server = ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials());
    stub_ = v1::QuantizationService::NewStub(channel_);
  }

  Samples Scrape() {
    auto got = testing::HttpGet(server_->metrics_address(), "/metrics");
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok()) return {};
    EXPECT_EQ(got->first, 200);
    EXPECT_EQ(ReferenceParseError(got->second, dir_), "") << got->second;
    return ParseExposition(got->second);
  }

  // A SignRound job of 3 blocks (4 iterations each) that runs to the end; its final state.
  v1::Job RunJob(int i) {
    v1::SubmitJobRequest request;
    v1::JobSpec* spec = request.mutable_spec();
    spec->set_model_uri("file://" + dir_.File("model"));
    spec->set_calibration_uri("file://" + dir_.File("calib.jsonl"));
    spec->set_output_uri("file://" + dir_.File(absl::StrCat("out", i)));
    spec->add_formats("auto_round");
    spec->set_group_size(32);
    spec->mutable_iters()->set_value(4);
    spec->set_nsamples(4);
    spec->set_seqlen(32);
    spec->set_batch_size(2);
    v1::SubmitJobResponse submitted;
    grpc::ClientContext ctx;
    grpc::Status status = stub_->SubmitJob(&ctx, request, &submitted);
    EXPECT_TRUE(status.ok()) << status.error_message();
    grpc::ClientContext watch_ctx;
    watch_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    v1::WatchJobRequest watch;
    watch.set_job_id(submitted.job().id());
    auto reader = stub_->WatchJob(&watch_ctx, watch);
    for (v1::JobEvent event; reader->Read(&event);) {
    }
    EXPECT_TRUE(reader->Finish().ok());
    grpc::ClientContext get_ctx;
    v1::GetJobRequest get;
    get.set_job_id(submitted.job().id());
    v1::Job job;
    EXPECT_TRUE(stub_->GetJob(&get_ctx, get, &job).ok());
    return job;
  }

  // grpc.health.v1.Health/Check by hand: HealthCheckRequest{string service = 1} and
  // HealthCheckResponse{ServingStatus status = 1}; the status, or -1 with the call's error.
  int HealthStatus(const std::string& service, grpc::Status* call_status) {
    std::string request;
    if (!service.empty()) {
      request = std::string(1, '\x0a') + static_cast<char>(service.size()) + service;
    }
    grpc::Slice slice(request);
    grpc::ByteBuffer in(&slice, 1), out;
    grpc::GenericStub generic(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    std::promise<grpc::Status> done;
    generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &in, &out,
                      [&done](grpc::Status s) { done.set_value(s); });
    *call_status = done.get_future().get();
    if (!call_status->ok()) return -1;
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(out.Dump(&slices).ok());
    std::string bytes;
    for (const grpc::Slice& s : slices)
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    if (bytes.empty()) return 0;  // UNKNOWN, the default, is not on the wire
    if (bytes.size() != 2 || bytes[0] != '\x08') return -2;  // one varint field 1 below 128
    return bytes[1];
  }

  testing::TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::QuantizationService::Stub> stub_;
};

TEST_F(MetricsHealthTest, CountersMoveWithTheJobs) {
  const Samples before = Scrape();
  EXPECT_EQ(Value(before, "signround_queue_depth"), 0);
  EXPECT_EQ(Value(before, "signround_slot_busy{device=\"cpu\"}"), 0);

  constexpr int kJobs = 2, kBlocks = 3, kInvalid = 3;
  const std::string kDurationCount = "signround_job_duration_seconds_count{state=\"SUCCEEDED\"}";
  int64_t uploaded = 0;
  for (int i = 0; i < kJobs; ++i) {
    v1::Job job = RunJob(i);
    ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error() << "\n" << server_->LogTail();
    ASSERT_EQ(job.block_count(), kBlocks);
    for (const v1::Artifact& a : job.artifacts()) uploaded += a.bytes();
  }
  for (int i = 0; i < kInvalid; ++i) {
    grpc::ClientContext ctx;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_bits(5);
    v1::SubmitJobResponse response;
    EXPECT_EQ(stub_->SubmitJob(&ctx, request, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  // The slot is released and the job's duration observed just after its last event went
  // out, so the series may lag the watch stream by a moment: scrape until they settle.
  Samples after = Scrape();
  for (int i = 0; i < 100 && (Value(after, "signround_slot_busy{device=\"cpu\"}") != 0 ||
                              Value(after, kDurationCount) < kJobs);
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    after = Scrape();
  }
  auto delta = [&](const std::string& key) { return Value(after, key) - Value(before, key); };

  EXPECT_EQ(delta("signround_job_submissions_total{result=\"created\"}"), kJobs);
  EXPECT_EQ(Value(after, "signround_jobs{state=\"SUCCEEDED\"}"), kJobs);
  EXPECT_EQ(Value(after, "signround_jobs{state=\"QUEUED\"}"), 0);
  EXPECT_EQ(Value(after, "signround_jobs{state=\"RUNNING\"}"), 0);
  EXPECT_EQ(delta("signround_rpc_total{code=\"OK\",method=\"SubmitJob\"}"), kJobs);
  EXPECT_EQ(delta("signround_rpc_total{code=\"INVALID_ARGUMENT\",method=\"SubmitJob\"}"), kInvalid);
  EXPECT_EQ(delta("signround_rpc_total{code=\"OK\",method=\"GetJob\"}"), kJobs);
  // Every block of every job was tuned once (none resumed).
  EXPECT_EQ(delta("signround_block_tuning_seconds_count"), kJobs * kBlocks);
  EXPECT_GT(delta("signround_block_tuning_seconds_sum"), 0);
  EXPECT_EQ(delta(kDurationCount), kJobs);
  // Exactly the bytes of the artifacts the jobs report.
  EXPECT_GT(uploaded, 0);
  EXPECT_EQ(delta("signround_upload_bytes_total"), static_cast<double>(uploaded));
  EXPECT_EQ(Value(after, "signround_queue_depth"), 0);
  EXPECT_EQ(Value(after, "signround_slot_busy{device=\"cpu\"}"), 0);
}

TEST_F(MetricsHealthTest, HealthEndpointsAndGrpcHealthServe) {
  for (const char* path : {"/healthz", "/readyz"}) {
    auto got = testing::HttpGet(server_->metrics_address(), path);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->first, 200) << path << ": " << got->second;
  }
  auto missing = testing::HttpGet(server_->metrics_address(), "/no-such-page");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ(missing->first, 404);

  constexpr int kServing = 1;
  for (const char* service : {"", "signround.v1.QuantizationService"}) {
    grpc::Status status;
    EXPECT_EQ(HealthStatus(service, &status), kServing)
        << "service '" << service << "': " << status.error_message();
  }
  grpc::Status status;
  EXPECT_EQ(HealthStatus("no.such.Service", &status), -1);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace signround
