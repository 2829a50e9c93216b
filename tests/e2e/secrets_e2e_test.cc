// Issue 8: secrets (tokens, S3 keys, signatures) never appear in logs, events, errors or
// metrics. Real S3 jobs (tests/testing/s3_server.h: Swift + s3api, which checks SigV4) run
// through the real signround-server, CLI and worker, once with good credentials and once
// with a wrong secret key (S3 answers SignatureDoesNotMatch with a body that quotes
// StringToSign, SignatureProvided, CanonicalRequest and AWSAccessKeyId). Everything the
// service produces is collected: the server's log (its stderr), its stdout and argv, the
// whole data dir afterwards (the SQLite job store with events and errors, the input cache,
// leftover job dirs), every worker's argv and environment and its stderr file (in the job's
// directory, read while the job runs: the server removes it when the job ends), the CLI's
// output of submit/get/watch/list in both renderings, /metrics, and report.json and the
// other JSON artifacts on S3. None may hold a secret.
//
// The secrets: the secret access key, a planted session token (AWS_SESSION_TOKEN: s3api
// ignores it, but it is signed and sent on every request and sits in every canonical
// request S3 quotes back), the wrong secret key, and every SigV4 signature actually sent
// (the server's S3 endpoint is a recording proxy in front of the S3 server, so signatures
// are read off the wire), and the CLI's bearer token (the server has --tokens-file) and a
// wrong one tried against it. Markers of leaked SigV4 material (S3 error-body fields,
// Authorization header parts) must not appear either. To add a secret, push it onto
// secrets_ in SetUp() or in a test; ExpectNoSecrets() checks every haystack for all of
// them and reports where (name, line, column) with the secret masked.
// SECRETS_E2E_VERBOSE=1 lists every output checked.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include <fstream>

#include "src/storage/s3_store.h"
#include "src/storage/sigv4.h"
#include "tests/e2e/service_e2e_fixture.h"
#include "tests/e2e/service_e2e_util.h"
#include "tests/testing/s3_server.h"
#include "tests/testing/server_process.h"
#include "tests/testing/spawn.h"
#include "tests/testing/test_files.h"
#include "tests/testing/worker_process.h"

