// GPTQ-style packing of a quantized Linear (FORMATS.md, "auto_round / GPTQ
// packed checkpoints"): qweight, qzeros, scales and g_idx from the engine's
// integer codes, and the reverse.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "src/export/integer_layer.h"
#include "src/model/packed_linear.h"
#include "src/tensor/bit_stream.h"

namespace signround {

// One quantized Linear in packed form, little-endian host arrays.
struct GptqTensors {
  int bits = 0;
  int64_t in = 0;   // K
  int64_t out = 0;  // N
  int64_t groups = 0;
  std::vector<int32_t> qweight;  // [K * bits / 32, N]
  std::vector<int32_t> qzeros;   // [groups, N * bits / 32]
  std::vector<uint16_t> scales;  // F16 bits, [groups, N]
  std::vector<int32_t> g_idx;    // [K], g_idx[k] = k / group; empty when not asked for

  std::vector<int64_t> qweight_shape() const { return {in * bits / 32, out}; }
  std::vector<int64_t> qzeros_shape() const { return {groups, out * bits / 32}; }
  std::vector<int64_t> scales_shape() const { return {groups, out}; }
};

// Packs `layer`. `in` and `out` must be multiples of 32 (INTERNAL otherwise:
// the plan keeps such layers 16-bit). A zero point of 0 cannot be stored as
// v1: FAILED_PRECONDITION naming the layer (the exporters pack every job with an
// asymmetric layer as v2, ZeroPointsFor, so they never ask for it).
absl::StatusOr<GptqTensors> PackLinear(const IntegerLayer& layer, ZeroPointFormat zeros,
                                       bool with_g_idx);

}  // namespace signround
