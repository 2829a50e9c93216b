#include "src/quant/scale_search.h"

#include <ATen/core/grad_mode.h>

#include <utility>

#include "src/contract/scheme.h"

namespace signround {
namespace {

at::Tensor Sum(const at::Tensor& x) {
  const int64_t dims[] = {1};
  return x.sum(at::IntArrayRef(dims), /*keepdim=*/true);
}

// `importance` ([in]) per row of the grouped weight [rows, g]: row r holds input channels
// (r % G) * g ... + g; the padding of a last partial group weighs 0.
at::Tensor ImportanceRows(const GroupedWeight& w, const at::Tensor& importance) {
  at::Tensor imp = importance.to(w.groups.device(), at::kFloat).reshape({-1});
  const int64_t padded = w.num_groups() * w.group;
  if (padded > w.in) imp = at::constant_pad_nd(imp, {0, padded - w.in}, 0.0);
  return imp.reshape({1, w.num_groups(), w.group})
      .expand({w.out, w.num_groups(), w.group})
      .reshape({-1, w.group});
}

// The per-weight search weights [rows, g]: with importance imp * sqrt(sigma2 + w^2),
// sigma2 = 2 * mean(w^2) over `span` consecutive rows (a k-quant's super-block, or one group).
at::Tensor SearchWeights(const GroupedWeight& w, const at::Tensor& importance, bool sym,
                         int64_t span) {
  const at::Tensor& x = w.groups;
  const at::Tensor x2 = x * x;
  if (importance.defined()) {
    const int64_t rows = span / w.group;
    at::Tensor sigma2 =
        (Sum(x2).reshape({-1, rows}).sum(1, /*keepdim=*/true) * (2.0 / static_cast<double>(span)))
            .repeat_interleave(rows, 0);
    return ImportanceRows(w, importance) * at::sqrt(sigma2 + x2);
  }
  if (sym) return x2;
  return at::sqrt(Sum(x2) / static_cast<double>(w.group)) + x.abs();
}

// make_qkx2 / make_qkx3: the best (scale, min <= 0) per row over iscale candidates
// (rmin + rdelta * i + nmax) / (max - min), i in [0, nstep], each refined by least squares.
std::pair<at::Tensor, at::Tensor> SearchAsym(const at::Tensor& x, const at::Tensor& wt, int nmax,
                                             double rmin, double rdelta, int nstep) {
  at::Tensor mn = std::get<0>(x.min(1, /*keepdim=*/true)).clamp_max(0.0);
  at::Tensor mx = std::get<0>(x.max(1, /*keepdim=*/true));
  at::Tensor range = mx - mn;
  at::Tensor safe_range = at::where(range > 0, range, at::ones_like(range));
  at::Tensor sum_w = Sum(wt), sum_x = Sum(wt * x);
  auto error = [&](const at::Tensor& scale, const at::Tensor& min, const at::Tensor& l) {
    return Sum(wt * (scale * l + min - x).pow(2));
  };
  at::Tensor best_scale = range / nmax;
  at::Tensor best_min = mn;
  at::Tensor l0 = at::clamp(at::round((x - mn) * (nmax / safe_range)), 0, nmax);
  at::Tensor best_err = error(best_scale, best_min, l0);
  for (int i = 0; i <= nstep; ++i) {
    at::Tensor iscale = (rmin + rdelta * i + nmax) / safe_range;
    at::Tensor l = at::clamp(at::round(iscale * (x - mn)), 0, nmax);
    at::Tensor sl = Sum(wt * l), sl2 = Sum(wt * l * l), sxl = Sum(wt * l * x);
    at::Tensor d = sum_w * sl2 - sl * sl;
    at::Tensor safe_d = at::where(d > 0, d, at::ones_like(d));
    at::Tensor scale = (sum_w * sxl - sum_x * sl) / safe_d;
    at::Tensor min = (sl2 * sum_x - sl * sxl) / safe_d;
    at::Tensor positive = min > 0;  // the minimum is at most 0: refit the scale alone
    at::Tensor safe_sl2 = at::where(sl2 > 0, sl2, at::ones_like(sl2));
    scale = at::where(positive, sxl / safe_sl2, scale);
    min = at::where(positive, at::zeros_like(min), min);
    at::Tensor err = error(scale, min, l);
    at::Tensor better = (d > 0) & (err < best_err) & (range > 0);
    best_scale = at::where(better, scale, best_scale);
    best_min = at::where(better, min, best_min);
    best_err = at::where(better, err, best_err);
  }
  return {best_scale, best_min};
}

// The integer asymmetric scheme's search: W^ = s * (q - zp) with an integer zero point
// zp = round(-min / s), so unlike make_qkx3 the minimum is not free. Per row the best s over
// range / (maxq + rmin + rdelta * i), i in [0, nstep], each refitted by least squares with its
// levels (and zero point) fixed; the full range's plain rounding is the starting point.
std::pair<at::Tensor, at::Tensor> SearchAsymInt(const at::Tensor& x, const at::Tensor& wt, int maxq,
                                                double rmin, double rdelta, int nstep) {
  at::Tensor mn = std::get<0>(x.min(1, /*keepdim=*/true)).clamp_max(0.0);
  at::Tensor range = std::get<0>(x.max(1, /*keepdim=*/true)).clamp_min(0.0) - mn;
  at::Tensor ok = range > 0;
  auto levels = [&](const at::Tensor& scale, at::Tensor* zp) {
    const at::Tensor safe = at::where(ok, scale, at::ones_like(scale));
    *zp = at::clamp(at::round(-mn / safe), 0, maxq);
    return at::clamp(at::round(x / safe) + *zp, 0, maxq) - *zp;
  };
  at::Tensor best_scale = range / maxq, best_zp;
  at::Tensor best_err = Sum(wt * (best_scale * levels(best_scale, &best_zp) - x).pow(2));
  for (int i = 0; i <= nstep; ++i) {
    at::Tensor zp;
    const at::Tensor l = levels(range / (maxq + rmin + rdelta * i), &zp);
    const at::Tensor sl2 = Sum(wt * l * l);
    const at::Tensor scale = Sum(wt * l * x) / at::where(sl2 > 0, sl2, at::ones_like(sl2));
    const at::Tensor err = Sum(wt * (scale * l - x).pow(2));
    const at::Tensor better = ok & (sl2 > 0) & (scale > 0) & (err < best_err);
    best_scale = at::where(better, scale, best_scale);
    best_zp = at::where(better, zp, best_zp);
    best_err = at::where(better, err, best_err);
  }
  return {best_scale, best_zp};
}

// make_qx_quants: the best signed scale per row over iscale = -(nmax + 0.1 i) / max,
// i in [-9, 9], with max the value of largest magnitude, each refined by least squares.
at::Tensor SearchSym(const at::Tensor& x, const at::Tensor& wt, int nmax) {
  at::Tensor idx = x.abs().argmax(1, /*keepdim=*/true);
  at::Tensor mx = at::gather(x, 1, idx);
  at::Tensor safe_mx = at::where(mx != 0, mx, at::ones_like(mx));
  at::Tensor best_scale = -mx / nmax;  // the plain rounding's scale
  at::Tensor best_score = at::full_like(mx, -1.0);
  for (int i = -9; i <= 9; ++i) {
    at::Tensor iscale = -(nmax + 0.1 * i) / safe_mx;
    at::Tensor l = at::clamp(at::round(iscale * x), -nmax, nmax - 1);
    at::Tensor sxl = Sum(wt * x * l), sl2 = Sum(wt * l * l);
    at::Tensor safe_sl2 = at::where(sl2 > 0, sl2, at::ones_like(sl2));
    // Maximising sxl^2 / sl2 minimises the weighted error at the least-squares scale.
    at::Tensor score = at::where(sl2 > 0, sxl * sxl / safe_sl2, at::full_like(sl2, -1.0));
    at::Tensor better = (score > best_score) & (mx != 0);
    best_scale = at::where(better, sxl / safe_sl2, best_scale);
    best_score = at::where(better, score, best_score);
  }
  return best_scale;
}

// Scales both extremes by r so that the dominant one gives the symmetric qdq scale |scale|
// (its sign follows the dominant extreme, as the searched scale's does).
void SetSymRange(GroupedWeight& w, const at::Tensor& scale, int nmax) {
  const at::Tensor extreme = at::maximum(-w.wmin0, w.wmax0);
  const at::Tensor safe = at::where(extreme > 0, extreme, at::ones_like(extreme));
  const at::Tensor r = at::where(extreme > 0, scale.abs() * nmax / safe, at::ones_like(safe));
  w.wmin0 = w.wmin0 * r;
  w.wmax0 = w.wmax0 * r;
}

// An integer symmetric scheme's range after SetSymRange: the extreme that does not dominate
// set to 0, so that the qdq's scale is the dominant one's alone. Tuning then moves one factor
// on the searched scale and never changes its sign, as the reference's v2 tunes its max_scale
// on the searched init_scale. With both extremes kept, tuning that shrank the dominant one
// below the other flipped the scale's sign, and with it which side holds the extra level.
void KeepDominantExtreme(GroupedWeight& w) {
  const at::Tensor negative = -w.wmin0 > w.wmax0;
  w.wmin0 = at::where(negative, w.wmin0, at::zeros_like(w.wmin0));
  w.wmax0 = at::where(negative, at::zeros_like(w.wmax0), w.wmax0);
}

}  // namespace

void KQuantSearchRange(GroupedWeight& w, const QuantScheme& scheme, const at::Tensor& importance) {
  at::NoGradGuard no_grad;
  const contract::KQuantInfo& k = contract::KQuantOf(scheme.data_type);
  const at::Tensor wt = SearchWeights(w, importance, k.sym, contract::kKQuantSuperBlock);
  if (!k.sym) {
    const int nmax = (1 << k.bits) - 1;
    // llama.cpp's grids: with an importance matrix make_qkx3_quants' (-0.9, 0.05, 36); else
    // quantize_row_q*_K_ref's make_qkx2_quants (Q2_K -0.5, 0.1, 15; Q4_K -1, 0.1, 20; Q5_K
    // -0.5, 0.1, 15).
    double rmin = -0.9, rdelta = 0.05;
    int nstep = 36;
    if (!importance.defined()) {
      rmin = k.bits == 4 ? -1.0 : -0.5;
      rdelta = 0.1;
      nstep = k.bits == 4 ? 20 : 15;
    }
    auto [scale, min] = SearchAsym(w.groups, wt, nmax, rmin, rdelta, nstep);
    w.wmin0 = min;
    w.wmax0 = min + nmax * scale;
  } else {
    SetSymRange(w, SearchSym(w.groups, wt, 1 << (k.bits - 1)), 1 << (k.bits - 1));
  }
}

void IntSearchRange(GroupedWeight& w, const QuantScheme& scheme, const at::Tensor& importance) {
  at::NoGradGuard no_grad;
  const at::Tensor wt = SearchWeights(w, importance, scheme.sym, w.group);
  if (scheme.sym) {
    const int nmax = 1 << (scheme.bits - 1);
    SetSymRange(w, SearchSym(w.groups, wt, nmax), nmax);
    KeepDominantExtreme(w);
    return;
  }
  const int maxq = (1 << scheme.bits) - 1;
  auto [scale, zp] = SearchAsymInt(w.groups, wt, maxq, -0.9, 0.05, 36);
  w.wmin0 = -zp * scale;
  w.wmax0 = w.wmin0 + maxq * scale;
}

double WidenSearchedRange(GroupedWeight& w, RoundingParams& params) {
  at::NoGradGuard no_grad;
  // Powers of two: alpha * wmin0 and beta * wmax0 are the searched extremes exactly.
  w.wmin0 = w.wmin0 * 2.0;
  w.wmax0 = w.wmax0 * 2.0;
  params.alpha.fill_(0.5);
  params.beta.fill_(0.5);
  return 0.5;
}

}  // namespace signround
