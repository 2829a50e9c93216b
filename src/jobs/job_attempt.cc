// One attempt of a job on a device slot: fetch the inputs, run the worker,
// upload the artifacts, and record how it ended.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"
#include "src/attempts/checkpoint_mirror.h"
#include "src/attempts/worker_command.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/contract/export_formats.h"
#include "src/jobs/job_service.h"
#include "src/jobs/job_validation.h"
#include "src/storage/sigv4.h"
#include "src/storage/transfer.h"

namespace signround::jobs {
namespace {

// Errors that retrying cannot fix: the input itself is wrong.
bool IsPermanent(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kNotFound ||
         s.code() == absl::StatusCode::kPermissionDenied ||
         s.code() == absl::StatusCode::kFailedPrecondition;
}

// Files below `dir` as paths relative to it, sorted; hidden entries skipped.
absl::Status ListFiles(const std::string& dir, const std::string& rel,
                       std::vector<std::string>& out) {
  DIR* d = ::opendir(JoinPath(dir, rel).c_str());
  if (d == nullptr) return ErrnoStatus(errno, JoinPath(dir, rel));
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string child = rel.empty() ? name : JoinPath(rel, name);
    struct stat st;
    if (::lstat(JoinPath(dir, child).c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      SR_RETURN_IF_ERROR(ListFiles(dir, child, out));
    } else if (S_ISREG(st.st_mode)) {
      out.push_back(child);
    }
  }
  return absl::OkStatus();
}

// The export format a top-level output directory holds ("gguf-q4_0" -> "gguf:q4_0").
std::string FormatOfDir(absl::string_view dir) {
  std::optional<contract::ExportFormat> f = contract::FindExportFormatByDir(dir);
  return f ? f->name : std::string(dir);
}

}  // namespace

void JobService::RunAttempt(const Job& job, const std::string& device) {
  const std::string job_dir = JobDir(job.id);
  const std::string owner = job.lease.owner;
  const auto interrupted = [&] {
    return CancelRequested(job.id) || LeaseLost(job.id) || Stopping();
  };
  absl::Status status;
  bool permanent = false;
  bool some_formats_failed = false;
  absl::StatusOr<std::vector<std::string>> argv = PrepareWorker(job, device, job_dir);
  if (!argv.ok()) {
    status = argv.status();
    permanent = IsPermanent(status);
  } else if (!interrupted()) {
    status = RunWorker(job, *argv, device, job_dir, &permanent, &some_formats_failed);
    // What the worker wrote is uploaded even when some formats failed (report.json says
    // which); the job then fails with the worker's error.
    if ((status.ok() || some_formats_failed) && !interrupted()) {
      absl::Status uploaded = Upload(job, JoinPath(job_dir, "out"));
      if (status.ok() || !uploaded.ok()) {
        status = uploaded;
        permanent = IsPermanent(status);
      }
    }
  }
  if (LeaseLost(job.id)) {
    // Another worker has the job now (or will): this attempt leaves no trace.
    metrics_.attempts.With({kAttemptOutcomes[static_cast<int>(Outcome::kLost)]}).Inc();
    RemoveTree(job_dir).IgnoreError();
    spdlog::warn("job={} attempt={} abandoned: its lease is gone", job.id, job.attempts);
    return;
  }
  absl::StatusOr<Job> now = store_->Get(job.id);
  StateChange end{now.ok() ? now->state : JobState::kRunning, JobState::kUnspecified, ""};
  std::optional<JobError> error;
  Outcome outcome;
  if (CancelRequested(job.id)) {
    outcome = Outcome::kCancelled;
    end.to = JobState::kCancelled;
    end.reason = "cancelled by request";
  } else if (Stopping()) {
    outcome = Outcome::kInterrupted;
    end.to = JobState::kQueued;
    end.reason = absl::StrCat("worker ", options_.worker_name,
                              " stopping; the job resumes from its last finished block");
  } else if (status.ok()) {
    outcome = Outcome::kSucceeded;
    end.to = JobState::kSucceeded;
  } else {
    const bool retry = !permanent && job.attempts < options_.max_attempts;
    outcome = retry ? Outcome::kRetry : Outcome::kFailed;
    spdlog::warn("job={} attempt={} failed: {}", job.id, job.attempts,
                 std::string(status.message()));
    error = JobError{std::string(status.message()), retry};
    end.to = retry ? JobState::kQueued : JobState::kFailed;
    end.reason = retry                 ? absl::StrCat("retrying (attempt ", job.attempts, " of ",
                                                      options_.max_attempts, " failed)")
                 : !permanent          ? "no attempts left"
                 : some_formats_failed ? "some export formats failed"
                                       : "bad input";
  }
  static_assert(std::size(kAttemptOutcomes) == static_cast<size_t>(Outcome::kLost) + 1);
  // Metrics and clean-up first: whoever sees the job end sees them done.
  metrics_.attempts.With({kAttemptOutcomes[static_cast<int>(outcome)]}).Inc();
  if (IsTerminal(end.to)) {
    // The work directory and the mirrored checkpoints stay only for a resumed attempt.
    RemoveTree(job_dir).IgnoreError();
    absl::Status deleted = DeleteCheckpoints(job.spec.output_uri, options_.s3);
    if (!deleted.ok()) {
      spdlog::warn("job={} checkpoints not deleted: {}", job.id, deleted.ToString());
    }
    metrics_.slot_busy.With({device}).Set(0);
    metrics_.job_seconds.With({std::string(JobStateName(end.to))})
        .Observe((NowMs() - job.create_time_ms) / 1000.0);
  }
  if (error) Record(job.id, *error, "", owner).IgnoreError();
  Record(job.id, end, "", owner).IgnoreError();
}

absl::StatusOr<std::vector<std::string>> JobService::PrepareWorker(const Job& job,
                                                                   const std::string& device,
                                                                   const std::string& job_dir) {
  SR_ASSIGN_OR_RETURN(EffectiveSettings settings, ResolveSettings(job.spec));
  SR_RETURN_IF_ERROR(CheckLocalRoots(job.spec));
  WorkerInputs in;
  in.worker_bin = options_.worker_bin;
  in.out_dir = JoinPath(job_dir, "out");
  in.threads = options_.worker_threads;
  // A GPU slot shows the worker only its own GPU.
  in.device = absl::StartsWith(device, "cuda:") ? "cuda:0" : "cpu";
  SR_RETURN_IF_ERROR(MakeDirectories(in.out_dir));
  absl::StatusOr<std::string> model = cache_.FetchDirectory(job.spec.model_uri);
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat("spec.model_uri: ", model.status().message()));
  }
  in.model_dir = *model;
  in.model_name = job.spec.model_uri;
  in.calib_name = job.spec.calibration_uri;
  if (!job.spec.calibration_uri.empty()) {
    absl::StatusOr<std::string> calib = cache_.FetchFile(job.spec.calibration_uri);
    if (!calib.ok()) {
      return absl::Status(calib.status().code(),
                          absl::StrCat("spec.calibration_uri: ", calib.status().message()));
    }
    in.calib_path = *calib;
  }
  in.settings_path = JoinPath(job_dir, "settings.json");
  SR_RETURN_IF_ERROR(WriteFileAtomically(in.settings_path, contract::SettingsFileText(settings)));
  if (job.attempts > 1) {
    // Blocks an earlier attempt finished, perhaps on another machine. Without
    // them the worker tunes every block again: slower, same result.
    absl::StatusOr<int> pulled = PullCheckpoints(
        job.spec.output_uri, JoinPath(in.out_dir, contract::kWorkDirName), options_.s3);
    if (!pulled.ok()) {
      spdlog::warn("job={} earlier checkpoints not fetched: {}", job.id,
                   pulled.status().ToString());
    } else if (*pulled > 0) {
      spdlog::info("job={} fetched {} checkpoint file(s) of earlier attempts", job.id, *pulled);
    }
  }
  return WorkerArgv(in);
}

