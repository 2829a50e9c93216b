// The engine's result for one quantized Linear, as the exporters consume it:
// integer codes, fp16 scales and zero points, viewed in place (no copies).
// No LibTorch: the exporters are plain byte arithmetic.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "src/quant/layer_plan.h"

namespace signround {

struct IntegerLayer {
  std::string name;  // module prefix, e.g. "model.layers.3.mlp.down_proj"
  QuantScheme scheme;
  int64_t out = 0;  // N
  int64_t in = 0;   // K
  // U8 [out, in]: sym code = q + 2^(bits-1), asym code = q; in [0, 2^bits - 1].
  absl::string_view codes;
  // F16 bits [out, groups], little-endian; may be negative.
  absl::string_view scales;
  // U8 [out, groups]: 2^(bits-1) for sym, the tuned zero point for asym; empty for
  // scheme.float_min.
  absl::string_view zeros;
  // F16 bits [out, groups]: the real-valued minimums m of a scheme.float_min layer
  // (W^ = scale * code + m); empty otherwise.
  absl::string_view mins;
  // A k-quant layer (contract::IsKQuant(scheme.data_type)) has, instead of scales,
  // zeros and mins: U8 [out, groups] sub-block scales and (asymmetric) minimums as
  // KQuantBlock stores them, and F16 bits [out, in / 256] super-block d and dmin.
  absl::string_view sub_scales, sub_mins, d, dmin;

  // Elements per group along `in` (`in` itself for group_size -1).
  int64_t group() const { return scheme.group_size > 0 ? scheme.group_size : in; }
  int64_t groups() const { return (in + group() - 1) / group(); }

  uint8_t code(int64_t n, int64_t k) const { return static_cast<uint8_t>(codes[n * in + k]); }
  uint8_t zero(int64_t n, int64_t g) const { return static_cast<uint8_t>(zeros[n * groups() + g]); }
  uint16_t scale_bits(int64_t n, int64_t g) const { return F16At(scales, n, g); }
  uint16_t min_bits(int64_t n, int64_t g) const { return F16At(mins, n, g); }
  // Super-block s of row n (k-quants).
  uint16_t d_bits(int64_t n, int64_t s) const { return F16Of(d, n * supers() + s); }
  uint16_t dmin_bits(int64_t n, int64_t s) const { return F16Of(dmin, n * supers() + s); }
  int64_t supers() const { return in / 256; }

 private:
  uint16_t F16At(absl::string_view bytes, int64_t n, int64_t g) const {
    return F16Of(bytes, n * groups() + g);
  }
  static uint16_t F16Of(absl::string_view bytes, int64_t i) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data()) + 2 * i;
    return static_cast<uint16_t>(p[0] | (p[1] << 8));
  }
};

}  // namespace signround
