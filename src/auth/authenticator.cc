#include "src/auth/authenticator.h"

#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"

namespace signround::auth {

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Load(const std::string& path) {
  std::unique_ptr<Authenticator> a(new Authenticator(path));
  SR_RETURN_IF_ERROR(a->Reload());
  return a;
}

absl::Status Authenticator::Reload() {
  SR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path_, kMaxTokensFileBytes));
  SR_ASSIGN_OR_RETURN(TokenTable table, TokenTable::Parse(text, path_));
  auto shared = std::make_shared<const TokenTable>(std::move(table));
  std::lock_guard<std::mutex> lock(mu_);
  table_ = std::move(shared);
  return absl::OkStatus();
}

size_t Authenticator::token_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return table_ ? table_->token_count() : 0;
}

absl::StatusOr<Principal> Authenticator::Authenticate(
    const std::vector<absl::string_view>& values) const {
  std::shared_ptr<const TokenTable> table;
  {
    std::lock_guard<std::mutex> lock(mu_);
    table = table_;
  }
  return auth::Authenticate(*table, values);
}

}  // namespace signround::auth
