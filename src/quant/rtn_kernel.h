// Round to nearest of one Linear without LibTorch, one pass per group, rows split over
// threads: the model-free RTN path (no calibration data) streams a checkpoint through it.
// Its results are QuantDequant's with InitialRoundingParams (V = 0, alpha = beta = 1) and
// ToIntegerWeight's, bit for bit: every operation is the composite ops' own, in their
// order, in fp32 (this file is built without FMA contraction). The tests hold it to them.
// (The one freedom: a group whose minimum or maximum is a zero held as both +0 and -0 may
// take the other zero, since the extremes are found in eight lanes.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/quant/layer_plan.h"
#include "src/tensor/dtype.h"

namespace signround {

// The integer weights of one Linear as IntegerLayer views them (U8 codes [out, in]; F16
// scales and U8 zeros, or F16 mins for float_min, [out, G]; a k-quant's U8 sub_scales and
// sub_mins [out, G] and F16 d and dmin [out, in / 256]; little-endian), and W^ [out, in]
// in the requested dtype when asked. Fields a scheme does not have stay empty.
struct RtnLayer {
  std::string codes, scales, zeros, mins, sub_scales, sub_mins, d, dmin;
  std::string dequant;
};

struct RtnOptions {
  // Also W^, in this dtype (F32, F16 or BF16: QuantDequant's fp32 W^ cast to it).
  std::optional<DType> dequant_dtype;
  int threads = 1;  // rows are split over this many threads
};

// Rounds the [out, in] weight whose raw bytes are `weight` (dtype F32, F16, BF16 or F64)
// to nearest under `scheme`. INVALID_ARGUMENT (naming the row) for a non-finite weight or
// one whose scale or minimum overflows fp16; `name` prefixes the messages.
absl::StatusOr<RtnLayer> RoundToNearest(absl::string_view name, absl::string_view weight,
                                        DType dtype, int64_t out, int64_t in,
                                        const QuantScheme& scheme, const RtnOptions& options);

}  // namespace signround
