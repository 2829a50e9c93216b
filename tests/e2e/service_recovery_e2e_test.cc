// The job service end to end when things go wrong, with the real binaries on
// loopback: kill -9 of the server with one job running and three queued, then a
// restart on the same data dir; kill -9 of the worker child mid-job; cancel of a
// running and of a queued job; a job that fails every attempt. Resumed jobs must
// produce artifacts byte-identical to the same job run without interruption.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/service_e2e_fixture.h"
#include "tests/e2e/service_e2e_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/spawn.h"
#include "tests/testing/test_files.h"

namespace signround::e2e {
namespace {

namespace fs = std::filesystem;
using testing::CliResult;
using testing::RunCli;
using testing::ServerProcess;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

bool StartedNotDone(const v1::Job& job) {
  return Api::IsEnded(job) || (job.blocks_done() >= 1 && job.state() == v1::JOB_STATE_RUNNING);
}

// Waits until every pid in `pids` is gone; the ones still there after `seconds`.
std::vector<pid_t> WaitGone(const std::vector<pid_t>& pids, double seconds) {
  const Clock::time_point t0 = Clock::now();
  std::vector<pid_t> left = pids;
  while (!left.empty() && Since(t0) < seconds) {
    std::vector<pid_t> still;
    for (pid_t pid : left) {
      if (Alive(pid)) still.push_back(pid);
    }
    left = still;
    if (!left.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return left;
}

TEST_F(ServiceE2ETest, ServerKill9WithOneRunningAndThreeQueued) {
  std::unique_ptr<ServerProcess> server = StartServer("data");
  ASSERT_TRUE(server);
  Api api(server->grpc_address());
  const std::string long_out = dir_.File("out-long");
  std::vector<std::string> ids = {Submit(*server, LongJob(long_out))};
  for (int i = 0; i < 3; ++i) {
    ids.push_back(Submit(*server, SmallJob(dir_.File(absl::StrCat("out-small-", i)))));
  }
  for (const std::string& id : ids) ASSERT_FALSE(id.empty());

  absl::StatusOr<v1::Job> running = api.WaitFor(ids[0], StartedNotDone, 60);
  ASSERT_TRUE(running.ok()) << running.status() << "\n" << server->LogTail();
  std::vector<v1::JobState> others;
  for (int i = 1; i < 4; ++i) {
    absl::StatusOr<v1::Job> queued = api.Get(ids[i]);
    others.push_back(queued.ok() ? queued->state() : v1::JOB_STATE_UNSPECIFIED);
  }
  const std::vector<pid_t> workers = WorkerPids(*server);
  server->Kill9();
  ASSERT_EQ(running->state(), v1::JOB_STATE_RUNNING) << running->ShortDebugString();
  ASSERT_GE(running->blocks_done(), 1);
  ASSERT_LT(running->blocks_done(), kLongLayers) << "the kill should land mid-job";
  for (v1::JobState state : others) EXPECT_EQ(state, v1::JOB_STATE_QUEUED);
  EXPECT_EQ(workers.size(), 1u) << "one cpu slot: one worker";
  std::printf("server killed with the long job at block %d/%d\n", running->blocks_done(),
              running->block_count());
  // The worker must not outlive its server: a second copy of the job would run
  // beside the resumed one.
  std::vector<pid_t> orphans = WaitGone(workers, 3);
  EXPECT_TRUE(orphans.empty()) << "signround-worker " << (orphans.empty() ? 0 : orphans[0])
                               << " still runs 3 s after its server was killed";
  for (pid_t pid : orphans) {
    if (absl::StrContains(CmdLine(pid), "signround-worker")) ::kill(pid, SIGKILL);
  }

  server = StartServer("data");
  ASSERT_TRUE(server);
  Api api2(server->grpc_address());
  for (const std::string& id : ids) {
    absl::StatusOr<v1::Job> job = api2.WaitEnded(id, 120);
    ASSERT_TRUE(job.ok()) << job.status() << "\n" << server->LogTail();
    EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << job->ShortDebugString();
  }
  absl::StatusOr<std::vector<v1::Job>> all = api2.List();
  ASSERT_TRUE(all.ok()) << all.status();
  std::set<std::string> listed;
  for (const v1::Job& job : *all) listed.insert(job.id());
  EXPECT_EQ(all->size(), 4u);
  EXPECT_EQ(listed, std::set<std::string>(ids.begin(), ids.end()));

  for (size_t i = 0; i < ids.size(); ++i) {
    SCOPED_TRACE(ids[i]);
    absl::StatusOr<v1::Job> job = api2.Get(ids[i]);
    ASSERT_TRUE(job.ok()) << job.status();
    absl::StatusOr<std::vector<v1::JobEvent>> events = api2.Events(ids[i]);
    ASSERT_TRUE(events.ok()) << events.status();
    ExpectWellFormedLog(*events, ids[i], v1::JOB_STATE_SUCCEEDED);
    const int blocks = i == 0 ? kLongLayers : kSmallLayers;
    // The last attempt reports every block once, in order.
    ExpectBlocksInOrder(BlockEvents(*events, job->attempts()), blocks);
    const std::string out = i == 0 ? long_out : dir_.File(absl::StrCat("out-small-", i - 1));
    ExpectArtifactsAt(*job, FileUri(out), {"auto_round", "auto_gptq"}, FileFetcher());
    if (i > 0) {
      // Never started before the kill: one clean run.
      EXPECT_EQ(job->attempts(), 1);
      ExpectCleanSuccessLog(*events, *job, blocks);
    } else {
      bool resumed = false;
      for (const v1::BlockProgress& b : BlockEvents(*events)) resumed |= b.resumed();
      EXPECT_TRUE(resumed) << "the interrupted job should resume from its finished blocks";
    }
  }
  ExpectSameAsLongReference(long_out);
}

TEST_F(ServiceE2ETest, WorkerKill9IsRetriedAndResumed) {
  std::unique_ptr<ServerProcess> server = StartServer("data");
  ASSERT_TRUE(server);
  Api api(server->grpc_address());
  const std::string out = dir_.File("out");
  const std::string id = Submit(*server, LongJob(out));
  ASSERT_FALSE(id.empty());
  absl::StatusOr<v1::Job> running = api.WaitFor(id, StartedNotDone, 60);
  ASSERT_TRUE(running.ok()) << running.status() << "\n" << server->LogTail();
  std::vector<pid_t> workers = WorkerPids(*server);
  ASSERT_EQ(workers.size(), 1u) << server->LogTail();
  ASSERT_EQ(::kill(workers[0], SIGKILL), 0);
  ASSERT_EQ(running->state(), v1::JOB_STATE_RUNNING) << running->ShortDebugString();
  ASSERT_LT(running->blocks_done(), kLongLayers) << "the kill should land mid-job";
  std::printf("worker killed at block %d/%d\n", running->blocks_done(), running->block_count());

  absl::StatusOr<v1::Job> job = api.WaitEnded(id, 120);
  ASSERT_TRUE(job.ok()) << job.status() << "\n" << server->LogTail();
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << job->ShortDebugString();
  EXPECT_EQ(job->attempts(), 2);
  EXPECT_FALSE(Alive(workers[0]));
  absl::StatusOr<std::vector<v1::JobEvent>> events = api.Events(id);
  ASSERT_TRUE(events.ok()) << events.status();
  ExpectWellFormedLog(*events, id, v1::JOB_STATE_SUCCEEDED);
  int retry_errors = 0;
  for (const v1::JobEvent& e : *events) {
    if (e.has_error()) {
      EXPECT_TRUE(e.error().will_retry()) << e.ShortDebugString();
      EXPECT_FALSE(e.error().message().empty());
      EXPECT_EQ(e.attempt(), 1) << e.ShortDebugString();
      ++retry_errors;
    }
  }
  EXPECT_EQ(retry_errors, 1);
  std::vector<v1::BlockProgress> second = BlockEvents(*events, 2);
  ExpectBlocksInOrder(second, kLongLayers);
  ASSERT_FALSE(second.empty());
  EXPECT_TRUE(second[0].resumed()) << "block 0 finished in attempt 1: " << second[0].DebugString();
  EXPECT_FALSE(second.back().resumed()) << "the last block was not done when the worker died";
  ExpectArtifactsAt(*job, FileUri(out), {"auto_round", "auto_gptq"}, FileFetcher());
  ExpectSameAsLongReference(out);
}

// A worker that dies in every attempt: retried up to --max-attempts, then FAILED
// with the last attempt's error; `signround watch` exits 10.
TEST_F(ServiceE2ETest, WorkerKilledInEveryAttemptFails) {
  std::unique_ptr<ServerProcess> server = StartServer("data", {"--max-attempts=2"});
  ASSERT_TRUE(server);
  Api api(server->grpc_address());
  const std::string id = Submit(*server, LongJob(dir_.File("out")));
  ASSERT_FALSE(id.empty());
  std::vector<pid_t> killed;
  const Clock::time_point t0 = Clock::now();
  while (killed.size() < 2 && Since(t0) < 60) {
    for (pid_t pid : WorkerPids(*server)) {
      if (std::find(killed.begin(), killed.end(), pid) == killed.end()) {
        ASSERT_EQ(::kill(pid, SIGKILL), 0);
        killed.push_back(pid);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(killed.size(), 2u) << server->LogTail();

  CliResult watch = RunCli(server->grpc_address(), {"watch", id}, 60);
  EXPECT_EQ(watch.exit_code, 10) << Describe(watch) << "\nserver log:\n" << server->LogTail();
  absl::StatusOr<v1::Job> job = api.Get(id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_FAILED) << job->ShortDebugString();
  EXPECT_EQ(job->attempts(), 2);
  EXPECT_FALSE(job->error().empty());
  absl::StatusOr<std::vector<v1::JobEvent>> events = api.Events(id);
  ASSERT_TRUE(events.ok()) << events.status();
  ExpectWellFormedLog(*events, id, v1::JOB_STATE_FAILED);
  std::vector<v1::JobEvent> errors;
  for (const v1::JobEvent& e : *events) {
    if (e.has_error()) errors.push_back(e);
  }
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_TRUE(errors[0].error().will_retry());
  EXPECT_EQ(errors[0].attempt(), 1);
  EXPECT_FALSE(errors[1].error().will_retry());
  EXPECT_EQ(errors[1].attempt(), 2);
  EXPECT_EQ(job->error(), errors[1].error().message()) << "FAILED with the last error";
  EXPECT_FALSE(fs::exists(DataDir("data") + "/jobs/" + id)) << "work dir left behind";
  EXPECT_FALSE(fs::exists(dir_.File("out"))) << "nothing uploaded for a failed job";
}

TEST_F(ServiceE2ETest, CancelRunningAndQueuedJobs) {
  std::unique_ptr<ServerProcess> server = StartServer("data");
  ASSERT_TRUE(server);
  Api api(server->grpc_address());
  const std::string running_id = Submit(*server, LongJob(dir_.File("out-long")));
  const std::string queued_id = Submit(*server, SmallJob(dir_.File("out-small")));
  ASSERT_FALSE(running_id.empty());
  ASSERT_FALSE(queued_id.empty());
  absl::StatusOr<v1::Job> running = api.WaitFor(running_id, StartedNotDone, 60);
  ASSERT_TRUE(running.ok()) << running.status() << "\n" << server->LogTail();
  ASSERT_EQ(running->state(), v1::JOB_STATE_RUNNING);

  // A queued job ends at once.
  CliResult cancel_queued = RunCli(server->grpc_address(), {"--json", "cancel", queued_id}, 30);
  ASSERT_EQ(cancel_queued.exit_code, 0) << Describe(cancel_queued);
  absl::StatusOr<v1::Job> queued = ParseJobJson(cancel_queued.out);
  ASSERT_TRUE(queued.ok()) << queued.status();
  EXPECT_EQ(queued->state(), v1::JOB_STATE_CANCELLED) << queued->ShortDebugString();

  // A running one within 5 s, its worker gone and its work dir removed.
  const std::vector<pid_t> workers = WorkerPids(*server);
  ASSERT_EQ(workers.size(), 1u);
  const std::string work_dir = DataDir("data") + "/jobs/" + running_id;
  EXPECT_TRUE(fs::exists(work_dir)) << "the running job's work dir, before the cancel";
  const Clock::time_point t0 = Clock::now();
  CliResult cancel_running = RunCli(server->grpc_address(), {"cancel", running_id}, 30);
  ASSERT_EQ(cancel_running.exit_code, 0) << Describe(cancel_running);
  absl::StatusOr<v1::Job> cancelled = api.WaitEnded(running_id, 5 - Since(t0));
  ASSERT_TRUE(cancelled.ok()) << cancelled.status() << "\n" << server->LogTail();
  EXPECT_EQ(cancelled->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(WaitGone(workers, 5 - Since(t0)).empty()) << "the worker outlived the cancel";
  while (fs::exists(work_dir) && Since(t0) < 5) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(fs::exists(work_dir)) << "5 s after the cancel";
  EXPECT_TRUE(server->ChildPids().empty());
  EXPECT_LT(Since(t0), 5.5);
  std::printf("cancel of the running job (blocks %d/%d): CANCELLED and worker gone in %.2f s\n",
              running->blocks_done(), running->block_count(), Since(t0));

  for (const std::string& id : {running_id, queued_id}) {
    SCOPED_TRACE(id);
    absl::StatusOr<std::vector<v1::JobEvent>> events = api.Events(id);
    ASSERT_TRUE(events.ok()) << events.status();
    ExpectWellFormedLog(*events, id, v1::JOB_STATE_CANCELLED);
    EXPECT_TRUE(BlockEvents(*events).size() < static_cast<size_t>(kLongLayers));
    // Cancelling an ended job: FAILED_PRECONDITION, exit 5; watch says CANCELLED: 11.
    CliResult again = RunCli(server->grpc_address(), {"cancel", id}, 30);
    EXPECT_EQ(again.exit_code, 5) << Describe(again);
    CliResult watch = RunCli(server->grpc_address(), {"watch", id}, 30);
    EXPECT_EQ(watch.exit_code, 11) << Describe(watch);
  }
  absl::StatusOr<std::vector<v1::JobEvent>> queued_events = api.Events(queued_id);
  ASSERT_TRUE(queued_events.ok());
  EXPECT_EQ(CountTransitions(*queued_events, v1::JOB_STATE_RUNNING), 0) << "it never ran";
  EXPECT_FALSE(fs::exists(dir_.File("out-small")));
  EXPECT_TRUE(server->Stop().ok()) << server->LogTail();
}

TEST_F(ServiceE2ETest, JobThatFailsEndsFailedWithItsError) {
  // A checkpoint whose config.json is not JSON.
  const std::string model = dir_.File("broken-model");
  fs::create_directories(model);
  fs::copy_file(small_model_ + "/model.safetensors", model + "/model.safetensors");
  testing::WriteFile(model + "/config.json", "{\"model_type\": \"llama\", \"hidden_size\": ");
  std::unique_ptr<ServerProcess> server = StartServer("data", {"--max-attempts=2"});
  ASSERT_TRUE(server);
  Api api(server->grpc_address());
  JobFlags flags = SmallJob(dir_.File("out"));
  flags.model = FileUri(model);
  const std::string id = Submit(*server, flags);
  ASSERT_FALSE(id.empty());

  CliResult watch = RunCli(server->grpc_address(), {"watch", id}, 120);
  EXPECT_EQ(watch.exit_code, 10) << Describe(watch) << "\nserver log:\n" << server->LogTail();
  absl::StatusOr<v1::Job> job = api.Get(id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_FAILED) << job->ShortDebugString();
  EXPECT_FALSE(job->error().empty());
  EXPECT_TRUE(absl::StrContains(job->error(), "config.json")) << job->error();
  EXPECT_TRUE(job->artifacts().empty());

  absl::StatusOr<std::vector<v1::JobEvent>> events = api.Events(id);
  ASSERT_TRUE(events.ok()) << events.status();
  ExpectWellFormedLog(*events, id, v1::JOB_STATE_FAILED);
  std::vector<v1::JobError> errors;
  for (const v1::JobEvent& e : *events) {
    if (e.has_error()) errors.push_back(e.error());
  }
  // Either bad input fails at once, or every attempt (2) fails; the last error says
  // it will not be retried, and every earlier one that it will.
  ASSERT_GE(job->attempts(), 1);
  ASSERT_LE(job->attempts(), 2);
  ASSERT_EQ(errors.size(), static_cast<size_t>(job->attempts()));
  for (size_t i = 0; i < errors.size(); ++i) {
    EXPECT_FALSE(errors[i].message().empty());
    EXPECT_EQ(errors[i].will_retry(), i + 1 < errors.size()) << errors[i].DebugString();
  }
  EXPECT_EQ(CountTransitions(*events, v1::JOB_STATE_QUEUED), job->attempts());
  EXPECT_FALSE(fs::exists(DataDir("data") + "/jobs/" + id)) << "work dir left behind";

  // The server keeps serving: a good job after the bad one succeeds.
  const std::string good = Submit(*server, SmallJob(dir_.File("out-good")));
  absl::StatusOr<v1::Job> done = api.WaitEnded(good, 60);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->ShortDebugString();
}

// A format that fails after tuning: the worker writes the others and report.json and
// exits 3; the service uploads them and fails the job at once (another attempt would
// fail the same way). Here auto_round cannot copy the tokenizer files (the model holds a
// directory named added_tokens.json) while the GGUF file needs none of them.
TEST_F(ServiceE2ETest, JobWithAFailedFormatUploadsTheOthersAndFails) {
  const std::string model = dir_.File("model-with-blocker");
  fs::copy(small_model_, model);
  fs::create_directory(model + "/added_tokens.json");
  std::unique_ptr<ServerProcess> server = StartServer("data", {"--max-attempts=3"});
  ASSERT_TRUE(server);
  Api api(server->grpc_address());
  const std::string out = dir_.File("out");
  JobFlags flags = SmallJob(out);
  flags.model = FileUri(model);
  flags.formats = {"auto_round", "gguf:q4_0"};
  flags.extra = {"--allow-gguf-without-vocab"};  // a make-test-model checkpoint has no tokenizer
  const std::string id = Submit(*server, flags);
  ASSERT_FALSE(id.empty());

  absl::StatusOr<v1::Job> job = api.WaitEnded(id, 120);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_FAILED) << job->ShortDebugString();
  EXPECT_EQ(job->attempts(), 1) << "not retried";
  EXPECT_TRUE(absl::StrContains(job->error(), "format auto_round failed")) << job->error();
  EXPECT_TRUE(absl::StrContains(job->error(), "added_tokens.json")) << job->error();
  std::set<std::string> formats;
  for (const v1::Artifact& a : job->artifacts()) formats.insert(a.format());
  EXPECT_EQ(formats, (std::set<std::string>{"gguf:q4_0", "report"})) << job->ShortDebugString();
  EXPECT_TRUE(fs::exists(out + "/gguf-q4_0/model-with-blocker-Q4_0.gguf"));
  EXPECT_FALSE(fs::exists(out + "/auto_round"));
  const std::string report = testing::ReadFileOrEmpty(out + "/report.json");
  EXPECT_TRUE(absl::StrContains(report, "\"failed_outputs\"")) << report;
  EXPECT_TRUE(absl::StrContains(report, "\"warnings\"")) << report;

  absl::StatusOr<std::vector<v1::JobEvent>> events = api.Events(id);
  ASSERT_TRUE(events.ok()) << events.status();
  ExpectWellFormedLog(*events, id, v1::JOB_STATE_FAILED);
  int errors = 0;
  for (const v1::JobEvent& e : *events) {
    if (!e.has_error()) continue;
    ++errors;
    EXPECT_FALSE(e.error().will_retry()) << e.error().DebugString();
  }
  EXPECT_EQ(errors, 1);
  EXPECT_FALSE(fs::exists(DataDir("data") + "/jobs/" + id)) << "work dir left behind";
  EXPECT_TRUE(server->Stop().ok()) << server->LogTail();
}

}  // namespace
}  // namespace signround::e2e
