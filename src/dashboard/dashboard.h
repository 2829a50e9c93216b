// The web dashboard, served on the server's HTTP port (roles all and api): a job list
// with state, progress and labels, and a job page with its settings, artifacts, error
// and a live chart of per-block loss, read from a small JSON API:
//
//   GET /dashboard/                       the page (and /dashboard/app.js, app.css); / redirects
//   GET /api/v1/jobs?state=&label=k=v&page_size=&page_token=
//                                         {"jobs": [...], "next_page_token": "..."}
//   GET /api/v1/jobs/{id}                 a job (job_json.h)
//   GET /api/v1/jobs/{id}/events?from=N&limit=M
//                                         {"events": [...]} with sequence >= N (default 1)
//
// The API asks for the gRPC API's bearer tokens when --tokens-file is on (the same
// tenants and roles: a submitter sees its tenant's jobs); errors are
// {"error": {"code": "NOT_FOUND", "message": "..."}} with the HTTP status of the code.
// The page and its files are public (they hold no data); it keeps a token the user types
// in the tab's sessionStorage. Read-only: nothing here changes a job.
#pragma once

#include <vector>

#include "src/auth/authenticator.h"
#include "src/jobs/job_service.h"
#include "src/metrics/http_endpoints.h"
#include "src/metrics/metrics.h"

namespace signround::dashboard {

// The routes for HttpEndpointsOptions::routes. `service`, `authenticator` (null: no
// authentication) and `registry` must outlive the endpoints. Counts requests in
// signround_dashboard_requests_total{route, code}.
std::vector<metrics::HttpRoute> DashboardRoutes(jobs::JobService* service,
                                                const auth::Authenticator* authenticator,
                                                metrics::Registry* registry);

// The HTTP status of a canonical error code (google.rpc's mapping): INVALID_ARGUMENT 400,
// UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, RESOURCE_EXHAUSTED 429,
// UNAVAILABLE 503, ...
int HttpStatusOf(absl::StatusCode code);

}  // namespace signround::dashboard
