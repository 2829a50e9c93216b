#include "src/export/gguf_kquants.h"

#include "absl/strings/str_cat.h"
#include "src/tensor/half.h"

// KQuantValue must round like llama.cpp: products, then a difference, each rounded to float.
// This file is built with -ffp-contract=off (src/export/CMakeLists.txt) so that no target's
// FMA fuses them (Q6_K's d * sc * (q - 32) can need 25 bits, and is rounded twice).

namespace signround {
namespace {

constexpr int kN = kKQuantBlockElements;

// The ranges of a type's fields.
struct KQuantLimits {
  int q_bits;      // q is 0 .. 2^q_bits - 1
  int sub_blocks;  // used entries of scales[] (and mins[])
  int scale_max;   // 255: any byte
  int min_max;     // -1: mins unused
};

KQuantLimits LimitsOf(GgmlType type) {
  switch (type) {
    case GgmlType::kQ2_K:
      return {2, 16, 15, 15};
    case GgmlType::kQ3_K:
      return {3, 16, 63, -1};
    case GgmlType::kQ4_K:
      return {4, 8, 63, 63};
    case GgmlType::kQ5_K:
      return {5, 8, 63, 63};
    case GgmlType::kQ6_K:
      return {6, 16, 255, -1};
    default:
      return {0, 0, 0, -1};
  }
}

absl::Status OutOfRange(GgmlType type, absl::string_view field, int index, int value, int max) {
  return absl::InternalError(absl::StrCat(GgmlTypeName(type), " block: ", field, "[", index,
                                          "] = ", value, " is out of range (0..", max, ")"));
}

absl::Status CheckBlock(GgmlType type, const KQuantBlock& b) {
  const KQuantLimits lim = LimitsOf(type);
  const uint8_t q_max = static_cast<uint8_t>((1 << lim.q_bits) - 1);
  // One branch-free pass (vectorizable) over the levels; the slow search only on failure.
  uint8_t high = 0;
  for (int i = 0; i < kN; ++i) high |= b.q[i] & static_cast<uint8_t>(~q_max);
  if (high != 0) {
    for (int i = 0; i < kN; ++i) {
      if (b.q[i] > q_max) return OutOfRange(type, "q", i, b.q[i], q_max);
    }
  }
  for (int s = 0; s < lim.sub_blocks; ++s) {
    if (b.scales[s] > lim.scale_max)
      return OutOfRange(type, "scales", s, b.scales[s], lim.scale_max);
    if (lim.min_max >= 0 && b.mins[s] > lim.min_max) {
      return OutOfRange(type, "mins", s, b.mins[s], lim.min_max);
    }
  }
  return absl::OkStatus();
}

void PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xff);
  p[1] = static_cast<uint8_t>(v >> 8);
}

// The 2-bit planes of Q2_K and Q3_K (64 bytes): in each half of 128 weights, byte l holds
// weights l, l+32, l+64, l+96 in bits 0-1, 2-3, 4-5, 6-7.
void PutTwoBitPlanes(const uint8_t* q, uint8_t* qs) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* x = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      qs[32 * h + l] = static_cast<uint8_t>((x[l] & 3) | (x[l + 32] & 3) << 2 |
                                            (x[l + 64] & 3) << 4 | (x[l + 96] & 3) << 6);
    }
  }
}

// One bit per weight (32 bytes: Q3_K's hmask, Q5_K's qh): byte l, bit k is bit `bit` of
// weight 32k + l.
void PutBitPlane(const uint8_t* q, int bit, uint8_t* out) {
  for (int l = 0; l < 32; ++l) {
    uint8_t v = 0;
    for (int k = 0; k < 8; ++k) v |= static_cast<uint8_t>(((q[32 * k + l] >> bit) & 1) << k);
    out[l] = v;
  }
}

// Nibbles of Q4_K and Q5_K (128 bytes): per 64 weights, 32 bytes whose low nibbles are the
// first 32 weights and high nibbles the next 32.
void PutNibbles(const uint8_t* q, uint8_t* qs) {
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      qs[32 * c + l] = static_cast<uint8_t>((q[64 * c + l] & 15) | (q[64 * c + 32 + l] & 15) << 4);
    }
  }
}

// Q4_K's and Q5_K's 12 bytes of 6-bit scales and mins (llama.cpp's get_scale_min_k4): bytes
// 0-3 scales 0-3 in bits 0-5, bytes 4-7 mins 0-3 in bits 0-5; sub-blocks 4-7 keep their low
// 4 bits in bytes 8-11 (scale low nibble, min high nibble) and their top 2 bits in bits 6-7
// of bytes 0-3 (scale) and 4-7 (min).
void PutScaleMins(const uint8_t* sc, const uint8_t* m, uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>(sc[j] | (sc[j + 4] >> 4) << 6);
    out[j + 4] = static_cast<uint8_t>(m[j] | (m[j + 4] >> 4) << 6);
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
  }
}

