// Scale-out end to end, one code path over two stores: the real signround-server
// binaries sharing one job store, the jobs submitted through the CLI.
//   Postgres (a real server on loopback): one --role=api and two --role=worker processes.
//   SQLite: two --role=all processes sharing one database file.
// Ten jobs (one long, nine small) must all SUCCEED, run by both workers. The worker
// running the long job is killed with SIGKILL mid-job: its lease lapses, the other
// worker resumes the job from the last block checkpoint the first one mirrored, and
// the artifacts equal, byte for byte, the same job run once without interruption. A
// `signround watch` on another process streams the job's events to the end. A worker
// stopped with SIGTERM drains: it finishes its current block and releases the job.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tests/e2e/service_e2e_fixture.h"
#include "tests/e2e/service_e2e_util.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/server_process.h"

namespace signround::e2e {
namespace {

using testing::CliResult;
using testing::RunCli;
using testing::ServerProcess;

enum class Store { kPostgres, kSqlite };

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ScaleOutTest : public ServiceE2ETest, public ::testing::WithParamInterface<Store> {
 protected:
  void SetUp() override {
    ServiceE2ETest::SetUp();
    if (GetParam() == Store::kSqlite) {
      store_ = "sqlite:" + dir_.File("shared-jobs.db");
      return;
    }
    std::string why;
    if (!testing::PostgresAvailable(&why)) GTEST_SKIP() << "Postgres is not installed: " << why;
    absl::Status started = postgres_.Start();
    ASSERT_TRUE(started.ok()) << started;
    absl::StatusOr<std::string> url = postgres_.CreateDatabase("scaleout");
    ASSERT_TRUE(url.ok()) << url.status();
    // The server refuses a password in --store (argv is public): it goes in PGPASSWORD.
    store_ = absl::StrReplaceAll(*url, {{":" + postgres_.password() + "@", "@"}});
    env_ = {{"PGPASSWORD", postgres_.password()}};
  }

  // A process with device slots: --role=worker on Postgres, --role=all on SQLite.
  std::unique_ptr<ServerProcess> StartWorker(const std::string& name,
                                             const std::string& drain_seconds = "0") {
    const std::string role = GetParam() == Store::kPostgres ? "worker" : "all";
    return StartServer(name,
                       {"--role=" + role, "--store=" + store_, "--worker-name=" + name,
                        "--lease-seconds=2", "--drain-seconds=" + drain_seconds},
                       env_);
  }

  testing::PostgresTestServer postgres_;
  std::string store_;
  std::map<std::string, std::string> env_;  // PGPASSWORD on Postgres
};

// The worker among `workers` whose signround-worker child runs job `id` (-1: none).
int RunnerOf(const std::vector<std::unique_ptr<ServerProcess>>& workers, const std::string& id) {
  for (size_t i = 0; i < workers.size(); ++i) {
    for (pid_t pid : WorkerPids(*workers[i])) {
      if (absl::StrContains(CmdLine(pid), id)) return static_cast<int>(i);
    }
  }
  return -1;
}

TEST_P(ScaleOutTest, TenJobsOverTwoWorkersSurviveAWorkerKill9) {
  std::vector<std::unique_ptr<ServerProcess>> workers;
  workers.push_back(StartWorker("w1"));
  workers.push_back(StartWorker("w2"));
  ASSERT_TRUE(workers[0] && workers[1]);
  std::unique_ptr<ServerProcess> api;
  if (GetParam() == Store::kPostgres) {
    api = StartServer("api", {"--role=api", "--store=" + store_, "--lease-seconds=2"}, env_);
    ASSERT_TRUE(api);
    EXPECT_TRUE(workers[0]->grpc_address().empty()) << "a worker serves no gRPC";
  }
  const ServerProcess& front = api ? *api : *workers[0];

  const std::string long_out = dir_.File("out-long");
  std::vector<std::string> ids = {Submit(front, LongJob(long_out))};
  for (int i = 0; i < 9; ++i) {
    ids.push_back(Submit(front, SmallJob(dir_.File(absl::StrCat("out-small-", i)))));
  }
  for (const std::string& id : ids) ASSERT_FALSE(id.empty());

  // Wait for the long job to finish a block, then find and kill its worker.
  Api front_api(front.grpc_address());
  absl::StatusOr<v1::Job> started = front_api.WaitFor(
      ids[0], [](const v1::Job& j) { return Api::IsEnded(j) || j.blocks_done() >= 2; }, 120);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_EQ(started->state(), v1::JOB_STATE_RUNNING) << started->ShortDebugString();
  ASSERT_LT(started->blocks_done(), kLongLayers) << "the kill should land mid-job";
  const int victim = RunnerOf(workers, ids[0]);
  ASSERT_GE(victim, 0) << "no worker process runs " << ids[0];
  const ServerProcess& survivor = *workers[1 - victim];
  const ServerProcess& watch_at = api ? *api : survivor;

  // Watch the long job on a process that is not killed, from its first event.
  CliResult watched;
  std::thread watcher([&] { watched = RunCli(watch_at.grpc_address(), {"watch", ids[0]}, 300); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::printf("killing worker w%d with the long job at block %d/%d\n", victim + 1,
              started->blocks_done(), kLongLayers);
  workers[victim]->Kill9();

  Api api_after(watch_at.grpc_address());
  for (const std::string& id : ids) {
    absl::StatusOr<v1::Job> job = api_after.WaitEnded(id, 240);
    ASSERT_TRUE(job.ok()) << job.status() << "\n" << survivor.LogTail();
    EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << job->ShortDebugString();
  }
  watcher.join();
  EXPECT_EQ(watched.exit_code, 0) << Describe(watched);
  EXPECT_TRUE(absl::StrContains(watched.out, "SUCCEEDED")) << watched.out;

  // The long job: attempt 1 lost with its worker, attempt 2 resumed on the other.
  absl::StatusOr<v1::Job> long_job = api_after.Get(ids[0]);
  ASSERT_TRUE(long_job.ok());
  EXPECT_EQ(long_job->attempts(), 2) << long_job->ShortDebugString();
  absl::StatusOr<std::vector<v1::JobEvent>> events = api_after.Events(ids[0]);
  ASSERT_TRUE(events.ok()) << events.status();
  ExpectWellFormedLog(*events, ids[0], v1::JOB_STATE_SUCCEEDED);
  bool lapsed = false;
  for (const v1::JobEvent& e : *events) {
    if (e.has_error() && absl::StrContains(e.error().message(), "stopped renewing its lease")) {
      lapsed = true;
      EXPECT_TRUE(e.error().will_retry());
    }
  }
  EXPECT_TRUE(lapsed) << "no event says the lease lapsed";
  std::vector<v1::BlockProgress> second = BlockEvents(*events, 2);
  ExpectBlocksInOrder(second, kLongLayers);
  int resumed = 0;
  for (const v1::BlockProgress& b : second) resumed += b.resumed() ? 1 : 0;
  EXPECT_GE(resumed, started->blocks_done())
      << "attempt 2 should reload every block attempt 1 finished before the kill";
  ExpectArtifactsAt(*long_job, FileUri(long_out), {"auto_round", "auto_gptq"}, FileFetcher());
  ExpectSameAsLongReference(long_out);
  EXPECT_FALSE(std::filesystem::exists(long_out + "/.signround-work"))
      << "the mirrored checkpoints should be deleted once the job succeeded";

  // Both workers ran jobs (each logs the claims it made).
  for (size_t i = 0; i < workers.size(); ++i) {
    const std::string log = ReadAll(workers[i]->log_path());
    int claims = 0;
    for (const std::string& id : ids) claims += absl::StrContains(log, "job=" + id) ? 1 : 0;
    EXPECT_GE(claims, 1) << "worker w" << i + 1 << " ran no job";
  }
}

// SIGTERM to a worker with --drain-seconds: the running job finishes its current
// block, goes back to the queue (no error: nothing failed), and the next worker
// resumes it after that block; the artifacts equal the uninterrupted run's.
TEST_P(ScaleOutTest, DrainedWorkerFinishesItsBlockAndReleasesTheJob) {
  std::unique_ptr<ServerProcess> w1 = StartWorker("w1", "60");
  ASSERT_TRUE(w1);
  std::unique_ptr<ServerProcess> api;
  if (GetParam() == Store::kPostgres) {
    api = StartServer("api", {"--role=api", "--store=" + store_, "--lease-seconds=2"}, env_);
    ASSERT_TRUE(api);
  }
  const std::string out = dir_.File("out-long");
  const std::string id = Submit(api ? *api : *w1, LongJob(out));
  ASSERT_FALSE(id.empty());
  Api first(api ? api->grpc_address() : w1->grpc_address());
  absl::StatusOr<v1::Job> running = first.WaitFor(
      id, [](const v1::Job& j) { return Api::IsEnded(j) || j.blocks_done() >= 1; }, 120);
  ASSERT_TRUE(running.ok()) << running.status();
  ASSERT_EQ(running->state(), v1::JOB_STATE_RUNNING);
  const int done_at_sigterm = running->blocks_done();
  absl::Status stopped = w1->Stop(90);
  ASSERT_TRUE(stopped.ok()) << stopped << "\n" << w1->LogTail();

  std::unique_ptr<ServerProcess> w2 = StartWorker("w2");
  ASSERT_TRUE(w2);
  Api after(api ? api->grpc_address() : w2->grpc_address());
  absl::StatusOr<v1::Job> job = after.WaitEnded(id, 240);
  ASSERT_TRUE(job.ok()) << job.status() << "\n" << w2->LogTail();
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << job->ShortDebugString();
  EXPECT_EQ(job->attempts(), 2);
  absl::StatusOr<std::vector<v1::JobEvent>> events = after.Events(id);
  ASSERT_TRUE(events.ok()) << events.status();
  ExpectWellFormedLog(*events, id, v1::JOB_STATE_SUCCEEDED);
  const int first_attempt_blocks = static_cast<int>(BlockEvents(*events, 1).size());
  EXPECT_GE(first_attempt_blocks, done_at_sigterm + 1)
      << "the drained worker should finish the block it was tuning";
  bool released = false;
  for (const v1::JobEvent& e : *events) {
    EXPECT_FALSE(e.has_error()) << "draining is no failure: " << e.ShortDebugString();
    if (e.has_state_change() && e.attempt() == 1 && e.state_change().to() == v1::JOB_STATE_QUEUED) {
      released = absl::StrContains(e.state_change().reason(), "w1 stopping");
    }
  }
  EXPECT_TRUE(released) << "attempt 1 should end QUEUED by w1's drain";
  int resumed = 0;
  for (const v1::BlockProgress& b : BlockEvents(*events, 2)) resumed += b.resumed() ? 1 : 0;
  EXPECT_EQ(resumed, first_attempt_blocks);
  ExpectSameAsLongReference(out);
}

INSTANTIATE_TEST_SUITE_P(Stores, ScaleOutTest, ::testing::Values(Store::kPostgres, Store::kSqlite),
                         [](const ::testing::TestParamInfo<Store>& info) {
                           return info.param == Store::kPostgres ? "Postgres" : "Sqlite";
                         });

}  // namespace
}  // namespace signround::e2e
