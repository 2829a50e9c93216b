#include "src/quant/qdq.h"

#include <ATen/core/grad_mode.h>

namespace signround {
namespace {

// The scale threshold as the fp16 value the exported scale can hold.
double ScaleThreshold() { return at::scalar_tensor(1e-5, at::kHalf).item<double>(); }

// Rounds to fp16 and back, keeping the gradient (the cast is linear for autograd).
at::Tensor RoundToHalf(const at::Tensor& x) { return x.to(at::kHalf).to(at::kFloat); }

}  // namespace

at::Tensor RoundSte(const at::Tensor& x) { return x + (at::round(x) - x).detach(); }

GroupedWeight GroupWeight(const at::Tensor& weight, int group_size) {
  GroupedWeight g;
  at::Tensor w = weight.to(at::kFloat);
  g.out = w.size(0);
  g.in = w.size(1);
  g.group = (group_size <= 0 || group_size > g.in) ? g.in : group_size;
  int64_t padded = g.num_groups() * g.group;
  if (padded != g.in) w = at::constant_pad_nd(w, {0, padded - g.in}, 0.0);
  g.groups = w.reshape({g.out * g.num_groups(), g.group}).contiguous();
  g.wmin0 = at::clamp_max(std::get<0>(g.groups.min(1, /*keepdim=*/true)), 0.0);
  g.wmax0 = at::clamp_min(std::get<0>(g.groups.max(1, /*keepdim=*/true)), 0.0);
  return g;
}

RoundingParams InitialRoundingParams(const GroupedWeight& w) {
  auto opts = w.groups.options();
  return {at::zeros_like(w.groups), at::ones({w.groups.size(0), 1}, opts),
          at::ones({w.groups.size(0), 1}, opts)};
}

QdqResult QuantDequant(const GroupedWeight& w, const QuantScheme& scheme, const RoundingParams& p) {
  const double thr = ScaleThreshold();
  at::Tensor alpha = at::clamp(p.alpha, 0.0, 1.0);
  at::Tensor beta = at::clamp(p.beta, 0.0, 1.0);
  QdqResult r;
  if (scheme.sym) {
    const double nmax = static_cast<double>(int64_t{1} << (scheme.bits - 1));
    at::Tensor a = -alpha * w.wmin0;
    at::Tensor c = beta * w.wmax0;
    // The dominant extreme maps to -nmax, so the sign of the scale follows it.
    at::Tensor sign = at::where(c < a, at::ones_like(a), -at::ones_like(a));
    at::Tensor s = RoundToHalf(sign * at::maximum(a, c) / nmax);
    s = at::where(s < 0, at::clamp_max(s, -thr), at::clamp_min(s, thr));
    r.q = at::clamp(RoundSte(w.groups / s + p.v), -nmax, nmax - 1);
    r.zero = at::full_like(s, nmax);
    r.scale = s;
    r.dequant = s * r.q;
  } else {
    const double maxq = static_cast<double>((int64_t{1} << scheme.bits) - 1);
    at::Tensor wmin = alpha * w.wmin0;
    at::Tensor wmax = beta * w.wmax0;
    at::Tensor s = at::clamp_min(RoundToHalf((wmax - wmin) / maxq), thr);
    at::Tensor zp = RoundSte(-wmin / s);
    r.q = at::clamp(RoundSte(w.groups / s + p.v) + zp, 0.0, maxq);
    r.zero = zp;
    r.scale = s;
    r.dequant = s * (r.q - zp);
  }
  r.dequant = r.dequant.reshape({w.out, w.num_groups() * w.group}).narrow(1, 0, w.in);
  return r;
}

IntegerWeight ToIntegerWeight(const GroupedWeight& w, const QuantScheme& scheme,
                              const QdqResult& r) {
  at::NoGradGuard no_grad;
  const int64_t groups = w.num_groups();
  at::Tensor codes = scheme.sym ? r.q + r.zero : r.q;
  IntegerWeight out;
  out.codes = codes.reshape({w.out, groups * w.group}).narrow(1, 0, w.in).to(at::kByte);
  out.scales = r.scale.reshape({w.out, groups}).to(at::kHalf);
  out.zeros = r.zero.reshape({w.out, groups}).to(at::kByte);
  return out;
}

}  // namespace signround
