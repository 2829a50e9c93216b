// The initial scale search of a layer: per group (a GGUF k-quant's sub-block), the scale
// (and minimum) that minimises the weighted squared rounding error over a grid of
// candidates, each refined by weighted least squares, as llama.cpp's quantizers
// search (ggml-quants.c make_qkx2_quants / make_qkx3_quants for the asymmetric
// types, make_qx_quants for the symmetric ones). The weights are llama.cpp's: with
// an importance vector (the mean square of the Linear's inputs per input channel,
// what its importance matrix holds) imp[k] * sqrt(sigma2 + w^2), sigma2 = 2 * mean(w^2)
// over the super-block; without, sqrt(mean_sub-block(w^2)) + |w| (asymmetric) or w^2
// (symmetric). The result becomes the range that tuning's alpha and beta scale (an integer
// scheme's widened first: WidenSearchedRange).
// The integer schemes use the same search with the importance weights (sigma2 over
// the group): the `scale_search` setting, and with iters 0 the opt_rtn recipe.
#pragma once

#include <ATen/ATen.h>

#include "src/quant/qdq.h"

namespace signround {

// Sets `w`'s wmin0 and wmax0 (the extremes alpha and beta scale, ALGORITHM.md section 1)
// to each sub-block's searched range, so that alpha = beta = 1 (and V = 0) quantize as
// the search found: asymmetric, wmin0 = min and wmax0 = min + maxq * scale; symmetric,
// both scaled so the dominant extreme gives the searched scale. `scheme` must be a
// k-quant; `importance` is [in] (fp32) or undefined.
void KQuantSearchRange(GroupedWeight& w, const QuantScheme& scheme,
                       const at::Tensor& importance = at::Tensor());

// The same for an integer scheme (sym or asym; not float_min, not a k-quant), always
// weighted by `importance` ([in], fp32, the mean square of the layer's inputs per input
// channel) times sqrt(2 * mean_group(w^2) + w^2): symmetric make_qx_quants' grid (the
// dominant extreme scaled so the qdq's scale is the searched one, the other set to 0, so
// that tuning keeps the scale's sign); asymmetric, make_qkx3's grid of scales with the
// integer zero point the qdq will use (wmin0 = -zp * scale, wmax0 = wmin0 + maxq * scale,
// so the qdq's zp = round(-wmin0 / s) is zp again).
void IntSearchRange(GroupedWeight& w, const QuantScheme& scheme, const at::Tensor& importance);

// Tuning from a searched range: the searched extremes doubled and alpha = beta = 0.5, so
// that iteration 0 quantizes exactly as the search found (powers of two), and tuning may move
// each extreme within [0, 2] times the searched one. Returns the factor (0.5) on alpha's and
// beta's steps that keeps a step's move of an extreme at minmax_lr times the searched one:
// the reference's v2, which tunes a factor on its searched scale clamped to [0, 2]. Left
// within [0, 1] times the searched extremes, tuning could only clip further what the search
// may already have clipped (v2 against v1 at W2G32: lower on 4 of 7 tiny models, 0.26% on
// average; this way 5 of 7, 0.50%; doubled without the half steps, 5 of 7, 0.28%).
double WidenSearchedRange(GroupedWeight& w, RoundingParams& params);

}  // namespace signround
