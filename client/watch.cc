#include "client/watch.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/exit_codes.h"

namespace signround::cli {
namespace {

namespace v1 = ::signround::v1;

constexpr absl::Duration kFirstBackoff = absl::Milliseconds(200);
constexpr absl::Duration kMaxBackoff = absl::Seconds(5);
// A stream that stayed open this long before breaking had reached the server:
// the next break starts a fresh reconnect window.
constexpr absl::Duration kHealthyStream = absl::Seconds(1);

// What one WatchJob stream did.
struct Attempt {
  grpc::Status status;
  int64_t delivered = 0;  // new events printed
  absl::Duration open_for;
};

// What has been seen across streams.
struct Progress {
  int64_t last_sequence = 0;
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
};

Attempt StreamOnce(Connection& conn, const std::string& job_id, Progress& progress,
                   EventPrinter& printer) {
  Attempt a;
  absl::Time start = absl::Now();
  grpc::ClientContext context;
  conn.Prepare(&context, /*unary=*/false);  // a stream: no deadline
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  request.set_from_sequence(progress.last_sequence + 1);
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
      conn.stub().WatchJob(&context, request);
  v1::JobEvent event;
  while (reader->Read(&event)) {
    conn.MarkConnected();
    // A server that replays from an earlier sequence must not print twice.
    if (event.sequence() <= progress.last_sequence) continue;
    printer.Print(event);
    progress.last_sequence = event.sequence();
    if (event.has_state_change()) progress.state = event.state_change().to();
    ++a.delivered;
  }
  a.status = reader->Finish();
  a.open_for = absl::Now() - start;
  return a;
}

// The job's state from GetJob, for a stream that ended without showing it
// (e.g. --from past the ending event). Returns an exit code on failure.
int FetchState(Connection& conn, const std::string& job_id, v1::JobState* state) {
  grpc::ClientContext context;
  conn.Prepare(&context, /*unary=*/true);
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  grpc::Status status = conn.stub().GetJob(&context, request, &job);
  if (!status.ok()) return conn.Fail("GetJob", status);
  *state = job.state();
  return kExitOk;
}

int FinalCode(Connection& conn, const std::string& job_id, Progress& progress) {
  if (!IsEnded(progress.state)) {
    int code = FetchState(conn, job_id, &progress.state);
    if (code != kExitOk) return code;
  }
  if (!IsEnded(progress.state)) {
    PrintError(absl::StrCat("WatchJob: the stream of job ", job_id, " ended while it is ",
                            StateName(progress.state)));
    return kExitError;
  }
  return ExitCodeForFinalState(progress.state);
}

}  // namespace

int FollowJob(Connection& conn, const std::string& job_id, const FollowOptions& options,
              EventPrinter& printer) {
  Progress progress;
  progress.last_sequence = std::max<int64_t>(0, options.from_sequence - 1);
  const absl::Duration window = absl::Seconds(options.reconnect_timeout_s);
  if (!conn.WaitForConnected(absl::Now() + absl::Seconds(conn.options().timeout_s))) {
    return conn.Fail("WatchJob",
                     grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                  absl::StrCat("cannot connect to ", conn.options().server,
                                               " within ", conn.options().timeout_s, "s")));
  }
  absl::Duration backoff = kFirstBackoff;
  absl::Time give_up = absl::InfiniteFuture();
  bool retrying = false;
  grpc::Status last_error;
  while (true) {
    if (retrying) {
      absl::SleepFor(std::min(backoff, std::max(absl::ZeroDuration(), give_up - absl::Now())));
      backoff = std::min(backoff * 2, kMaxBackoff);
      if (absl::Now() >= give_up || !conn.WaitForConnected(give_up)) {
        printer.Finish();
        return conn.Fail("WatchJob", grpc::Status(last_error.error_code(),
                                                  absl::StrCat(last_error.error_message(),
                                                               " (gave up ", "reconnecting after ",
                                                               options.reconnect_timeout_s, "s)")));
      }
    }
    Attempt a = StreamOnce(conn, job_id, progress, printer);
    if (a.status.ok()) break;
    if (a.status.error_code() != grpc::StatusCode::UNAVAILABLE) {
      printer.Finish();
      return conn.Fail("WatchJob", a.status);
    }
    const bool healthy = a.delivered > 0 || a.open_for >= kHealthyStream;
    if (!retrying || healthy) {
      give_up = absl::Now() + window;
      printer.Note(absl::StrFormat(
          "signround: WatchJob: stream lost (UNAVAILABLE: %s); resuming from sequence %d for up "
          "to %gs",
          OneLine(a.status.error_message()), progress.last_sequence + 1,
          options.reconnect_timeout_s));
    }
    if (healthy) backoff = kFirstBackoff;
    last_error = a.status;
    retrying = true;
  }
  printer.Finish();
  return FinalCode(conn, job_id, progress);
}

}  // namespace signround::cli
