// Drives the real `signround` binary (SIGNROUND_CLI_BIN): usage errors, an
// unreachable server, and every command against an in-test fake
// QuantizationService that returns canned answers and records the requests.
#include <grpcpp/support/server_interceptor.h>
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/testing/cli/canned_jobs.h"
#include "tests/testing/cli/cli_process.h"
#include "tests/testing/cli/fake_service.h"
#include "tests/testing/spawn.h"
#include "tests/testing/test_files.h"
#include "tests/testing/tls_pki.h"

namespace signround::cli {
namespace {

namespace v1 = ::signround::v1;
using testing::FakeServer;
using testing::FakeService;
using testing::JobEvents;
using testing::ProcessOptions;
using testing::ProcessResult;
using testing::RunningJob;

// Runs the CLI with SIGNROUND_SERVER, SIGNROUND_TOKEN and SIGNROUND_TLS_* removed
// from its environment (options.env may set them again).
ProcessResult Cli(const std::vector<std::string>& args, ProcessOptions options = {}) {
  for (const char* name : {"SIGNROUND_SERVER", "SIGNROUND_TOKEN", "SIGNROUND_TLS_CA",
                           "SIGNROUND_TLS_CERT", "SIGNROUND_TLS_KEY"}) {
    options.unset.push_back(name);
  }
  return testing::RunProcess(SIGNROUND_CLI_BIN, args, options);
}

// The CLI against `server`: --server ADDRESS, then `args`.
ProcessResult CliAt(const FakeServer& server, std::vector<std::string> args,
                    ProcessOptions options = {}) {
  args.insert(args.begin(), {"--server", server.address()});
  return Cli(args, options);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

void ExpectUsageError(const ProcessResult& r, const std::string& fragment) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("signround: ", 0), 0u) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line only: " << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << "want '" << fragment << "' in " << r.err;
}

std::vector<int64_t> PrintedSequences(const std::string& out) {
  std::vector<int64_t> seqs;
  for (const std::string& line : Lines(out)) {
    if (line.rfind("seq ", 0) == 0) seqs.push_back(std::stoll(line.substr(4)));
  }
  return seqs;
}

std::vector<int64_t> Range(int64_t first, int64_t last) {
  std::vector<int64_t> out;
  for (int64_t i = first; i <= last; ++i) out.push_back(i);
  return out;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_.submit_response.mutable_job()->set_id("j-42");
    service_.submit_response.set_created(true);
    server_ = std::make_unique<FakeServer>(&service_);
    ASSERT_TRUE(server_->ok());
  }
  FakeService service_;
  std::unique_ptr<FakeServer> server_;
};

TEST(CliUsage, BadUsageExitsTwoWithOneLine) {
  const std::string at = "127.0.0.1:1";  // nothing is contacted before the flags are valid
  ExpectUsageError(Cli({"--server", at}), "subcommand");
  ExpectUsageError(Cli({"--server", at, "submit", "--out", "file:///o"}), "--model");
  ExpectUsageError(Cli({"--server", at, "get"}), "JOB_ID");
  ExpectUsageError(Cli({"--server", at, "frobnicate"}), "subcommand");
  ExpectUsageError(Cli({"--server", at, "--timeout", "0", "get", "j-1"}), "--timeout");
  ExpectUsageError(Cli({"--server", "", "get", "j-1"}), "--server");
  ExpectUsageError(Cli({"--server", at, "--timeout", "nan", "get", "j-1"}), "--timeout");
  const std::vector<std::string> base = {"--server", at, "submit", "--model", "m", "--out", "o"};
  auto submit = [&base](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return Cli(args);
  };
  ExpectUsageError(submit({"--bits", "four"}), "--bits: 'four' is not a 32-bit integer");
  ExpectUsageError(submit({"--iters", "99999999999"}), "--iters");
  ExpectUsageError(submit({"--seed", "-1"}), "--seed: '-1'");
  ExpectUsageError(submit({"--lr", "inf"}), "--lr: 'inf' is not a finite number");
  ExpectUsageError(submit({"--sym", "--asym"}), "--asym");
  ExpectUsageError(submit({"--recipe", "fast"}), "--recipe: 'fast'");
  ExpectUsageError(submit({"--label", "novalue"}), "--label: 'novalue'");
  ExpectUsageError(submit({"--label", "a=1", "--label", "a=2"}), "key 'a' given twice");
  ExpectUsageError(submit({"--format", " "}), "--format: empty");
  ExpectUsageError(Cli({"--server", at, "list", "--state", "sleeping"}), "--state: 'sleeping'");
  ExpectUsageError(Cli({"--server", at, "watch", "j-1", "--from", "-3"}), "--from");

  ProcessResult help = Cli({"--help"});
  EXPECT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("Exit codes:"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("11  watch"), std::string::npos) << help.out;
}

