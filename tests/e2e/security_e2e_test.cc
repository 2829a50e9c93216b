// Issue 8's acceptance, end to end on the real binaries: a server with TLS,
// client certificates (mTLS), bearer tokens of three tenants and
// --allowed-local-roots, driven by the real CLI. Each hostile call is answered
// with its code and has no effect (no job, no file); an admin sees all. A
// second server (role api: jobs stay queued) checks the limits, with a raw
// gRPC client for what the CLI cannot send.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "signround/v1/quantization_service.grpc.pb.h"
#include "src/storage/sigv4.h"
#include "tests/e2e/service_e2e_fixture.h"
#include "tests/testing/tls_pki.h"

namespace signround::e2e {
namespace {

namespace fs = std::filesystem;
using testing::CliAuth;
using testing::CliResult;
using testing::RunCli;

constexpr char kAlice[] = "alice-0123456789abcdef";  // team-a, submitter
constexpr char kBob[] = "bob-0123456789abcdef";      // team-b, submitter, bucket-b only
constexpr char kOps[] = "ops-0123456789abcdef";      // ops, admin
constexpr char kCarol[] = "carol-0123456789abcdef";  // team-c: added by SIGHUP

struct TokenEntry {
  std::string token, tenant, role;
};

void WriteTokens(const std::string& path, const std::vector<TokenEntry>& entries) {
  std::vector<std::string> rows;
  for (const TokenEntry& e : entries) {
    rows.push_back(absl::StrCat(R"({"sha256": ")", Sha256Hex(e.token), R"(", "tenant": ")",
                                e.tenant, R"(", "role": ")", e.role, R"("})"));
  }
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << R"({"tokens": [)" << absl::StrJoin(rows, ", ")
                     << R"(], "tenants": {"team-b": {"s3_buckets": ["bucket-b"]}}})";
  fs::rename(tmp, path);  // as an operator's config management would: whole or not at all
}

class SecurityE2ETest : public ServiceE2ETest {
 protected:
  void SetUp() override {
    ServiceE2ETest::SetUp();
    absl::StatusOr<testing::TestPki> pki = testing::MakeTestPki(dir_.File("pki"));
    if (pki.status().code() == absl::StatusCode::kNotFound) GTEST_SKIP() << pki.status();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    tokens_ = dir_.File("tokens.json");
    WriteTokens(
        tokens_,
        {{kAlice, "team-a", "submitter"}, {kBob, "team-b", "submitter"}, {kOps, "ops", "admin"}});
  }

  // The CLI with the CA, a client certificate and `token` ("" for none).
  CliAuth As(const std::string& token, bool client_cert = true) const {
    CliAuth auth;
    auth.global_args = {"--tls-ca", pki_.ca_cert};
    if (client_cert) {
      auth.global_args.insert(auth.global_args.end(),
                              {"--tls-cert", pki_.client_cert, "--tls-key", pki_.client_key});
    }
    if (!token.empty()) auth.env["SIGNROUND_TOKEN"] = token;
    return auth;
  }

  CliResult Cli(const std::string& token, const std::vector<std::string>& args) {
    return RunCli(server_->grpc_address(), As(token), args, 120);
  }

  // Submits as `token`; the new job's id, or "" (and the result in *out).
  std::string SubmitAs(const std::string& token, const JobFlags& flags, CliResult* out = nullptr) {
    std::vector<std::string> args = {"--json", "submit"};
    for (const std::string& a : flags.Args()) args.push_back(a);
    CliResult r = Cli(token, args);
    if (out != nullptr) *out = r;
    if (r.exit_code != 0) return "";
    absl::StatusOr<v1::Job> job = ParseJobJson(r.out);
    return job.ok() ? job->id() : "";
  }

  // Every job the admin can list.
  std::vector<v1::Job> AllJobs() {
    CliResult r = Cli(kOps, {"--json", "list", "--all"});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    std::vector<v1::Job> jobs;
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
      absl::StatusOr<v1::Job> job = ParseJobJson(std::string(line));
      EXPECT_TRUE(job.ok()) << job.status() << "\n" << line;
      if (job.ok()) jobs.push_back(*job);
    }
    return jobs;
  }

