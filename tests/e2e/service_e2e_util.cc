#include "tests/e2e/service_e2e_util.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "src/storage/sigv4.h"
#include "tests/testing/worker_process.h"

namespace signround::e2e {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

absl::Status FromGrpc(const grpc::Status& s, absl::string_view rpc) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(rpc, ": ", s.error_message()));
}

template <typename Message>
absl::StatusOr<Message> FromJson(const std::string& text) {
  Message m;
  auto status = google::protobuf::util::JsonStringToMessage(text, &m);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("not a ", Message::descriptor()->name(), ": ",
                                                   status.ToString(), " in '", text.substr(0, 300),
                                                   "'"));
  }
  return m;
}

std::string Sha256OfFile(const std::string& path) { return Sha256Hex(testing::ReadAll(path)); }

bool IsTransitionTo(const v1::JobEvent& e, v1::JobState to) {
  return e.has_state_change() && e.state_change().to() == to;
}

}  // namespace

std::string MakeTestModel(const testing::TempDir& dir, const std::string& name, int layers) {
  const std::string out = dir.File(name);
  testing::Result r =
      testing::RunWorker({"make-test-model", "--out", out, "--hidden", "64", "--intermediate",
                          "128", "--layers", std::to_string(layers), "--heads", "4", "--kv-heads",
                          "2", "--vocab", "256", "--dtype", "f32", "--seed", "3"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? out : "";
}

std::string WriteCalib(const testing::TempDir& dir, const std::string& name, int rows, int len) {
  std::string text;
  uint64_t x = 12345;
  for (int r = 0; r < rows; ++r) {
    nlohmann::json ids = nlohmann::json::array();
    for (int p = 0; p < len; ++p) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      ids.push_back(static_cast<int>((x >> 33) % 256u));
    }
    text += nlohmann::json{{"input_ids", ids}}.dump() + "\n";
  }
  const std::string path = dir.File(name);
  testing::WriteFile(path, text);
  return path;
}

std::vector<std::string> JobFlags::Args() const {
  std::vector<std::string> args = {"--model", model, "--out", out};
  if (!calib.empty()) args.insert(args.end(), {"--calib", calib});
  if (!formats.empty()) args.insert(args.end(), {"--format", absl::StrJoin(formats, ",")});
  args.insert(args.end(),
              {"--bits", std::to_string(bits), "--group-size", std::to_string(group_size),
               "--iters", std::to_string(iters), "--nsamples", std::to_string(nsamples), "--seqlen",
               std::to_string(seqlen), "--batch-size", std::to_string(batch_size)});
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// --- Api ----------------------------------------------------------------------

Api::Api(const std::string& address, const std::string& token)
    : stub_(v1::QuantizationService::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))),
      token_(token) {}

void Api::Prepare(grpc::ClientContext* ctx, double timeout_seconds) const {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)));
  if (!token_.empty()) ctx->AddMetadata("authorization", "Bearer " + token_);
}

bool Api::IsEnded(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_SUCCEEDED || job.state() == v1::JOB_STATE_FAILED ||
         job.state() == v1::JOB_STATE_CANCELLED;
}

absl::StatusOr<v1::Job> Api::Get(const std::string& id) {
  grpc::ClientContext ctx;
  Prepare(&ctx, 10);
  v1::GetJobRequest req;
  req.set_job_id(id);
  v1::Job job;
  grpc::Status s = stub_->GetJob(&ctx, req, &job);
  if (!s.ok()) return FromGrpc(s, "GetJob");
  return job;
}

absl::StatusOr<std::vector<v1::Job>> Api::List() {
  std::vector<v1::Job> jobs;
  std::string token;
  for (int page = 0; page < 1000; ++page) {
    grpc::ClientContext ctx;
    Prepare(&ctx, 10);
    v1::ListJobsRequest req;
    req.set_page_size(2);  // pages of 2: the page tokens are exercised too
    req.set_page_token(token);
    v1::ListJobsResponse resp;
    grpc::Status s = stub_->ListJobs(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s, "ListJobs");
    jobs.insert(jobs.end(), resp.jobs().begin(), resp.jobs().end());
    token = resp.next_page_token();
    if (token.empty()) return jobs;
  }
  return absl::InternalError("ListJobs: more than 1000 pages");
}

