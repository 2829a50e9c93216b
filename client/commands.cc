#include "client/commands.h"

#include <unistd.h>

#include <cstdio>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "client/exit_codes.h"
#include "client/render.h"
#include "client/watch.h"

namespace signround::cli {
namespace {

namespace v1 = ::signround::v1;

void PrintLine(const std::string& line) {
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

std::unique_ptr<EventPrinter> PrinterFor(const GlobalOptions& global) {
  if (global.json) return MakeEventPrinter(EventStyle::kJson, stdout);
  if (::isatty(STDOUT_FILENO)) return MakeEventPrinter(EventStyle::kBar, stdout);
  return MakeEventPrinter(EventStyle::kPlain, stdout);
}

// Prints a job as JSON or as a key: value block.
void PrintJob(const GlobalOptions& global, const v1::Job& job) {
  if (global.json) {
    PrintLine(ToJsonLine(job));
  } else {
    std::fputs(FormatJob(job).c_str(), stdout);
    std::fflush(stdout);
  }
}

absl::StatusOr<v1::ListJobsRequest> BuildListRequest(const ListOptions& o) {
  v1::ListJobsRequest request;
  if (!o.state.empty()) {
    absl::StatusOr<v1::JobState> state = ParseJobState(o.state);
    if (!state.ok()) return state.status();
    request.set_state(*state);
  }
  absl::StatusOr<std::map<std::string, std::string>> labels = ParseLabels(o.labels, "--label");
  if (!labels.ok()) return labels.status();
  request.mutable_labels()->insert(labels->begin(), labels->end());
  if (o.page_size < 0) return absl::InvalidArgumentError("--page-size: must not be negative");
  request.set_page_size(o.page_size);
  request.set_page_token(o.page_token);
  return request;
}

// One unary RPC: `call` gets a prepared context. On failure the error is printed and
// its exit code returned; nullopt on success.
template <typename Call>
std::optional<int> CallUnary(Connection& conn, const char* rpc, Call call) {
  grpc::ClientContext context;
  conn.Prepare(&context, /*unary=*/true);
  grpc::Status status = call(&context);
  if (!status.ok()) return conn.Fail(rpc, status);
  return std::nullopt;
}

}  // namespace

int RunSubmit(const GlobalOptions& global, const SubmitOptions& options) {
  absl::StatusOr<v1::JobSpec> spec = BuildJobSpec(options.spec);
  if (!spec.ok()) {
    PrintError(spec.status().message());
    return kExitInvalid;
  }
  Connection conn(global);
  v1::SubmitJobRequest request;
  *request.mutable_spec() = *std::move(spec);
  v1::SubmitJobResponse response;
  if (std::optional<int> failed = CallUnary(conn, "SubmitJob", [&](grpc::ClientContext* c) {
        return conn.stub().SubmitJob(c, request, &response);
      })) {
    return *failed;
  }
  conn.MarkConnected();
  if (global.json) {
    PrintLine(ToJsonLine(response));
  } else {
    PrintLine(OneLine(response.job().id()));
    if (!response.created()) {
      std::fprintf(stderr, "signround: the idempotency key matched job %s, submitted earlier\n",
                   OneLine(response.job().id()).c_str());
    }
  }
  if (!options.watch) return kExitOk;
  FollowOptions follow;
  follow.reconnect_timeout_s = options.reconnect_timeout_s;
  std::unique_ptr<EventPrinter> printer = PrinterFor(global);
  return FollowJob(conn, response.job().id(), follow, *printer);
}

int RunGet(const GlobalOptions& global, const GetOptions& options) {
  Connection conn(global);
  v1::GetJobRequest request;
  request.set_job_id(options.job_id);
  v1::Job job;
  if (std::optional<int> failed = CallUnary(conn, "GetJob", [&](grpc::ClientContext* c) {
        return conn.stub().GetJob(c, request, &job);
      })) {
    return *failed;
  }
  PrintJob(global, job);
  return kExitOk;
}

int RunList(const GlobalOptions& global, const ListOptions& options) {
  absl::StatusOr<v1::ListJobsRequest> request = BuildListRequest(options);
  if (!request.ok()) {
    PrintError(request.status().message());
    return kExitInvalid;
  }
  Connection conn(global);
  std::vector<v1::Job> jobs;  // for the table
  std::set<std::string> seen_tokens;
  while (true) {
    v1::ListJobsResponse response;
    if (std::optional<int> failed = CallUnary(conn, "ListJobs", [&](grpc::ClientContext* c) {
          return conn.stub().ListJobs(c, *request, &response);
        })) {
      return *failed;
    }
    conn.MarkConnected();
    for (const v1::Job& job : response.jobs()) {
      if (global.json) {
        PrintLine(ToJsonLine(job));
      } else {
        jobs.push_back(job);
      }
    }
    const std::string& next = response.next_page_token();
    if (next.empty()) break;
    if (!options.all) {
      std::fprintf(stderr, "signround: more jobs: --page-token %s\n", OneLine(next).c_str());
      break;
    }
    if (!seen_tokens.insert(next).second) {
      PrintError("ListJobs: the server returned the same page token twice");
      return kExitError;
    }
    request->set_page_token(next);
  }
  if (!global.json) {
    std::fputs(FormatJobTable(jobs).c_str(), stdout);
    std::fflush(stdout);
  }
  return kExitOk;
}

int RunWatch(const GlobalOptions& global, const WatchOptions& options) {
  if (options.from_sequence < 0) {
    PrintError("--from: must not be negative");
    return kExitInvalid;
  }
  Connection conn(global);
  FollowOptions follow;
  follow.from_sequence = options.from_sequence;
  follow.reconnect_timeout_s = options.reconnect_timeout_s;
  std::unique_ptr<EventPrinter> printer = PrinterFor(global);
  return FollowJob(conn, options.job_id, follow, *printer);
}

int RunCancel(const GlobalOptions& global, const CancelOptions& options) {
  Connection conn(global);
  v1::CancelJobRequest request;
  request.set_job_id(options.job_id);
  v1::Job job;
  if (std::optional<int> failed = CallUnary(conn, "CancelJob", [&](grpc::ClientContext* c) {
        return conn.stub().CancelJob(c, request, &job);
      })) {
    return *failed;
  }
  if (global.json) {
    PrintLine(ToJsonLine(job));
  } else {
    PrintLine(absl::StrCat(OneLine(job.id()), " ", StateName(job.state())));
  }
  return kExitOk;
}

}  // namespace signround::cli