TEST(CliUsage, UnreachableServerExitsThreeQuickly) {
  ProcessResult r = Cli({"--server", "127.0.0.1:1", "--timeout", "2", "get", "j-x"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_LT(r.seconds, 10.0);
  EXPECT_EQ(r.err.rfind("signround: GetJob failed: UNAVAILABLE: ", 0), 0u) << r.err;
  EXPECT_EQ(r.out, "");
  // The same through the environment; and watch gives up after --timeout too.
  ProcessOptions env;
  env.env = {"SIGNROUND_SERVER=127.0.0.1:1"};
  ProcessResult via_env =
      testing::RunProcess(SIGNROUND_CLI_BIN, {"--timeout", "2", "get", "j"}, env);
  EXPECT_EQ(via_env.exit_code, 3) << via_env.err;
  ProcessResult watch = Cli({"--server", "127.0.0.1:1", "--timeout", "1", "watch", "j-x"});
  EXPECT_EQ(watch.exit_code, 3) << watch.err;
  EXPECT_LT(watch.seconds, 10.0);
  EXPECT_EQ(watch.err.rfind("signround: WatchJob failed: UNAVAILABLE: ", 0), 0u) << watch.err;
}

TEST_F(CliTest, ServerFromEnvironment) {
  service_.jobs["j-7"] = RunningJob("j-7");
  ProcessOptions env;
  env.env = {"SIGNROUND_SERVER=" + server_->address()};
  ProcessResult r = testing::RunProcess(SIGNROUND_CLI_BIN, {"get", "j-7"}, env);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(service_.gets(), std::vector<std::string>{"j-7"});
}

TEST_F(CliTest, BadLayerConfigExitsTwoNamingFileAndKey) {
  signround::testing::TempDir dir;
  const std::string bad_bits = dir.File("bad_bits.json");
  signround::testing::WriteFile(bad_bits, R"({"mlp": {"bits": 5}})");
  const std::string bad_key = dir.File("bad_key.json");
  signround::testing::WriteFile(bad_key, R"({"attn": {"bitz": 4}})");
  const std::string not_json = dir.File("not_json.json");
  signround::testing::WriteFile(not_json, "{\"mlp\": ");
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {bad_bits, {"'mlp'", "bits", "got 5"}},
      {bad_key, {"'attn'", "bitz"}},
      {not_json, {}},
      {dir.File("missing.json"), {}}};
  for (const auto& [path, fragments] : cases) {
    ProcessResult r =
        CliAt(*server_, {"submit", "--model", "m", "--out", "o", "--layer-config", path});
    ExpectUsageError(r, "--layer-config: " + path);
    for (const std::string& f : fragments) EXPECT_NE(r.err.find(f), std::string::npos) << r.err;
  }
  EXPECT_TRUE(service_.submits().empty()) << "nothing is sent when the spec is bad";
}

TEST_F(CliTest, SubmitMapsEveryFlag) {
  signround::testing::TempDir dir;
  const std::string layers = dir.File("layers.json");
  // File order, not key order: later overrides win.
  signround::testing::WriteFile(layers, R"({"z\\.down_proj": {"bits": 16},
      "a\\.up_proj": {"group_size": -1, "sym": false}, "m": {"bits": 2, "group_size": 64,
      "sym": true}})");
  ProcessResult r = CliAt(*server_, {"submit",
                                     "--model",
                                     "file:///models/m",
                                     "--calib",
                                     "s3://b/calib.jsonl",
                                     "--out",
                                     "s3://b/out",
                                     "--format",
                                     "auto_round,gguf:q4_0",
                                     "--format",
                                     "fake",
                                     "--bits",
                                     "3",
                                     "--group-size",
                                     "-1",
                                     "--sym",
                                     "--iters",
                                     "0",
                                     "--lr",
                                     "0.005",
                                     "--minmax-lr",
                                     "0.01",
                                     "--nsamples",
                                     "256",
                                     "--seqlen",
                                     "512",
                                     "--batch-size",
                                     "4",
                                     "--seed",
                                     "18446744073709551615",
                                     "--recipe",
                                     "best",
                                     "--no-scale-search",
                                     "--loss-filter",
                                     "--target-bits",
                                     "2.75",
                                     "--teq-iters",
                                     "60",
                                     "--scheme-candidates",
                                     "W2G32,W4G32",
                                     "--scheme-candidates",
                                     "W16",
                                     "--layer-config",
                                     layers,
                                     "--device",
                                     "cuda:1",
                                     "--priority",
                                     "-5",
                                     "--label",
                                     "team=nlp",
                                     "--label",
                                     "run=a=b",
                                     "--idempotency-key",
                                     "key-1",
                                     "--allow-split-fused",
                                     "--allow-gguf-without-vocab",
                                     "--packed-dtype",
                                     "bfloat16"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "j-42\n");
  const std::vector<v1::SubmitJobRequest> submits = service_.submits();
  ASSERT_EQ(submits.size(), 1u);
  const v1::JobSpec& s = submits[0].spec();
  EXPECT_EQ(s.model_uri(), "file:///models/m");
  EXPECT_EQ(s.calibration_uri(), "s3://b/calib.jsonl");
  EXPECT_EQ(s.output_uri(), "s3://b/out");
  EXPECT_EQ(std::vector<std::string>(s.formats().begin(), s.formats().end()),
            (std::vector<std::string>{"auto_round", "gguf:q4_0", "fake"}));
  EXPECT_EQ(s.bits(), 3);
  EXPECT_EQ(s.group_size(), -1);
  ASSERT_TRUE(s.has_sym());
  EXPECT_TRUE(s.sym().value());
  ASSERT_TRUE(s.has_iters()) << "--iters 0 is given, so the wrapper is set";
  EXPECT_EQ(s.iters().value(), 0);
  EXPECT_EQ(s.lr(), 0.005f);
  EXPECT_EQ(s.minmax_lr(), 0.01f);
  EXPECT_EQ(s.nsamples(), 256);
  EXPECT_EQ(s.seqlen(), 512);
  EXPECT_EQ(s.batch_size(), 4);
  ASSERT_TRUE(s.has_seed());
  EXPECT_EQ(s.seed().value(), 18446744073709551615ull);
  EXPECT_EQ(s.recipe(), v1::RECIPE_BEST);
  ASSERT_TRUE(s.has_scale_search());
  EXPECT_FALSE(s.scale_search().value());
  ASSERT_TRUE(s.has_loss_filter());
  EXPECT_TRUE(s.loss_filter().value());
  EXPECT_EQ(s.target_bits(), 2.75);
  EXPECT_EQ(s.teq_iters(), 60);
  EXPECT_EQ(std::vector<std::string>(s.scheme_candidates().begin(), s.scheme_candidates().end()),
            (std::vector<std::string>{"W2G32", "W4G32", "W16"}));
  ASSERT_EQ(s.layer_overrides_size(), 3);
  const v1::LayerOverride& o0 = s.layer_overrides(0);
  EXPECT_EQ(o0.pattern(), "z\\.down_proj");
  EXPECT_EQ(o0.bits(), 16);
  EXPECT_EQ(o0.group_size(), 0);
  EXPECT_FALSE(o0.has_sym());
  const v1::LayerOverride& o1 = s.layer_overrides(1);
  EXPECT_EQ(o1.pattern(), "a\\.up_proj");
  EXPECT_EQ(o1.bits(), 0);
  EXPECT_EQ(o1.group_size(), -1);
  ASSERT_TRUE(o1.has_sym());
  EXPECT_FALSE(o1.sym().value());
  const v1::LayerOverride& o2 = s.layer_overrides(2);
  EXPECT_EQ(o2.pattern(), "m");
  EXPECT_EQ(o2.bits(), 2);
  EXPECT_EQ(o2.group_size(), 64);
  ASSERT_TRUE(o2.has_sym());
  EXPECT_TRUE(o2.sym().value());
  EXPECT_EQ(s.device(), "cuda:1");
  EXPECT_EQ(s.priority(), -5);
  EXPECT_EQ((std::map<std::string, std::string>(s.labels().begin(), s.labels().end())),
            (std::map<std::string, std::string>{{"team", "nlp"}, {"run", "a=b"}}));
  EXPECT_EQ(s.idempotency_key(), "key-1");
  EXPECT_TRUE(s.allow_split_fused());
  EXPECT_TRUE(s.allow_gguf_without_vocab());
  EXPECT_EQ(s.packed_dtype(), "bfloat16");
}

TEST_F(CliTest, SubmitLeavesFlagsNotGivenUnset) {
  ProcessResult r = CliAt(*server_, {"submit", "--model", "m", "--out", "o", "--asym"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(service_.submits().size(), 1u);
  v1::JobSpec want;
  want.set_model_uri("m");
  want.set_output_uri("o");
  want.mutable_sym()->set_value(false);  // --asym sets the wrapper to false
  EXPECT_EQ(service_.submits()[0].spec().SerializeAsString(), want.SerializeAsString())
      << service_.submits()[0].spec().DebugString();
}

TEST_F(CliTest, JsonOutputParsesAndRoundTripsTheJobId) {
  ProcessResult r = CliAt(*server_, {"--json", "submit", "--model", "m", "--out", "o"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Lines(r.out).size(), 1u) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["job"]["id"], "j-42");
  EXPECT_EQ(j["created"], true);
  // Proto field names, and primitives printed even at their defaults.
  EXPECT_EQ(j["job"]["blocks_done"], 0);
  EXPECT_EQ(j["job"]["state"], "JOB_STATE_UNSPECIFIED");

  service_.jobs["j-42"] = RunningJob("j-42");
  ProcessResult get = CliAt(*server_, {"get", "j-42", "--json"});  // --json after the command
  ASSERT_EQ(get.exit_code, 0) << get.err;
  nlohmann::json g = nlohmann::json::parse(get.out);
  EXPECT_EQ(g["id"], j["job"]["id"]);
  EXPECT_EQ(g["state"], "JOB_STATE_RUNNING");
  EXPECT_EQ(g["spec"]["model_uri"], "file:///models/m");
  EXPECT_EQ(g["artifacts"][0]["sha256"], "00ff");
  EXPECT_EQ(g["artifacts"][0]["bytes"], "2048");  // int64 is a string in proto3 JSON
}

TEST_F(CliTest, GetPrintsKeyValueBlock) {
  service_.jobs["j-7"] = RunningJob("j-7");
  service_.jobs["j-7"].set_error("attempt 1: out of memory");
  ProcessResult r = CliAt(*server_, {"get", "j-7"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* want :
       {"id:          j-7\n", "state:       RUNNING\n", "model:       file:///models/m\n",
        "out:         s3://b/out\n", "attempts:    2\n", "device:      cuda:0\n",
        "blocks:      7/32\n", "latest loss: 0.0123\n", "error:       attempt 1: out of memory\n",
        "created:     2023-11-14T22:13:20Z\n",
        "  report s3://b/out/report.json 2048 bytes sha256 00ff\n"}) {
    EXPECT_NE(r.out.find(want), std::string::npos) << "want '" << want << "' in\n" << r.out;
  }
}

TEST_F(CliTest, ServerErrorsMapToExitCodes) {
  ProcessResult missing = CliAt(*server_, {"get", "j-missing"});
  EXPECT_EQ(missing.exit_code, 4);
  EXPECT_EQ(missing.err, "signround: GetJob failed: NOT_FOUND: job j-missing not found\n");
  EXPECT_EQ(missing.out, "");

  service_.submit_status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                        "spec.group_size: 48 is not -1 or a power of two >= 32");
  ProcessResult invalid =
      CliAt(*server_, {"submit", "--model", "m", "--out", "o", "--group-size", "48"});
  EXPECT_EQ(invalid.exit_code, 2);
  EXPECT_EQ(invalid.err,
            "signround: SubmitJob failed: INVALID_ARGUMENT: spec.group_size: 48 is not -1 or a "
            "power of two >= 32\n");

  service_.jobs["j-done"] = RunningJob("j-done");
  service_.cancel_status =
      grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "job j-done has ended (SUCCEEDED)");
  ProcessResult ended = CliAt(*server_, {"cancel", "j-done"});
  EXPECT_EQ(ended.exit_code, 5) << ended.err;
  EXPECT_EQ(service_.cancels(), std::vector<std::string>{"j-done"});

  service_.cancel_status = grpc::Status(grpc::StatusCode::INTERNAL, "disk full\nsecond line");
  ProcessResult other = CliAt(*server_, {"cancel", "j-done"});
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_EQ(other.err, "signround: CancelJob failed: INTERNAL: disk full second line\n");

  service_.cancel_status = grpc::Status::OK;
  service_.jobs["j-done"].set_state(v1::JOB_STATE_CANCELLED);
  ProcessResult cancelled = CliAt(*server_, {"cancel", "j-done"});
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.err;
  EXPECT_EQ(cancelled.out, "j-done CANCELLED\n");
}

TEST_F(CliTest, ListFiltersPagesAndPrints) {
  for (int page = 0; page < 3; ++page) {
    v1::ListJobsResponse p;
    *p.add_jobs() = RunningJob("j-" + std::to_string(page * 2));
    *p.add_jobs() = RunningJob("j-" + std::to_string(page * 2 + 1));
    if (page < 2) p.set_next_page_token("t" + std::to_string(page + 1));
    service_.pages.push_back(p);
  }
  ProcessResult first = CliAt(*server_, {"list", "--state", "running", "--label", "team=nlp",
                                         "--label", "x=y", "--page-size", "2"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  std::vector<std::string> rows = Lines(first.out);
  ASSERT_EQ(rows.size(), 3u) << first.out;
  EXPECT_EQ(rows[0].rfind("ID   STATE    BLOCKS  LOSS    CREATED              MODEL", 0), 0u)
      << rows[0];
  EXPECT_EQ(rows[1], "j-0  RUNNING  7/32    0.0123  2023-11-14 22:13:20  file:///models/m");
  EXPECT_NE(first.err.find("--page-token t1"), std::string::npos) << first.err;
  const std::vector<v1::ListJobsRequest> lists = service_.lists();
  ASSERT_EQ(lists.size(), 1u);
  const v1::ListJobsRequest& req = lists[0];
  EXPECT_EQ(req.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(req.page_size(), 2);
  EXPECT_EQ(req.page_token(), "");
  EXPECT_EQ((std::map<std::string, std::string>(req.labels().begin(), req.labels().end())),
            (std::map<std::string, std::string>{{"team", "nlp"}, {"x", "y"}}));

  ProcessResult all = CliAt(*server_, {"--json", "list", "--all"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  std::vector<std::string> ids;
  for (const std::string& line : Lines(all.out)) ids.push_back(nlohmann::json::parse(line)["id"]);
  EXPECT_EQ(ids, (std::vector<std::string>{"j-0", "j-1", "j-2", "j-3", "j-4", "j-5"}));
  ASSERT_EQ(service_.lists().size(), 4u);
  EXPECT_EQ(service_.lists()[2].page_token(), "t1");
  EXPECT_EQ(service_.lists()[3].page_token(), "t2");
}

struct FinalStateCase {
  v1::JobState state;
  int exit_code;
};

void PrintTo(const FinalStateCase& c, std::ostream* os) {
  *os << v1::JobState_Name(c.state) << " exits " << c.exit_code;
}

class CliWatchTest : public CliTest, public ::testing::WithParamInterface<FinalStateCase> {};

TEST_P(CliWatchTest, PrintsEventsInOrderAndExitsPerFinalState) {
  service_.events = JobEvents(GetParam().state);
  ProcessResult r = CliAt(*server_, {"watch", "j-1"});
  EXPECT_EQ(r.exit_code, GetParam().exit_code) << r.err;
  EXPECT_EQ(PrintedSequences(r.out), Range(1, static_cast<int64_t>(service_.events.size())))
      << r.out;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), service_.events.size()) << r.out;
  EXPECT_EQ(lines[0], "seq 1 state QUEUED");
  EXPECT_EQ(lines[1], "seq 2 state QUEUED -> RUNNING");
  EXPECT_EQ(lines[2], "seq 3 block 1/2 layers 7 loss 0.52 -> 0.31 (best iter 40) 1.2s");
  EXPECT_EQ(lines.back(),
            "seq " + std::to_string(lines.size()) + " state " +
                (GetParam().state == v1::JOB_STATE_SUCCEEDED ? "UPLOADING" : "RUNNING") + " -> " +
                v1::JobState_Name(GetParam().state).substr(10));
  if (GetParam().state == v1::JOB_STATE_SUCCEEDED) {
    EXPECT_EQ(lines[5],
              "seq 6 artifact auto_round s3://b/x/auto_round/model.safetensors 1234 "
              "bytes sha256 ab12cd");
  }
  if (GetParam().state == v1::JOB_STATE_FAILED) {
    EXPECT_EQ(lines[4], "seq 5 error attempt 3: worker exited with signal 9");
  }
  ASSERT_EQ(service_.watches().size(), 1u);
  EXPECT_EQ(service_.watches()[0].job_id(), "j-1");
  EXPECT_EQ(service_.watches()[0].from_sequence(), 1);
}

INSTANTIATE_TEST_SUITE_P(FinalStates, CliWatchTest,
                         ::testing::Values(FinalStateCase{v1::JOB_STATE_SUCCEEDED, 0},
                                           FinalStateCase{v1::JOB_STATE_FAILED, 10},
                                           FinalStateCase{v1::JOB_STATE_CANCELLED, 11}),
                         [](const ::testing::TestParamInfo<FinalStateCase>& info) {
                           return v1::JobState_Name(info.param.state).substr(10);
                         });

TEST_F(CliTest, WatchResumesAfterUnavailableWithoutDuplicates) {
  service_.events = JobEvents(v1::JOB_STATE_SUCCEEDED);
  service_.drop_after = 3;      // the first stream breaks after sequences 1..3
  service_.replay_overlap = 2;  // and the second one resends 2 and 3 before 4
  ProcessResult r = CliAt(*server_, {"watch", "j-1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(PrintedSequences(r.out), Range(1, 7)) << r.out;
  ASSERT_EQ(service_.watches().size(), 2u);
  EXPECT_EQ(service_.watches()[1].from_sequence(), 4);
  EXPECT_NE(r.err.find("resuming from sequence 4"), std::string::npos) << r.err;
}

TEST_F(CliTest, WatchSurvivesAServerRestartOnTheSamePort) {
  service_.events = JobEvents(v1::JOB_STATE_CANCELLED);
  service_.hang_after = 2;  // the first stream stays open after sequences 1..2
  const int port = server_->port();
  std::thread restart([&] {
    while (service_.watches().empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    server_->Stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(700));  // down for a while
    server_ = std::make_unique<FakeServer>(&service_, port);
  });
  ProcessResult r = Cli({"--server", "127.0.0.1:" + std::to_string(port), "watch", "j-1",
                         "--reconnect-timeout", "20"});
  restart.join();
  ASSERT_TRUE(server_->ok());
  EXPECT_EQ(r.exit_code, 11) << r.err;
  EXPECT_EQ(PrintedSequences(r.out), Range(1, 5)) << r.out;
  ASSERT_GE(service_.watches().size(), 2u);
  EXPECT_EQ(service_.watches().back().from_sequence(), 3);
}

TEST_F(CliTest, WatchGivesUpAfterReconnectTimeout) {
  service_.always_unavailable = true;
  ProcessResult r = CliAt(*server_, {"watch", "j-1", "--reconnect-timeout", "1"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_LT(r.seconds, 10.0);
  EXPECT_GE(service_.watches().size(), 2u) << "retries at 0.2 s, 0.6 s within 1 s";
  EXPECT_NE(r.err.find("signround: WatchJob failed: UNAVAILABLE: fake: down (gave up"),
            std::string::npos)
      << r.err;
}

TEST_F(CliTest, WatchFromAfterTheEndAsksGetJobForTheState) {
  service_.events = JobEvents(v1::JOB_STATE_FAILED);
  service_.jobs["j-1"] = RunningJob("j-1");
  service_.jobs["j-1"].set_state(v1::JOB_STATE_FAILED);
  ProcessResult tail = CliAt(*server_, {"watch", "j-1", "--from", "6"});
  EXPECT_EQ(tail.exit_code, 10) << tail.err;
  EXPECT_EQ(PrintedSequences(tail.out), Range(6, 6));
  ProcessResult past = CliAt(*server_, {"watch", "j-1", "--from", "99"});
  EXPECT_EQ(past.exit_code, 10) << past.err;
  EXPECT_EQ(past.out, "");
  EXPECT_EQ(service_.watches().back().from_sequence(), 99);
  EXPECT_EQ(service_.gets(), std::vector<std::string>{"j-1"});
  ProcessResult missing = CliAt(*server_, {"watch", "j-nope", "--from", "99"});
  EXPECT_EQ(missing.exit_code, 4) << missing.err;
}

TEST_F(CliTest, SubmitWatchJsonPrintsResponseThenEvents) {
  service_.events = JobEvents(v1::JOB_STATE_SUCCEEDED);
  ProcessResult r = CliAt(*server_, {"--json", "submit", "--model", "m", "--out", "o", "--watch"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 8u) << r.out;
  EXPECT_EQ(nlohmann::json::parse(lines[0])["job"]["id"], "j-42");
  for (size_t i = 1; i < lines.size(); ++i) {
    nlohmann::json e = nlohmann::json::parse(lines[i]);
    EXPECT_EQ(e["sequence"], std::to_string(i));  // int64 is a string in proto3 JSON
  }
  EXPECT_EQ(nlohmann::json::parse(lines[3])["block_progress"]["best_iteration"], 40);
  ASSERT_EQ(service_.watches().size(), 1u);
  EXPECT_EQ(service_.watches()[0].job_id(), "j-42");
}

TEST_F(CliTest, WatchOnATerminalDrawsAProgressBar) {
  service_.events = JobEvents(v1::JOB_STATE_SUCCEEDED);
  ProcessOptions tty;
  tty.stdout_tty = true;
  ProcessResult r = CliAt(*server_, {"watch", "j-1"}, tty);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Block 1 of 2 fills half the 20-character bar; redraws start with '\r'.
  EXPECT_NE(r.out.find("\r\033[K[##########..........] block 1/2  loss 0.31 (best iter 40)  "
                       "RUNNING"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("[####################] block 2/2  loss 0.31 (best iter 40)  SUCCEEDED"),
            std::string::npos)
      << r.out;
  // State changes and artifacts are whole lines above the bar (the pty turns \n into \r\n).
  EXPECT_NE(r.out.find("\r\033[Kseq 5 state RUNNING -> UPLOADING\r\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("seq 6 artifact auto_round"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.substr(r.out.size() - 2), "\r\n") << "the bar ends its line";
}

// --- TLS and bearer tokens ---

// Records the `authorization` metadata of every call the server receives.
class AuthRecorder {
 public:
  struct Call {
    std::string method;               // "/signround.v1.QuantizationService/GetJob"
    std::vector<std::string> values;  // its authorization values
  };
  void Add(Call call) {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(std::move(call));
  }
  std::vector<Call> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<Call> calls_;
};

class RecordingInterceptor : public grpc::experimental::Interceptor {
 public:
  RecordingInterceptor(grpc::experimental::ServerRpcInfo* info, AuthRecorder* recorder)
      : method_(info->method()), recorder_(recorder) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      AuthRecorder::Call call{method_, {}};
      auto range = methods->GetRecvInitialMetadata()->equal_range("authorization");
      for (auto it = range.first; it != range.second; ++it) {
        call.values.emplace_back(it->second.data(), it->second.size());
      }
      recorder_->Add(std::move(call));
    }
    methods->Proceed();
  }

 private:
  std::string method_;
  AuthRecorder* recorder_;
};

class RecordingFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RecordingFactory(AuthRecorder* recorder) : recorder_(recorder) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RecordingInterceptor(info, recorder_);
  }

 private:
  AuthRecorder* recorder_;
};

// The fake service on 127.0.0.1 behind `credentials` (plaintext or TLS), with
// every call's authorization metadata recorded.
class RecordingServer {
 public:
  RecordingServer(FakeService* service, AuthRecorder* recorder,
                  std::shared_ptr<grpc::ServerCredentials> credentials) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", std::move(credentials), &port_);
    builder.RegisterService(service);
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(std::make_unique<RecordingFactory>(recorder));
    builder.experimental().SetInterceptorCreators(std::move(creators));
    server_ = builder.BuildAndStart();
  }
  ~RecordingServer() {
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    server_->Wait();
  }
  bool ok() const { return server_ != nullptr && port_ > 0; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// Server credentials from the test PKI; `require_client_cert`: mutual TLS
// (client certificates required and verified against ca.pem).
std::shared_ptr<grpc::ServerCredentials> TlsServerCredentials(
    const signround::testing::TestPki& pki, bool require_client_cert) {
  grpc::SslServerCredentialsOptions options(
      require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                          : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_root_certs =
      require_client_cert ? signround::testing::ReadFileOrEmpty(pki.ca_cert) : std::string();
  options.pem_key_cert_pairs.push_back({signround::testing::ReadFileOrEmpty(pki.server_key),
                                        signround::testing::ReadFileOrEmpty(pki.server_cert)});
  return grpc::SslServerCredentials(options);
}

void ExpectNotIn(const ProcessResult& r, const std::string& secret) {
  EXPECT_EQ(r.err.find(secret), std::string::npos) << "the token leaked into stderr: " << r.err;
  EXPECT_EQ(r.out.find(secret), std::string::npos) << "the token leaked into stdout: " << r.out;
}

TEST(CliSecurityUsage, TlsFlagErrorsAreUsageErrors) {
  signround::testing::TempDir dir;
  const std::string at = "127.0.0.1:1";  // never contacted: exit 2, not 3
  const std::string pem = dir.File("cert.pem");
  signround::testing::WriteFile(pem,
                                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  ExpectUsageError(Cli({"--server", at, "--tls-cert", pem, "get", "j-1"}), "--tls-key");
  ExpectUsageError(Cli({"--server", at, "--tls-key", pem, "get", "j-1"}), "--tls-cert");
  ProcessOptions env;
  env.env = {"SIGNROUND_TLS_CERT=" + pem};
  ExpectUsageError(Cli({"--server", at, "get", "j-1"}, env), "$SIGNROUND_TLS_CERT needs");

  const std::string missing = dir.File("no-such-ca.pem");
  ProcessResult no_ca = Cli({"--server", at, "--tls-ca", missing, "get", "j-1"});
  ExpectUsageError(no_ca, "--tls-ca: " + missing);
  ExpectUsageError(Cli({"--server", at, "--tls-ca", dir.path(), "get", "j-1"}),
                   "--tls-ca: " + dir.path() + ": not a regular file");
  const std::string not_pem = dir.File("not.pem");
  signround::testing::WriteFile(not_pem, "hello\n");
  ExpectUsageError(Cli({"--server", at, "--tls-ca", not_pem, "get", "j-1"}),
                   "--tls-ca: " + not_pem + ": no PEM certificate");
  ExpectUsageError(Cli({"--server", at, "--tls-cert", pem, "--tls-key", pem, "get", "j-1"}),
                   "--tls-key: " + pem + ": no PEM private key");
  ExpectUsageError(Cli({"--server", at, "--tls-cert", pem, "--tls-key", missing, "get", "j-1"}),
                   "--tls-key: " + missing);
  env.env = {"SIGNROUND_TLS_CA=" + missing};
  ExpectUsageError(Cli({"--server", at, "get", "j-1"}, env), "$SIGNROUND_TLS_CA: " + missing);
  ExpectUsageError(Cli({"--server", at, "--tls-server-name", "x", "get", "j-1"}),
                   "--tls-server-name needs TLS");
  ExpectUsageError(Cli({"--server", at, "--tls", "--tls-server-name", "", "get", "j-1"}),
                   "--tls-server-name");
  // No --token flag: command lines are visible to everyone.
  ExpectUsageError(Cli({"--server", at, "--token", "abc", "get", "j-1"}), "--token");

  ProcessResult help = Cli({"--help"});
  for (const char* want :
       {"--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name", "--token-file",
        "SIGNROUND_TOKEN", "\n  6   UNAUTHENTICATED", "\n  7   RESOURCE_EXHAUSTED"}) {
    EXPECT_NE(help.out.find(want), std::string::npos) << want << " in\n" << help.out;
  }
}

TEST(CliSecurityUsage, BadTokensAreRefusedWithoutEchoingThem) {
  signround::testing::TempDir dir;
  const std::string at = "127.0.0.1:1";
  const std::string missing = dir.File("no-such-token");
  ExpectUsageError(Cli({"--server", at, "--token-file", missing, "get", "j-1"}),
                   "--token-file: " + missing);
  const std::string empty = dir.File("empty-token");
  signround::testing::WriteFile(empty, " \n\t\n");
  ExpectUsageError(Cli({"--server", at, "--token-file", empty, "get", "j-1"}),
                   "--token-file: " + empty + ": empty");
  ExpectUsageError(Cli({"--server", at, "--token-file", dir.path(), "get", "j-1"}),
                   "--token-file: " + dir.path());

  const std::vector<std::string> bad = {"s3cr3t token-with-space",    "s3cr3t\"quote",
                                        "s3cr3t=in-the-middle",       "s3cr3t\xc3\xa9-utf8",
                                        "=s3cr3t-only-padding-first", "s3cr3t\nsecond-line",
                                        std::string(4097, 'k')};
  for (const std::string& token : bad) {
    SCOPED_TRACE(token.substr(0, 40));
    const std::string file = dir.File("bad-token");
    signround::testing::WriteFile(file, token + "\n");
    ProcessResult from_file = Cli({"--server", at, "--token-file", file, "get", "j-1"});
    ExpectUsageError(from_file, "--token-file: " + file);
    ExpectNotIn(from_file, token);
    ExpectNotIn(from_file, "s3cr3t");
    ProcessOptions env;
    env.env = {"SIGNROUND_TOKEN=" + token};
    ProcessResult from_env = Cli({"--server", at, "get", "j-1"}, env);
    ExpectUsageError(from_env, "$SIGNROUND_TOKEN");
    ExpectNotIn(from_env, "s3cr3t");
    ExpectNotIn(from_env, token);
  }
}

TEST_F(CliTest, TokenIsSentOnEveryRpc) {
  AuthRecorder recorder;
  RecordingServer server(&service_, &recorder, grpc::InsecureServerCredentials());
  ASSERT_TRUE(server.ok());
  signround::testing::TempDir dir;
  const std::string token = "tok-123_ab.c~+/AZaz09==";
  const std::string token_file = dir.File("token");
  signround::testing::WriteFile(token_file, "  " + token + "\n\n");  // whitespace trimmed
  service_.jobs["j-1"] = RunningJob("j-1");
  service_.jobs["j-1"].set_state(v1::JOB_STATE_SUCCEEDED);
  service_.events = JobEvents(v1::JOB_STATE_SUCCEEDED);
  service_.pages.resize(1);
  const std::vector<std::vector<std::string>> commands = {
      {"submit", "--model", "m", "--out", "o", "--watch"},  // SubmitJob, WatchJob
      {"get", "j-1"},
      {"list"},
      {"cancel", "j-1"},
      {"watch", "j-1", "--from", "99"}};  // WatchJob, then GetJob for the state
  const std::string bearer = "Bearer " + token;
  for (bool from_env : {false, true}) {
    recorder.Clear();
    for (std::vector<std::string> args : commands) {
      ProcessOptions options;
      if (from_env) {
        options.env = {"SIGNROUND_TOKEN=" + token};
      } else {
        args.insert(args.begin(), {"--token-file", token_file});
      }
      args.insert(args.begin(), {"--server", server.address()});
      ProcessResult r = Cli(args, options);
      EXPECT_EQ(r.exit_code, 0) << args[2] << ": " << r.err;
      ExpectNotIn(r, token);
    }
    std::vector<std::string> methods;
    for (const AuthRecorder::Call& call : recorder.calls()) {
      methods.push_back(call.method.substr(call.method.rfind('/') + 1));
      EXPECT_EQ(call.values, std::vector<std::string>{bearer}) << call.method;
    }
    EXPECT_EQ(methods, (std::vector<std::string>{"SubmitJob", "WatchJob", "GetJob", "ListJobs",
                                                 "CancelJob", "WatchJob", "GetJob"}));
  }
  // --token-file wins over $SIGNROUND_TOKEN; without either, no authorization at all.
  recorder.Clear();
  ProcessOptions other;
  other.env = {"SIGNROUND_TOKEN=other-token"};
  EXPECT_EQ(Cli({"--server", server.address(), "--token-file", token_file, "get", "j-1"}, other)
                .exit_code,
            0);
  EXPECT_EQ(Cli({"--server", server.address(), "get", "j-1"}).exit_code, 0);
  const std::vector<AuthRecorder::Call> calls = recorder.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].values, std::vector<std::string>{bearer});
  EXPECT_TRUE(calls[1].values.empty());
}

TEST_F(CliTest, AuthAndLimitErrorsMapToExitCodes) {
  service_.submit_status =
      grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or unknown bearer token");
  ProcessResult unauthenticated = CliAt(*server_, {"submit", "--model", "m", "--out", "o"});
  EXPECT_EQ(unauthenticated.exit_code, 6);
  EXPECT_EQ(unauthenticated.err,
            "signround: SubmitJob failed: UNAUTHENTICATED: missing or unknown bearer token\n");
  EXPECT_EQ(unauthenticated.out, "");

  service_.jobs["j-1"] = RunningJob("j-1");
  service_.cancel_status =
      grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "role submitter may not cancel");
  ProcessResult denied = CliAt(*server_, {"cancel", "j-1"});
  EXPECT_EQ(denied.exit_code, 6);
  EXPECT_EQ(denied.err,
            "signround: CancelJob failed: PERMISSION_DENIED: role submitter may not cancel\n");

  service_.submit_status =
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "tenant team-a has 8 active jobs");
  ProcessResult limited = CliAt(*server_, {"submit", "--model", "m", "--out", "o"});
  EXPECT_EQ(limited.exit_code, 7);
  EXPECT_EQ(limited.err,
            "signround: SubmitJob failed: RESOURCE_EXHAUSTED: tenant team-a has 8 active jobs\n");
}

class CliTlsTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    absl::StatusOr<signround::testing::TestPki> pki = signround::testing::MakeTestPki(dir_.path());
    if (absl::IsNotFound(pki.status())) GTEST_SKIP() << pki.status();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
    service_.jobs["j-1"] = RunningJob("j-1");
  }
  // `get j-1` at `server` with `flags` before the command.
  ProcessResult Get(const RecordingServer& server, std::vector<std::string> flags,
                    ProcessOptions options = {}) {
    std::vector<std::string> args = {"--server", server.address(), "--timeout", "5"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {"get", "j-1"});
    return Cli(args, options);
  }
  void ExpectTlsFailure(const ProcessResult& r, const std::string& hint) {
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind("signround: GetJob failed: UNAVAILABLE: ", 0), 0u) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line only: " << r.err;
    EXPECT_NE(r.err.find(hint), std::string::npos) << r.err;
  }
  signround::testing::TempDir dir_;
  signround::testing::TestPki pki_;
  AuthRecorder recorder_;
};

TEST_F(CliTlsTest, ServerTls) {
  RecordingServer server(&service_, &recorder_, TlsServerCredentials(pki_, false));
  ASSERT_TRUE(server.ok());
  // The server's certificate names IP:127.0.0.1 and DNS:localhost.
  ProcessResult ok = Get(server, {"--tls-ca", pki_.ca_cert});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("id:          j-1"), std::string::npos) << ok.out;
  ProcessResult named = Get(server, {"--tls-ca", pki_.ca_cert, "--tls-server-name", "localhost"});
  EXPECT_EQ(named.exit_code, 0) << named.err;
  ProcessOptions env;
  env.env = {"SIGNROUND_TLS_CA=" + pki_.ca_cert};
  ProcessResult via_env = Get(server, {}, env);
  EXPECT_EQ(via_env.exit_code, 0) << via_env.err;

  const std::string hint = "(TLS: check --tls-ca";
  ExpectTlsFailure(Get(server, {"--tls-ca", pki_.rogue_ca_cert}), hint);
  ExpectTlsFailure(Get(server, {"--tls-ca", pki_.ca_cert, "--tls-server-name", "elsewhere"}), hint);
  ExpectTlsFailure(Get(server, {"--tls"}), hint);  // a private CA is not among the system's
  ExpectTlsFailure(Get(server, {}), "(if the server uses TLS: --tls or --tls-ca)");
  // Nothing listening is not a TLS matter: no hint then. (watch with TLS on
  // cannot tell: it only learns that the channel never connected.)
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--tls-ca", pki_.ca_cert, "get", "j-1"},
        std::vector<std::string>{"watch", "j-1"}, std::vector<std::string>{"get", "j-1"}}) {
    std::vector<std::string> at = {"--server", "127.0.0.1:1", "--timeout", "1"};
    at.insert(at.end(), args.begin(), args.end());
    ProcessResult refused = Cli(at);
    EXPECT_EQ(refused.exit_code, 3) << refused.err;
    EXPECT_EQ(refused.err.find("TLS"), std::string::npos) << refused.err;
  }

  // A stream over TLS, with a token.
  service_.events = JobEvents(v1::JOB_STATE_SUCCEEDED);
  ProcessOptions token;
  token.env = {"SIGNROUND_TOKEN=tls-token"};
  recorder_.Clear();
  ProcessResult watch =
      Cli({"--server", server.address(), "--tls-ca", pki_.ca_cert, "watch", "j-1"}, token);
  EXPECT_EQ(watch.exit_code, 0) << watch.err;
  EXPECT_EQ(PrintedSequences(watch.out), Range(1, 7)) << watch.out;
  ASSERT_EQ(recorder_.calls().size(), 1u);
  EXPECT_EQ(recorder_.calls()[0].values, std::vector<std::string>{"Bearer tls-token"});
}

TEST_F(CliTlsTest, MutualTls) {
  RecordingServer server(&service_, &recorder_, TlsServerCredentials(pki_, true));
  ASSERT_TRUE(server.ok());
  ProcessResult ok = Get(server, {"--tls-ca", pki_.ca_cert, "--tls-cert", pki_.client_cert,
                                  "--tls-key", pki_.client_key});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  ProcessOptions env;
  env.env = {"SIGNROUND_TLS_CA=" + pki_.ca_cert, "SIGNROUND_TLS_CERT=" + pki_.client_cert,
             "SIGNROUND_TLS_KEY=" + pki_.client_key};
  ProcessResult via_env = Get(server, {}, env);
  EXPECT_EQ(via_env.exit_code, 0) << via_env.err;

  const std::string hint = "(TLS: check --tls-ca";
  ExpectTlsFailure(Get(server, {"--tls-ca", pki_.ca_cert}), hint);  // no client certificate
  ExpectTlsFailure(Get(server, {"--tls-ca", pki_.ca_cert, "--tls-cert", pki_.rogue_client_cert,
                                "--tls-key", pki_.rogue_client_key}),
                   hint);
  // watch waits for the connection first: the same hint after --timeout.
  ProcessResult watch = Cli(
      {"--server", server.address(), "--timeout", "2", "--tls-ca", pki_.ca_cert, "watch", "j-1"});
  EXPECT_EQ(watch.exit_code, 3) << watch.err;
  EXPECT_NE(watch.err.find(hint), std::string::npos) << watch.err;
  EXPECT_TRUE(service_.gets().size() == 2u) << "only the two good clients got through";
}

}  // namespace
}  // namespace signround::cli
