#include "src/export/gptq_packing.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"

namespace signround {
namespace {

// qweight for a width that divides 32 (2, 4, 8 bits): word (r, n) holds codes
// [r * per, (r + 1) * per) of row n, LSB first (PackBitStream's layout without a word
// boundary inside a code). It is a transpose, done in tiles of 16 rows (one cache line of
// words per word row) by 64 codes, so the reads run along each row and the writes fill
// whole cache lines. Returns the OR of every code >> b (0 when all fit).
template <int b>
uint32_t PackQweight(const uint8_t* codes, int64_t K, int64_t N, int32_t* qweight) {
  constexpr int per = 32 / b;
  constexpr int64_t kRows = 16, kWords = 64 / per;
  const int64_t words = K / per;
  uint32_t overflow = 0;
  for (int64_t n0 = 0; n0 < N; n0 += kRows) {
    const int64_t n1 = std::min(N, n0 + kRows);
    for (int64_t r0 = 0; r0 < words; r0 += kWords) {
      const int64_t r1 = std::min(words, r0 + kWords);
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t n = n0; n < n1; ++n) {
          const uint8_t* c = codes + n * K + r * per;
          uint32_t w = 0;
          for (int j = 0; j < per; ++j) {
            w |= static_cast<uint32_t>(c[j]) << (j * b);
            overflow |= static_cast<uint32_t>(c[j]) >> b;
          }
          qweight[r * N + n] = static_cast<int32_t>(w);
        }
      }
    }
  }
  return overflow;
}

}  // namespace

absl::StatusOr<GptqTensors> PackLinear(const IntegerLayer& layer, ZeroPointFormat zeros,
                                       bool with_g_idx) {
  const int b = layer.scheme.bits;
  GptqTensors p;
  p.bits = b;
  p.in = layer.in;
  p.out = layer.out;
  p.groups = layer.groups();
  const int64_t K = p.in, N = p.out, G = p.groups;
  if (layer.scheme.float_min) {  // refused before tuning (CheckExportFormats)
    return absl::InternalError(absl::StrCat(
        layer.name, ": a real-valued minimum per group cannot be packed with integer zero points"));
  }
  if (K % 32 != 0 || N % 32 != 0) {
    return absl::InternalError(absl::StrCat(layer.name, ": [", N, ", ", K,
                                            "] is not a multiple of 32 in both dimensions"));
  }
  const uint32_t maxq = (1u << b) - 1;
  // qweight: column n is one stream of K codes along k.
  p.qweight.assign(K * b / 32 * N, 0);
  const uint8_t* all = reinterpret_cast<const uint8_t*>(layer.codes.data());
  auto code_error = [&]() -> absl::Status {
    for (int64_t i = 0; i < N * K; ++i) {
      if (all[i] > maxq) {
        return absl::InternalError(absl::StrCat(layer.name, ": code ", int{all[i]}, " at row ",
                                                i / K, " does not fit ", b, " bits"));
      }
    }
    return absl::OkStatus();
  };
  uint32_t overflow = 0;
  switch (b) {
    case 2:
      overflow = PackQweight<2>(all, K, N, p.qweight.data());
      break;
    case 4:
      overflow = PackQweight<4>(all, K, N, p.qweight.data());
      break;
    case 8:
      overflow = PackQweight<8>(all, K, N, p.qweight.data());
      break;
    default:  // 3 bits: codes cross word boundaries
      SR_RETURN_IF_ERROR(code_error());
      for (int64_t n = 0; n < N; ++n) PackBitStream(all + n * K, 1, K, b, p.qweight.data() + n, N);
  }
  if (overflow != 0) return code_error();
  // qzeros: row g is one stream of N stored zero points along n; scales transposed.
  p.qzeros.assign(G * (N * b / 32), 0);
  p.scales.resize(G * N);
  std::vector<uint8_t> stored(N);
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t n = 0; n < N; ++n) {
      const int zp = layer.zero(n, g);
      if (zeros == ZeroPointFormat::kV1 && zp == 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            layer.name, ": row ", n, ", group ", g,
            " has zero point 0, which the GPTQ v1 zero-point format (stored as zp - 1) cannot "
            "represent; pack asymmetric layers with v2 zero points (ZeroPointsFor)"));
      }
      if (static_cast<uint32_t>(zp) > maxq) {
        return absl::InternalError(
            absl::StrCat(layer.name, ": zero point ", zp, " does not fit ", b, " bits"));
      }
      stored[n] = static_cast<uint8_t>(zeros == ZeroPointFormat::kV1 ? zp - 1 : zp);
      p.scales[g * N + n] = layer.scale_bits(n, g);
    }
    PackBitStream(stored.data(), 1, N, b, p.qzeros.data() + g * (N * b / 32), 1);
  }
  if (with_g_idx) {
    p.g_idx.resize(K);
    for (int64_t k = 0; k < K; ++k) p.g_idx[k] = static_cast<int32_t>(k / layer.group());
  }
  return p;
}

}  // namespace signround
