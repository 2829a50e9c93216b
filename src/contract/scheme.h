// The quantization scheme of one layer and the rules every part checks it by:
// the service (job_validation), the worker's flags and layer configs, the
// engine (layer_plan) and the exporters. The one place a scheme rule lives.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace signround::contract {

// What a layer's weights become. Integer codes with a per-group scale (and
// zero) are all there is today; k-quant super-blocks and float types come next
// as further values, each with its own rules in ValidateQuantScheme.
enum class DataType { kInt };

// Fields in this order: code writes QuantScheme{bits, group_size, sym}.
struct QuantScheme {
  int bits = 4;          // one of kSchemeBits
  int group_size = 128;  // > 0, or -1 for one group per output row
  bool sym = true;
  // Asymmetric only: the group's zero is a real-valued minimum m (fp16) instead of an
  // integer zero point: W^ = s * q + m, q in [0, 2^bits - 1], from the group's own min and
  // max (not clamped to include 0). What GGUF's Q4_1 stores (d = s, m); set by
  // UseFloatMin (export_formats.h) on the layers a GGUF job stores as Q4_1. auto_round
  // and auto_gptq cannot store it.
  bool float_min = false;
  DataType data_type = DataType::kInt;
};

// The same data type, bits, group size, symmetry and zero representation.
bool SameScheme(const QuantScheme& a, const QuantScheme& b);

// The weight bits a scheme may have, and the layer-override value that keeps a
// layer in 16 bits.
inline constexpr int kSchemeBits[] = {2, 3, 4, 8};
inline constexpr int kKeepBits = 16;
bool IsSchemeBits(int bits);
// kSchemeBits joined as "2, 3, 4, 8" (`last` between the last two: ", " or " or "),
// with kKeepBits appended when `with_keep`.
std::string SchemeBitsList(const char* last = ", ", bool with_keep = false);

// The group sizes a job request may name: -1 (per output channel) or a power of
// two from 32 to 65536. (The engine takes any positive size, see ValidateQuantScheme.)
bool IsRequestGroupSize(int group_size);

// INVALID_ARGUMENT naming the bad field when the engine cannot run `scheme`.
absl::Status ValidateQuantScheme(const QuantScheme& scheme);

// "4-bit g128 sym", "4-bit g32 asym float-min" (reports and refusals).
std::string DescribeScheme(const QuantScheme& scheme);
// "4-bit symmetric group 128" (the GGUF refusals' wording).
std::string DescribeSchemeLong(const QuantScheme& scheme);

}  // namespace signround::contract
