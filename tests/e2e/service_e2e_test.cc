// The job service end to end on loopback, with the real binaries: signround-server
// (role all, SQLite data dir, one cpu slot) running signround-worker children, driven
// by the signround CLI. Here the acceptance's CLI flow: submit --watch, get, watch on
// a make-test-model checkpoint to file:// and to s3:// (a real S3 server), and on
// ../shared stories260k. Failures and recovery: service_recovery_e2e_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/storage/s3_store.h"
#include "tests/e2e/service_e2e_fixture.h"
#include "tests/e2e/service_e2e_util.h"
#include "tests/testing/s3_server.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_files.h"

namespace signround::e2e {
namespace {

namespace fs = std::filesystem;
using testing::CliResult;
using testing::RunCli;
using testing::ServerProcess;

// The "block i/N" numbers of `submit --watch`'s plain lines, in order.
std::vector<std::pair<int, int>> PlainBlockLines(const std::string& out) {
  std::vector<std::pair<int, int>> blocks;
  const std::regex line_re("^seq [0-9]+ block ([0-9]+)/([0-9]+) .*");
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, line_re)) blocks.emplace_back(std::stoi(m[1]), std::stoi(m[2]));
  }
  return blocks;
}

// The CLI flow of the acceptance: submit --watch (plain lines: one per block, in
// order), get --json (SUCCEEDED with its artifacts, each at its URI with the stated
// size and sha256), watch --json of the ended job (the whole log again).
// `events_out`, when given, receives that log.
void CliFlow(const ServerProcess& server, const JobFlags& flags, int blocks, const Fetcher& fetch,
             std::vector<v1::JobEvent>* events_out = nullptr) {
  std::vector<std::string> args = {"submit"};
  std::vector<std::string> more = flags.Args();
  args.insert(args.end(), more.begin(), more.end());
  args.push_back("--watch");
  CliResult submit = RunCli(server.grpc_address(), args, 180);
  ASSERT_EQ(submit.exit_code, 0) << Describe(submit) << "\nserver log:\n" << server.LogTail();
  const std::string id = submit.out.substr(0, submit.out.find('\n'));
  ASSERT_TRUE(std::regex_match(id, std::regex("j-[0-9a-f]{16}"))) << Describe(submit);
  std::vector<std::pair<int, int>> lines = PlainBlockLines(submit.out);
  ASSERT_EQ(lines.size(), static_cast<size_t>(blocks)) << submit.out;
  for (int i = 0; i < blocks; ++i) {
    EXPECT_EQ(lines[i], std::make_pair(i + 1, blocks)) << "line for block index " << i;
  }
  EXPECT_NE(submit.out.find("SUCCEEDED"), std::string::npos) << submit.out;

  CliResult get = RunCli(server.grpc_address(), {"--json", "get", id}, 30);
  ASSERT_EQ(get.exit_code, 0) << Describe(get);
  absl::StatusOr<v1::Job> job = ParseJobJson(get.out);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->id(), id);
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << job->ShortDebugString();
  EXPECT_EQ(job->attempts(), 1);
  EXPECT_EQ(job->block_count(), blocks);
  EXPECT_EQ(job->blocks_done(), blocks);
  EXPECT_TRUE(job->error().empty()) << job->error();
  ExpectArtifactsAt(*job, flags.out, flags.formats, fetch);

  CliResult watch = RunCli(server.grpc_address(), {"--json", "watch", id}, 30);
  ASSERT_EQ(watch.exit_code, 0) << Describe(watch);
  absl::StatusOr<std::vector<v1::JobEvent>> events = ParseEventLines(watch.out);
  ASSERT_TRUE(events.ok()) << events.status();
  ExpectCleanSuccessLog(*events, *job, blocks);
  EXPECT_EQ(static_cast<int64_t>(events->size()), job->last_sequence());
  // The CLI relays exactly what the API streams.
  Api api(server.grpc_address());
  absl::StatusOr<std::vector<v1::JobEvent>> direct = api.Events(id);
  ASSERT_TRUE(direct.ok()) << direct.status();
  ASSERT_EQ(direct->size(), events->size());
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*direct)[i].SerializeAsString(), (*events)[i].SerializeAsString()) << i;
  }
  if (events_out != nullptr) *events_out = *std::move(events);
}

// A job on ../shared/models/`model` with the stories260k calibration rows,
// writing auto_round to `out`; nullopt when ../shared or those files are absent.
// The URI rules refuse '..' segments: the shared dir's canonical path.
std::optional<JobFlags> SharedJob(const std::string& model, const std::string& out) {
  if (testing::SharedDir().empty()) return std::nullopt;
  const std::string shared = fs::canonical(testing::SharedDir()).string();
  const std::string model_dir = shared + "/models/" + model;
  const std::string calib = shared + "/data/stories260k-calib-128x256.jsonl";
  if (!fs::exists(model_dir + "/config.json") || !fs::exists(calib)) return std::nullopt;
  JobFlags flags;
  flags.model = FileUri(model_dir);
  flags.calib = FileUri(calib);
  flags.out = FileUri(out);
  flags.formats = {"auto_round"};
  return flags;
}

TEST_F(ServiceE2ETest, CliFlowToFileOutput) {
  std::unique_ptr<ServerProcess> server = StartServer("data");
  ASSERT_TRUE(server);
  absl::StatusOr<std::pair<int, std::string>> health =
      testing::HttpGet(server->metrics_address(), "/healthz");
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(health->first, 200);

  const std::string out = dir_.File("out");
  JobFlags flags = SmallJob(out);
  CliFlow(*server, flags, kSmallLayers, FileFetcher());
  // Nothing at the output but the listed artifacts (counted by ExpectArtifactsAt).
  size_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(out)) {
    files += entry.is_regular_file() ? 1 : 0;
  }
  EXPECT_EQ(files, 3 + 4 + 1u)
      << "auto_round (3 files), auto_gptq (4, with quantize_config.json) and report.json";
  // The work dir is gone once the job ended.
  EXPECT_TRUE(!fs::exists(dir_.File("data/jobs")) || fs::is_empty(dir_.File("data/jobs")));
  EXPECT_TRUE(server->Stop().ok()) << server->LogTail();
}