namespace signround::e2e {
namespace {

namespace fs = std::filesystem;
using testing::CliResult;
using testing::ServerProcess;

constexpr char kBucket[] = "e2e";

// --- secrets and where they must not be ------------------------------------------------

// A value that must never appear in anything the service produces.
struct Secret {
  std::string label;  // what it is, for messages: "AWS_SECRET_ACCESS_KEY"
  std::string value;
  bool masked = true;        // false: a marker (an S3 error field name...), shown as is
  bool ignore_case = false;  // markers such as HTTP header names
};

// Something the service produced: a file (by path) or a command's output.
struct Haystack {
  std::string name;
  std::string text;
};

std::string Shown(const Secret& s) {
  if (!s.masked) return absl::StrCat("'", s.value, "' (", s.label, ")");
  return absl::StrCat(s.label, " (", s.value.size(), " bytes, masked)");
}

// Where `needle` occurs in `text` (byte offsets).
std::vector<size_t> Find(const std::string& text, const Secret& s) {
  std::vector<size_t> at;
  if (s.value.empty()) return at;
  if (!s.ignore_case) {
    for (size_t p = text.find(s.value); p != std::string::npos; p = text.find(s.value, p + 1)) {
      at.push_back(p);
    }
    return at;
  }
  const std::string lower_text = absl::AsciiStrToLower(text);
  const std::string lower = absl::AsciiStrToLower(s.value);
  for (size_t p = lower_text.find(lower); p != std::string::npos;
       p = lower_text.find(lower, p + 1)) {
    at.push_back(p);
  }
  return at;
}

// The line around byte `pos` with every masked secret replaced by <label> (before the line
// is cut to ~240 bytes around the hit, so no secret is shown in part either), control
// characters escaped: context for a failure that never shows a secret.
std::string MaskedContext(const std::string& text, size_t pos, const std::vector<Secret>& secrets) {
  size_t begin = text.rfind('\n', pos);
  begin = begin == std::string::npos ? 0 : begin + 1;
  size_t end = text.find('\n', pos);
  if (end == std::string::npos) end = text.size();
  std::string line = text.substr(begin, end - begin);
  size_t hit = pos - begin;  // follows the replacements
  for (const Secret& s : secrets) {
    if (!s.masked || s.value.empty()) continue;
    const std::string placeholder = absl::StrCat("<", s.label, ">");
    for (size_t p = line.find(s.value); p != std::string::npos;
         p = line.find(s.value, p + placeholder.size())) {
      line.replace(p, s.value.size(), placeholder);
      if (hit >= p + s.value.size()) {
        hit = hit - s.value.size() + placeholder.size();
      } else if (hit >= p) {
        hit = p;
      }
    }
  }
  const size_t from = hit > 120 ? hit - 120 : 0;
  line = line.substr(from, 240);
  std::string out = from > 0 ? "..." : "";
  for (unsigned char c : line) {
    if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

// Fails (without showing any masked secret) for every occurrence of a secret in `text`,
// naming `name`, the line and the column.
void ExpectNoSecrets(const std::string& name, const std::string& text,
                     const std::vector<Secret>& secrets) {
  for (const Secret& s : secrets) {
    std::vector<size_t> at = Find(text, s);
    for (size_t i = 0; i < at.size() && i < 3; ++i) {
      const size_t line = 1 + std::count(text.begin(), text.begin() + at[i], '\n');
      const size_t line_start = text.rfind('\n', at[i] == 0 ? 0 : at[i] - 1);
      const size_t column =
          line_start == std::string::npos || at[i] == 0 ? at[i] + 1 : at[i] - line_start;
      ADD_FAILURE() << Shown(s) << " found in " << name << " at line " << line << ", column "
                    << column << (at.size() > 3 ? absl::StrCat(" (", at.size(), " times)") : "")
                    << ":\n  " << MaskedContext(text, at[i], secrets);
    }
  }
}

// Every haystack (SECRETS_E2E_VERBOSE=1 lists them, with their sizes).
void ExpectNoSecrets(const std::vector<Haystack>& haystacks, const std::vector<Secret>& secrets) {
  const bool verbose = std::getenv("SECRETS_E2E_VERBOSE") != nullptr;
  for (const Haystack& h : haystacks) {
    if (verbose) std::cout << "[ checked ] " << h.name << " (" << h.text.size() << " bytes)\n";
    ExpectNoSecrets(h.name, h.text, secrets);
  }
  if (verbose) std::cout << "[ checked ] for " << secrets.size() << " secrets and markers\n";
}

// Names of the haystacks that contain `value`.
std::vector<std::string> WhereFound(const std::vector<Haystack>& haystacks,
                                    const std::string& value) {
  std::vector<std::string> names;
  for (const Haystack& h : haystacks) {
    if (h.text.find(value) != std::string::npos) names.push_back(h.name);
  }
  return names;
}

// Strings that only leaked SigV4 material would bring: S3 error-body fields (Swift's and
// AWS's SignatureDoesNotMatch bodies) and parts of an Authorization header or presigned URL.
void AddMarkers(std::vector<Secret>& secrets) {
  for (const char* field : {"StringToSign", "SignatureProvided", "CanonicalRequest",
                            "AWSAccessKeyId", "StringToSignBytes"}) {
    secrets.push_back({"an S3 error body field", field, false, false});
  }
  for (const char* part : {"Signature=", "X-Amz-Signature", "Credential=", "AWS4-HMAC-SHA256",
                           "X-Amz-Credential", "SignedHeaders="}) {
    secrets.push_back({"SigV4 authentication material", part, false, true});
  }
  secrets.push_back({"the session token header", "x-amz-security-token", false, true});
}

std::string RandomHex(int bytes) {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < bytes; ++i) absl::StrAppend(&out, absl::Hex(rd() & 0xFF, absl::kZeroPad2));
  return out;
}

// Every value of `key` in `text`: the `length` characters after each "key" that are all
// in `charset`.
std::set<std::string> ValuesAfter(const std::string& text, const std::string& key, size_t length,
                                  const std::string& charset) {
  std::set<std::string> values;
  for (size_t p = text.find(key); p != std::string::npos; p = text.find(key, p + 1)) {
    const std::string v = text.substr(p + key.size(), length);
    if (v.size() == length && v.find_first_not_of(charset) == std::string::npos) values.insert(v);
  }
  return values;
}

// --- a recording TCP proxy ---------------------------------------------------------------

// Forwards loopback TCP connections byte for byte to an upstream port (so SigV4 signatures,
// which cover the Host header, stay valid) and keeps a copy of what went each way: the
// signatures the service sent, and the S3 error bodies it was answered with.
class RecordingProxy {
 public:
  explicit RecordingProxy(int upstream_port) : upstream_port_(upstream_port) {}
  ~RecordingProxy() { Stop(); }
  RecordingProxy(const RecordingProxy&) = delete;
  RecordingProxy& operator=(const RecordingProxy&) = delete;

  absl::Status Start() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return absl::InternalError(absl::StrCat("socket: errno ", errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return absl::InternalError(absl::StrCat("bind/listen: errno ", errno));
    }
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
    return absl::OkStatus();
  }

  void Stop() {
    if (listen_fd_ < 0) return;
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    accept_thread_.join();
    ::close(listen_fd_);
    listen_fd_ = -1;
    std::vector<std::thread> pumps;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pumps.swap(pumps_);
    }
    for (std::thread& t : pumps) t.join();
  }

  std::string endpoint() const { return absl::StrCat("http://127.0.0.1:", port_); }
  std::string sent() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }
  std::string received() const {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

 private:
  void AcceptLoop() {
    while (!stopping_) {
      const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      std::lock_guard<std::mutex> lock(mu_);
      pumps_.emplace_back([this, client] { Pump(client); });
    }
  }

  static bool SendAll(int fd, const char* data, size_t n) {
    while (n > 0) {
      const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      data += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  void Pump(int client) {
    const int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
    if (upstream < 0 ||
        ::connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      if (upstream >= 0) ::close(upstream);
      ::close(client);
      return;
    }
    const int fds[2] = {client, upstream};
    bool open[2] = {true, true};
    std::vector<char> buf(64 << 10);
    while ((open[0] || open[1]) && !stopping_) {
      pollfd p[2] = {{open[0] ? fds[0] : -1, POLLIN, 0}, {open[1] ? fds[1] : -1, POLLIN, 0}};
      const int n = ::poll(p, 2, 100);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      bool failed = false;
      for (int i = 0; i < 2 && !failed; ++i) {
        if (!open[i] || (p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const ssize_t r = ::read(fds[i], buf.data(), buf.size());
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
          open[i] = false;
          ::shutdown(fds[1 - i], SHUT_WR);
          continue;
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          (i == 0 ? sent_ : received_).append(buf.data(), static_cast<size_t>(r));
        }
        failed = !SendAll(fds[1 - i], buf.data(), static_cast<size_t>(r));
      }
      if (failed) break;
    }
    ::close(client);
    ::close(upstream);
  }

  const int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  mutable std::mutex mu_;
  std::vector<std::thread> pumps_;
  std::string sent_, received_;  // client -> upstream, upstream -> client
};

// --- worker processes --------------------------------------------------------------------

// Watches a server's signround-worker children while it runs and keeps each one's argv and
// environment (/proc/PID/cmdline and environ, NULs as newlines), and the worker.stderr files
// of the jobs' directories under `jobs_dir` (the server removes them when a job ends).
class WorkerWatcher {
 public:
  WorkerWatcher(const ServerProcess& server, std::string jobs_dir)
      : server_pid_(server.pid()), jobs_dir_(std::move(jobs_dir)), thread_([this] {
          while (!stop_) {
            CaptureWorkers();
            ReadStderrFiles();
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
        }) {}
  ~WorkerWatcher() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // The workers' argv, environments and stderr files (call after Stop()).
  std::vector<Haystack> captured() const {
    std::vector<Haystack> all = captured_;
    for (const auto& [path, text] : stderr_) {
      all.push_back({path + " (read while the job ran)", text});
    }
    return all;
  }
  int workers() const { return static_cast<int>(seen_.size()); }
  int stderr_files() const { return static_cast<int>(stderr_.size()); }

 private:
  // The server's children that are signround-worker by now (not only forked).
  void CaptureWorkers() {
    std::error_code ec;
    for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      const pid_t pid = std::stoi(name);
      if (seen_.count(pid) != 0) continue;
      std::optional<std::string> stat = testing::ReadWholeFile("/proc/" + name + "/stat");
      if (!stat) continue;
      // "PID (comm) S PPID ...": the fields after the last ')'.
      const size_t close = stat->rfind(')');
      int ppid = 0;
      if (close == std::string::npos ||
          std::sscanf(stat->c_str() + close + 1, " %*c %d", &ppid) != 1 || ppid != server_pid_) {
        continue;
      }
      std::optional<std::string> argv = testing::ReadWholeFile("/proc/" + name + "/cmdline");
      // Forked but not exec'd yet: the server's own argv (and environment) still.
      if (!argv || !absl::EndsWith(argv->substr(0, argv->find('\0')), "/signround-worker")) {
        continue;
      }
      std::optional<std::string> env = testing::ReadWholeFile("/proc/" + name + "/environ");
      if (!env) continue;
      std::replace(argv->begin(), argv->end(), '\0', '\n');
      std::replace(env->begin(), env->end(), '\0', '\n');
      seen_.insert(pid);
      captured_.push_back({absl::StrCat("worker ", pid, " argv (/proc/PID/cmdline)"), *argv});
      captured_.push_back({absl::StrCat("worker ", pid, " environment (/proc/PID/environ)"), *env});
    }
  }

  // Keeps the longest content seen of every jobs/*/worker.stderr (they only grow).
  void ReadStderrFiles() {
    std::error_code ec;
    for (fs::directory_iterator it(jobs_dir_, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string path = it->path().string() + "/worker.stderr";
      std::optional<std::string> text = testing::ReadWholeFile(path);  // gone with its job: nullopt
      if (!text) continue;
      std::string& kept = stderr_[path];
      if (text->size() >= kept.size()) kept = *std::move(text);
    }
  }

  const pid_t server_pid_;
  const std::string jobs_dir_;
  std::atomic<bool> stop_{false};
  std::set<pid_t> seen_;
  std::vector<Haystack> captured_;
  std::map<std::string, std::string> stderr_;  // path -> content
  std::thread thread_;                         // last: starts after the members it uses
};

// --- the fixture -------------------------------------------------------------------------

class SecretsE2ETest : public ServiceE2ETest {
 protected:
  static void SetUpTestSuite() {
    ServiceE2ETest::SetUpTestSuite();
    s3_ = new testing::S3TestServer();
    absl::Status started = s3_->Start();
    ASSERT_TRUE(started.ok()) << started;
    // The inputs, uploaded with the right credentials (and no token).
    S3Store store(kBucket, StoreOptions());
    ASSERT_TRUE(store.CreateBucket().ok());
    for (const auto& entry : fs::directory_iterator(small_model_)) {
      const std::string key = "models/small/" + entry.path().filename().string();
      ASSERT_TRUE(store.Put(entry.path().string(), key, nullptr).ok()) << key;
    }
    ASSERT_TRUE(store.Put(calib_, "calib/calib.jsonl", nullptr).ok());
  }
  static void TearDownTestSuite() {
    delete s3_;
    s3_ = nullptr;
    ServiceE2ETest::TearDownTestSuite();
  }
  void SetUp() override {
    ServiceE2ETest::SetUp();
    ASSERT_TRUE(s3_ != nullptr && s3_->running()) << "the S3 test server did not start";
    session_token_ = "PlantedSessionToken" + RandomHex(24);
    secrets_.push_back({"AWS_SECRET_ACCESS_KEY", s3_->endpoint().secret_key});
    secrets_.push_back({"AWS_SESSION_TOKEN", session_token_});
    // The server authenticates callers: the CLI's bearer token is a secret
    // too, and so is a wrong one someone tries (StartS3Server does).
    bearer_ = "BearerToken" + RandomHex(24);
    wrong_bearer_ = "WrongBearer" + RandomHex(24);
    secrets_.push_back({"the bearer token", bearer_});
    secrets_.push_back({"a wrong bearer token", wrong_bearer_});
    tokens_file_ = dir_.File("tokens.json");
    std::ofstream(tokens_file_) << R"({"tokens": [{"sha256": ")" << Sha256Hex(bearer_)
                                << R"(", "tenant": "ml", "role": "submitter"}]})";
    AddMarkers(secrets_);
  }

