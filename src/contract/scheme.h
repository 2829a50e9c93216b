// The quantization scheme of one layer and the rules every part checks it by:
// the service (job_validation), the worker's flags and layer configs, the
// engine (layer_plan) and the exporters. The one place a scheme rule lives.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace signround::contract {

// What a layer's weights become: integer codes with a per-group scale (and
// zero), or one of GGUF's k-quant types (super-blocks of kKQuantSuperBlock
// weights along a row, split into sub-blocks whose integer scales, and minimums,
// are scaled by an fp16 d, and dmin, per super-block; FORMATS.md). A k-quant
// scheme's bits, group_size (its sub-block) and sym are the type's (KQuantOf).
enum class DataType { kInt, kQ2_K, kQ3_K, kQ4_K, kQ5_K, kQ6_K };

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

inline constexpr DataType kKQuantTypes[] = {DataType::kQ2_K, DataType::kQ3_K, DataType::kQ4_K,
                                            DataType::kQ5_K, DataType::kQ6_K};
inline constexpr int kKQuantSuperBlock = 256;

struct KQuantInfo {
  const char* name;  // "q4_k", as layer configs and reports name it
  int bits;          // levels per weight: 2^bits
  int group_size;    // weights per sub-block: 16 or 32
  bool sym;          // Q3_K, Q6_K: signed scales, no minimums
  int scale_bits;    // bits of each sub-block scale (and minimum): 4, 6 or 8
};
bool IsKQuant(DataType type);
// The k-quant type's rules; `type` must be one (kInt gives Q4_K's).
const KQuantInfo& KQuantOf(DataType type);
// The scheme of a k-quant type's layers.
QuantScheme KQuantScheme(DataType type);
// "int", "q2_k", ...; ParseDataType reads them back (nullopt for another name).
const char* DataTypeName(DataType type);
std::optional<DataType> ParseDataType(absl::string_view name);

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

// "4-bit g128 sym", "4-bit g32 asym float-min", "q4_k" (reports and refusals).
std::string DescribeScheme(const QuantScheme& scheme);
// "4-bit symmetric group 128", "Q4_K" (the GGUF refusals' wording).
std::string DescribeSchemeLong(const QuantScheme& scheme);

}  // namespace signround::contract
