// LibTorch tensors from token rows (src/data/token_dataset.h).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "src/data/token_dataset.h"

namespace signround {

// [rows, T] int64 on the CPU from rows that all hold T >= 1 tokens (what
// SelectSamples returns). INVALID_ARGUMENT for no rows or unequal lengths.
absl::StatusOr<at::Tensor> TokenRowsToTensor(const std::vector<TokenRow>& rows);

// [rows, longest] int64 on the CPU; shorter rows are right-padded with
// `pad_id`. INVALID_ARGUMENT for no rows or only empty ones.
absl::StatusOr<at::Tensor> PadTokenRows(const std::vector<TokenRow>& rows, int64_t pad_id = 0);

}  // namespace signround
