#include "src/dashboard/dashboard.h"

#include <algorithm>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"
#include "src/common/status_macros.h"
#include "src/dashboard/assets.h"
#include "src/dashboard/job_json.h"
#include "src/jobs/caller_auth.h"
#include "src/jobs/list_validation.h"

namespace signround::dashboard {
namespace {

using nlohmann::json;

constexpr int kDefaultEventLimit = 500;
constexpr size_t kMaxShownInput = 64;
// The page's policy: only its own files and API (no inline script, no other origin), never
// framed. Data is put into the page as text, never as markup.
constexpr char kPagePolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// A query value as an error message shows it: escaped, and cut at kMaxShownInput bytes.
std::string Shown(absl::string_view value) {
  std::string shown = absl::CHexEscape(value.substr(0, kMaxShownInput));
  if (value.size() > kMaxShownInput) shown += "...";
  return absl::StrCat("'", shown, "'");
}

void AddCommonHeaders(metrics::HttpReply& reply) {
  reply.headers.emplace_back("X-Content-Type-Options", "nosniff");
  reply.headers.emplace_back("Referrer-Policy", "no-referrer");
  reply.headers.emplace_back("Cache-Control", "no-store");
}

metrics::HttpReply JsonReply(int status, const json& body) {
  metrics::HttpReply reply;
  reply.status = status;
  reply.content_type = "application/json; charset=utf-8";
  reply.body = DumpJson(body);
  AddCommonHeaders(reply);
  return reply;
}

metrics::HttpReply ErrorReply(const absl::Status& status) {
  metrics::HttpReply reply = JsonReply(
      HttpStatusOf(status.code()),
      {{"error",
        {{"code", absl::StatusCodeToString(status.code())}, {"message", status.message()}}}});
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    reply.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"signround\"");
  }
  return reply;
}

// The one value of query parameter `name`, or nullopt; INVALID_ARGUMENT when it is repeated.
absl::StatusOr<std::optional<std::string>> OneParam(const metrics::HttpRequest& req,
                                                    const std::string& name) {
  const auto range = req.query.equal_range(name);
  if (range.first == range.second) return std::optional<std::string>();
  if (std::next(range.first) != range.second) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": given more than once"));
  }
  return std::optional<std::string>(range.first->second);
}

