// The dashboard's routes over a real job service (role api, SQLite in a scratch directory)
// on a loopback HttpEndpoints: the page's files, the JSON API, its query checks and errors,
// and the bearer tokens of --tokens-file.
#include "src/dashboard/dashboard.h"

#include <memory>
#include <string>

#include <httplib.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "src/storage/sigv4.h"
#include "tests/testing/test_files.h"
#include "tests/unit/jobs/valid_spec.h"

namespace signround::dashboard {
namespace {

using nlohmann::json;

constexpr char kAliceToken[] = "alice-token-0123456789";
constexpr char kAdminToken[] = "admin-token-0123456789";

class DashboardTest : public ::testing::Test {
 protected:
  // Starts the service and the endpoints; with_tokens: a tokens file of a submitter of
  // team-a (alice) and an admin.
  void Start(bool with_tokens) {
    jobs::JobServiceOptions options;
    options.run_slots = false;
    options.data_dir = dir_.File("data");  // made by the service (role api too)
    auto service = jobs::JobService::Start(options, registry_);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    if (with_tokens) {
      const std::string path = dir_.File("tokens.json");
      testing::WriteFile(
          path,
          json({{"tokens",
                 {{{"sha256", Sha256Hex(kAliceToken)}, {"tenant", "team-a"}, {"role", "submitter"}},
                  {{"sha256", Sha256Hex(kAdminToken)}, {"tenant", "ops"}, {"role", "admin"}}}}})
              .dump());
      auto loaded = auth::Authenticator::Load(path);
      ASSERT_TRUE(loaded.ok()) << loaded.status();
      authenticator_ = std::move(*loaded);
    }
    metrics::HttpEndpointsOptions http;
    http.listen = "127.0.0.1:0";
    http.routes = DashboardRoutes(service_.get(), authenticator_.get(), &registry_);
    auto endpoints = metrics::HttpEndpoints::Start(http, &registry_, [] { return true; });
    ASSERT_TRUE(endpoints.ok()) << endpoints.status();
    endpoints_ = std::move(*endpoints);
  }

  std::string Submit(const std::string& tenant, std::map<std::string, std::string> labels) {
    jobs::JobSpec spec = jobs::ValidSpec();
    spec.labels = std::move(labels);
    jobs::Caller caller;
    caller.tenant = tenant;
    auto created = service_->Submit(spec, caller);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->job.id : "";
  }

  httplib::Result Get(const std::string& path, const std::string& token = "") {
    httplib::Client client("127.0.0.1", endpoints_->port());
    client.set_read_timeout(10);
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return client.Get(path, headers);
  }

  // The JSON body of a GET that answered `status`.
  json GetJson(const std::string& path, int status, const std::string& token = "") {
    httplib::Result res = Get(path, token);
    EXPECT_TRUE(res) << path;
    if (!res) return json();
    EXPECT_EQ(res->status, status) << path << ": " << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json; charset=utf-8") << path;
    EXPECT_EQ(res->get_header_value("Cache-Control"), "no-store") << path;
    return json::parse(res->body);
  }

  testing::TempDir dir_;
  metrics::Registry registry_;
  std::unique_ptr<jobs::JobService> service_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<metrics::HttpEndpoints> endpoints_;
};

TEST(HttpStatusOfTest, FollowsGoogleRpcMapping) {
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kInternal), 500);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kDataLoss), 500);
}

