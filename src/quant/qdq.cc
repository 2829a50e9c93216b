#include "src/quant/qdq.h"

#include <ATen/core/grad_mode.h>
#include <torch/autograd.h>

#include <algorithm>
#include <tuple>
#include <utility>
#include <vector>

namespace signround {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The scale threshold as the fp16 value the exported scale can hold.
double ScaleThreshold() { return at::scalar_tensor(1e-5, at::kHalf).item<double>(); }

// Rounds to fp16 and back, keeping the gradient (the cast is linear for autograd).
at::Tensor RoundToHalf(const at::Tensor& x) { return x.to(at::kHalf).to(at::kFloat); }

// Elements per chunk of the full-size work: enough that the per-op overhead vanishes (on CUDA,
// kernel launches: 2^22 was launch-bound and jittery on an H100), few enough that the chunk
// temporaries are small next to a layer (on CPU they also stay off the heap's high-water mark).
int64_t ChunkElements(const at::Tensor& w) {
  return w.is_cuda() ? int64_t{1} << 24 : int64_t{1} << 20;
}

// What the per-layer function needs besides its tensors.
struct QdqConfig {
  bool sym = true;
  double lo = 0;  // clamp bounds of the integer levels
  double hi = 0;
  int64_t out = 0;  // W^ is [out, in]
  int64_t in = 0;
  at::ScalarType weight_dtype = at::kFloat;
  at::ScalarType out_dtype = at::kFloat;
};

QdqConfig MakeConfig(const GroupedWeight& w, const QuantScheme& scheme, at::ScalarType weight_dtype,
                     at::ScalarType out_dtype) {
  QdqConfig c;
  c.sym = scheme.sym;
  if (scheme.sym) {
    const double nmax = static_cast<double>(int64_t{1} << (scheme.bits - 1));
    c.lo = -nmax;
    c.hi = nmax - 1;
  } else {
    c.hi = static_cast<double>((int64_t{1} << scheme.bits) - 1);
  }
  c.out = w.out;
  c.in = w.in;
  c.weight_dtype = weight_dtype;
  c.out_dtype = out_dtype;
  return c;
}

// The per-group scale s (and, asym, the zero point zp), differentiable in alpha and beta:
// the same ops as QuantDequantReference, so the same values and gradients.
std::pair<at::Tensor, at::Tensor> ScaleAndZero(const GroupedWeight& w, const QuantScheme& scheme,
                                               const RoundingParams& p) {
  const double thr = ScaleThreshold();
  at::Tensor alpha = at::clamp(p.alpha, 0.0, 1.0);
  at::Tensor beta = at::clamp(p.beta, 0.0, 1.0);
  if (scheme.sym) {
    const double nmax = static_cast<double>(int64_t{1} << (scheme.bits - 1));
    at::Tensor a = -alpha * w.wmin0;
    at::Tensor c = beta * w.wmax0;
    // The dominant extreme maps to -nmax, so the sign of the scale follows it.
    at::Tensor sign = at::where(c < a, at::ones_like(a), -at::ones_like(a));
    at::Tensor s = RoundToHalf(sign * at::maximum(a, c) / nmax);
    return {at::where(s < 0, at::clamp_max(s, -thr), at::clamp_min(s, thr)), at::Tensor()};
  }
  const double maxq = static_cast<double>((int64_t{1} << scheme.bits) - 1);
  at::Tensor wmin = alpha * w.wmin0;
  at::Tensor wmax = beta * w.wmax0;
  at::Tensor s = at::clamp_min(RoundToHalf((wmax - wmin) / maxq), thr);
  return {s, RoundSte(-wmin / s)};
}

// Rows [r0, r0 + rows) of W, V, s and (asym) zp; zp stays undefined for sym.
struct Chunk {
  at::Tensor w, v, s, zp;
  Chunk(const QdqConfig& cfg, const at::Tensor& w_all, const at::Tensor& v_all,
        const at::Tensor& s_all, const at::Tensor& zp_all, int64_t r0, int64_t rows)
      : w(w_all.narrow(0, r0, rows)), v(v_all.narrow(0, r0, rows)), s(s_all.narrow(0, r0, rows)) {
    if (!cfg.sym) zp = zp_all.narrow(0, r0, rows);
  }
};

// Calls fn(r0, rows) over the rows of the grouped weight `w`, a chunk at a time.
template <typename Fn>
void ForEachChunk(const at::Tensor& w, Fn fn) {
  const int64_t rows = w.size(0);
  const int64_t step = std::max<int64_t>(1, ChunkElements(w) / std::max<int64_t>(1, w.size(1)));
  for (int64_t r0 = 0; r0 < rows; r0 += step) fn(r0, std::min(step, rows - r0));
}

// The unclamped levels round(W / s + V) (+ zp) into `t`, with the values of the reference's
// RoundSte: x + (round(x) - x) is exactly round(x), but +0 where that is -0, hence the + 0
// (asym: adding zp, itself never -0, does the same).
void Levels(const Chunk& c, at::Tensor& t) {
  at::div_out(t, c.w, c.s);
  t.add_(c.v).round_();
  if (c.zp.defined()) {
    t.add_(c.zp);
  } else {
    t.add_(0.0);
  }
}

// The levels in `t` (from Levels) clamped to q, then W^ / s: q (sym) or q - zp (asym).
void ClampAndShift(const QdqConfig& cfg, const Chunk& c, at::Tensor& t) {
  t.clamp_(cfg.lo, cfg.hi);
  if (c.zp.defined()) t.sub_(c.zp);
}

// W^ for all groups as `out_dtype` [out, in], rounded through `weight_dtype`.
at::Tensor LeanForward(const QdqConfig& cfg, const at::Tensor& w, const at::Tensor& v,
                       const at::Tensor& s, const at::Tensor& zp) {
  const int64_t n = w.size(0), group = w.size(1);
  const bool padded = n * group != cfg.out * cfg.in;
  // Unpadded, the chunks land straight in the result; padded, in an fp32 buffer narrowed below.
  at::Tensor dst = at::empty({n, group}, w.options().dtype(padded ? at::kFloat : cfg.out_dtype));
  const at::ScalarType wd = cfg.weight_dtype;
  ForEachChunk(w, [&](int64_t r0, int64_t rows) {
    Chunk c(cfg, w, v, s, zp, r0, rows);
    at::Tensor d = dst.narrow(0, r0, rows);
    const bool in_place = d.scalar_type() == at::kFloat;
    at::Tensor t = in_place ? d : at::empty({rows, group}, w.options());
    Levels(c, t);
    ClampAndShift(cfg, c, t);
    t.mul_(c.s);  // W^ = s * q or s * (q - zp)
    // .to(weight_dtype).to(out_dtype), without the full-size copies where a cast is a no-op.
    if (in_place) {
      if (wd != at::kFloat) t.copy_(t.to(wd));
    } else {
      d.copy_(wd == at::kFloat || wd == d.scalar_type() ? t : t.to(wd));
    }
  });
  if (!padded) return dst.view({cfg.out, cfg.in});
  return dst.view({cfg.out, n * group / cfg.out})
      .narrow(1, 0, cfg.in)
      .to(cfg.out_dtype)
      .contiguous();
}

// sum over each row (group), kept as [rows, 1].
at::Tensor RowSums(const at::Tensor& x) {
  const int64_t dims[] = {1};
  return x.sum(at::IntArrayRef(dims), /*keepdim=*/true);
}

// The per-layer quantize-dequantize as one autograd node. Saves W (alive anyway), V (a leaf),
// s and zp (one per group); backward recomputes the levels and the clamp mask from them.
struct QdqFunction : public torch::autograd::Function<QdqFunction> {
  static at::Tensor forward(AutogradContext* ctx, const QdqConfig& cfg, const at::Tensor& w,
                            const at::Tensor& v, const at::Tensor& s, const at::Tensor& zp) {
    ctx->save_for_backward({w, v, s, zp});
    ctx->saved_data["sym"] = cfg.sym;
    ctx->saved_data["lo"] = cfg.lo;
    ctx->saved_data["hi"] = cfg.hi;
    ctx->saved_data["out"] = cfg.out;
    ctx->saved_data["in"] = cfg.in;
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(cfg.weight_dtype);
    return LeanForward(cfg, w, v, s, zp);
  }

