#include "tests/e2e/service_e2e_fixture.h"

#include <signal.h>

#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/testing/worker_process.h"

namespace signround::e2e {

using testing::CliResult;
using testing::RunCli;
using testing::ServerProcess;
using testing::ServerProcessOptions;

std::string CmdLine(pid_t pid) {
  std::string s = testing::ReadAll(absl::StrCat("/proc/", pid, "/cmdline"));
  for (char& c : s) c = c == '\0' ? ' ' : c;
  return s;
}

bool Alive(pid_t pid) { return ::kill(pid, 0) == 0; }

std::vector<pid_t> WorkerPids(const ServerProcess& server) {
  std::vector<pid_t> workers;
  for (pid_t pid : server.ChildPids()) {
    // argv[0], not anywhere: a child forked but not yet exec'd still has the
    // server's command line, which names the worker in --worker-bin.
    const std::string cmd = CmdLine(pid);
    const std::string argv0 = cmd.substr(0, cmd.find(' '));
    if (absl::EndsWith(argv0, "signround-worker")) workers.push_back(pid);
  }
  return workers;
}

testing::TempDir* ServiceE2ETest::inputs_ = nullptr;
std::string ServiceE2ETest::small_model_, ServiceE2ETest::long_model_, ServiceE2ETest::calib_;
std::map<std::string, std::string>* ServiceE2ETest::long_reference_ = nullptr;

void ServiceE2ETest::SetUpTestSuite() {
  inputs_ = new testing::TempDir();
  small_model_ = MakeTestModel(*inputs_, "small", kSmallLayers);
  long_model_ = MakeTestModel(*inputs_, "long", kLongLayers);
  calib_ = WriteCalib(*inputs_, "calib.jsonl", 16, 64);
  long_reference_ = new std::map<std::string, std::string>();
}

void ServiceE2ETest::TearDownTestSuite() {
  delete inputs_;
  inputs_ = nullptr;
  delete long_reference_;
  long_reference_ = nullptr;
}

void ServiceE2ETest::SetUp() {
  ASSERT_FALSE(small_model_.empty());
  ASSERT_FALSE(long_model_.empty());
}

std::unique_ptr<ServerProcess> ServiceE2ETest::StartServer(const std::string& name,
                                                           std::vector<std::string> extra_args,
                                                           std::map<std::string, std::string> env) {
  ServerProcessOptions options;
  options.data_dir = dir_.File(name);
  // Tuning results depend on the engine's thread count (the order of its reductions; the
  // default is the machine's core count), so every server's workers use one thread and the
  // byte-for-byte comparisons with the reference run hold on any machine.
  extra_args.push_back("--worker-threads=1");
  options.extra_args = std::move(extra_args);
  options.env = std::move(env);
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

JobFlags ServiceE2ETest::SmallJob(const std::string& out_dir) {
  JobFlags f;
  f.model = FileUri(small_model_);
  f.calib = FileUri(calib_);
  f.out = FileUri(out_dir);
  return f;
}

JobFlags ServiceE2ETest::LongJob(const std::string& out_dir) {
  JobFlags f = SmallJob(out_dir);
  f.model = FileUri(long_model_);
  f.iters = kLongIters;
  return f;
}

std::string ServiceE2ETest::Submit(const ServerProcess& server, const JobFlags& flags) {
  std::vector<std::string> args = {"--json", "submit"};
  std::vector<std::string> more = flags.Args();
  args.insert(args.end(), more.begin(), more.end());
  CliResult r = RunCli(server.grpc_address(), args, 60);
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  absl::StatusOr<v1::Job> job = ParseJobJson(r.out);
  EXPECT_TRUE(job.ok()) << job.status();
  if (!job.ok()) return "";
  EXPECT_TRUE(std::regex_match(job->id(), std::regex("j-[0-9a-f]{16}"))) << job->id();
  EXPECT_EQ(job->state(), v1::JOB_STATE_QUEUED) << job->ShortDebugString();
  return job->id();
}

const std::map<std::string, std::string>& ServiceE2ETest::LongReference() {
  if (!long_reference_->empty()) return *long_reference_;
  const std::string out = inputs_->File("long-reference");
  std::unique_ptr<ServerProcess> server = StartServer("reference-data");
  if (!server) return *long_reference_;
  Api api(server->grpc_address());
  const std::string id = Submit(*server, LongJob(out));
  absl::StatusOr<v1::Job> job = api.WaitEnded(id, 120);
  EXPECT_TRUE(job.ok()) << job.status() << "\n" << server->LogTail();
  if (!job.ok()) return *long_reference_;
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << job->ShortDebugString();
  EXPECT_EQ(job->attempts(), 1);
  *long_reference_ = ModelFiles(out);
  EXPECT_GE(long_reference_->size(), 4u);
  return *long_reference_;
}

void ServiceE2ETest::ExpectSameAsLongReference(const std::string& out) {
  const std::map<std::string, std::string>& want = LongReference();
  ASSERT_FALSE(want.empty()) << "no reference run";
  std::map<std::string, std::string> got = ModelFiles(out);
  ASSERT_EQ(got.size(), want.size()) << out;
  for (const auto& [rel, content] : want) {
    ASSERT_EQ(got.count(rel), 1u) << rel;
    EXPECT_EQ(got[rel].size(), content.size()) << rel;
    EXPECT_TRUE(got[rel] == content) << rel << " differs from the uninterrupted run";
  }
}

}  // namespace signround::e2e