  static S3Options StoreOptions() {
    S3Options o;
    o.endpoint = s3_->endpoint().url;
    o.region = s3_->endpoint().region;
    o.credentials = {s3_->endpoint().access_key, s3_->endpoint().secret_key, ""};
    return o;
  }

  // A server whose S3 endpoint is `proxy`, with credentials from its environment.
  std::unique_ptr<ServerProcess> StartS3Server(const std::string& name, const RecordingProxy& proxy,
                                               const std::string& secret_key) {
    std::unique_ptr<ServerProcess> server =
        StartServer(name,
                    {"--s3-endpoint=" + proxy.endpoint(), "--s3-region=" + s3_->endpoint().region,
                     "--s3-addressing=path", "--tokens-file=" + tokens_file_},
                    {{"AWS_ACCESS_KEY_ID", s3_->endpoint().access_key},
                     {"AWS_SECRET_ACCESS_KEY", secret_key},
                     {"AWS_SESSION_TOKEN", session_token_}});
    if (server) {
      CliResult refused = testing::RunCli(
          server->grpc_address(), testing::CliAuth{{}, {{"SIGNROUND_TOKEN", wrong_bearer_}}},
          {"list"}, 60);
      EXPECT_EQ(refused.exit_code, 6) << Describe(refused);
      haystacks_.push_back({"signround list with a wrong token (stderr)", refused.err});
    }
    return server;
  }