  // With g the incoming gradient (cast back through the weight dtype to fp32, as autograd's
  // casts do), mask = (lo <= level <= hi) (clamp passes the gradient at its bounds) and
  // gy = g * s * mask, the gradient that reaches W / s + V:
  //   dL/dV  = gy
  //   dL/ds  = sum_group g * q - sum_group gy * W / s / s        (asym: q - zp for q)
  //   dL/dzp = sum_group gy - sum_group g * s
  // each sum formed exactly as the composite's autograd forms it (the same elementwise
  // products, summed per group, then added), so the values are the same.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    QdqConfig cfg;
    cfg.sym = ctx->saved_data["sym"].toBool();
    cfg.lo = ctx->saved_data["lo"].toDouble();
    cfg.hi = ctx->saved_data["hi"].toDouble();
    cfg.out = ctx->saved_data["out"].toInt();
    cfg.in = ctx->saved_data["in"].toInt();
    cfg.weight_dtype = static_cast<at::ScalarType>(ctx->saved_data["weight_dtype"].toInt());
    variable_list saved = ctx->get_saved_variables();
    const at::Tensor& w = saved[0];
    const at::Tensor& v = saved[1];
    const at::Tensor& s = saved[2];
    const at::Tensor& zp = saved[3];
    // Input edges: w 0, v 1, s 2, zp 3 (the config is not a tensor).
    const bool need_v = ctx->needs_input_grad(1);
    const bool need_s = ctx->needs_input_grad(2);
    const bool need_zp = !cfg.sym && ctx->needs_input_grad(3);