absl::StatusOr<std::vector<v1::JobEvent>> Api::Events(const std::string& id,
                                                      double timeout_seconds) {
  grpc::ClientContext ctx;
  Prepare(&ctx, timeout_seconds);
  v1::WatchJobRequest req;
  req.set_job_id(id);
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader = stub_->WatchJob(&ctx, req);
  std::vector<v1::JobEvent> events;
  v1::JobEvent e;
  while (reader->Read(&e)) events.push_back(e);
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpc(s, "WatchJob");
  return events;
}

absl::StatusOr<v1::Job> Api::WaitFor(const std::string& id,
                                     const std::function<bool(const v1::Job&)>& done,
                                     double timeout_seconds) {
  const Clock::time_point t0 = Clock::now();
  while (true) {
    absl::StatusOr<v1::Job> job = Get(id);
    if (!job.ok()) return job.status();
    if (done(*job)) return job;
    if (std::chrono::duration<double>(Clock::now() - t0).count() > timeout_seconds) {
      return absl::DeadlineExceededError(absl::StrCat(
          "job ", id, " after ", timeout_seconds, " s: state ", v1::JobState_Name(job->state()),
          ", blocks ", job->blocks_done(), "/", job->block_count(), ", attempts ", job->attempts(),
          ", error '", job->error(), "'"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
}

// --- CLI output -----------------------------------------------------------------

absl::StatusOr<v1::Job> ParseJobJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("not one JSON object: '", text, "'"));
  }
  if (j.contains("job") && j["job"].is_object()) return FromJson<v1::Job>(j["job"].dump());
  return FromJson<v1::Job>(text);
}

absl::StatusOr<std::vector<v1::JobEvent>> ParseEventLines(const std::string& text) {
  std::vector<v1::JobEvent> events;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    absl::StatusOr<v1::JobEvent> e = FromJson<v1::JobEvent>(line);
    if (!e.ok()) return e.status();
    events.push_back(*std::move(e));
  }
  return events;
}

std::string Describe(const testing::CliResult& r) {
  return absl::StrCat("exit ", r.exit_code, "\n--- stdout:\n", r.out, "--- stderr:\n", r.err);
}

// --- event logs -----------------------------------------------------------------

void ExpectWellFormedLog(const std::vector<v1::JobEvent>& events, const std::string& job_id,
                         v1::JobState final_state) {
  ASSERT_FALSE(events.empty()) << job_id;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), static_cast<int64_t>(i + 1))
        << job_id << ": event " << i << " " << events[i].ShortDebugString();
    EXPECT_EQ(events[i].job_id(), job_id) << events[i].ShortDebugString();
  }
  EXPECT_EQ(CountTransitions(events, final_state), 1)
      << job_id << " should reach " << v1::JobState_Name(final_state) << " exactly once";
  EXPECT_TRUE(IsTransitionTo(events.back(), final_state))
      << job_id << ": last event " << events.back().ShortDebugString();
}

int CountTransitions(const std::vector<v1::JobEvent>& events, v1::JobState to) {
  int n = 0;
  for (const v1::JobEvent& e : events) n += IsTransitionTo(e, to) ? 1 : 0;
  return n;
}

std::vector<v1::BlockProgress> BlockEvents(const std::vector<v1::JobEvent>& events, int attempt) {
  std::vector<v1::BlockProgress> blocks;
  for (const v1::JobEvent& e : events) {
    if (e.has_block_progress() && (attempt < 0 || e.attempt() == attempt)) {
      blocks.push_back(e.block_progress());
    }
  }
  return blocks;
}

void ExpectBlocksInOrder(const std::vector<v1::BlockProgress>& blocks, int n) {
  ASSERT_EQ(blocks.size(), static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(blocks[i].block_index(), i) << blocks[i].ShortDebugString();
    EXPECT_EQ(blocks[i].block_count(), n) << blocks[i].ShortDebugString();
  }
}

