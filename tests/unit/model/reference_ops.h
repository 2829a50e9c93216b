// Plain float64 references for the forward-pass tests, written from the
// transformers modules with loops instead of src/model/block_ops (the code
// under test): a value they share with it is computed twice, independently.
#pragma once

#include <cmath>
#include <cstdint>

#include <ATen/ATen.h>

namespace signround::reference {

inline at::Tensor D(const at::Tensor& t) { return t.detach().to(at::kDouble); }

// Each row r of x [N, d]: x_r / sqrt(mean(x_r^2) + eps) * g, with g = w (Llama,
// Qwen3) or 1 + w (Gemma3RMSNorm).
inline at::Tensor RefRmsNorm(const at::Tensor& x, const at::Tensor& w, double eps,
                             bool gemma = false) {
  const at::Tensor g = gemma ? 1.0 + D(w) : D(w);
  at::Tensor out = at::empty_like(x);
  for (int64_t r = 0; r < x.size(0); ++r) {
    const double ms = x[r].pow(2).sum().item<double>() / static_cast<double>(x.size(1));
    out[r] = x[r] / std::sqrt(ms + eps) * g;
  }
  return out;
}

// Rotate-half RoPE of m [T, d]: pair (i, i + d/2) at position p turns by
// p * theta^(-2i/d).
inline at::Tensor RefRope(const at::Tensor& m, double theta) {
  const int64_t t = m.size(0), d = m.size(1), half = d / 2;
  at::Tensor out = m.clone();
  auto in = m.accessor<double, 2>();
  auto o = out.accessor<double, 2>();
  for (int64_t p = 0; p < t; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle =
          static_cast<double>(p) * std::pow(theta, -2.0 * i / static_cast<double>(d));
      const double a = in[p][i], b = in[p][i + half];
      o[p][i] = a * std::cos(angle) - b * std::sin(angle);
      o[p][i + half] = b * std::cos(angle) + a * std::sin(angle);
    }
  }
  return out;
}

}  // namespace signround::reference