    const int64_t n = w.size(0), group = w.size(1);
    at::Tensor g = grads[0];
    if (n * group != cfg.out * cfg.in) {
      g = at::constant_pad_nd(g, {0, n * group / cfg.out - cfg.in}, 0.0);
    }
    g = g.reshape({n, group});
    at::Tensor grad_v = need_v ? at::empty({n, group}, w.options()) : at::Tensor();
    at::Tensor grad_s = need_s ? at::empty_like(s) : at::Tensor();
    at::Tensor grad_zp = need_zp ? at::empty_like(zp) : at::Tensor();
    if (need_v || need_s || need_zp) {
      ForEachChunk(w, [&](int64_t r0, int64_t rows) {
        Chunk c(cfg, w, v, s, zp, r0, rows);
        at::Tensor gc = g.narrow(0, r0, rows).to(cfg.weight_dtype).to(at::kFloat);
        at::Tensor t = at::empty({rows, group}, w.options());
        Levels(c, t);
        at::Tensor clipped = at::logical_and(t >= cfg.lo, t <= cfg.hi).logical_not_();
        at::Tensor gy = need_v ? grad_v.narrow(0, r0, rows) : at::empty_like(t);
        at::mul_out(gy, gc, c.s);
        at::Tensor unmasked = need_zp ? RowSums(gy) : at::Tensor();
        gy.masked_fill_(clipped, 0.0);
        if (need_zp) grad_zp.narrow(0, r0, rows).copy_(RowSums(gy).sub_(unmasked));
        if (need_s) {
          ClampAndShift(cfg, c, t);
          at::Tensor direct = RowSums(t.mul_(gc));
          at::Tensor through_v = RowSums(at::div(c.w, c.s).div_(c.s).mul_(gy));
          grad_s.narrow(0, r0, rows).copy_(direct.sub_(through_v));
        }
      });
    }
    return {at::Tensor(), at::Tensor(), grad_v, grad_s, grad_zp};
  }
};

bool NeedsGrad(const at::Tensor& t) { return t.defined() && t.requires_grad(); }

at::Tensor ApplyQdq(const QdqConfig& cfg, const GroupedWeight& w, const at::Tensor& v,
                    const at::Tensor& s, const at::Tensor& zp) {
  if (at::GradMode::is_enabled() && (NeedsGrad(v) || NeedsGrad(s) || NeedsGrad(zp))) {
    // LibTorch 1.13 takes no undefined tensor inputs: sym passes an empty placeholder zp.
    return QdqFunction::apply(cfg, w.groups, v, s, cfg.sym ? at::empty({0}, s.options()) : zp);
  }
  return LeanForward(cfg, w.groups, v, s, zp);
}

