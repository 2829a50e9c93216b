#include "src/quant/rtn_kernel.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/tensor/float_bytes.h"
#include "src/tensor/half.h"

namespace signround {
namespace {

// The per-row work is built twice on x86-64, for AVX2 and for the baseline, and picked when
// the program loads: the same IEEE operations either way, so the same bits.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SIGNROUND_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SIGNROUND_VECTOR_CLONES
#endif

// The fp16 scale threshold of qdq.cc (fp16(1e-5) as a float).
const float kThr = F16ToFloat(FloatToF16(1e-5f));

// nearbyint (round half to even) without the libm call, so the loops vectorize: below 2^23
// the magnitude plus 2^23 has no fraction bits left; the sign is copied back, as nearbyint's.
inline float RoundHalfEven(float x) {
  const float a = std::fabs(x);
  return a < 8388608.0f ? std::copysign((a + 8388608.0f) - 8388608.0f, x) : x;
}

// RoundSte's value: x + (round(x) - x).
inline float RoundSte(float x) { return x + (RoundHalfEven(x) - x); }

// round(v) (half to even) as an integer, for |v| < 2^22: adding 1.5 * 2^23 leaves no
// fraction bits, so the float addition rounds and the integer sits in the low bits. The
// codes loops clamp first (the bounds are integers, so clamping and rounding commute) and
// need no sign of zero: a few vector operations instead of RoundSte's.
inline int32_t RoundToInt(float v) {
  const float t = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &t, sizeof(bits));
  return bits - 0x4B400000;
}

// LibTorch's CPU semantics of the ops the composite quantizer uses (vector paths: minps /
// maxps keep the second operand on ties, which decides the sign of a zero).
inline float ClampMax(float a, float hi) { return hi < a ? hi : a; }  // at::clamp_max
inline float ClampMin(float a, float lo) { return lo > a ? lo : a; }  // at::clamp_min
inline float Clamp(float a, float lo, float hi) { return ClampMax(ClampMin(a, lo), hi); }
inline float Maximum(float a, float b) { return a > b ? a : b; }  // at::maximum

inline float ToHalf(float x) { return F16ToFloat(FloatToF16(x)); }  // RoundToHalf

// Where one row's outputs go.
struct RowOut {
  uint8_t* codes = nullptr;
  uint16_t* scales = nullptr;
  uint8_t* zeros = nullptr;
  uint16_t* mins = nullptr;
  uint8_t* sub_scales = nullptr;
  uint8_t* sub_mins = nullptr;
  uint16_t* d = nullptr;
  uint16_t* dmin = nullptr;
  float* dequant = nullptr;  // [G * g] (padding included), or null
};

// What stops a row: the first group whose fp16 value overflowed (-1 when none).
struct RowError {
  int64_t group = -1;
  const char* what = "";
};

// A group's extremes (min(W_g), max(W_g)), padding included, from eight running lanes so
// the loop vectorizes (the weights are finite: only which of two equal zeros comes out can
// differ from a sequential scan).
inline void Extremes(const float* w, int64_t g, float* mn, float* mx) {
  float a = w[0], b = w[0];
  if (g % 8 != 0) {
    for (int64_t k = 1; k < g; ++k) {
      a = w[k] < a ? w[k] : a;
      b = w[k] > b ? w[k] : b;
    }
  } else {
    float lo[8], hi[8];
    for (int l = 0; l < 8; ++l) lo[l] = hi[l] = w[0];
    for (int64_t k = 0; k < g; k += 8) {
      for (int l = 0; l < 8; ++l) {
        lo[l] = w[k + l] < lo[l] ? w[k + l] : lo[l];
        hi[l] = w[k + l] > hi[l] ? w[k + l] : hi[l];
      }
    }
    for (int l = 0; l < 8; ++l) {
      a = lo[l] < a ? lo[l] : a;
      b = hi[l] > b ? hi[l] : b;
    }
  }
  *mn = a;
  *mx = b;
}

// The integer scheme (ScaleAndZero, Levels, ClampAndShift, ToIntegerWeight).
SIGNROUND_VECTOR_CLONES RowError IntRow(const float* w, int64_t g, int64_t groups, int bits,
                                        bool sym, const RowOut& o) {
  const float nmax = static_cast<float>(int64_t{1} << (bits - 1));
  const float maxq = static_cast<float>((int64_t{1} << bits) - 1);
  const float lo = sym ? -nmax : 0.0f, hi = sym ? nmax - 1 : maxq;
  for (int64_t j = 0; j < groups; ++j) {
    const float* x = w + j * g;
    float gmin, gmax;
    Extremes(x, g, &gmin, &gmax);
    const float wmin0 = ClampMax(gmin, 0.0f), wmax0 = ClampMin(gmax, 0.0f);
    float s, zp;
    if (sym) {
      const float a = -1.0f * wmin0, c = 1.0f * wmax0;
      const float sign = c < a ? 1.0f : -1.0f;
      s = ToHalf(sign * Maximum(a, c) / nmax);
      s = s < 0 ? ClampMax(s, -kThr) : ClampMin(s, kThr);
      zp = nmax;
    } else {
      const float wmin = 1.0f * wmin0, wmax = 1.0f * wmax0;
      s = ClampMin(ToHalf((wmax - wmin) / maxq), kThr);
      zp = RoundSte(-wmin / s);
    }
    if (std::isinf(s)) return {j, "scale"};
    uint8_t* codes = o.codes + j * g;
    // sym: q = clamp(round(W / s + 0) + 0), code = q + nmax; asym: q = clamp(... + zp), code = q.
    const float add = sym ? 0.0f : zp;
    const float shift = sym ? nmax : 0.0f;
    // The code as round(clamp(W / s, lo - add, hi - add)) + add + shift.
    const float clo = lo - add, chi = hi - add;
    const int32_t offset = static_cast<int32_t>(add + shift);
    for (int64_t k = 0; k < g; ++k) {
      codes[k] = static_cast<uint8_t>(RoundToInt(Clamp(x[k] / s, clo, chi)) + offset);
    }
    if (o.dequant != nullptr) {
      float* dq = o.dequant + j * g;
      for (int64_t k = 0; k < g; ++k) {
        float q = Clamp(RoundHalfEven(x[k] / s + 0.0f) + add, lo, hi);
        if (!sym) q = q - zp;
        dq[k] = q * s;
      }
    }
    o.scales[j] = FloatToF16(s);
    o.zeros[j] = static_cast<uint8_t>(zp);
  }
  return {};
}

// The float_min scheme (FloatMinQdq).
SIGNROUND_VECTOR_CLONES RowError FloatMinRow(const float* w, int64_t g, int64_t groups, int bits,
                                             const RowOut& o) {
  const float maxq = static_cast<float>((int64_t{1} << bits) - 1);
  for (int64_t j = 0; j < groups; ++j) {
    const float* x = w + j * g;
    float gmin, gmax;
    Extremes(x, g, &gmin, &gmax);
    const float wmin = 1.0f * gmin, wmax = 1.0f * gmax;
    const float s = ClampMin(ToHalf((wmax - wmin) / maxq), kThr);
    const float m = ToHalf(wmin);
    if (std::isinf(s)) return {j, "scale"};
    if (std::isinf(m)) return {j, "minimum"};
    uint8_t* codes = o.codes + j * g;
    for (int64_t k = 0; k < g; ++k) {
      codes[k] = static_cast<uint8_t>(RoundToInt(Clamp((x[k] - m) / s, 0.0f, maxq)));
    }
    if (o.dequant != nullptr) {
      float* dq = o.dequant + j * g;
      for (int64_t k = 0; k < g; ++k) {
        dq[k] = s * Clamp(RoundSte((x[k] - m) / s + 0.0f), 0.0f, maxq) + m;
      }
    }
    o.scales[j] = FloatToF16(s);
    o.mins[j] = FloatToF16(m);
  }
  return {};
}

// A GGUF k-quant type (KQuantDequant), one super-block of `per` sub-blocks of g at a time
// (g a constant, so the loops over a sub-block unroll; inlined into KQuantRow's clones).
template <int64_t g>
__attribute__((always_inline)) inline RowError KQuantRowOf(const float* w, int64_t groups,
                                                           const contract::KQuantInfo& k,
                                                           const RowOut& o) {
  constexpr int64_t per = contract::kKQuantSuperBlock / g;
  float gmin[per], gmax[per], s[per], m[per], sc[per], mc[per], s_eff[per], m_eff[per];
  for (int64_t sb = 0; sb * per < groups; ++sb) {
    const int64_t j0 = sb * per;
    if (!k.sym) {
      const float maxq = static_cast<float>((1 << k.bits) - 1);
      const float smax = static_cast<float>((1 << k.scale_bits) - 1);
      for (int64_t j = 0; j < per; ++j) Extremes(w + (j0 + j) * g, g, &gmin[j], &gmax[j]);
      for (int64_t j = 0; j < per; ++j) {  // the loops over sub-blocks vectorize
        const float wmin = 1.0f * ClampMax(gmin[j], 0.0f);
        s[j] = (1.0f * ClampMin(gmax[j], 0.0f) - wmin) / maxq;
        m[j] = -wmin;
      }
      float smx = s[0], mmx = m[0];
      for (int64_t j = 1; j < per; ++j) {
        smx = s[j] > smx ? s[j] : smx;
        mmx = m[j] > mmx ? m[j] : mmx;
      }
      const float d = ToHalf(smx / smax), dmin = ToHalf(mmx / smax);
      if (std::isinf(d)) return {j0, "super-block scale d"};
      if (std::isinf(dmin)) return {j0, "super-block minimum dmin"};
      const float sd = d != 0 ? d : 1.0f, sdmin = dmin != 0 ? dmin : 1.0f;
      for (int64_t j = 0; j < per; ++j) {
        sc[j] = Clamp(RoundSte(s[j] / sd), 0.0f, smax);
        mc[j] = Clamp(RoundSte(m[j] / sdmin), 0.0f, smax);
        s_eff[j] = d * sc[j];
        m_eff[j] = dmin * mc[j];
      }
      uint8_t* sub_scales = o.sub_scales + j0;
      uint8_t* sub_mins = o.sub_mins + j0;
      for (int64_t j = 0; j < per; ++j) {
        sub_scales[j] = static_cast<uint8_t>(sc[j]);
        sub_mins[j] = static_cast<uint8_t>(mc[j]);
      }
      o.d[sb] = FloatToF16(d);
      o.dmin[sb] = FloatToF16(dmin);
      for (int64_t j = 0; j < per; ++j) {
        const float* x = w + (j0 + j) * g;
        uint8_t* codes = o.codes + (j0 + j) * g;
        const float se = s_eff[j], me = m_eff[j];
        const bool nonzero = se != 0;
        const float safe = nonzero ? se : 1.0f;
        auto level = [&](float v) {
          const float q = Clamp(RoundSte((v + me) / safe + 0.0f), 0.0f, maxq);
          return nonzero ? q : 0.0f;
        };
        for (int64_t i = 0; i < g; ++i) {
          const int32_t q = RoundToInt(Clamp((x[i] + me) / safe, 0.0f, maxq));
          codes[i] = static_cast<uint8_t>(nonzero ? q : 0);
        }
        if (o.dequant != nullptr) {
          float* dq = o.dequant + (j0 + j) * g;
          for (int64_t i = 0; i < g; ++i) dq[i] = se * level(x[i]) - me;
        }
      }
    } else {
      const float nmax = static_cast<float>(1 << (k.bits - 1));
      const float c = static_cast<float>(1 << (k.scale_bits - 1));
      for (int64_t j = 0; j < per; ++j) Extremes(w + (j0 + j) * g, g, &gmin[j], &gmax[j]);
      for (int64_t j = 0; j < per; ++j) {
        const float a = -1.0f * ClampMax(gmin[j], 0.0f), b = 1.0f * ClampMin(gmax[j], 0.0f);
        const float sign = b < a ? 1.0f : -1.0f;
        s[j] = sign * Maximum(a, b) / nmax;
      }
      int64_t idx = 0;  // argmax |s|, the first of equals
      for (int64_t j = 1; j < per; ++j) {
        if (std::fabs(s[j]) > std::fabs(s[idx])) idx = j;
      }
      const float d = ToHalf(-s[idx] / c);
      if (std::isinf(d)) return {j0, "super-block scale d"};
      const float sd = d != 0 ? d : 1.0f;
      for (int64_t j = 0; j < per; ++j) {
        sc[j] = Clamp(RoundSte(s[j] / sd), -c, c - 1);
        s_eff[j] = d * sc[j];
      }
      // Stored as KQuantBlock holds it: Q6_K the int8's bits (remainder(sc, 256)), Q3_K sc + 32.
      uint8_t* sub_scales = o.sub_scales + j0;
      const float wrap = k.scale_bits == 8 ? 256.0f : c, shift = k.scale_bits == 8 ? 0.0f : c;
      for (int64_t j = 0; j < per; ++j) {
        sub_scales[j] = static_cast<uint8_t>(sc[j] < 0 ? sc[j] + wrap : sc[j] + shift);
      }
      o.d[sb] = FloatToF16(d);
      for (int64_t j = 0; j < per; ++j) {
        const float* x = w + (j0 + j) * g;
        uint8_t* codes = o.codes + (j0 + j) * g;
        const float se = s_eff[j];
        const bool nonzero = se != 0;
        const float safe = nonzero ? se : 1.0f;
        auto level = [&](float v) {
          const float q = Clamp(RoundSte(v / safe + 0.0f), -nmax, nmax - 1);
          return nonzero ? q : 0.0f;
        };
        const int32_t zero = static_cast<int32_t>(nmax);
        for (int64_t i = 0; i < g; ++i) {
          const int32_t q = RoundToInt(Clamp(x[i] / safe, -nmax, nmax - 1));
          codes[i] = static_cast<uint8_t>((nonzero ? q : 0) + zero);
        }
        if (o.dequant != nullptr) {
          float* dq = o.dequant + (j0 + j) * g;
          for (int64_t i = 0; i < g; ++i) dq[i] = se * level(x[i]);
        }
      }
    }
  }
  return {};
}

SIGNROUND_VECTOR_CLONES RowError KQuantRow(const float* w, int64_t g, int64_t groups,
                                           const contract::KQuantInfo& k, const RowOut& o) {
  return g == 16 ? KQuantRowOf<16>(w, groups, k, o) : KQuantRowOf<32>(w, groups, k, o);
}

// Row `r` of the weight as floats into `dst` ([in]); false when a value is not finite.
SIGNROUND_VECTOR_CLONES bool ReadRow(absl::string_view weight, DType dtype, int64_t in, int64_t r,
                                     float* dst) {
  const size_t esize = DTypeSize(dtype);
  const char* src = weight.data() + static_cast<size_t>(r) * in * esize;
  uint32_t bad = 0;
  switch (dtype) {
    case DType::kBF16: {
      for (int64_t k = 0; k < in; ++k) {
        uint16_t u;
        std::memcpy(&u, src + 2 * k, 2);
        bad |= (u & 0x7f80u) == 0x7f80u;
        dst[k] = BF16ToFloat(u);
      }
      break;
    }
    case DType::kF16: {
      for (int64_t k = 0; k < in; ++k) {
        uint16_t u;
        std::memcpy(&u, src + 2 * k, 2);
        bad |= (u & 0x7c00u) == 0x7c00u;
        dst[k] = F16ToFloat(u);
      }
      break;
    }
    case DType::kF32: {
      std::memcpy(dst, src, static_cast<size_t>(in) * 4);
      for (int64_t k = 0; k < in; ++k) bad |= (FloatBits(dst[k]) & 0x7f800000u) == 0x7f800000u;
      break;
    }
    default: {  // F64: LibTorch's cast to fp32
      std::vector<float> v = FloatsFromBytes(absl::string_view(src, in * esize), dtype);
      for (int64_t k = 0; k < in; ++k) {
        bad |= !std::isfinite(v[k]);
        dst[k] = v[k];
      }
      break;
    }
  }
  return bad == 0;
}

// W^ row `src` ([in] floats) into `dst` as `dtype`.
SIGNROUND_VECTOR_CLONES void WriteDequant(const float* src, int64_t in, DType dtype, char* dst) {
  if (dtype == DType::kF32) {
    std::memcpy(dst, src, static_cast<size_t>(in) * 4);
    return;
  }
  const bool bf16 = dtype == DType::kBF16;
  for (int64_t k = 0; k < in; ++k) {
    const uint16_t h = bf16 ? FloatToBF16(src[k]) : FloatToF16(src[k]);
    std::memcpy(dst + 2 * k, &h, 2);
  }
}

}  // namespace

