#include "worker/cp_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "src/export/sharded_safetensors.h"
#include "src/storage/credentials.h"
#include "src/storage/transfer.h"
#include "worker/command.h"

namespace signround::worker {
namespace {

bool IsS3(const std::string& uri) { return absl::StartsWithIgnoreCase(uri, "s3://"); }

// S3 settings from the flags, then the environment and the AWS files.
absl::StatusOr<S3Options> MakeS3Options(const CpOptions& o) {
  S3Options s3;
  const EnvLookup env = ProcessEnv();
  s3.endpoint = o.endpoint;
  for (const char* name : {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}) {
    if (s3.endpoint.empty()) s3.endpoint = env(name).value_or("");
  }
  if (!s3.endpoint.empty() && !absl::StartsWith(s3.endpoint, "http://") &&
      !absl::StartsWith(s3.endpoint, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("S3 endpoint '", s3.endpoint, "' must start with http:// or https://"));
  }
  if (o.region.empty()) {
    absl::StatusOr<std::string> region = ResolveAwsRegion(env);
    if (!region.ok()) return region.status();
    s3.region = *region;
  } else {
    s3.region = o.region;
  }
  if (o.addressing == "path") s3.path_style = true;
  if (o.addressing == "virtual") s3.path_style = false;
  absl::StatusOr<AwsCredentials> credentials = ResolveAwsCredentials(env);
  if (!credentials.ok()) return credentials.status();
  s3.credentials = *credentials;
  absl::StatusOr<uint64_t> part = ParseByteSize(o.part_size);
  absl::StatusOr<uint64_t> threshold = ParseByteSize(o.multipart_threshold);
  if (!part.ok())
    return absl::InvalidArgumentError(absl::StrCat("--part-size: ", part.status().message()));
  if (!threshold.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--multipart-threshold: ", threshold.status().message()));
  }
  if (*part < (5u << 20)) return absl::InvalidArgumentError("--part-size must be at least 5MiB");
  s3.part_size = *part;
  s3.multipart_threshold = *threshold;
  s3.parallel_parts = o.parallel;
  s3.retry.max_attempts = o.max_attempts;
  s3.log = [](const std::string& line) {
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  };
  return s3;
}

// A progress line on stderr, redrawn on a terminal (at most ~10 times a second).
class ProgressBar {
 public:
  void Update(uint64_t done, uint64_t total) {
    if (!tty_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(100) && done != total) return;
    last_ = now;
    std::fprintf(stderr, "\r%.1f / %.1f MiB (%.0f%%)   ", done / 1048576.0, total / 1048576.0,
                 total ? 100.0 * done / total : 100.0);
    std::fflush(stderr);
  }
  void Finish() {
    if (tty_) std::fprintf(stderr, "\n");
  }

 private:
  bool tty_ = ::isatty(STDERR_FILENO);
  std::chrono::steady_clock::time_point last_;
};

}  // namespace

CLI::App* AddCpCommand(CLI::App& app, CpOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "cp", "Copy a file or directory between local paths, file:// and s3:// locations");
  cmd->add_option("SRC", o.src, "Source: /path, file:///path or s3://bucket/key")->required();
  cmd->add_option("DST", o.dst, "Destination (a directory when it ends with '/')")->required();
  cmd->add_option("--s3-endpoint", o.endpoint,
                  "S3 endpoint URL (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS)");
  cmd->add_option("--region", o.region, "S3 region (default: AWS_REGION, the profile, us-east-1)");
  cmd->add_option("--addressing", o.addressing,
                  "auto (path-style with an endpoint, else virtual-hosted), path or virtual")
      ->check(CLI::IsMember({"auto", "path", "virtual"}))
      ->capture_default_str();
  cmd->add_option("--part-size", o.part_size, "Multipart part size")->capture_default_str();
  cmd->add_option("--multipart-threshold", o.multipart_threshold,
                  "Uploads above this size go multipart")
      ->capture_default_str();
  cmd->add_option("--parallel", o.parallel, "Parts uploaded at once")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--max-attempts", o.max_attempts, "Attempts per request (first included)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  cmd->add_flag("--json", o.json, "Print one JSON summary on stdout");
  return cmd;
}

int RunCp(const CpOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  S3Options s3;
  if (IsS3(o.src) || IsS3(o.dst)) {
    absl::StatusOr<S3Options> made = MakeS3Options(o);
    if (!made.ok()) return ReportError(made.status());
    s3 = *std::move(made);
  }
  std::atomic<int64_t> retries{0};
  auto log = s3.log;
  s3.log = [&](const std::string& line) {
    retries.fetch_add(1);
    if (log) log(line);
  };
  absl::StatusOr<Location> src = OpenLocation(o.src, s3);
  if (!src.ok()) return ReportError(src.status());
  absl::StatusOr<Location> dst = OpenLocation(o.dst, s3);
  if (!dst.ok()) return ReportError(dst.status());
  ProgressBar bar;
  absl::StatusOr<CopyStats> stats =
      Copy(*src, *dst, [&](uint64_t done, uint64_t total) { bar.Update(done, total); });
  bar.Finish();
  if (!stats.ok()) return ReportError(stats.status());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double mib = stats->bytes / 1048576.0;
  if (o.json) {
    nlohmann::json j = {{"files", stats->files},
                        {"bytes", stats->bytes},
                        {"seconds", seconds},
                        {"mib_per_s", seconds > 0 ? mib / seconds : 0},
                        {"retries", retries.load()}};
    std::printf("%s\n", j.dump().c_str());
  }
  std::fprintf(stderr, "copied %lld file%s, %.1f MiB in %.2f s (%.1f MiB/s), %lld retries\n",
               static_cast<long long>(stats->files), stats->files == 1 ? "" : "s", mib, seconds,
               seconds > 0 ? mib / seconds : 0.0, static_cast<long long>(retries.load()));
  return 0;
}

}  // namespace signround::worker
