// Random block weights for the forward-pass and tuner tests, laid out as the
// config's family says (src/model/family.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "absl/strings/string_view.h"
#include "src/model/block_weights.h"
#include "src/model/layout.h"

namespace signround {

inline LinearWeights RandomLinear(int64_t out, int64_t in, bool bias) {
  LinearWeights l;
  l.weight = at::randn({out, in}) / std::sqrt(static_cast<double>(in));
  if (bias) l.bias = at::randn({out}) * 0.1;
  return l;
}

// Block `layer` of `c` with norms 1 + 0.2 N(0, 1) (routers N(0, 1)) and
// Linears N(0, 1 / in), from `seed`.
inline BlockWeights RandomBlock(const ModelConfig& c, uint64_t seed, int64_t layer = 0) {
  at::manual_seed(seed);
  BlockWeights w;
  w.layer = layer;
  const BlockLayout layout = DecoderBlockLayout(c, layer);
  for (const BlockParam& p : layout.params) {
    const bool norm = p.shape.size() == 1;
    w.params.emplace_back(p.name, norm ? 1 + 0.2 * at::randn(p.shape) : at::randn(p.shape));
  }
  for (const BlockLinear& l : layout.linears) {
    w.linears.emplace_back(l.name, RandomLinear(l.out, l.in, l.bias));
  }
  return w;
}

// The Linear `name` of `w` (which must have it).
inline LinearWeights& Lin(BlockWeights& w, absl::string_view name) { return *w.FindLinear(name); }
inline const LinearWeights& Lin(const BlockWeights& w, absl::string_view name) {
  return *w.FindLinear(name);
}

}  // namespace signround
