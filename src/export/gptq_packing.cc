#include "src/export/gptq_packing.h"

#include "absl/strings/str_cat.h"

namespace signround {

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
  for (int64_t n = 0; n < N; ++n) {
    const uint8_t* codes = reinterpret_cast<const uint8_t*>(layer.codes.data()) + n * K;
    for (int64_t k = 0; k < K; ++k) {
      if (codes[k] > maxq) {
        return absl::InternalError(absl::StrCat(layer.name, ": code ", int{codes[k]}, " at row ", n,
                                                " does not fit ", b, " bits"));
      }
    }
    PackBitStream(codes, 1, K, b, p.qweight.data() + n, N);
  }
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