// The float_min scheme as composite ops (autograd saves what it needs): the group's own
// extremes scaled by alpha and beta, s = fp16((wmax - wmin) / maxq) (at least thr),
// m = fp16(wmin), q = clamp(round_ste((W - m) / s + V), 0, maxq), W^ = s * q + m. The stored
// m and d = s give back W^ exactly as GGUF's Q4_1 dequantizes (q * d + m in fp32).
QdqResult FloatMinQdq(const GroupedWeight& w, const QuantScheme& scheme, const RoundingParams& p) {
  const double maxq = static_cast<double>((int64_t{1} << scheme.bits) - 1);
  at::Tensor wmin = at::clamp(p.alpha, 0.0, 1.0) * w.gmin;
  at::Tensor wmax = at::clamp(p.beta, 0.0, 1.0) * w.gmax;
  QdqResult r;
  r.scale = at::clamp_min(RoundToHalf((wmax - wmin) / maxq), ScaleThreshold());
  r.zero = RoundToHalf(wmin);
  r.q = at::clamp(RoundSte((w.groups - r.zero) / r.scale + p.v), 0.0, maxq);
  r.dequant =
      (r.scale * r.q + r.zero).reshape({w.out, w.num_groups() * w.group}).narrow(1, 0, w.in);
  return r;
}

// A GGUF k-quant type (ALGORITHM.md's scheme with the sub-block scales quantized as the
// file holds them), as composite ops. Per sub-block (a group), from the tuned extremes:
//   asymmetric (Q2_K, Q4_K, Q5_K): s = (beta * wmax0 - alpha * wmin0) / maxq, m = -alpha * wmin0;
//     per super-block d = fp16(max s / S), dmin = fp16(max m / S) with S = 2^scale_bits - 1;
//     sc = clamp(round_ste(s / d), 0, S), mc likewise from m and dmin;
//     s' = d * sc, m' = dmin * mc, q = clamp(round_ste((W + m') / s' + V), 0, maxq),
//     W^ = s' * q - m'   (llama.cpp's dequantize_row_q4_K: d1 * q - m1, d1 = d * sc).
//   symmetric (Q3_K, Q6_K): s as the integer scheme's (signed, the dominant extreme at -nmax);
//     d = fp16(-s_max / C) with s_max the super-block's s of largest magnitude and C = 32
//     (Q3_K) or 128 (Q6_K); sc = clamp(round_ste(s / d), -C, C - 1); s' = d * sc,
//     q = clamp(round_ste(W / s' + V), -nmax, nmax - 1), W^ = s' * q.
// A sub-block whose s' is 0 has q = 0 (W^ = -m'); d = 0 divides by 1 instead.
QdqResult KQuantDequant(const GroupedWeight& w, const QuantScheme& scheme,
                        const RoundingParams& p) {
  const contract::KQuantInfo& k = contract::KQuantOf(scheme.data_type);
  const int64_t per_super = contract::kKQuantSuperBlock / w.group;
  const int64_t rows = w.groups.size(0);
  const int64_t supers = rows / per_super;
  at::Tensor alpha = at::clamp(p.alpha, 0.0, 1.0);
  at::Tensor beta = at::clamp(p.beta, 0.0, 1.0);
  auto by_super = [&](const at::Tensor& t) { return t.reshape({supers, per_super}); };
  auto by_group = [&](const at::Tensor& t) { return t.reshape({rows, 1}); };
  auto safe = [](const at::Tensor& d) { return at::where(d != 0, d, at::ones_like(d)); };
  const int64_t dims[] = {1};
  QdqResult r;
  at::Tensor s_eff, m_eff;
  if (!k.sym) {
    const double maxq = static_cast<double>((int64_t{1} << k.bits) - 1);
    const double smax = static_cast<double>((int64_t{1} << k.scale_bits) - 1);
    at::Tensor wmin = alpha * w.wmin0;
    at::Tensor s = by_super((beta * w.wmax0 - wmin) / maxq);
    at::Tensor m = by_super(-wmin);
    r.d = RoundToHalf(s.amax(dims, /*keepdim=*/true) / smax);
    r.dmin = RoundToHalf(m.amax(dims, /*keepdim=*/true) / smax);
    at::Tensor sc = at::clamp(RoundSte(s / safe(r.d)), 0.0, smax);
    at::Tensor mc = at::clamp(RoundSte(m / safe(r.dmin)), 0.0, smax);
    s_eff = by_group(r.d * sc);
    m_eff = by_group(r.dmin * mc);
    at::Tensor nonzero = s_eff != 0;
    r.q = at::clamp(RoundSte((w.groups + m_eff) / safe(s_eff) + p.v), 0.0, maxq);
    r.q = at::where(nonzero, r.q, at::zeros_like(r.q));
    r.dequant = s_eff * r.q - m_eff;
    r.sub_scale = by_group(sc).detach();
    r.sub_min = by_group(mc).detach();
    r.zero = m_eff;
  } else {
    const double nmax = static_cast<double>(int64_t{1} << (k.bits - 1));
    const double c = static_cast<double>(int64_t{1} << (k.scale_bits - 1));
    at::Tensor a = -alpha * w.wmin0;
    at::Tensor b = beta * w.wmax0;
    at::Tensor sign = at::where(b < a, at::ones_like(a), -at::ones_like(a));
    at::Tensor s = by_super(sign * at::maximum(a, b) / nmax);
    at::Tensor idx = s.abs().argmax(1, /*keepdim=*/true);
    r.d = RoundToHalf(-at::gather(s, 1, idx) / c);
    at::Tensor sc = at::clamp(RoundSte(s / safe(r.d)), -c, c - 1);
    s_eff = by_group(r.d * sc);
    at::Tensor nonzero = s_eff != 0;
    r.q = at::clamp(RoundSte(w.groups / safe(s_eff) + p.v), -nmax, nmax - 1);
    r.q = at::where(nonzero, r.q, at::zeros_like(r.q));
    r.dequant = s_eff * r.q;
    // Stored as KQuantBlock holds it: Q3_K sc + 32; Q6_K the int8's bits.
    at::Tensor stored = k.scale_bits == 8 ? at::remainder(sc, 256.0) : sc + c;
    r.sub_scale = by_group(stored).detach();
    r.zero = at::full_like(s_eff, nmax);
  }
  r.scale = s_eff;
  r.d = r.d.detach();
  if (r.dmin.defined()) r.dmin = r.dmin.detach();
  r.dequant = r.dequant.reshape({w.out, w.in});
  return r;
}

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
  g.gmin = std::get<0>(g.groups.min(1, /*keepdim=*/true));
  g.gmax = std::get<0>(g.groups.max(1, /*keepdim=*/true));
  g.wmin0 = at::clamp_max(g.gmin, 0.0);
  g.wmax0 = at::clamp_min(g.gmax, 0.0);
  return g;
}

