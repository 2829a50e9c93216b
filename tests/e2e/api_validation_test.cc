// Malformed requests against the real signround-server: each one is answered
// INVALID_ARGUMENT with a message that starts with the bad field's path (the
// API's convention, proto/signround/v1/quantization_service.proto), no job is
// created by any of them, and the server keeps serving afterwards.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "signround/v1/quantization_service.grpc.pb.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_files.h"
#include "tests/testing/worker_process.h"

namespace signround {
namespace {

namespace v1 = ::signround::v1;
using testing::ServerProcess;

// The longest status message we accept: hostile input is quoted shortened, and
// gRPC refuses trailers over 8 KiB.
constexpr size_t kMaxMessageBytes = 4096;

class ApiValidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::Result made = testing::RunWorker(
        {"make-test-model", "--out", dir_.File("model"), "--hidden", "64", "--intermediate", "128",
         "--layers", "2", "--heads", "2", "--kv-heads", "1", "--vocab", "128"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    testing::ServerProcessOptions options;
    options.data_dir = dir_.File("data");
    options.extra_args = {"--devices=cpu"};
    auto server = ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::QuantizationService::NewStub(
        grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials()));
  }

  // A valid RTN job on the tiny model: every table row breaks one field of it.
  v1::JobSpec BaseSpec() const {
    v1::JobSpec spec;
    spec.set_model_uri("file://" + dir_.File("model"));
    spec.set_output_uri("file://" + dir_.File("out"));
    spec.add_formats("auto_round");
    spec.set_recipe(v1::RECIPE_RTN);
    spec.set_group_size(32);
    (*spec.mutable_labels())["suite"] = "api-validation";
    return spec;
  }

  grpc::Status Submit(const v1::JobSpec* spec, v1::SubmitJobResponse* response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::SubmitJobRequest request;
    if (spec != nullptr) *request.mutable_spec() = *spec;
    return stub_->SubmitJob(&ctx, request, response);
  }

