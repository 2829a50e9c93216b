#include "server/rpc_auth.h"

#include <vector>

#include "src/jobs/caller_auth.h"

namespace signround::server {

absl::StatusOr<jobs::Caller> CallerOf(const grpc::ServerContext& context,
                                      const auth::Authenticator* authenticator) {
  std::vector<absl::string_view> values;
  const auto range = context.client_metadata().equal_range("authorization");
  for (auto it = range.first; it != range.second; ++it) {
    values.emplace_back(it->second.data(), it->second.size());
  }
  return jobs::AuthenticateCaller(authenticator, values);
}

}  // namespace signround::server