TEST_F(ServiceE2ETest, CliFlowToS3) {
  testing::S3TestServer s3;
  absl::Status started = s3.Start();
  ASSERT_TRUE(started.ok()) << started;
  const testing::S3Endpoint& ep = s3.endpoint();
  S3Options options;
  options.endpoint = ep.url;
  options.region = ep.region;
  options.credentials = {ep.access_key, ep.secret_key, ""};
  S3Store store("e2e", options);
  ASSERT_TRUE(store.CreateBucket().ok());
  // The model and the calibration file come from S3 too.
  for (const auto& entry : fs::directory_iterator(small_model_)) {
    const std::string key = "models/small/" + entry.path().filename().string();
    ASSERT_TRUE(store.Put(entry.path().string(), key, nullptr).ok()) << key;
  }
  ASSERT_TRUE(store.Put(calib_, "calib/calib.jsonl", nullptr).ok());

  std::unique_ptr<ServerProcess> server = StartServer(
      "data", {"--s3-endpoint=" + ep.url, "--s3-region=" + ep.region, "--s3-addressing=path"},
      {{"AWS_ACCESS_KEY_ID", ep.access_key}, {"AWS_SECRET_ACCESS_KEY", ep.secret_key}});
  ASSERT_TRUE(server);
  JobFlags flags = SmallJob("unused");
  flags.model = "s3://e2e/models/small";
  flags.calib = "s3://e2e/calib/calib.jsonl";
  flags.out = "s3://e2e/out/job1";
  int fetched = 0;
  Fetcher fetch = [&](const std::string& uri) -> absl::StatusOr<std::string> {
    const std::string prefix = "s3://e2e/";
    if (!absl::StartsWith(uri, prefix)) return absl::InvalidArgumentError(uri);
    const std::string local = dir_.File(absl::StrCat("fetched-", fetched++));
    absl::Status got = store.Get(uri.substr(prefix.size()), local, nullptr);
    if (!got.ok()) return got;
    return local;
  };
  CliFlow(*server, flags, kSmallLayers, fetch);
  absl::StatusOr<ObjectList> listed = store.List("out/job1/", "", 1000);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->objects.size(), 3 + 4 + 1u);
  EXPECT_TRUE(server->Stop().ok()) << server->LogTail();
}

TEST_F(ServiceE2ETest, CliFlowOnSharedStories260k) {
  std::optional<JobFlags> flags = SharedJob("stories260k", dir_.File("out"));
  if (!flags) GTEST_SKIP() << "../shared/models/stories260k or its calibration data is absent";
  std::unique_ptr<ServerProcess> server = StartServer("data");
  ASSERT_TRUE(server);
  flags->iters = 10;
  flags->nsamples = 16;
  flags->seqlen = 128;
  CliFlow(*server, *flags, 5, FileFetcher());  // stories260k has 5 decoder blocks
}

// A job for each model family of ../shared/models/ZOO.md through the server;
// the MoE ones stream each expert's calibration tokens with every block.
struct ZooJob {
  const char* model;
  int blocks;
  int experts;  // 0: dense
  int experts_per_token;
};

void PrintTo(const ZooJob& j, std::ostream* os) { *os << j.model; }

class ServiceFamilyE2ETest : public ServiceE2ETest, public ::testing::WithParamInterface<ZooJob> {};

INSTANTIATE_TEST_SUITE_P(Zoo, ServiceFamilyE2ETest,
                         ::testing::Values(ZooJob{"qwen3-tiny", 4, 0, 0},
                                           ZooJob{"qwen3moe-tiny", 4, 8, 2},
                                           ZooJob{"mixtral-tiny", 4, 8, 2},
                                           ZooJob{"gemma3-tiny", 6, 0, 0},
                                           ZooJob{"phi3-tiny", 4, 0, 0}),
                         [](const auto& info) {
                           std::string name = info.param.model;
                           name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
                           return name;
                         });

TEST_P(ServiceFamilyE2ETest, CliFlow) {
  std::optional<JobFlags> flags = SharedJob(GetParam().model, dir_.File("out"));
  if (!flags) GTEST_SKIP() << "../shared/models/" << GetParam().model << " is absent";
  std::unique_ptr<ServerProcess> server = StartServer("data");
  ASSERT_TRUE(server);
  flags->iters = 5;
  flags->nsamples = 8;
  flags->seqlen = 64;
  std::vector<v1::JobEvent> events;
  CliFlow(*server, *flags, GetParam().blocks, FileFetcher(), &events);
  int blocks = 0;
  for (const v1::JobEvent& e : events) {
    if (!e.has_block_progress()) continue;
    ++blocks;
    const v1::BlockProgress& b = e.block_progress();
    ASSERT_EQ(b.expert_tokens_size(), GetParam().experts) << b.ShortDebugString();
    int64_t sum = 0;
    for (int64_t n : b.expert_tokens()) sum += n;
    if (GetParam().experts > 0) {
      EXPECT_EQ(sum, int64_t{8} * 64 * GetParam().experts_per_token) << b.ShortDebugString();
    }
  }
  EXPECT_EQ(blocks, GetParam().blocks);
  EXPECT_TRUE(server->Stop().ok()) << server->LogTail();
}

}  // namespace
}  // namespace signround::e2e