  // Every job the server holds (all pages).
  std::vector<v1::Job> AllJobs() {
    std::vector<v1::Job> jobs;
    v1::ListJobsRequest request;
    request.set_page_size(1000);
    for (int page = 0; page < 100; ++page) {
      grpc::ClientContext ctx;
      v1::ListJobsResponse response;
      grpc::Status status = stub_->ListJobs(&ctx, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      jobs.insert(jobs.end(), response.jobs().begin(), response.jobs().end());
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return jobs;
  }

  // Follows WatchJob to its end; the last state reached.
  v1::JobState WatchToEnd(const std::string& job_id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    auto reader = stub_->WatchJob(&ctx, request);
    v1::JobEvent event;
    v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
    while (reader->Read(&event)) {
      if (event.has_state_change()) state = event.state_change().to();
    }
    grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return state;
  }

  testing::TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::QuantizationService::Stub> stub_;
};

// Checks one answer: INVALID_ARGUMENT, the message starts with `field`, and is short.
void ExpectInvalid(const grpc::Status& status, const std::string& field, const std::string& what) {
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << what << ": code " << status.error_code() << " " << status.error_message();
  EXPECT_TRUE(absl::StartsWith(status.error_message(), field))
      << what << ": want a message starting with '" << field << "', got '"
      << status.error_message().substr(0, 300) << "'";
  EXPECT_LE(status.error_message().size(), kMaxMessageBytes) << what;
}

struct BadSpec {
  std::string name;
  std::function<void(v1::JobSpec&)> mutate;
  std::string field;  // the message's expected prefix
};

// Locations and formats.
std::vector<BadSpec> BadUriAndFormatSpecs() {
  return {
      {"model_uri empty", [](v1::JobSpec& s) { s.clear_model_uri(); }, "spec.model_uri"},
      {"model_uri relative", [](v1::JobSpec& s) { s.set_model_uri("models/m"); }, "spec.model_uri"},
      {"model_uri file://host/", [](v1::JobSpec& s) { s.set_model_uri("file://host/tmp/m"); },
       "spec.model_uri"},
      {"model_uri dot-dot", [](v1::JobSpec& s) { s.set_model_uri("file:///tmp/../etc/passwd"); },
       "spec.model_uri"},
      {"model_uri 10 KB",
       [](v1::JobSpec& s) { s.set_model_uri("file:///" + std::string(10240, 'a')); },
       "spec.model_uri"},
      {"model_uri NUL byte",
       [](v1::JobSpec& s) { s.set_model_uri(std::string("file:///tmp/a\0b", 15)); },
       "spec.model_uri"},
      {"model_uri unknown scheme", [](v1::JobSpec& s) { s.set_model_uri("ftp://h/m"); },
       "spec.model_uri"},
      {"model_uri bad bucket", [](v1::JobSpec& s) { s.set_model_uri("s3://Bad_Bucket/m"); },
       "spec.model_uri"},
      {"calibration_uri relative", [](v1::JobSpec& s) { s.set_calibration_uri("file:c.jsonl"); },
       "spec.calibration_uri"},
      {"calibration_uri missing with tuning",
       [](v1::JobSpec& s) { s.set_recipe(v1::RECIPE_DEFAULT); }, "spec.calibration_uri"},
      {"calibration_uri missing with opt_rtn",
       [](v1::JobSpec& s) { s.set_recipe(v1::RECIPE_OPT_RTN); }, "spec.calibration_uri"},
      {"target_bits below every candidate", [](v1::JobSpec& s) { s.set_target_bits(1); },
       "spec.target_bits"},
      {"scheme_candidates bad name",
       [](v1::JobSpec& s) {
         s.set_target_bits(3);
         s.add_scheme_candidates("W2G32");
         s.add_scheme_candidates("W3G32;drop");
       },
       "spec.scheme_candidates[1]"},
      {"calibration_uri missing with target_bits", [](v1::JobSpec& s) { s.set_target_bits(3); },
       "spec.calibration_uri"},
      {"teq_iters negative", [](v1::JobSpec& s) { s.set_teq_iters(-5); }, "spec.teq_iters"},
      {"calibration_uri missing with teq_iters", [](v1::JobSpec& s) { s.set_teq_iters(20); },
       "spec.calibration_uri"},
      {"calibration_uri missing with scale_search",
       [](v1::JobSpec& s) { s.mutable_scale_search()->set_value(true); }, "spec.calibration_uri"},
      {"recipe 6 (one past the last)",
       [](v1::JobSpec& s) { s.set_recipe(static_cast<v1::Recipe>(6)); }, "spec.recipe"},
      {"output_uri empty", [](v1::JobSpec& s) { s.clear_output_uri(); }, "spec.output_uri"},
      {"output_uri localhost", [](v1::JobSpec& s) { s.set_output_uri("file://localhost/tmp/out"); },
       "spec.output_uri"},
      {"output_uri control char", [](v1::JobSpec& s) { s.set_output_uri("file:///tmp/o\nut"); },
       "spec.output_uri"},
      {"formats unknown", [](v1::JobSpec& s) { s.clear_formats(), s.add_formats("onnx"); },
       "spec.formats[0]"},
      {"formats duplicate", [](v1::JobSpec& s) { s.add_formats("auto_round"); }, "spec.formats[1]"},
      {"formats nine",
       [](v1::JobSpec& s) {
         for (int i = 0; i < 8; ++i) s.add_formats("fake");
       },
       "spec.formats"},
      {"gguf:q4_0 with group 128",
       [](v1::JobSpec& s) { s.clear_formats(), s.add_formats("gguf:q4_0"), s.set_group_size(128); },
       "spec.formats[0]"},
      {"gguf:q4_0 with 8 bits",
       [](v1::JobSpec& s) { s.clear_formats(), s.add_formats("gguf:q4_0"), s.set_bits(8); },
       "spec.formats[0]"},
      {"gguf:q4_0 asymmetric",
       [](v1::JobSpec& s) {
         s.clear_formats(), s.add_formats("gguf:q4_0");
         s.mutable_sym()->set_value(false);
       },
       "spec.formats[0]"},
      {"packed_dtype float32", [](v1::JobSpec& s) { s.set_packed_dtype("float32"); },
       "spec.packed_dtype: 'float32' is not float16 or bfloat16"},
      {"packed_dtype bf16", [](v1::JobSpec& s) { s.set_packed_dtype("bf16"); },
       "spec.packed_dtype"},
  };
}

// The quantization scheme and tuning numbers.
std::vector<BadSpec> BadNumberSpecs() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  return {
      {"bits 5", [](v1::JobSpec& s) { s.set_bits(5); }, "spec.bits"},
      {"bits -4", [](v1::JobSpec& s) { s.set_bits(-4); }, "spec.bits"},
      {"group_size 48", [](v1::JobSpec& s) { s.set_group_size(48); }, "spec.group_size"},
      {"group_size 16", [](v1::JobSpec& s) { s.set_group_size(16); }, "spec.group_size"},
      {"group_size 2^17", [](v1::JobSpec& s) { s.set_group_size(131072); }, "spec.group_size"},
      {"iters -1", [](v1::JobSpec& s) { s.mutable_iters()->set_value(-1); }, "spec.iters"},
      {"iters 100001", [](v1::JobSpec& s) { s.mutable_iters()->set_value(100001); }, "spec.iters"},
      {"lr NaN", [nan](v1::JobSpec& s) { s.set_lr(nan); }, "spec.lr"},
      {"lr Inf", [inf](v1::JobSpec& s) { s.set_lr(inf); }, "spec.lr"},
      {"lr negative", [](v1::JobSpec& s) { s.set_lr(-0.01f); }, "spec.lr"},
      {"lr above 1", [](v1::JobSpec& s) { s.set_lr(1.5f); }, "spec.lr"},
      {"minmax_lr NaN", [nan](v1::JobSpec& s) { s.set_minmax_lr(nan); }, "spec.minmax_lr"},
      {"minmax_lr -Inf", [inf](v1::JobSpec& s) { s.set_minmax_lr(-inf); }, "spec.minmax_lr"},
      {"nsamples -1", [](v1::JobSpec& s) { s.set_nsamples(-1); }, "spec.nsamples"},
      {"nsamples 65537", [](v1::JobSpec& s) { s.set_nsamples(65537); }, "spec.nsamples"},
      {"seqlen 131073", [](v1::JobSpec& s) { s.set_seqlen(131073); }, "spec.seqlen"},
      {"batch_size 4097", [](v1::JobSpec& s) { s.set_batch_size(4097); }, "spec.batch_size"},
      {"recipe 99", [](v1::JobSpec& s) { s.set_recipe(static_cast<v1::Recipe>(99)); },
       "spec.recipe"},
  };
}

// Per-layer overrides.
std::vector<BadSpec> BadOverrideSpecs() {
  auto override_at = [](v1::JobSpec& s, int bits, int group_size, const std::string& pattern) {
    v1::LayerOverride* o = s.add_layer_overrides();
    o->set_pattern(pattern);
    o->set_bits(bits);
    o->set_group_size(group_size);
  };
  return {
      {"override empty pattern", [override_at](v1::JobSpec& s) { override_at(s, 8, 0, ""); },
       "spec.layer_overrides[0].pattern"},
      {"override bad regex",
       [override_at](v1::JobSpec& s) {
         override_at(s, 8, 0, "mlp");
         override_at(s, 8, 0, "layers.(3");
       },
       "spec.layer_overrides[1].pattern"},
      {"override pattern 10 KB",
       [override_at](v1::JobSpec& s) { override_at(s, 8, 0, std::string(10240, 'x')); },
       "spec.layer_overrides[0].pattern"},
      {"override bits 5", [override_at](v1::JobSpec& s) { override_at(s, 5, 0, "mlp"); },
       "spec.layer_overrides[0].bits"},
      {"override group_size 48", [override_at](v1::JobSpec& s) { override_at(s, 0, 48, "mlp"); },
       "spec.layer_overrides[0].group_size"},
      {"257 overrides",
       [override_at](v1::JobSpec& s) {
         for (int i = 0; i < 257; ++i) override_at(s, 8, 0, "mlp");
       },
       "spec.layer_overrides"},
  };
}

// Scheduling, labels and the idempotency key.
std::vector<BadSpec> BadSchedulingAndLabelSpecs() {
  return {
      {"device tpu", [](v1::JobSpec& s) { s.set_device("tpu"); }, "spec.device"},
      {"device cuda:x", [](v1::JobSpec& s) { s.set_device("cuda:x"); }, "spec.device"},
      {"device without a slot", [](v1::JobSpec& s) { s.set_device("cuda:0"); }, "spec.device"},
      {"priority 1001", [](v1::JobSpec& s) { s.set_priority(1001); }, "spec.priority"},
      {"priority -1001", [](v1::JobSpec& s) { s.set_priority(-1001); }, "spec.priority"},
      {"labels 33",
       [](v1::JobSpec& s) {
         for (int i = 0; i < 32; ++i) (*s.mutable_labels())[absl::StrCat("k", i)] = "v";
       },
       "spec.labels"},
      {"labels 10000",
       [](v1::JobSpec& s) {
         for (int i = 0; i < 10000; ++i) (*s.mutable_labels())[absl::StrCat("k", i)] = "v";
       },
       "spec.labels"},
      {"label key upper case", [](v1::JobSpec& s) { (*s.mutable_labels())["Bad Key"] = "v"; },
       "spec.labels"},
      {"label key empty", [](v1::JobSpec& s) { (*s.mutable_labels())[""] = "v"; }, "spec.labels"},
      {"label key 64 chars",
       [](v1::JobSpec& s) { (*s.mutable_labels())[std::string(64, 'k')] = "v"; }, "spec.labels"},
      {"label key NUL", [](v1::JobSpec& s) { (*s.mutable_labels())[std::string("a\0b", 3)] = "v"; },
       "spec.labels"},
      {"label value 256 bytes",
       [](v1::JobSpec& s) { (*s.mutable_labels())["team"] = std::string(256, 'v'); },
       "spec.labels"},
      {"label value control char", [](v1::JobSpec& s) { (*s.mutable_labels())["team"] = "a\x01"; },
       "spec.labels"},
      {"idempotency_key 129 chars",
       [](v1::JobSpec& s) { s.set_idempotency_key(std::string(129, 'k')); },
       "spec.idempotency_key"},
      {"idempotency_key tab", [](v1::JobSpec& s) { s.set_idempotency_key("a\tb"); },
       "spec.idempotency_key"},
  };
}

std::vector<BadSpec> BadSpecs() {
  std::vector<BadSpec> all;
  for (auto part :
       {BadUriAndFormatSpecs, BadNumberSpecs, BadOverrideSpecs, BadSchedulingAndLabelSpecs}) {
    std::vector<BadSpec> specs = part();
    all.insert(all.end(), specs.begin(), specs.end());
  }
  return all;
}

// A request that is not a SubmitJob: it returns the call's status.
struct BadCall {
  std::string name;
  std::function<grpc::Status(v1::QuantizationService::Stub&)> call;
  std::string field;
};

grpc::Status List(v1::QuantizationService::Stub& stub, int page_size, const std::string& token,
                  int state) {
  grpc::ClientContext ctx;
  v1::ListJobsRequest request;
  request.set_page_size(page_size);
  request.set_page_token(token);
  request.set_state(static_cast<v1::JobState>(state));
  v1::ListJobsResponse response;
  return stub.ListJobs(&ctx, request, &response);
}

grpc::Status Get(v1::QuantizationService::Stub& stub, const std::string& id) {
  grpc::ClientContext ctx;
  v1::GetJobRequest request;
  request.set_job_id(id);
  v1::Job job;
  return stub.GetJob(&ctx, request, &job);
}

grpc::Status Cancel(v1::QuantizationService::Stub& stub, const std::string& id) {
  grpc::ClientContext ctx;
  v1::CancelJobRequest request;
  request.set_job_id(id);
  v1::Job job;
  return stub.CancelJob(&ctx, request, &job);
}

// WatchJob's final status; no event may arrive before it.
grpc::Status Watch(v1::QuantizationService::Stub& stub, const std::string& id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::WatchJobRequest request;
  request.set_job_id(id);
  auto reader = stub.WatchJob(&ctx, request);
  v1::JobEvent event;
  int events = 0;
  while (reader->Read(&event)) ++events;
  EXPECT_EQ(events, 0) << "events for job id '" << id << "'";
  return reader->Finish();
}

std::vector<BadCall> BadCalls() {
  using Stub = v1::QuantizationService::Stub;
  return {
      {"page_size -1", [](Stub& s) { return List(s, -1, "", 0); }, "page_size"},
      {"page_size 1001", [](Stub& s) { return List(s, 1001, "", 0); }, "page_size"},
      {"page_token garbage", [](Stub& s) { return List(s, 10, "not-a-token", 0); }, "page_token"},
      {"page_token 10 KB", [](Stub& s) { return List(s, 10, std::string(10240, 'z'), 0); },
       "page_token"},
      {"state 42", [](Stub& s) { return List(s, 10, "", 42); }, "state"},
      {"GetJob empty id", [](Stub& s) { return Get(s, ""); }, "job_id"},
      {"GetJob no prefix", [](Stub& s) { return Get(s, "0123456789abcdef"); }, "job_id"},
      {"GetJob short", [](Stub& s) { return Get(s, "j-0123"); }, "job_id"},
      {"GetJob 17 hex", [](Stub& s) { return Get(s, "j-0123456789abcdef0"); }, "job_id"},
      {"GetJob not hex", [](Stub& s) { return Get(s, "j-0123456789abcdeg"); }, "job_id"},
      {"GetJob NUL", [](Stub& s) { return Get(s, std::string("j-01234567\0abcdef0", 18)); },
       "job_id"},
      {"CancelJob path", [](Stub& s) { return Cancel(s, "../../etc/passwd"); }, "job_id"},
      {"CancelJob 10 KB", [](Stub& s) { return Cancel(s, std::string(10240, 'j')); }, "job_id"},
      {"WatchJob empty id", [](Stub& s) { return Watch(s, ""); }, "job_id"},
      {"WatchJob SQL", [](Stub& s) { return Watch(s, "j-' OR 1=1 --"); }, "job_id"},
  };
}

TEST_F(ApiValidationTest, MalformedRequestsAreInvalidArgumentAndCreateNothing) {
  {  // A request without a spec at all.
    v1::SubmitJobResponse response;
    ExpectInvalid(Submit(nullptr, &response), "spec", "no spec");
  }
  int checked = 1;
  for (const BadSpec& bad : BadSpecs()) {
    v1::JobSpec spec = BaseSpec();
    bad.mutate(spec);
    v1::SubmitJobResponse response;
    ExpectInvalid(Submit(&spec, &response), bad.field, bad.name);
    ++checked;
  }
  for (const BadCall& bad : BadCalls()) {
    ExpectInvalid(bad.call(*stub_), bad.field, bad.name);
    ++checked;
  }
  EXPECT_GE(checked, 30);

  // Nothing was stored, and the server still serves: a valid job runs to the end.
  EXPECT_TRUE(AllJobs().empty());
  v1::JobSpec spec = BaseSpec();
  v1::SubmitJobResponse submitted;
  grpc::Status status = Submit(&spec, &submitted);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << server_->LogTail();
  EXPECT_TRUE(submitted.created());
  EXPECT_EQ(WatchToEnd(submitted.job().id()), v1::JOB_STATE_SUCCEEDED) << server_->LogTail();
  grpc::ClientContext ctx;
  v1::GetJobRequest get;
  get.set_job_id(submitted.job().id());
  v1::Job job;
  status = stub_->GetJob(&ctx, get, &job);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  std::vector<v1::Job> jobs = AllJobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].id(), submitted.job().id());
}

