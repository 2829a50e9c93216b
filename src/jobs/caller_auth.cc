#include "src/jobs/caller_auth.h"

namespace signround::jobs {

absl::StatusOr<Caller> AuthenticateCaller(const auth::Authenticator* authenticator,
                                          const std::vector<absl::string_view>& authorization) {
  if (authenticator == nullptr) return Caller{};
  absl::StatusOr<auth::Principal> p = authenticator->Authenticate(authorization);
  if (!p.ok()) return p.status();
  Caller caller;
  caller.tenant = p->tenant;
  caller.admin = p->role == auth::Role::kAdmin;
  caller.s3_buckets = p->s3_buckets;
  return caller;
}

}  // namespace signround::jobs