  // Runs `signround ARGS` and keeps its stdout and stderr.
  CliResult Cli(const ServerProcess& server, const std::vector<std::string>& args,
                double timeout_seconds = 60) {
    CliResult r = testing::RunCli(server.grpc_address(),
                                  testing::CliAuth{{}, {{"SIGNROUND_TOKEN", bearer_}}}, args,
                                  timeout_seconds);
    const std::string cmd = absl::StrCat("signround ", absl::StrJoin(args, " "));
    haystacks_.push_back({cmd + " (stdout)", r.out});
    haystacks_.push_back({cmd + " (stderr)", r.err});
    return r;
  }

  // `submit` (no --watch) then waits for the job to end; its id.
  std::string SubmitAndWait(const ServerProcess& server, const JobFlags& flags) {
    std::vector<std::string> args = {"--json", "submit"};
    std::vector<std::string> more = flags.Args();
    args.insert(args.end(), more.begin(), more.end());
    CliResult r = Cli(server, args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    absl::StatusOr<v1::Job> job = ParseJobJson(r.out);
    EXPECT_TRUE(job.ok()) << job.status();
    if (!job.ok()) return "";
    absl::StatusOr<v1::Job> ended = Api(server.grpc_address(), bearer_).WaitEnded(job->id(), 120);
    EXPECT_TRUE(ended.ok()) << ended.status() << "\n" << server.LogTail();
    return job->id();
  }

  // The job as `get --json` shows it, after collecting get and watch in both renderings.
  v1::Job CollectJob(const ServerProcess& server, const std::string& id) {
    CliResult get = Cli(server, {"--json", "get", id});
    EXPECT_EQ(get.exit_code, 0) << Describe(get);
    Cli(server, {"get", id});
    CliResult watch = Cli(server, {"--json", "watch", id});
    // 0: the job SUCCEEDED; 10: it FAILED.
    EXPECT_TRUE(watch.exit_code == 0 || watch.exit_code == 10) << Describe(watch);
    absl::StatusOr<std::vector<v1::JobEvent>> events = ParseEventLines(watch.out);
    EXPECT_TRUE(events.ok()) << events.status();
    if (events.ok()) {
      EXPECT_GE(events->size(), 3u) << watch.out;  // QUEUED, RUNNING, end
    }
    Cli(server, {"watch", id});
    absl::StatusOr<v1::Job> job = ParseJobJson(get.out);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  // list, /metrics, then stops the server and keeps its log, its stdout and every file of
  // its data dir (the job store with events and errors, leftover job dirs and their
  // worker.stderr, the input cache).
  void CollectServer(std::unique_ptr<ServerProcess> server, const std::string& name) {
    Cli(*server, {"--json", "list", "--all"});
    Cli(*server, {"list", "--all"});
    absl::StatusOr<std::pair<int, std::string>> metrics =
        testing::HttpGet(server->metrics_address(), "/metrics");
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    EXPECT_EQ(metrics->first, 200);
    EXPECT_TRUE(absl::StrContains(metrics->second, "signround_")) << metrics->second;
    haystacks_.push_back({"GET /metrics", metrics->second});
    haystacks_.push_back({"signround-server argv", CmdLine(server->pid())});
    const std::string log_path = server->log_path();
    EXPECT_TRUE(server->Stop().ok()) << server->LogTail();
    server.reset();
    const std::string log = testing::ReadAll(log_path);
    EXPECT_FALSE(log.empty());
    haystacks_.push_back({log_path + " (server log)", log});
    const std::string out_path = DataDir(name) + ".server.stdout";
    haystacks_.push_back({out_path, testing::ReadAll(out_path)});
    int files = 0;
    for (const auto& entry : fs::recursive_directory_iterator(DataDir(name))) {
      if (!entry.is_regular_file() || entry.file_size() > (64u << 20)) continue;
      haystacks_.push_back({entry.path().string(), testing::ReadAll(entry.path().string())});
      ++files;
    }
    EXPECT_GT(files, 0) << "nothing in " << DataDir(name);
  }

  // Every signature the service sent through `proxy` becomes a secret; how many.
  size_t AddSignatures(const RecordingProxy& proxy) {
    const std::string sent = proxy.sent();
    std::set<std::string> signatures = ValuesAfter(sent, "Signature=", 64, "0123456789abcdef");
    int i = 0;
    for (const std::string& s : signatures) {
      secrets_.push_back({absl::StrCat("SigV4 signature #", ++i), s});
    }
    // The planted token really went out (and so into every canonical request).
    EXPECT_TRUE(absl::StrContains(sent, session_token_)) << "the session token was never sent";
    return signatures.size();
  }

  void ReportAccessKeyId() {
    const std::string& id = s3_->endpoint().access_key;
    std::vector<std::string> where = WhereFound(haystacks_, id);
    std::cout << "[ info ] the access key id '" << id << "' (not a secret) appears in "
              << where.size() << " of " << haystacks_.size() << " outputs"
              << (where.empty() ? "" : ": " + absl::StrJoin(where, "; ")) << "\n";
    RecordProperty("access_key_id_found_in", absl::StrJoin(where, "; "));
  }

  static testing::S3TestServer* s3_;
  std::string session_token_;
  std::vector<Secret> secrets_;
  std::string bearer_, wrong_bearer_, tokens_file_;
  std::vector<Haystack> haystacks_;
};

testing::S3TestServer* SecretsE2ETest::s3_ = nullptr;

// A successful job with model, calibration and output on S3, and two that fail with good
// credentials (a missing input bucket, a missing output bucket).
TEST_F(SecretsE2ETest, S3JobsWithCredentialsLeakNoSecret) {
  RecordingProxy proxy(s3_->endpoint().port);
  ASSERT_TRUE(proxy.Start().ok());
  std::unique_ptr<ServerProcess> server = StartS3Server("data", proxy, s3_->endpoint().secret_key);
  ASSERT_TRUE(server);

  JobFlags flags = SmallJob("unused");
  flags.model = "s3://e2e/models/small";
  flags.calib = "s3://e2e/calib/calib.jsonl";
  flags.out = "s3://e2e/out/ok";
  std::vector<std::string> args = {"submit"};
  std::vector<std::string> more = flags.Args();
  args.insert(args.end(), more.begin(), more.end());
  args.push_back("--watch");
  WorkerWatcher watcher(*server, DataDir("data") + "/jobs");
  CliResult submit = Cli(*server, args, 180);
  ASSERT_EQ(submit.exit_code, 0) << Describe(submit) << "\nserver log:\n" << server->LogTail();
  const std::string ok_id = submit.out.substr(0, submit.out.find('\n'));
  v1::Job ok = CollectJob(*server, ok_id);
  EXPECT_EQ(ok.state(), v1::JOB_STATE_SUCCEEDED) << ok.ShortDebugString();

  JobFlags no_bucket = flags;
  no_bucket.model = "s3://no-such-bucket-e2e/models/small";
  v1::Job missing_in = CollectJob(*server, SubmitAndWait(*server, no_bucket));
  EXPECT_EQ(missing_in.state(), v1::JOB_STATE_FAILED) << missing_in.ShortDebugString();
  EXPECT_TRUE(absl::StrContains(missing_in.error(), "NoSuchBucket")) << missing_in.error();

  JobFlags no_out_bucket = flags;
  no_out_bucket.out = "s3://no-such-bucket-e2e/out";
  v1::Job missing_out = CollectJob(*server, SubmitAndWait(*server, no_out_bucket));
  EXPECT_EQ(missing_out.state(), v1::JOB_STATE_FAILED) << missing_out.ShortDebugString();
  EXPECT_TRUE(absl::StrContains(missing_out.error(), "uploading to s3://no-such-bucket-e2e/out"))
      << missing_out.error();
  watcher.Stop();
  for (const Haystack& h : watcher.captured()) haystacks_.push_back(h);
  EXPECT_GE(watcher.workers(), 1) << "no signround-worker process was seen";
  EXPECT_GE(watcher.stderr_files(), 1) << "no worker.stderr was seen";
  for (const Haystack& h : watcher.captured()) {
    if (absl::StrContains(h.name, "environ")) {
      EXPECT_FALSE(absl::StrContains(h.text, "AWS_")) << h.name << " has AWS_* variables";
    }
  }

  CollectServer(std::move(server), "data");
  // The artifacts' JSON files (report.json, configs) as written to S3.
  S3Store store(kBucket, StoreOptions());
  absl::StatusOr<ObjectList> listed = store.List("out/ok/", "", 1000);
  ASSERT_TRUE(listed.ok()) << listed.status();
  int json_files = 0;
  for (const ObjectInfo& o : listed->objects) {
    if (!absl::EndsWith(o.key, ".json")) continue;
    const std::string local = dir_.File(absl::StrCat("fetched-", json_files++));
    ASSERT_TRUE(store.Get(o.key, local, nullptr).ok()) << o.key;
    haystacks_.push_back({absl::StrCat("s3://e2e/", o.key), testing::ReadAll(local)});
  }
  EXPECT_TRUE(absl::c_any_of(listed->objects,
                             [](const ObjectInfo& o) { return o.key == "out/ok/report.json"; }));
  proxy.Stop();
  EXPECT_GT(AddSignatures(proxy), 20u);

  ExpectNoSecrets(haystacks_, secrets_);
  ReportAccessKeyId();
}

// A server with a wrong secret key: S3 answers SignatureDoesNotMatch, with the string to
// sign, the signature provided and the canonical request (with the token) in the body. One
// job fetches its model from S3 (listing the prefix: an answer with a body); one quantizes a
// local model and fails at the checkpoint mirror and the upload (PUTs).
TEST_F(SecretsE2ETest, WrongSecretKeyLeaksNoSecret) {
  const std::string wrong_secret = "WrongSecretKey" + RandomHex(16);
  secrets_.push_back({"the wrong AWS_SECRET_ACCESS_KEY", wrong_secret});
  RecordingProxy proxy(s3_->endpoint().port);
  ASSERT_TRUE(proxy.Start().ok());
  std::unique_ptr<ServerProcess> server = StartS3Server("data", proxy, wrong_secret);
  ASSERT_TRUE(server);

  JobFlags from_s3 = SmallJob("unused");
  from_s3.model = "s3://e2e/models/small";
  from_s3.calib = "s3://e2e/calib/calib.jsonl";
  from_s3.out = "s3://e2e/out/denied-1";
  v1::Job fetch = CollectJob(*server, SubmitAndWait(*server, from_s3));
  EXPECT_EQ(fetch.state(), v1::JOB_STATE_FAILED) << fetch.ShortDebugString();
  EXPECT_EQ(fetch.attempts(), 1);
  EXPECT_TRUE(absl::StrContains(fetch.error(), "SignatureDoesNotMatch")) << fetch.error();

  JobFlags to_s3 = SmallJob("unused");
  to_s3.out = "s3://e2e/out/denied-2";
  WorkerWatcher watcher(*server, DataDir("data") + "/jobs");
  v1::Job upload = CollectJob(*server, SubmitAndWait(*server, to_s3));
  watcher.Stop();
  for (const Haystack& h : watcher.captured()) haystacks_.push_back(h);
  EXPECT_EQ(upload.state(), v1::JOB_STATE_FAILED) << upload.ShortDebugString();
  EXPECT_TRUE(absl::StrContains(upload.error(), "uploading to s3://e2e/out/denied-2/"))
      << upload.error();
  EXPECT_TRUE(absl::StrContains(upload.error(), "SignatureDoesNotMatch")) << upload.error();

  const std::string log_path = server->log_path();
  CollectServer(std::move(server), "data");
  // The S3 errors were logged (checkpoint mirror, failed attempts): the check means something.
  EXPECT_TRUE(absl::StrContains(testing::ReadAll(log_path), "SignatureDoesNotMatch"));
  proxy.Stop();
  EXPECT_GT(AddSignatures(proxy), 3u);
  // S3 did offer the material: its answers quote every signature it refused.
  const std::string answers = proxy.received();
  EXPECT_TRUE(absl::StrContains(answers, "<StringToSign>")) << answers.substr(0, 2000);
  EXPECT_TRUE(absl::StrContains(answers, "<CanonicalRequest>"));
  const std::set<std::string> provided =
      ValuesAfter(answers, "<SignatureProvided>", 64, "0123456789abcdef");
  EXPECT_FALSE(provided.empty());
  for (const std::string& s : provided) {
    EXPECT_TRUE(absl::c_any_of(secrets_, [&](const Secret& x) { return x.value == s; }))
        << "a SignatureProvided value that was not seen on the wire";
  }
  EXPECT_TRUE(absl::StrContains(answers, session_token_))
      << "the token is not in the canonical requests S3 quoted back";

  ExpectNoSecrets(haystacks_, secrets_);
  ReportAccessKeyId();
}

}  // namespace
}  // namespace signround::e2e