RoundingParams InitialRoundingParams(const GroupedWeight& w) {
  auto opts = w.groups.options();
  return {at::zeros_like(w.groups), at::ones({w.groups.size(0), 1}, opts),
          at::ones({w.groups.size(0), 1}, opts)};
}

// KQuantDequant a chunk of output rows at a time (its composite ops make several full-size
// temporaries; rows are independent), the results concatenated. Without autograd only.
QdqResult KQuantDequantByRows(const GroupedWeight& w, const QuantScheme& scheme,
                              const RoundingParams& p) {
  const int64_t groups = w.num_groups();
  const int64_t step = std::max<int64_t>(1, ChunkElements(w.groups) / std::max<int64_t>(1, w.in));
  if (step >= w.out) return KQuantDequant(w, scheme, p);
  std::vector<QdqResult> parts;
  for (int64_t r0 = 0; r0 < w.out; r0 += step) {
    const int64_t rows = std::min(step, w.out - r0);
    auto group_rows = [&](const at::Tensor& t) { return t.narrow(0, r0 * groups, rows * groups); };
    GroupedWeight c = w;
    c.out = rows;
    for (at::Tensor* t : {&c.groups, &c.wmin0, &c.wmax0, &c.gmin, &c.gmax}) *t = group_rows(*t);
    parts.push_back(
        KQuantDequant(c, scheme, {group_rows(p.v), group_rows(p.alpha), group_rows(p.beta)}));
  }
  auto cat = [&](at::Tensor QdqResult::*field) {
    std::vector<at::Tensor> list;
    for (const QdqResult& r : parts) {
      if ((r.*field).defined()) list.push_back(r.*field);
    }
    return list.empty() ? at::Tensor() : at::cat(list, 0);
  };
  QdqResult r;
  for (at::Tensor QdqResult::*f :
       {&QdqResult::dequant, &QdqResult::q, &QdqResult::scale, &QdqResult::zero,
        &QdqResult::sub_scale, &QdqResult::sub_min, &QdqResult::d, &QdqResult::dmin}) {
    r.*f = cat(f);
  }
  return r;
}

