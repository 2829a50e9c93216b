// Token-id datasets for calibration and evaluation: JSONL files of
// {"input_ids": [...]} rows, and the selection of calibration samples
// (ALGORITHM.md section 3). No LibTorch here; src/data/token_tensor.h builds
// tensors from the rows.
//
// The row type is plain token ids, so a text reader (a later tokenizer) only
// has to produce the same rows; selection does not care where they came from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace signround {

using TokenRow = std::vector<int32_t>;

// Reads a JSONL file, one {"input_ids": [non-negative integers]} object per
// line; empty (or all-whitespace) lines are skipped. Every bad line is
// INVALID_ARGUMENT "<path>:<line>: <what is wrong>" with a 1-based line number.
absl::StatusOr<std::vector<TokenRow>> LoadTokenRows(const std::string& jsonl_path);

// The same for JSONL text; `label` (the path) starts error messages.
absl::StatusOr<std::vector<TokenRow>> ParseTokenRows(absl::string_view text,
                                                     absl::string_view label);

// INVALID_ARGUMENT "<label>: row R, position P: token id I is not below
// vocab_size V" (1-based row and position) for the first id >= vocab_size.
absl::Status CheckTokenIds(const std::vector<TokenRow>& rows, int64_t vocab_size,
                           absl::string_view label);

// Calibration samples: rows shorter than `seqlen` are dropped, longer rows
// keep their first `seqlen` tokens, and the first `nsamples` remaining rows
// are taken in order. INVALID_ARGUMENT "only N rows have at least S tokens,
// need M" when too few remain.
absl::StatusOr<std::vector<TokenRow>> SelectSamples(const std::vector<TokenRow>& rows,
                                                    int64_t nsamples, int64_t seqlen);

}  // namespace signround