TEST_F(ApiValidationTest, UnknownWellFormedIdIsNotFound) {
  const std::string unknown = "j-0123456789abcdef";
  EXPECT_EQ(Get(*stub_, unknown).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Cancel(*stub_, unknown).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Watch(*stub_, unknown).error_code(), grpc::StatusCode::NOT_FOUND);
}

// Protobuf refuses strings that are not UTF-8 while parsing proto3 requests, so the server
// may answer INTERNAL ("failed to parse") before its own validation: either way no job.
TEST_F(ApiValidationTest, InvalidUtf8IsRefusedWithoutAJob) {
  const std::vector<std::function<void(v1::JobSpec&)>> mutations = {
      [](v1::JobSpec& s) { s.set_model_uri("file:///tmp/\xff\xfe"); },
      [](v1::JobSpec& s) { s.set_output_uri("file:///tmp/\xc3\x28"); },
      [](v1::JobSpec& s) { (*s.mutable_labels())["team"] = "\xed\xa0\x80"; },  // a surrogate
  };
  for (size_t i = 0; i < mutations.size(); ++i) {
    v1::JobSpec spec = BaseSpec();
    mutations[i](spec);
    v1::SubmitJobResponse response;
    grpc::Status status = Submit(&spec, &response);
    EXPECT_TRUE(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                status.error_code() == grpc::StatusCode::INTERNAL)
        << "case " << i << ": code " << status.error_code() << " " << status.error_message();
  }
  EXPECT_TRUE(AllJobs().empty());
  EXPECT_TRUE(Get(*stub_, "j-0000000000000000").error_code() == grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace signround