absl::Status JobService::RunWorker(const Job& job, const std::vector<std::string>& argv,
                                   const std::string& device, const std::string& job_dir,
                                   bool* permanent, bool* some_formats_failed) {
  ChildOptions child;
  child.argv = argv;
  child.cwd = job_dir;
  child.stderr_path = JoinPath(job_dir, "worker.stderr");
  child.env = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"HOME", job_dir}, {"LANG", "C.UTF-8"}};
  if (absl::StartsWith(device, "cuda:")) child.env["CUDA_VISIBLE_DEVICES"] = device.substr(5);
  for (const char* name : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LD_LIBRARY_PATH"}) {
    if (const char* v = std::getenv(name)) child.env[name] = v;
  }
  const std::string id = job.id;
  const std::string work_dir = JoinPath(JoinPath(job_dir, "out"), contract::kWorkDirName);
  std::shared_ptr<Attempt> attempt = FindAttempt(id);
  const std::string output_uri = job.spec.output_uri;
  // A model-free RTN job (no calibration data) keeps no block files: nothing to mirror.
  const bool has_blocks = !job.spec.calibration_uri.empty();
  auto on_line = [this, id, attempt, work_dir, output_uri, has_blocks](const std::string& line) {
    absl::StatusOr<WorkerLine> parsed = ParseWorkerLine(line);
    if (!parsed.ok()) {
      spdlog::warn("job={} worker printed a non-event line ({} bytes)", id, line.size());
      return;
    }
    if (parsed->kind != WorkerLine::Kind::kBlock) return;
    const BlockProgress& b = parsed->block;
    if (!b.resumed) metrics_.block_seconds.Observe(b.stats.seconds);
    if (!b.resumed && has_blocks) {
      absl::Status pushed = PushCheckpoint(output_uri, work_dir, b.stats.index, options_.s3);
      if (!pushed.ok()) spdlog::warn("job={} checkpoint not mirrored: {}", id, pushed.ToString());
    }
    spdlog::info("job={} block {}/{} loss {:.6g} -> {:.6g}{}", id, b.stats.index + 1, b.block_count,
                 b.stats.loss_iter0, b.stats.loss_best, b.resumed ? " (resumed)" : "");
    Record(id, b, "", attempt->owner).IgnoreError();
    {
      std::lock_guard<std::mutex> lock(mu_);
      attempt->blocks += 1;
    }
    ended_cv_.notify_all();
  };
  spdlog::info("job={} attempt={} starting the worker on {}", id, job.attempts, device);
  SR_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> started, ChildProcess::Start(child, on_line));
  std::shared_ptr<ChildProcess> process = std::move(started);
  {
    std::lock_guard<std::mutex> lock(mu_);
    attempt->child = process;
  }
  // A cancel (or a lost lease) that came while the worker started finds it only now.
  if (CancelRequested(id) || LeaseLost(id) || Stopping()) process->Terminate(options_.cancel_grace);
  ExitInfo exit = process->Wait();
  {
    std::lock_guard<std::mutex> lock(mu_);
    attempt->child.reset();
  }
  if (exit.success()) return absl::OkStatus();
  std::string last = LastLineOfFile(child.stderr_path);
  last = std::string(absl::StripPrefix(last, "signround-worker: error: "));
  // Exit code 2: the worker refused its input; another attempt would too. Exit code 3
  // (worker/command.h): tuning finished, but some export formats failed (the same again).
  *some_formats_failed = exit.exited && exit.code == 3;
  *permanent = exit.exited && (exit.code == 2 || exit.code == 3);
  const absl::StatusCode code = *some_formats_failed ? absl::StatusCode::kFailedPrecondition
                                : *permanent         ? absl::StatusCode::kInvalidArgument
                                                     : absl::StatusCode::kInternal;
  return absl::Status(code,
                      absl::StrCat("worker ", exit.Describe(), last.empty() ? "" : ": ", last));
}