absl::StatusOr<RtnLayer> RoundToNearest(absl::string_view name, absl::string_view weight,
                                        DType dtype, int64_t out, int64_t in,
                                        const QuantScheme& scheme, const RtnOptions& options) {
  if (dtype != DType::kBF16 && dtype != DType::kF16 && dtype != DType::kF32 &&
      dtype != DType::kF64) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": weights of dtype ", DTypeName(dtype), " cannot be quantized"));
  }
  if (out <= 0 || in <= 0 || weight.size() != static_cast<size_t>(out * in) * DTypeSize(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", weight.size(),
                                                   " bytes do not hold a [", out, ", ", in, "] ",
                                                   DTypeName(dtype), " weight"));
  }
  const bool kquant = contract::IsKQuant(scheme.data_type);
  const int64_t g = kquant ? contract::KQuantOf(scheme.data_type).group_size
                    : (scheme.group_size <= 0 || scheme.group_size > in) ? in
                                                                         : scheme.group_size;
  const int64_t groups = (in + g - 1) / g;
  if (kquant && in % contract::kKQuantSuperBlock != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": a k-quant needs rows of a multiple of 256 weights, not ", in));
  }
  const std::optional<DType> dq_dtype = options.dequant_dtype;
  if (dq_dtype && *dq_dtype != DType::kF32 && *dq_dtype != DType::kF16 &&
      *dq_dtype != DType::kBF16) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": W^ cannot be written as ", DTypeName(*dq_dtype)));
  }

  RtnLayer r;
  const size_t n = static_cast<size_t>(out);
  r.codes.resize(n * in);
  if (kquant) {
    const size_t supers = static_cast<size_t>(in / contract::kKQuantSuperBlock);
    r.sub_scales.resize(n * groups);
    r.d.resize(n * supers * 2);
    if (!scheme.sym) {
      r.sub_mins.resize(n * groups);
      r.dmin.resize(n * supers * 2);
    }
  } else {
    r.scales.resize(n * groups * 2);
    (scheme.float_min ? r.mins : r.zeros).resize(n * groups * (scheme.float_min ? 2 : 1));
  }
  if (dq_dtype) r.dequant.resize(n * in * DTypeSize(*dq_dtype));

  // Rows [r0, r1) on one thread; the first error (row, what) of the thread.
  struct Failure {
    int64_t row = -1;
    std::string message;
  };
  auto run = [&](int64_t r0, int64_t r1, Failure* failure) {
    std::vector<float> row(static_cast<size_t>(groups * g), 0.0f);  // padding stays 0
    std::vector<float> dq(dq_dtype ? row.size() : 0);
    auto u8 = [](std::string& s, size_t at) {
      return s.empty() ? nullptr : reinterpret_cast<uint8_t*>(&s[at]);
    };
    auto u16 = [](std::string& s, size_t at) {
      return s.empty() ? nullptr : reinterpret_cast<uint16_t*>(&s[2 * at]);
    };
    for (int64_t i = r0; i < r1; ++i) {
      if (!ReadRow(weight, dtype, in, i, row.data())) {
        *failure = {i, "holds a non-finite value"};
        return;
      }
      const size_t gi = static_cast<size_t>(i * groups);
      const size_t si = static_cast<size_t>(i * (in / contract::kKQuantSuperBlock));
      RowOut o;
      o.codes = u8(r.codes, static_cast<size_t>(i * in));
      o.scales = u16(r.scales, gi);
      o.zeros = u8(r.zeros, gi);
      o.mins = u16(r.mins, gi);
      o.sub_scales = u8(r.sub_scales, gi);
      o.sub_mins = u8(r.sub_mins, gi);
      o.d = u16(r.d, si);
      o.dmin = u16(r.dmin, si);
      o.dequant = dq_dtype ? dq.data() : nullptr;
      // The codes of the padding are dropped: the row's last group writes into a spare tail.
      std::vector<uint8_t> tail;
      if (groups * g != in) {
        tail.resize(static_cast<size_t>(groups * g));
        o.codes = tail.data();
      }
      RowError e = kquant
                       ? KQuantRow(row.data(), g, groups, contract::KQuantOf(scheme.data_type), o)
                   : scheme.float_min ? FloatMinRow(row.data(), g, groups, scheme.bits, o)
                                      : IntRow(row.data(), g, groups, scheme.bits, scheme.sym, o);
      if (e.group >= 0) {
        *failure = {i, absl::StrCat("group ", e.group, ": the ", e.what,
                                    " overflows fp16 (the weights are too large for this format)")};
        return;
      }
      if (!tail.empty()) std::memcpy(&r.codes[static_cast<size_t>(i * in)], tail.data(), in);
      if (dq_dtype) {
        WriteDequant(dq.data(), in, *dq_dtype,
                     &r.dequant[static_cast<size_t>(i * in) * DTypeSize(*dq_dtype)]);
      }
    }
  };
  const int threads =
      static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(options.threads, out)));
  std::vector<Failure> failures(threads);
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) {
    pool.emplace_back(run, out * t / threads, out * (t + 1) / threads, &failures[t]);
  }
  run(0, out / threads, &failures[0]);
  for (std::thread& t : pool) t.join();
  for (const Failure& f : failures) {
    if (f.row >= 0) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": row ", f.row, " ", f.message));
    }
  }
  return r;
}

}  // namespace signround