QdqResult QuantDequant(const GroupedWeight& w, const QuantScheme& scheme, const RoundingParams& p) {
  if (contract::IsKQuant(scheme.data_type)) {
    const bool grad = at::GradMode::is_enabled() &&
                      (p.v.requires_grad() || p.alpha.requires_grad() || p.beta.requires_grad());
    QdqResult r = grad ? KQuantDequant(w, scheme, p) : KQuantDequantByRows(w, scheme, p);
    r.q = r.q.detach();
    return r;
  }
  if (scheme.float_min) {
    QdqResult r = FloatMinQdq(w, scheme, p);
    r.q = r.q.detach();
    return r;
  }
  const QdqConfig cfg = MakeConfig(w, scheme, at::kFloat, at::kFloat);
  at::Tensor s, zp;
  std::tie(s, zp) = ScaleAndZero(w, scheme, p);
  QdqResult r;
  r.scale = s;
  r.zero = scheme.sym ? at::full_like(s, -cfg.lo) : zp;
  r.dequant = ApplyQdq(cfg, w, p.v, s, zp);
  at::NoGradGuard no_grad;
  r.q = at::empty_like(w.groups);
  ForEachChunk(w.groups, [&](int64_t r0, int64_t rows) {
    Chunk c(cfg, w.groups, p.v, s, zp, r0, rows);
    at::Tensor t = r.q.narrow(0, r0, rows);
    Levels(c, t);
    t.clamp_(cfg.lo, cfg.hi);
  });
  return r;
}

at::Tensor QuantDequantWeight(const GroupedWeight& w, const QuantScheme& scheme,
                              const RoundingParams& p, at::ScalarType weight_dtype,
                              at::ScalarType out_dtype) {
  if (contract::IsKQuant(scheme.data_type)) {
    // Composite ops, like float_min (more memory than the lean node).
    return KQuantDequant(w, scheme, p).dequant.to(weight_dtype).to(out_dtype).contiguous();
  }
  if (scheme.float_min) {
    // Composite ops: the float_min scheme has no lean autograd node yet (more memory).
    return FloatMinQdq(w, scheme, p).dequant.to(weight_dtype).to(out_dtype).contiguous();
  }
  at::Tensor s, zp;
  std::tie(s, zp) = ScaleAndZero(w, scheme, p);
  return ApplyQdq(MakeConfig(w, scheme, weight_dtype, out_dtype), w, p.v, s, zp);
}

QdqResult QuantDequantReference(const GroupedWeight& w, const QuantScheme& scheme,
                                const RoundingParams& p) {
  if (contract::IsKQuant(scheme.data_type)) return KQuantDequant(w, scheme, p);
  if (scheme.float_min) return FloatMinQdq(w, scheme, p);
  QdqResult r;
  std::tie(r.scale, r.zero) = ScaleAndZero(w, scheme, p);
  const at::Tensor& s = r.scale;
  if (scheme.sym) {
    const double nmax = static_cast<double>(int64_t{1} << (scheme.bits - 1));
    r.q = at::clamp(RoundSte(w.groups / s + p.v), -nmax, nmax - 1);
    r.zero = at::full_like(s, nmax);
    r.dequant = s * r.q;
  } else {
    const double maxq = static_cast<double>((int64_t{1} << scheme.bits) - 1);
    r.q = at::clamp(RoundSte(w.groups / s + p.v) + r.zero, 0.0, maxq);
    r.dequant = s * (r.q - r.zero);
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
  if (contract::IsKQuant(scheme.data_type)) {
    const int64_t supers = w.in / contract::kKQuantSuperBlock;
    out.sub_scales = r.sub_scale.reshape({w.out, groups}).to(at::kByte);
    out.d = r.d.reshape({w.out, supers}).to(at::kHalf);
    if (!scheme.sym) {
      out.sub_mins = r.sub_min.reshape({w.out, groups}).to(at::kByte);
      out.dmin = r.dmin.reshape({w.out, supers}).to(at::kHalf);
    }
    return out;
  }
  out.scales = r.scale.reshape({w.out, groups}).to(at::kHalf);
  if (scheme.float_min) {
    out.mins = r.zero.reshape({w.out, groups}).to(at::kHalf);
  } else {
    out.zeros = r.zero.reshape({w.out, groups}).to(at::kByte);
  }
  return out;
}

}  // namespace signround