TEST_F(DashboardTest, ServesThePageItsFilesAndARedirect) {
  Start(false);
  httplib::Result page = Get("/dashboard/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_TRUE(
      absl::StrContains(page->get_header_value("Content-Security-Policy"), "script-src 'self'"));
  EXPECT_EQ(page->get_header_value("X-Frame-Options"), "DENY");
  EXPECT_TRUE(absl::StrContains(page->body, "<script src=\"app.js\" defer></script>"));
  httplib::Result script = Get("/dashboard/app.js");
  ASSERT_TRUE(script);
  EXPECT_EQ(script->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_TRUE(absl::StrContains(script->body, "/api/v1/jobs"));
  EXPECT_EQ(Get("/dashboard/app.css")->get_header_value("Content-Type"), "text/css; charset=utf-8");
  EXPECT_EQ(Get("/dashboard/missing.js")->status, 404);
  EXPECT_EQ(Get("/dashboard/..%2F..%2Fetc%2Fpasswd")->status, 404);
  for (const char* path : {"/", "/dashboard"}) {
    httplib::Result root = Get(path);
    ASSERT_TRUE(root);
    EXPECT_EQ(root->status, 302) << path;
    EXPECT_EQ(root->get_header_value("Location"), "/dashboard/") << path;
  }
  // The built-in endpoints are still there.
  EXPECT_EQ(Get("/healthz")->status, 200);
  EXPECT_EQ(Get("/elsewhere")->status, 404);
}

TEST_F(DashboardTest, ListsGetsAndReadsEventsOfJobs) {
  Start(false);
  const std::string first = Submit("", {{"team", "a"}});
  const std::string second = Submit("", {{"team", "b"}, {"note", "<b>x</b>"}});
  json list = GetJson("/api/v1/jobs", 200);
  ASSERT_EQ(list["jobs"].size(), 2u);
  EXPECT_EQ(list["jobs"][0]["id"], second) << "newest first";
  EXPECT_EQ(list["jobs"][0]["spec"]["labels"]["note"], "<b>x</b>");
  EXPECT_EQ(list["next_page_token"], "");

  list = GetJson("/api/v1/jobs?label=team%3Da&state=queued", 200);
  ASSERT_EQ(list["jobs"].size(), 1u);
  EXPECT_EQ(list["jobs"][0]["id"], first);
  EXPECT_EQ(GetJson("/api/v1/jobs?state=RUNNING", 200)["jobs"].size(), 0u);

  list = GetJson("/api/v1/jobs?page_size=1", 200);
  ASSERT_EQ(list["jobs"].size(), 1u);
  const std::string token = list["next_page_token"];
  ASSERT_FALSE(token.empty());
  list = GetJson("/api/v1/jobs?page_size=1&page_token=" + token, 200);
  ASSERT_EQ(list["jobs"].size(), 1u);
  EXPECT_EQ(list["jobs"][0]["id"], first);

  const json job = GetJson("/api/v1/jobs/" + first, 200);
  EXPECT_EQ(job["state"], "QUEUED");
  EXPECT_EQ(job["spec"]["model_uri"], "file:///models/llama");
  const json events = GetJson(absl::StrCat("/api/v1/jobs/", first, "/events"), 200);
  ASSERT_EQ(events["events"].size(), 1u);
  EXPECT_EQ(events["events"][0]["sequence"], 1);
  EXPECT_EQ(events["events"][0]["state_change"]["to"], "QUEUED");
  EXPECT_EQ(GetJson(absl::StrCat("/api/v1/jobs/", first, "/events?from=2"), 200)["events"].size(),
            0u);

  // HEAD answers as GET without a body; other methods are 405.
  httplib::Client client("127.0.0.1", endpoints_->port());
  httplib::Result head = client.Head("/api/v1/jobs");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());
  httplib::Result post = client.Post("/api/v1/jobs", "{}", "application/json");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  httplib::Result del = client.Delete(absl::StrCat("/api/v1/jobs/", first));
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
}