  static void ExpectFailure(const CliResult& r, const std::string& code, int exit_code) {
    EXPECT_EQ(r.exit_code, exit_code) << Describe(r);
    EXPECT_NE(r.err.find(code), std::string::npos) << Describe(r);
  }

  testing::TestPki pki_;
  std::string tokens_;
  std::unique_ptr<testing::ServerProcess> server_;
};

TEST_F(SecurityE2ETest, TlsTokensTenantsAndLocalRoots) {
  // Inputs and outputs may live under two roots; "outside" holds a model too.
  const std::string inputs = fs::canonical(inputs_->path()).string();
  const std::string allowed = fs::canonical(dir_.path()).string() + "/allowed";
  const std::string outside = fs::canonical(dir_.path()).string() + "/outside";
  fs::create_directories(allowed);
  fs::create_directories(outside);
  fs::copy(small_model_, outside + "/model", fs::copy_options::recursive);
  fs::create_directory_symlink(outside, allowed + "/link");

  server_ = StartServer("data", {"--tls-cert=" + pki_.server_cert, "--tls-key=" + pki_.server_key,
                                 "--tls-client-ca=" + pki_.ca_cert, "--tokens-file=" + tokens_,
                                 "--allowed-local-roots=" + inputs + "," + allowed});
  ASSERT_TRUE(server_);
  EXPECT_TRUE(server_->tls());

  // No token, a wrong token: UNAUTHENTICATED, and the token is not echoed.
  ExpectFailure(Cli("", {"list"}), "UNAUTHENTICATED", 6);
  CliResult wrong = Cli("not-a-known-token-424242", {"list"});
  ExpectFailure(wrong, "UNAUTHENTICATED", 6);
  EXPECT_EQ(wrong.err.find("424242"), std::string::npos) << wrong.err;
  JobFlags flags = SmallJob(allowed + "/out-a");
  CliResult r;
  EXPECT_EQ(SubmitAs("", flags, &r), "");
  ExpectFailure(r, "UNAUTHENTICATED", 6);
  EXPECT_TRUE(AllJobs().empty()) << "nothing was stored";

  // Without a client certificate, or with one from another CA, or in clear:
  // the handshake fails before any RPC.
  for (const CliAuth& auth : {As(kAlice, /*client_cert=*/false),
                              CliAuth{{"--tls-ca", pki_.ca_cert, "--tls-cert",
                                       pki_.rogue_client_cert, "--tls-key", pki_.rogue_client_key},
                                      {{"SIGNROUND_TOKEN", kAlice}}},
                              CliAuth{{}, {{"SIGNROUND_TOKEN", kAlice}}}}) {
    CliResult refused = RunCli(server_->grpc_address(), auth, {"--timeout", "5", "list"}, 60);
    EXPECT_EQ(refused.exit_code, 3) << absl::StrJoin(auth.global_args, " ") << Describe(refused);
  }

  // Team A's job; team B cannot see, watch or cancel it.
  const std::string job = SubmitAs(kAlice, flags, &r);
  ASSERT_FALSE(job.empty()) << Describe(r);
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"get", job}, {"cancel", job}, {"watch", job}}) {
    CliResult other = Cli(kBob, args);
    ExpectFailure(other, "NOT_FOUND", 4);
    EXPECT_NE(other.err.find("job '" + job + "' not found"), std::string::npos)
        << "the same answer as an unknown id: " << Describe(other);
  }
  CliResult bob_list = Cli(kBob, {"--json", "list"});
  EXPECT_EQ(bob_list.exit_code, 0) << Describe(bob_list);
  EXPECT_EQ(bob_list.out.find(job), std::string::npos) << bob_list.out;

  // Team B's bucket allow-list.
  JobFlags s3 = SmallJob("unused");
  s3.model = "s3://bucket-b/models/small";
  s3.calib = "s3://bucket-b/calib.jsonl";
  s3.out = "s3://other-bucket/out";
  EXPECT_EQ(SubmitAs(kBob, s3, &r), "");
  ExpectFailure(r, "PERMISSION_DENIED", 6);
  EXPECT_NE(r.err.find("spec.output_uri: bucket 'other-bucket'"), std::string::npos) << r.err;

  // file:// outside the roots: through '..', through a symlink, for an
  // input and for the output. Nothing is stored and nothing is written.
  struct Escape {
    std::string what;
    JobFlags flags;
  };
  std::vector<Escape> escapes;
  JobFlags dotdot = SmallJob(allowed + "/out-x");
  dotdot.model = "file://" + allowed + "/../outside/model";
  escapes.push_back({"model via ..", dotdot});
  JobFlags linked = SmallJob(allowed + "/out-y");
  linked.model = "file://" + allowed + "/link/model";
  escapes.push_back({"model via a symlink", linked});
  escapes.push_back({"output via a symlink", SmallJob(allowed + "/link/stolen-out")});
  escapes.push_back({"output via ..", SmallJob(allowed + "/../outside/out2")});
  for (const Escape& e : escapes) {
    CliResult denied;
    EXPECT_EQ(SubmitAs(kAlice, e.flags, &denied), "") << e.what;
    ExpectFailure(denied, "PERMISSION_DENIED", 6);
    EXPECT_NE(denied.err.find("outside the allowed local roots"), std::string::npos) << e.what;
    EXPECT_EQ(denied.err.find(outside + "/"), std::string::npos)
        << "where the link leads is not told: " << denied.err;
  }
  EXPECT_FALSE(fs::exists(outside + "/stolen-out"));
  EXPECT_FALSE(fs::exists(outside + "/out2"));
  EXPECT_FALSE(fs::exists(allowed + "/out-x"));

  // Alice follows her job to the end; the admin sees it with its tenant.
  CliResult watched = Cli(kAlice, {"watch", job});
  EXPECT_EQ(watched.exit_code, 0) << Describe(watched);
  EXPECT_TRUE(fs::exists(allowed + "/out-a/report.json"));
  std::vector<v1::Job> all = AllJobs();
  ASSERT_EQ(all.size(), 1u) << "no hostile call stored a job";
  EXPECT_EQ(all[0].id(), job);
  EXPECT_EQ(all[0].tenant(), "team-a");
  EXPECT_EQ(all[0].state(), v1::JOB_STATE_SUCCEEDED);
  CliResult admin_get = Cli(kOps, {"--json", "get", job});
  EXPECT_EQ(admin_get.exit_code, 0) << Describe(admin_get);

  // SIGHUP re-reads the tokens file: Carol is let in, Bob is let go.
  EXPECT_EQ(Cli(kCarol, {"list"}).exit_code, 6);
  WriteTokens(
      tokens_,
      {{kAlice, "team-a", "submitter"}, {kCarol, "team-c", "submitter"}, {kOps, "ops", "admin"}});
  ASSERT_EQ(::kill(server_->pid(), SIGHUP), 0);
  int carol = -1;
  for (int i = 0; i < 100 && carol != 0; ++i) {
    carol = Cli(kCarol, {"list"}).exit_code;
    if (carol != 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(carol, 0) << server_->LogTail();
  ExpectFailure(Cli(kBob, {"list"}), "UNAUTHENTICATED", 6);
  EXPECT_EQ(Cli(kCarol, {"get", job}).exit_code, 4);

  // A broken file on SIGHUP keeps the tokens in force.
  std::ofstream(tokens_, std::ios::trunc) << "{\"tokens\": [";
  ASSERT_EQ(::kill(server_->pid(), SIGHUP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Cli(kCarol, {"list"}).exit_code, 0) << server_->LogTail();
  EXPECT_TRUE(server_->Stop().ok()) << server_->LogTail();
}

// The TLS files are watched: a client CA bundle that gains a CA while the
// server runs lets that CA's clients in within --tls-reload-seconds, with no
// restart (certificate and key rotate the same way).
TEST_F(SecurityE2ETest, RotatedTlsFilesAreServedWithoutRestart) {
  const std::string client_ca = dir_.File("client-ca.pem");
  fs::copy_file(pki_.ca_cert, client_ca);
  server_ = StartServer("data", {"--tls-cert=" + pki_.server_cert, "--tls-key=" + pki_.server_key,
                                 "--tls-client-ca=" + client_ca, "--tls-reload-seconds=1",
                                 "--tokens-file=" + tokens_});
  ASSERT_TRUE(server_);
  const CliAuth rogue{{"--tls-ca", pki_.ca_cert, "--tls-cert", pki_.rogue_client_cert,
                       "--tls-key", pki_.rogue_client_key},
                      {{"SIGNROUND_TOKEN", kAlice}}};
  CliResult before = RunCli(server_->grpc_address(), rogue, {"--timeout", "5", "list"}, 60);
  EXPECT_EQ(before.exit_code, 3) << Describe(before);

  std::ifstream ca(pki_.ca_cert), rogue_ca(pki_.rogue_ca_cert);
  std::stringstream bundle;
  bundle << ca.rdbuf() << rogue_ca.rdbuf();
  {
    std::ofstream(client_ca + ".tmp") << bundle.str();
  }
  fs::rename(client_ca + ".tmp", client_ca);
  int code = -1;
  for (int i = 0; i < 50 && code != 0; ++i) {
    code = RunCli(server_->grpc_address(), rogue, {"--timeout", "5", "list"}, 60).exit_code;
    if (code != 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(code, 0) << server_->LogTail();
  EXPECT_EQ(Cli(kAlice, {"list"}).exit_code, 0) << "the first CA's clients still get in";
  EXPECT_TRUE(server_->Stop().ok()) << server_->LogTail();
}

// The roots are checked again when a worker starts an attempt: a symlink that
// pointed inside at submission and outside by then fails the job, reading
// nothing. An API process stores the job; a worker on the same store runs it.
TEST_F(SecurityE2ETest, SymlinkSwappedAfterSubmissionFailsTheAttempt) {
  const std::string base = fs::canonical(dir_.path()).string();
  const std::string allowed = base + "/allowed", outside = base + "/outside";
  fs::create_directories(allowed);
  fs::create_directories(outside);
  fs::copy(small_model_, allowed + "/model", fs::copy_options::recursive);
  fs::copy(small_model_, outside + "/model", fs::copy_options::recursive);
  fs::copy(calib_, allowed + "/calib.jsonl");
  fs::create_directory_symlink(allowed + "/model", allowed + "/current");
  const std::vector<std::string> common = {"--store=sqlite:" + dir_.File("jobs.db"),
                                           "--tokens-file=" + tokens_,
                                           "--allowed-local-roots=" + allowed};
  std::vector<std::string> api_args = common;
  api_args.push_back("--role=api");
  server_ = StartServer("api", api_args);
  ASSERT_TRUE(server_);
  JobFlags flags = SmallJob(allowed + "/out");
  flags.model = "file://" + allowed + "/current";
  flags.calib = "file://" + allowed + "/calib.jsonl";
  CliResult r = RunCli(server_->grpc_address(), CliAuth{{}, {{"SIGNROUND_TOKEN", kAlice}}}, [&] {
    std::vector<std::string> args = {"--json", "submit"};
    for (const std::string& a : flags.Args()) args.push_back(a);
    return args;
  }());
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  absl::StatusOr<v1::Job> job = ParseJobJson(r.out);
  ASSERT_TRUE(job.ok()) << job.status();

  fs::remove(allowed + "/current");  // the link now leads outside
  fs::create_directory_symlink(outside + "/model", allowed + "/current");
  std::vector<std::string> worker_args = common;
  worker_args.push_back("--role=all");
  std::unique_ptr<testing::ServerProcess> worker = StartServer("worker", worker_args);
  ASSERT_TRUE(worker);
  absl::StatusOr<v1::Job> ended = Api(server_->grpc_address(), kAlice).WaitEnded(job->id(), 120);
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_FAILED) << ended->DebugString();
  EXPECT_EQ(ended->attempts(), 1) << "a permanent failure: not retried";
  EXPECT_NE(ended->error().find("spec.model_uri: "), std::string::npos) << ended->error();
  EXPECT_NE(ended->error().find("outside the allowed local roots"), std::string::npos)
      << ended->error();
  EXPECT_FALSE(fs::exists(allowed + "/out"));
  EXPECT_TRUE(worker->Stop().ok()) << worker->LogTail();
  EXPECT_TRUE(server_->Stop().ok()) << server_->LogTail();
}

// --- limits, with a raw gRPC client -----------------------------------------

class RawClient {
 public:
  explicit RawClient(const std::string& address)
      : stub_(v1::QuantizationService::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}

  void Prepare(grpc::ClientContext* ctx, const std::string& token) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  }

  grpc::Status Submit(const std::string& token, const v1::JobSpec& spec,
                      std::string* id = nullptr) {
    grpc::ClientContext ctx;
    Prepare(&ctx, token);
    v1::SubmitJobRequest req;
    *req.mutable_spec() = spec;
    v1::SubmitJobResponse resp;
    grpc::Status s = stub_->SubmitJob(&ctx, req, &resp);
    if (id != nullptr) *id = resp.job().id();
    return s;
  }

  v1::QuantizationService::Stub& stub() { return *stub_; }

 private:
  std::unique_ptr<v1::QuantizationService::Stub> stub_;
};

TEST_F(SecurityE2ETest, LimitsAnswerResourceExhausted) {
  const std::string out = fs::canonical(dir_.path()).string() + "/out";
  server_ = StartServer("api", {"--role=api", "--store=sqlite:" + dir_.File("jobs.db"),
                                "--tokens-file=" + tokens_, "--max-queued-jobs-per-tenant=2",
                                "--max-watches-per-tenant=1", "--max-request-bytes=4096"});
  ASSERT_TRUE(server_);
  EXPECT_FALSE(server_->tls());
  RawClient client(server_->grpc_address());
  v1::JobSpec spec;
  spec.set_model_uri("file://" + small_model_);
  spec.set_output_uri("file://" + out);
  spec.set_recipe(v1::RECIPE_RTN);

  // Two queued jobs per tenant (role api runs none, so they stay queued).
  std::string first;
  ASSERT_TRUE(client.Submit(kAlice, spec, &first).ok());
  ASSERT_TRUE(client.Submit(kAlice, spec).ok());
  grpc::Status third = client.Submit(kAlice, spec);
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << third.error_message();
  EXPECT_NE(third.error_message().find("tenant 'team-a' has 2 queued jobs"), std::string::npos)
      << third.error_message();
  EXPECT_TRUE(client.Submit(kBob, spec).ok()) << "another tenant's queue is its own";

  // One open watch per tenant: a second is refused while the first streams.
  grpc::ClientContext first_ctx;
  client.Prepare(&first_ctx, kAlice);
  v1::WatchJobRequest watch;
  watch.set_job_id(first);
  auto stream = client.stub().WatchJob(&first_ctx, watch);
  v1::JobEvent event;
  ASSERT_TRUE(stream->Read(&event)) << "the first watch replays the QUEUED event";
  {
    grpc::ClientContext ctx;
    client.Prepare(&ctx, kAlice);
    auto second = client.stub().WatchJob(&ctx, watch);
    EXPECT_FALSE(second->Read(&event));
    grpc::Status s = second->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  }
  {
    grpc::ClientContext ctx;  // the admin is another tenant: it may watch
    client.Prepare(&ctx, kOps);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    auto admin = client.stub().WatchJob(&ctx, watch);
    EXPECT_TRUE(admin->Read(&event));
  }
  first_ctx.TryCancel();
  stream->Finish().IgnoreError();
  bool reopened = false;  // the slot is released once the server sees the cancel
  for (int i = 0; i < 50 && !reopened; ++i) {
    grpc::ClientContext ctx;
    client.Prepare(&ctx, kAlice);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    reopened = client.stub().WatchJob(&ctx, watch)->Read(&event);
    if (!reopened) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(reopened);

  // A request larger than --max-request-bytes never reaches the service.
  v1::JobSpec big = spec;
  big.set_model_uri("file://" + std::string(8000, 'm'));
  grpc::Status too_big = client.Submit(kBob, big);
  EXPECT_EQ(too_big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << too_big.error_message();

  // Two authorization entries are refused, not resolved by picking one.
  grpc::ClientContext twice;
  client.Prepare(&twice, kAlice);
  twice.AddMetadata("authorization", std::string("Bearer ") + kOps);
  v1::GetJobRequest get;
  get.set_job_id(first);
  v1::Job got;
  EXPECT_EQ(client.stub().GetJob(&twice, get, &got).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(server_->Stop().ok()) << server_->LogTail();
}

}  // namespace
}  // namespace signround::e2e