// Q3_K's 12 bytes of 16 6-bit scales: bytes 0-7 hold the low nibbles of scales j (bits 0-3)
// and j+8 (bits 4-7); byte 8+k holds the top 2 bits of scales k, k+4, k+8, k+12 in bits
// 0-1, 2-3, 4-5, 6-7.
void PutQ3Scales(const uint8_t* sc, uint8_t* out) {
  for (int j = 0; j < 8; ++j) out[j] = static_cast<uint8_t>((sc[j] & 15) | (sc[j + 8] & 15) << 4);
  for (int k = 0; k < 4; ++k) {
    out[8 + k] = static_cast<uint8_t>((sc[k] >> 4) | (sc[k + 4] >> 4) << 2 | (sc[k + 8] >> 4) << 4 |
                                      (sc[k + 12] >> 4) << 6);
  }
}

// Q6_K's levels: ql (128 bytes) holds the low 4 bits, qh (64 bytes) the top 2. In each half of
// 128 weights, ql byte l holds weights l (low nibble) and l+64 (high), byte 32+l weights l+32
// and l+96; qh byte l holds weights l, l+32, l+64, l+96 in bits 0-1, 2-3, 4-5, 6-7.
void PutQ6Levels(const uint8_t* q, uint8_t* ql, uint8_t* qh) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* x = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      ql[64 * h + l] = static_cast<uint8_t>((x[l] & 15) | (x[l + 64] & 15) << 4);
      ql[64 * h + 32 + l] = static_cast<uint8_t>((x[l + 32] & 15) | (x[l + 96] & 15) << 4);
      qh[32 * h + l] = static_cast<uint8_t>((x[l] >> 4) | (x[l + 32] >> 4) << 2 |
                                            (x[l + 64] >> 4) << 4 | (x[l + 96] >> 4) << 6);
    }
  }
}

}  // namespace

bool IsKQuantType(GgmlType type) { return LimitsOf(type).q_bits != 0; }

int KQuantSubBlock(GgmlType type) {
  const int sub_blocks = LimitsOf(type).sub_blocks;
  return sub_blocks == 0 ? 0 : kN / sub_blocks;
}

absl::Status PackKQuantBlock(GgmlType type, const KQuantBlock& b, std::string* out) {
  if (!IsKQuantType(type)) {
    return absl::InternalError(absl::StrCat("PackKQuantBlock: ", GgmlTypeName(type), " (",
                                            static_cast<uint32_t>(type), ") is not a k-quant"));
  }
  if (absl::Status s = CheckBlock(type, b); !s.ok()) return s;
  uint8_t buf[210];  // the largest block, Q6_K
  switch (type) {
    case GgmlType::kQ2_K:  // scales[16] qs[64] d dmin
      for (int s = 0; s < 16; ++s) buf[s] = static_cast<uint8_t>(b.scales[s] | b.mins[s] << 4);
      PutTwoBitPlanes(b.q, buf + 16);
      PutU16(buf + 80, b.d);
      PutU16(buf + 82, b.dmin);
      break;
    case GgmlType::kQ3_K:  // hmask[32] qs[64] scales[12] d
      PutBitPlane(b.q, 2, buf);
      PutTwoBitPlanes(b.q, buf + 32);
      PutQ3Scales(b.scales, buf + 96);
      PutU16(buf + 108, b.d);
      break;
    case GgmlType::kQ4_K:  // d dmin scales[12] qs[128]
      PutU16(buf, b.d);
      PutU16(buf + 2, b.dmin);
      PutScaleMins(b.scales, b.mins, buf + 4);
      PutNibbles(b.q, buf + 16);
      break;
    case GgmlType::kQ5_K:  // d dmin scales[12] qh[32] qs[128]
      PutU16(buf, b.d);
      PutU16(buf + 2, b.dmin);
      PutScaleMins(b.scales, b.mins, buf + 4);
      PutBitPlane(b.q, 4, buf + 16);
      PutNibbles(b.q, buf + 48);
      break;
    case GgmlType::kQ6_K:  // ql[128] qh[64] scales[16] d
      PutQ6Levels(b.q, buf, buf + 128);
      for (int s = 0; s < 16; ++s) buf[192 + s] = b.scales[s];
      PutU16(buf + 208, b.d);
      break;
    default:
      break;
  }
  out->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(GgmlBlockBytes(type)));
  return absl::OkStatus();
}

float KQuantValue(GgmlType type, const KQuantBlock& b, int j) {
  const float d = F16ToFloat(b.d);
  const int q = b.q[j];
  switch (type) {
    case GgmlType::kQ2_K:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K: {
      const int s = j / KQuantSubBlock(type);
      const float dl = d * static_cast<float>(b.scales[s]);
      const float ml = F16ToFloat(b.dmin) * static_cast<float>(b.mins[s]);
      return dl * static_cast<float>(q) - ml;
    }
    case GgmlType::kQ3_K: {
      const float dl = d * static_cast<float>(int{b.scales[j / 16]} - 32);
      return dl * static_cast<float>(q - 4);
    }
    case GgmlType::kQ6_K: {
      const float dl = d * static_cast<float>(static_cast<int8_t>(b.scales[j / 16]));
      return dl * static_cast<float>(q - 32);
    }
    default:
      return 0.0f;
  }
}

}  // namespace signround