absl::Status JobService::Upload(const Job& job, const std::string& out_dir) {
  const std::string owner = job.lease.owner;
  SR_ASSIGN_OR_RETURN(
      JobEvent e,
      Record(job.id, StateChange{JobState::kRunning, JobState::kUploading, ""}, "", owner));
  std::vector<std::string> files;
  SR_RETURN_IF_ERROR(ListFiles(out_dir, "", files));
  // report.json goes last: its presence says the rest is complete.
  std::stable_partition(files.begin(), files.end(),
                        [](const std::string& f) { return f != "report.json"; });
  std::string base = job.spec.output_uri;
  while (!base.empty() && base.back() == '/') base.pop_back();
  for (const std::string& rel : files) {
    if (CancelRequested(job.id) || LeaseLost(job.id) || Stopping()) {
      return absl::CancelledError("upload interrupted");
    }
    Artifact a;
    a.uri = absl::StrCat(base, "/", rel);
    const size_t slash = rel.find('/');
    a.format = slash == std::string::npos ? "report" : FormatOfDir(rel.substr(0, slash));
    const std::string local = JoinPath(out_dir, rel);
    uint64_t bytes = 0;
    SR_ASSIGN_OR_RETURN(a.sha256, Sha256File(local, &bytes));
    a.bytes = static_cast<int64_t>(bytes);
    SR_ASSIGN_OR_RETURN(Location dst, OpenLocation(a.uri, options_.s3));
    absl::Status put = dst.store->Put(local, dst.key, nullptr);
    if (!put.ok()) {
      return absl::Status(put.code(), absl::StrCat("uploading to ", a.uri, ": ", put.message()));
    }
    metrics_.upload_bytes.Inc(static_cast<double>(a.bytes));
    SR_RETURN_IF_ERROR(Record(job.id, a, "", owner).status());
  }
  return absl::OkStatus();
}

}  // namespace signround::jobs
