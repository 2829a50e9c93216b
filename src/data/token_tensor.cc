#include "src/data/token_tensor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace signround {

absl::StatusOr<at::Tensor> TokenRowsToTensor(const std::vector<TokenRow>& rows) {
  if (rows.empty() || rows[0].empty()) {
    return absl::InvalidArgumentError("token rows: need at least one non-empty row");
  }
  for (size_t r = 1; r < rows.size(); ++r) {
    if (rows[r].size() != rows[0].size()) {
      return absl::InvalidArgumentError(absl::StrCat("token rows: row ", r + 1, " has ",
                                                     rows[r].size(), " tokens, row 1 has ",
                                                     rows[0].size()));
    }
  }
  return PadTokenRows(rows);
}

absl::StatusOr<at::Tensor> PadTokenRows(const std::vector<TokenRow>& rows, int64_t pad_id) {
  size_t longest = 0;
  for (const TokenRow& row : rows) longest = std::max(longest, row.size());
  if (longest == 0) {
    return absl::InvalidArgumentError("token rows: need at least one non-empty row");
  }
  const int64_t n = static_cast<int64_t>(rows.size()), t = static_cast<int64_t>(longest);
  at::Tensor ids = at::full({n, t}, pad_id, at::kLong);
  int64_t* data = ids.data_ptr<int64_t>();
  for (int64_t r = 0; r < n; ++r) {
    std::copy(rows[r].begin(), rows[r].end(), data + r * t);
  }
  return ids;
}

}  // namespace signround
