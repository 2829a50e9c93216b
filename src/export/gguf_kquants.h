// llama.cpp's k-quant super-blocks (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; ggml-common.h) packed
// from integer data: the levels, sub-block scales and mins, and fp16 super-block scales
// exactly as the block stores them. No rounding happens here; the caller has chosen every
// stored value, and KQuantValue() is the weight llama.cpp will dequantize from the bytes.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "src/export/gguf_file.h"

namespace signround {

inline constexpr int kKQuantBlockElements = 256;  // llama.cpp's QK_K

// One super-block of 256 weights of a k-quant type in integer form: exactly what the
// block stores.
struct KQuantBlock {
  // The stored level of each weight: Q2_K 0..3, Q3_K 0..7 (the weight is (q - 4) * scale),
  // Q4_K 0..15, Q5_K 0..31, Q6_K 0..63 (the weight is (q - 32) * scale).
  uint8_t q[kKQuantBlockElements];
  // Per sub-block (Q2_K, Q3_K, Q6_K: 16 sub-blocks of 16 weights; Q4_K, Q5_K: 8 of 32,
  // entries 8..15 unused): Q2_K 0..15; Q3_K 0..63 (the signed scale is sc - 32);
  // Q4_K/Q5_K 0..63; Q6_K the int8 scale's bits (static_cast<uint8_t>(int8)).
  uint8_t scales[16];
  // Sub-block minimums for Q2_K (0..15), Q4_K/Q5_K (0..63); unused for Q3_K, Q6_K.
  uint8_t mins[16];
  uint16_t d = 0;     // fp16 bits of the super-block scale
  uint16_t dmin = 0;  // fp16 bits of the super-block min scale (Q2_K, Q4_K, Q5_K)
};

// Q2_K ... Q6_K.
bool IsKQuantType(GgmlType type);
// Weights per sub-block: 16 (Q2_K, Q3_K, Q6_K) or 32 (Q4_K, Q5_K); 0 for other types.
int KQuantSubBlock(GgmlType type);

// Appends the block's GgmlBlockBytes(type) bytes. INTERNAL naming the field and index
// (e.g. "q[17] = 16") when a used value is out of range, or when `type` is not a k-quant;
// nothing is appended then. Unused fields (see KQuantBlock) are ignored.
absl::Status PackKQuantBlock(GgmlType type, const KQuantBlock& block, std::string* out);

// The dequantized weight j (0..255) of the block as llama.cpp's dequantize_row_*_K computes
// it, in float with the same operation order, so the result is bit-identical:
// Q2_K/Q4_K/Q5_K (d*sc)*q - (dmin*m), Q3_K (d*(sc-32))*(q-4), Q6_K (d*int8(sc))*(q-32), with
// the sub-block j/16 or j/32. The fields are taken as they are (no range check).
float KQuantValue(GgmlType type, const KQuantBlock& block, int j);

}  // namespace signround
