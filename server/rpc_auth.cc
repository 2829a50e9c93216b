#include "server/rpc_auth.h"

#include <vector>

namespace signround::server {

absl::StatusOr<jobs::Caller> CallerOf(const grpc::ServerContext& context,
                                      const auth::Authenticator* authenticator) {
  if (authenticator == nullptr) return jobs::Caller{};
  std::vector<absl::string_view> values;
  const auto range = context.client_metadata().equal_range("authorization");
  for (auto it = range.first; it != range.second; ++it) {
    values.emplace_back(it->second.data(), it->second.size());
  }
  absl::StatusOr<auth::Principal> p = authenticator->Authenticate(values);
  if (!p.ok()) return p.status();
  jobs::Caller caller;
  caller.tenant = p->tenant;
  caller.admin = p->role == auth::Role::kAdmin;
  caller.s3_buckets = p->s3_buckets;
  return caller;
}

}  // namespace signround::server