TEST_F(DashboardTest, BadRequestsAreInvalidArgumentNamingTheParameter) {
  Start(false);
  const std::string id = Submit("", {});
  struct Case {
    std::string path;
    int status;
    std::string code;
    std::string message;
  };
  const std::string long_value(500, 'x');
  for (const Case& c : std::vector<Case>{
           {"/api/v1/jobs?page_size=-1", 400, "INVALID_ARGUMENT", "page_size: '-1' is not"},
           {"/api/v1/jobs?page_size=1001", 400, "INVALID_ARGUMENT", "1001 is outside 0..1000"},
           {"/api/v1/jobs?page_size=99999999999999999999", 400, "INVALID_ARGUMENT", "page_size"},
           {"/api/v1/jobs?page_size=1&page_size=2", 400, "INVALID_ARGUMENT", "more than once"},
           {"/api/v1/jobs?state=DONE", 400, "INVALID_ARGUMENT", "state: 'DONE' is not a job"},
           {"/api/v1/jobs?state=" + long_value, 400, "INVALID_ARGUMENT", "x...'"},
           {"/api/v1/jobs?label=a%3D1&label=a%3D2", 400, "INVALID_ARGUMENT", "given twice"},
           {"/api/v1/jobs?label=BAD%3D1", 400, "INVALID_ARGUMENT", "labels"},
           {"/api/v1/jobs?page_token=%00%ff", 400, "INVALID_ARGUMENT", "page_token"},
           {"/api/v1/jobs?x%0a=1", 400, "INVALID_ARGUMENT", "unknown query parameter 'x\\n'"},
           {"/api/v1/jobs/j-1", 400, "INVALID_ARGUMENT", "is not a job id"},
           {"/api/v1/jobs/j-ffffffffffffffff", 404, "NOT_FOUND", "j-ffffffffffffffff"},
           {"/api/v1/jobs/" + id + "?verbose=1", 400, "INVALID_ARGUMENT", "'verbose'"},
           {"/api/v1/jobs/" + id + "/events?from=x", 400, "INVALID_ARGUMENT", "from: 'x'"},
           {"/api/v1/jobs/" + id + "/events?limit=1001", 400, "INVALID_ARGUMENT", "1..1000"},
           {"/api/v1/jobs/" + id + "/events?since=1", 400, "INVALID_ARGUMENT", "'since'"},
           {"/api/v1/jobs/" + id + "/events/extra", 404, "NOT_FOUND", "no API route"},
       }) {
    const json body = GetJson(c.path, c.status);
    EXPECT_EQ(body["error"]["code"], c.code) << c.path;
    const std::string message = body["error"]["message"];
    EXPECT_TRUE(absl::StrContains(message, c.message)) << c.path << ": " << message;
    EXPECT_LT(message.size(), 400u) << c.path;
  }
}

TEST_F(DashboardTest, TokensScopeTheApiToTheTenant) {
  Start(true);
  const std::string mine = Submit("team-a", {});
  const std::string theirs = Submit("team-b", {});
  httplib::Result res = Get("/api/v1/jobs");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(res->get_header_value("WWW-Authenticate"), "Bearer realm=\"signround\"");
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "UNAUTHENTICATED");
  const std::string wrong = "not-a-known-token-123";
  res = Get("/api/v1/jobs", wrong);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_FALSE(absl::StrContains(res->body, wrong)) << "a token is never echoed";
  EXPECT_EQ(Get("/api/v1/jobs/" + mine)->status, 401);

  json list = GetJson("/api/v1/jobs", 200, kAliceToken);
  ASSERT_EQ(list["jobs"].size(), 1u);
  EXPECT_EQ(list["jobs"][0]["id"], mine);
  EXPECT_EQ(GetJson("/api/v1/jobs/" + theirs, 404, kAliceToken)["error"]["code"], "NOT_FOUND");
  GetJson(absl::StrCat("/api/v1/jobs/", theirs, "/events"), 404, kAliceToken);
  EXPECT_EQ(GetJson("/api/v1/jobs", 200, kAdminToken)["jobs"].size(), 2u) << "admins see all";
  // The page holds no data: it loads without a token.
  EXPECT_EQ(Get("/dashboard/")->status, 200);
}

TEST_F(DashboardTest, CountsRequestsByRouteAndStatus) {
  Start(false);
  GetJson("/api/v1/jobs", 200);
  GetJson("/api/v1/jobs?page_size=x", 400);
  Get("/dashboard/");
  const std::string text = registry_.Render();
  EXPECT_TRUE(absl::StrContains(
      text, "signround_dashboard_requests_total{route=\"jobs\",code=\"200\"} 1\n"))
      << text;
  EXPECT_TRUE(absl::StrContains(
      text, "signround_dashboard_requests_total{route=\"jobs\",code=\"400\"} 1\n"));
  EXPECT_TRUE(absl::StrContains(
      text, "signround_dashboard_requests_total{route=\"page\",code=\"200\"} 1\n"));
  EXPECT_TRUE(absl::StrContains(
      text, "signround_dashboard_requests_total{route=\"events\",code=\"200\"} 0\n"));
}

}  // namespace
}  // namespace signround::dashboard