void ExpectCleanSuccessLog(const std::vector<v1::JobEvent>& events, const v1::Job& job, int n) {
  ExpectWellFormedLog(events, job.id(), v1::JOB_STATE_SUCCEEDED);
  const size_t want = 2 + n + 1 + job.artifacts_size() + 1;
  ASSERT_EQ(events.size(), want) << "events of " << job.id();
  auto expect_state = [&](size_t i, v1::JobState from, v1::JobState to) {
    ASSERT_TRUE(events[i].has_state_change()) << i << ": " << events[i].ShortDebugString();
    EXPECT_EQ(events[i].state_change().from(), from) << i << ": " << events[i].ShortDebugString();
    EXPECT_EQ(events[i].state_change().to(), to) << i << ": " << events[i].ShortDebugString();
  };
  expect_state(0, v1::JOB_STATE_UNSPECIFIED, v1::JOB_STATE_QUEUED);
  expect_state(1, v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING);
  std::vector<v1::BlockProgress> blocks;
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(events[2 + i].has_block_progress()) << events[2 + i].ShortDebugString();
    blocks.push_back(events[2 + i].block_progress());
    EXPECT_FALSE(blocks.back().resumed());
    EXPECT_GT(blocks.back().layers_quantized(), 0) << blocks.back().ShortDebugString();
  }
  ExpectBlocksInOrder(blocks, n);
  expect_state(2 + n, v1::JOB_STATE_RUNNING, v1::JOB_STATE_UPLOADING);
  std::set<std::string> uploaded, listed;
  for (int i = 0; i < job.artifacts_size(); ++i) {
    const v1::JobEvent& e = events[3 + n + i];
    ASSERT_TRUE(e.has_artifact_uploaded()) << e.ShortDebugString();
    uploaded.insert(e.artifact_uploaded().artifact().SerializeAsString());
    listed.insert(job.artifacts(i).SerializeAsString());
  }
  EXPECT_TRUE(uploaded == listed) << "ArtifactUploaded events differ from Job.artifacts";
  expect_state(events.size() - 1, v1::JOB_STATE_UPLOADING, v1::JOB_STATE_SUCCEEDED);
}

// --- artifacts --------------------------------------------------------------------

Fetcher FileFetcher() {
  return [](const std::string& uri) -> absl::StatusOr<std::string> {
    if (!absl::StartsWith(uri, "file://")) {
      return absl::InvalidArgumentError(absl::StrCat("not a file:// URI: ", uri));
    }
    return uri.substr(7);
  };
}

void ExpectArtifactsAt(const v1::Job& job, const std::string& output_uri,
                       const std::vector<std::string>& formats, const Fetcher& fetch) {
  ASSERT_GT(job.artifacts_size(), 0) << job.ShortDebugString();
  std::set<std::string> rel_paths;
  for (const v1::Artifact& a : job.artifacts()) {
    SCOPED_TRACE(a.ShortDebugString());
    const std::string prefix = output_uri + "/";
    ASSERT_TRUE(absl::StartsWith(a.uri(), prefix)) << "not under " << output_uri;
    const std::string rel = a.uri().substr(prefix.size());
    EXPECT_TRUE(rel_paths.insert(rel).second) << "listed twice";
    if (rel == "report.json") {
      EXPECT_EQ(a.format(), "report");
    } else {
      EXPECT_NE(std::find(formats.begin(), formats.end(), a.format()), formats.end());
      EXPECT_TRUE(absl::StartsWith(rel, a.format() + "/")) << rel;
    }
    absl::StatusOr<std::string> local = fetch(a.uri());
    ASSERT_TRUE(local.ok()) << local.status();
    ASSERT_TRUE(fs::is_regular_file(*local)) << *local;
    EXPECT_EQ(static_cast<int64_t>(fs::file_size(*local)), a.bytes());
    EXPECT_EQ(Sha256OfFile(*local), a.sha256());
  }
  EXPECT_EQ(rel_paths.count("report.json"), 1u);
  for (const std::string& f : formats) {
    EXPECT_EQ(rel_paths.count(f + "/model.safetensors"), 1u) << f;
    EXPECT_EQ(rel_paths.count(f + "/config.json"), 1u) << f;
  }
}

std::map<std::string, std::string> ModelFiles(const std::string& dir) {
  std::map<std::string, std::string> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string rel = fs::relative(it->path(), dir).string();
    if (rel == "report.json") continue;
    files[rel] = testing::ReadAll(it->path().string());
  }
  return files;
}

}  // namespace signround::e2e
