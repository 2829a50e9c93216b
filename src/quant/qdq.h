// Integer weight quantize-dequantize of one Linear (ALGORITHM.md section 1),
// differentiable in the tuning parameters V, alpha and beta through the
// straight-through estimator.
#pragma once

#include <ATen/ATen.h>

#include "src/quant/layer_plan.h"

namespace signround {

// A [out, in] weight viewed as groups along `in`: [out * G, g], zero-padded,
// with the per-group extremes of the ORIGINAL weight.
struct GroupedWeight {
  at::Tensor groups;  // [out * G, g], fp32
  // The extremes alpha and beta scale: [out * G, 1] min(min(W_g), 0) and max(max(W_g), 0)
  // (a k-quant layer's searched range instead: KQuantSearchRange).
  at::Tensor wmin0;
  at::Tensor wmax0;
  at::Tensor gmin;  // [out * G, 1]: min(W_g), the float_min scheme's extremes
  at::Tensor gmax;  // [out * G, 1]: max(W_g)
  int64_t out = 0;
  int64_t in = 0;
  int64_t group = 0;  // g: group_size, or `in` for -1 / in < group_size
  int64_t num_groups() const { return (in + group - 1) / group; }
};

GroupedWeight GroupWeight(const at::Tensor& weight, int group_size);

// The tuning parameters of one layer, fp32: V [out * G, g] (init 0), alpha and
// beta [out * G, 1] (init 1, clamped to [0, 1] before every use).
struct RoundingParams {
  at::Tensor v;
  at::Tensor alpha;
  at::Tensor beta;
};

// Zero V and unit alpha/beta: what RTN (and tuning iteration 0) uses.
RoundingParams InitialRoundingParams(const GroupedWeight& w);

struct QdqResult {
  at::Tensor dequant;  // W^, [out, in], fp32, padding dropped
  at::Tensor q;        // integer levels, [out * G, g] fp32: sym in [-nmax, nmax-1], asym [0, maxq]
  at::Tensor scale;    // [out * G, 1] fp32 holding fp16-representable values (may be < 0)
  // [out * G, 1]: nmax for sym, the rounded zero point for asym, the fp16-representable
  // minimum m for float_min (W^ = s * q + m), the sub-block's m' for an asymmetric
  // k-quant (W^ = s * q - m')
  at::Tensor zero;
  // k-quant schemes only (no gradient): the sub-block's stored integer scale and minimum
  // [out * G, 1] (as KQuantBlock holds them: Q3_K sc + 32, Q6_K the int8's bits) and the
  // super-block's d and dmin [out * in / 256, 1] (fp16-representable); `scale` is then
  // d * sc (Q3_K: d * (sc - 32)), `zero` dmin * m for the asymmetric types.
  at::Tensor sub_scale, sub_min, d, dmin;
};

// Scales are rounded to fp16 inside (the exported dtype); `thr` is 1e-5.
// A k-quant scheme (contract::IsKQuant; `in` a multiple of 256) quantizes the sub-block
// scales (and minimums) to the type's integer bits against the super-block's fp16 d (and
// dmin), exactly as the GGUF file holds them: see KQuantDequant in qdq.cc.
// `dequant`, `scale` and `zero` carry the gradient in V, alpha and beta; `q` carries none.
QdqResult QuantDequant(const GroupedWeight& w, const QuantScheme& scheme,
                       const RoundingParams& params);

// W^ alone, [out, in], for tuning: bit for bit the values and the gradients in V, alpha and
// beta of QuantDequantReference(w, scheme, params).dequant.to(weight_dtype).to(out_dtype)
// (whose casts hand the gradient back through weight_dtype, so it is rounded to it on the way),
// but as one custom autograd node per layer that saves only W, V and the per-group scale and
// zero point and recomputes the levels and clamp mask in backward. The full-size work runs in
// chunks of rows: besides the incoming gradient, the only full-size tensors are W^ (forward)
// and the gradient of V (backward).
at::Tensor QuantDequantWeight(const GroupedWeight& w, const QuantScheme& scheme,
                              const RoundingParams& params,
                              at::ScalarType weight_dtype = at::kFloat,
                              at::ScalarType out_dtype = at::kFloat);

// The plain composite-op formulation of QuantDequant (every op a full-size tensor that autograd
// may save): the reference the tests hold QuantDequant and QuantDequantWeight to.
QdqResult QuantDequantReference(const GroupedWeight& w, const QuantScheme& scheme,
                                const RoundingParams& params);

// x + (round(x) - x).detach(), round half to even.
at::Tensor RoundSte(const at::Tensor& x);

// Stored integer codes [out, in] (uint8, in [0, 2^bits - 1]), scales [out, G]
// and zero points [out, G] (uint8), per FORMATS.md: sym code = q + nmax with
// zero point nmax; asym code = q with its zero point. A float_min scheme has
// fp16 minimums [out, G] instead of zero points (code = q, W^ = s * q + m).
// A k-quant scheme has codes (Q3_K q + 4, Q6_K q + 32) and, instead of scales and
// zeros, its integers: sub_scales and (asymmetric) sub_mins uint8 [out, G], and the
// super-blocks' d and (asymmetric) dmin fp16 [out, in / 256].
struct IntegerWeight {
  at::Tensor codes;
  at::Tensor scales;                         // fp16
  at::Tensor zeros;                          // uint8; undefined for float_min
  at::Tensor mins;                           // fp16; float_min only
  at::Tensor sub_scales, sub_mins, d, dmin;  // k-quants only
};
IntegerWeight ToIntegerWeight(const GroupedWeight& w, const QuantScheme& scheme,
                              const QdqResult& r);

}  // namespace signround