absl::StatusOr<int64_t> IntParam(const metrics::HttpRequest& req, const std::string& name,
                                 int64_t fallback, int64_t min, int64_t max) {
  SR_ASSIGN_OR_RETURN(std::optional<std::string> text, OneParam(req, name));
  if (!text) return fallback;
  int64_t value = 0;
  const bool digits = !text->empty() && text->size() <= 19 &&
                      std::all_of(text->begin(), text->end(), absl::ascii_isdigit);
  if (!digits || !absl::SimpleAtoi(*text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", Shown(*text), " is not a decimal integer"));
  }
  if (value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", value, " is outside ", min, "..", max));
  }
  return value;
}

// INVALID_ARGUMENT naming the first query parameter that is not one of `allowed`.
absl::Status OnlyParams(const metrics::HttpRequest& req,
                        std::initializer_list<absl::string_view> allowed) {
  for (const auto& entry : req.query) {
    if (std::find(allowed.begin(), allowed.end(), entry.first) == allowed.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown query parameter ", Shown(entry.first), " (",
                       allowed.size() == 0 ? "none here" : absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<jobs::ListRequest> ListRequestOf(const metrics::HttpRequest& req) {
  SR_RETURN_IF_ERROR(OnlyParams(req, {"state", "label", "page_size", "page_token"}));
  jobs::ListRequest list;
  SR_ASSIGN_OR_RETURN(std::optional<std::string> state, OneParam(req, "state"));
  if (state && !state->empty()) {
    const std::optional<jobs::JobState> parsed = jobs::ParseJobState(*state);
    if (!parsed || *parsed == jobs::JobState::kUnspecified) {
      return absl::InvalidArgumentError(absl::StrCat(
          "state: ", Shown(*state),
          " is not a job state (QUEUED, RUNNING, UPLOADING, SUCCEEDED, FAILED, CANCELLED)"));
    }
    list.state = static_cast<int>(*parsed);
  }
  SR_ASSIGN_OR_RETURN(const int64_t page_size,
                      IntParam(req, "page_size", 0, 0, jobs::kMaxListPageSize));
  list.page_size = static_cast<int>(page_size);
  SR_ASSIGN_OR_RETURN(std::optional<std::string> token, OneParam(req, "page_token"));
  if (token) list.page_token = *token;
  const auto labels = req.query.equal_range("label");
  for (auto it = labels.first; it != labels.second; ++it) {
    const size_t eq = it->second.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("label: ", Shown(it->second), " is not key=value"));
    }
    const std::string key = it->second.substr(0, eq);
    if (!list.labels.emplace(key, it->second.substr(eq + 1)).second) {
      return absl::InvalidArgumentError(absl::StrCat("label: key ", Shown(key), " given twice"));
    }
  }
  return list;
}

class Api {
 public:
  Api(jobs::JobService* service, const auth::Authenticator* authenticator,
      metrics::Registry* registry)
      : service_(service),
        authenticator_(authenticator),
        requests_(registry->AddCounter("signround_dashboard_requests_total",
                                       "Dashboard HTTP requests by route and HTTP status",
                                       {"route", "code"})) {
    for (const char* route : {"page", "jobs", "job", "events"}) requests_.With({route, "200"});
  }

  // Counts the reply of `route`; logs a server-side failure (as the gRPC adapter does).
  metrics::HttpReply Count(const char* route, metrics::HttpReply reply) {
    requests_.With({route, std::to_string(reply.status)}).Inc();
    if (reply.status >= 500) spdlog::warn("dashboard {} {}: {}", route, reply.status, reply.body);
    return reply;
  }

  // 200 with `body`, or the error's reply; counted.
  metrics::HttpReply Answer(const char* route, const absl::StatusOr<json>& body) {
    return Count(route, body.ok() ? JsonReply(200, *body) : ErrorReply(body.status()));
  }

  metrics::HttpReply ListJobs(const metrics::HttpRequest& req) {
    absl::StatusOr<json> body = [&]() -> absl::StatusOr<json> {
      SR_ASSIGN_OR_RETURN(const jobs::Caller caller, CallerOf(req));
      SR_ASSIGN_OR_RETURN(const jobs::ListRequest list, ListRequestOf(req));
      SR_ASSIGN_OR_RETURN(jobs::ListQuery query, jobs::ValidateListRequest(list));
      SR_ASSIGN_OR_RETURN(const jobs::ListPage page, service_->List(std::move(query), caller));
      json out = {{"jobs", json::array()}, {"next_page_token", page.next_page_token}};
      for (const jobs::Job& job : page.jobs) out["jobs"].push_back(JobJson(job));
      return out;
    }();
    return Answer("jobs", body);
  }

  metrics::HttpReply GetJob(const metrics::HttpRequest& req) {
    absl::StatusOr<json> body = [&]() -> absl::StatusOr<json> {
      SR_ASSIGN_OR_RETURN(const jobs::Caller caller, CallerOf(req));
      SR_RETURN_IF_ERROR(OnlyParams(req, {}));
      SR_ASSIGN_OR_RETURN(const jobs::Job job, service_->Get(req.path_params.at(0), caller));
      return JobJson(job);
    }();
    return Answer("job", body);
  }

  metrics::HttpReply Events(const metrics::HttpRequest& req) {
    absl::StatusOr<json> body = [&]() -> absl::StatusOr<json> {
      SR_ASSIGN_OR_RETURN(const jobs::Caller caller, CallerOf(req));
      SR_RETURN_IF_ERROR(OnlyParams(req, {"from", "limit"}));
      SR_ASSIGN_OR_RETURN(const int64_t from,
                          IntParam(req, "from", 1, 0, std::numeric_limits<int64_t>::max()));
      SR_ASSIGN_OR_RETURN(const int64_t limit, IntParam(req, "limit", kDefaultEventLimit, 1, 1000));
      SR_ASSIGN_OR_RETURN(
          const std::vector<jobs::JobEvent> events,
          service_->Events(req.path_params.at(0), from, static_cast<int>(limit), caller));
      json out = {{"events", json::array()}};
      for (const jobs::JobEvent& event : events) out["events"].push_back(JobEventJson(event));
      return out;
    }();
    return Answer("events", body);
  }

 private:
  absl::StatusOr<jobs::Caller> CallerOf(const metrics::HttpRequest& req) const {
    const std::vector<absl::string_view> values(req.authorization.begin(), req.authorization.end());
    return jobs::AuthenticateCaller(authenticator_, values);
  }

  jobs::JobService* service_;
  const auth::Authenticator* authenticator_;
  metrics::Family<metrics::Counter>& requests_;
};

absl::string_view ContentTypeOf(absl::string_view name) {
  if (absl::EndsWith(name, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(name, ".js")) return "text/javascript; charset=utf-8";
  if (absl::EndsWith(name, ".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

metrics::HttpReply PageReply(const Asset& asset) {
  metrics::HttpReply reply;
  reply.content_type = std::string(ContentTypeOf(asset.name));
  reply.body = std::string(asset.content);
  AddCommonHeaders(reply);
  reply.headers.emplace_back("Content-Security-Policy", kPagePolicy);
  reply.headers.emplace_back("X-Frame-Options", "DENY");
  return reply;
}

const Asset* FindAsset(absl::string_view name) {
  for (const Asset& asset : Assets()) {
    if (asset.name == name) return &asset;
  }
  return nullptr;
}

}  // namespace

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::vector<metrics::HttpRoute> DashboardRoutes(jobs::JobService* service,
                                                const auth::Authenticator* authenticator,
                                                metrics::Registry* registry) {
  auto api = std::make_shared<Api>(service, authenticator, registry);
  std::vector<metrics::HttpRoute> routes;
  routes.push_back({"/|/dashboard", [](const metrics::HttpRequest&) {
                      metrics::HttpReply reply;
                      reply.status = 302;
                      reply.body = "/dashboard/\n";
                      reply.headers.emplace_back("Location", "/dashboard/");
                      return reply;
                    }});
  routes.push_back({"/dashboard/([A-Za-z0-9_.-]*)", [api](const metrics::HttpRequest& req) {
                      const std::string& file = req.path_params.at(0);
                      const Asset* asset = FindAsset(file.empty() ? "index.html" : file);
                      if (asset == nullptr) {
                        metrics::HttpReply reply;
                        reply.status = 404;
                        reply.body = "not found";
                        return api->Count("page", std::move(reply));
                      }
                      return api->Count("page", PageReply(*asset));
                    }});
  routes.push_back(
      {"/api/v1/jobs/?", [api](const metrics::HttpRequest& req) { return api->ListJobs(req); }});
  routes.push_back({"/api/v1/jobs/([^/]+)",
                    [api](const metrics::HttpRequest& req) { return api->GetJob(req); }});
  routes.push_back({"/api/v1/jobs/([^/]+)/events",
                    [api](const metrics::HttpRequest& req) { return api->Events(req); }});
  routes.push_back({"/api/.*", [](const metrics::HttpRequest& req) {
                      return ErrorReply(
                          absl::NotFoundError(absl::StrCat("no API route ", Shown(req.path),
                                                           " (/api/v1/jobs, /api/v1/jobs/{id}, "
                                                           "/api/v1/jobs/{id}/events)")));
                    }});
  return routes;
}

}  // namespace signround::dashboard
