#include "src/quant/teq.h"

#include <ATen/core/grad_mode.h>
#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/quant/batch_sampler.h"
#include "src/quant/qdq.h"

namespace signround {
namespace {

constexpr double kAdamBeta1 = 0.9;
constexpr double kAdamBeta2 = 0.999;
constexpr double kAdamEps = 1e-8;
// log s stays within +-kMaxLogScale (s within [e^-5, e^5]).
constexpr double kMaxLogScale = 5.0;

// W^ of `w` rounded to nearest under `scheme`, straight-through in `w`.
at::Tensor RoundedToNearest(const at::Tensor& w, const QuantScheme& scheme) {
  const GroupedWeight g = GroupWeight(w, scheme.group_size);
  return QuantDequantReference(g, scheme, InitialRoundingParams(g)).dequant;
}

// One group's trainable log s and Adam's moments.
struct GroupState {
  const TeqGroup* group;
  at::Tensor log_s;  // [channels] fp32
  at::Tensor m, v;
};

struct Adam {
  int64_t t = 0;
  void Step(std::vector<GroupState>& states, double lr) {
    at::NoGradGuard no_grad;
    ++t;
    const double c1 = 1.0 - std::pow(kAdamBeta1, static_cast<double>(t));
    const double c2 = 1.0 - std::pow(kAdamBeta2, static_cast<double>(t));
    for (GroupState& s : states) {
      if (!s.log_s.grad().defined()) continue;
      const at::Tensor g = s.log_s.grad();
      s.m.mul_(kAdamBeta1).add_(g, 1.0 - kAdamBeta1);
      s.v.mul_(kAdamBeta2).addcmul_(g, g, 1.0 - kAdamBeta2);
      s.log_s.sub_((s.m / c1) / ((s.v / c2).sqrt() + kAdamEps) * lr);
      s.log_s.clamp_(-kMaxLogScale, kMaxLogScale);
      s.log_s.mutable_grad().reset();
    }
  }
};

}  // namespace

std::vector<TeqGroup> TeqGroups(const BlockLayout& layout) {
  std::vector<TeqGroup> out;
  for (BlockInput input : {BlockInput::kAttention, BlockInput::kMlp}) {
    TeqGroup g;
    int norms = 0;
    for (const BlockParam& p : layout.params) {
      if (p.makes == input) {
        g.norm = p.name;
        g.channels = p.shape.empty() ? 0 : p.shape[0];
        ++norms;
      }
      if (p.reads == input) g.params.push_back(p.name);
    }
    for (const BlockLinear& l : layout.linears) {
      if (l.reads == input) g.linears.push_back(l.name);
    }
    g.head_dim = g.channels;
    g.unit = g.norm;
    if (norms == 1 && !g.linears.empty()) out.push_back(std::move(g));
  }
  for (const BlockLinear& l : layout.linears) {
    if (!l.feeds) continue;
    const LinearFeed& f = *l.feeds;
    TeqGroup g;
    g.rows_of = l.name;
    g.row_begin = f.row_begin;
    g.channels = f.channels;
    g.head_dim = f.head_dim > 0 ? f.head_dim : f.channels;
    g.repeat = f.repeat;
    g.linears = {f.reader};
    g.unit = l.expert >= 0 ? "experts" : f.reader;
    out.push_back(std::move(g));
  }
  return out;
}

namespace {

// The scale of each of a reader's columns: s repeated over the query heads of a KV head.
at::Tensor ColumnScale(const TeqGroup& g, const at::Tensor& s) {
  if (g.repeat == 1) return s;
  const int64_t heads = g.channels / g.head_dim;
  return s.view({heads, 1, g.head_dim}).expand({heads, g.repeat, g.head_dim}).reshape({-1});
}

// The scale of each row of g.rows_of (`rows` of them): 1 / s on the group's rows.
at::Tensor RowScale(const TeqGroup& g, const at::Tensor& s, int64_t rows) {
  std::vector<at::Tensor> parts;
  if (g.row_begin > 0) parts.push_back(at::ones({g.row_begin}, s.options()));
  parts.push_back(s.reciprocal());
  const int64_t after = rows - g.row_begin - g.channels;
  if (after > 0) parts.push_back(at::ones({after}, s.options()));
  return at::cat(parts);
}

// Per Linear, the product of the scales on its columns and on its rows (undefined: 1).
struct LinearScales {
  at::Tensor columns, rows;
  void Columns(const at::Tensor& c) { columns = columns.defined() ? columns * c : c; }
  void Rows(const at::Tensor& r) { rows = rows.defined() ? rows * r : r; }
  at::Tensor Apply(at::Tensor w) const {
    if (columns.defined()) w = w * columns;
    if (rows.defined()) w = w * rows.unsqueeze(1);
    return w;
  }
};

// Adds group g's scales s to the Linears it changes: 1 / s on the rows of g.rows_of, s on
// its readers' columns.
void AddLinearScales(const TeqGroup& g, const at::Tensor& s, const BlockWeights& original,
                     std::map<std::string, LinearScales>& scales) {
  if (!g.rows_of.empty()) {
    scales[g.rows_of].Rows(RowScale(g, s, original.linear(g.rows_of).weight.size(0)));
  }
  for (const std::string& name : g.linears) scales[name].Columns(ColumnScale(g, s));
}

// Appends g.unit to `units` unless it is there already.
void AddUnit(const TeqGroup& g, std::vector<std::string>& units) {
  if (std::find(units.begin(), units.end(), g.unit) == units.end()) units.push_back(g.unit);
}

}  // namespace

absl::StatusOr<TeqResult> TrainTeq(const ModelConfig& config, BlockForwardFn forward,
                                   const BlockWeights& original, const RopeTables& rope,
                                   const std::vector<TeqGroup>& groups,
                                   const std::vector<LayerToQuantize>& layers,
                                   const at::Tensor& q_in, const at::Tensor& fp_out,
                                   const TeqOptions& o, uint64_t block_seed) {
  try {
    std::map<std::string, const LayerToQuantize*> quantized;
    for (const LayerToQuantize& l : layers) quantized[l.name] = &l;
    // The groups worth training: a quantized reader (scaling for 16-bit readers only changes
    // nothing worth it), and for rows of a Linear, that Linear quantized (its rows are then
    // rounded as they were, each row's scale taking 1 / s) and without a bias.
    std::vector<const TeqGroup*> active;
    for (const TeqGroup& g : groups) {
      bool any = false;
      for (const std::string& name : g.linears) {
        const LinearWeights* lw = original.FindLinear(name);
        if (lw == nullptr || lw->weight.size(1) != g.channels * g.repeat) {
          return absl::InternalError(
              absl::StrCat("TEQ: no Linear ", name, " reading ", g.channels, " channels"));
        }
        any = any || quantized.count(name) != 0;
      }
      if (!g.rows_of.empty()) {
        const LinearWeights* lw = original.FindLinear(g.rows_of);
        if (lw == nullptr || lw->weight.size(0) < g.row_begin + g.channels) {
          return absl::InternalError(absl::StrCat("TEQ: no rows ", g.row_begin, "..",
                                                  g.row_begin + g.channels, " in ", g.rows_of));
        }
        any = any && quantized.count(g.rows_of) != 0 && !lw->bias.defined();
      }
      if (any) active.push_back(&g);
    }
    // The block with every quantized Linear outside the groups at its fixed W^.
    BlockWeights base = original;
    std::map<std::string, bool> in_group;
    for (const TeqGroup* g : active) {
      for (const std::string& name : g->linears) in_group[name] = true;
      if (!g->rows_of.empty()) in_group[g->rows_of] = true;
    }
    {
      at::NoGradGuard no_grad;
      for (const LayerToQuantize& l : layers) {
        if (in_group.count(l.name) != 0) continue;
        LinearWeights* lw = base.FindLinear(l.name);
        if (lw == nullptr) return absl::InternalError(absl::StrCat("TEQ: no Linear ", l.name));
        lw->weight = RoundedToNearest(lw->weight, l.scheme).to(o.weight_dtype);
      }
      for (auto& [name, t] : base.params) t = t.to(o.compute_dtype);
      for (auto& [name, l] : base.linears) {
        l.weight = l.weight.to(o.compute_dtype);
        if (l.bias.defined()) l.bias = l.bias.to(o.compute_dtype);
      }
    }
    std::vector<GroupState> states;
    for (const TeqGroup* g : active) {
      at::Tensor log_s = at::zeros({g->channels}, q_in.options().dtype(at::kFloat));
      states.push_back(
          {g, log_s.requires_grad_(true), at::zeros_like(log_s), at::zeros_like(log_s)});
    }
    std::vector<bool> off(states.size(), false);  // units left out after training
    TeqResult result;
    // The block at the current scales: norms divided, rows divided, readers multiplied, and
    // the quantized Linears rounded.
    auto scaled_block = [&]() {
      BlockWeights w = base;
      std::map<std::string, LinearScales> scales;
      for (size_t i = 0; i < states.size(); ++i) {
        if (off[i]) continue;
        const TeqGroup& g = *states[i].group;
        const at::Tensor s = states[i].log_s.exp();
        if (!g.norm.empty()) {
          w.param(g.norm) =
              ((original.param(g.norm) + o.norm_shift) / s - o.norm_shift).to(o.compute_dtype);
        }
        for (const std::string& name : g.params) {
          w.param(name) = (original.param(name) * s).to(o.compute_dtype);
        }
        AddLinearScales(g, s, original, scales);
      }
      for (const auto& [name, unused] : in_group) {
        at::Tensor ws = scales[name].Apply(original.linear(name).weight);
        auto it = quantized.find(name);
        if (it != quantized.end()) ws = RoundedToNearest(ws, it->second->scheme).to(o.weight_dtype);
        w.FindLinear(name)->weight = ws.to(o.compute_dtype);
      }
      return w;
    };

    // The scales are trained on the first samples and judged on the held-out rest (or on all).
    const int64_t n = q_in.size(0);
    const int64_t trained = o.hold_out ? n - TeqHeldOut(n) : n;
    const int64_t first_judged = trained < n ? trained : 0;
    // The block loss over the judging samples at the current scales.
    auto judged_loss = [&]() {
      at::NoGradGuard no_grad;
      const BlockWeights w = scaled_block();
      double sum = 0;
      for (int64_t b = first_judged; b < n; b += o.batch_size) {
        const int64_t rows = std::min(o.batch_size, n - b);
        at::Tensor out = forward(config, w, rope, q_in.narrow(0, b, rows), nullptr);
        sum +=
            BlockLoss(out.to(at::kFloat), fp_out.narrow(0, b, rows).to(at::kFloat), o.loss_filter)
                .item<double>() *
            static_cast<double>(rows);
      }
      return sum / static_cast<double>(n - first_judged);
    };

    result.loss_iter0 = judged_loss();
    result.loss_best = result.loss_iter0;
    result.weights = original;
    if (states.empty() || o.iters <= 0) return result;  // nothing to train
    BatchSampler sampler(trained, o.batch_size, block_seed);
    Adam adam;
    for (int i = 0; i < o.iters; ++i) {
      const std::vector<int64_t> idx = sampler.Next();
      at::Tensor loss;
      {
        const BlockWeights w = scaled_block();
        at::Tensor out = forward(config, w, rope, SampleRows(q_in, idx), nullptr);
        loss = BlockLoss(out.to(at::kFloat), SampleRows(fp_out, idx).to(at::kFloat), o.loss_filter);
      }
      (loss * 1000.0).backward();
      adam.Step(states, kTeqLr * (1.0 - static_cast<double>(i) / o.iters));
    }
    // Each unit's trained scales stand only when the loss over the judging samples is lower
    // with them than without (random batches are too noisy to pick the best step by).
    double best = judged_loss();
    std::vector<std::string> units;
    for (const GroupState& st : states) AddUnit(*st.group, units);
    for (const std::string& unit : units) {
      const std::vector<bool> before = off;
      for (size_t i = 0; i < states.size(); ++i) {
        if (states[i].group->unit == unit) off[i] = true;
      }
      const double without = judged_loss();
      if (without < best) {
        best = without;
      } else {
        off = before;
      }
    }
    if (!(best < result.loss_iter0)) return result;
    result.loss_best = best;
    result.kept = true;

    // Fold the scales. A norm is rounded to its stored dtype, and its readers take the scale
    // that the rounded norm actually applies, so W s (x / s) = W x up to that rounding.
    at::NoGradGuard no_grad;
    auto stored = [&](const std::string& tensor) {
      return o.stored_dtype ? o.stored_dtype(tensor) : at::kFloat;
    };
    std::map<std::string, LinearScales> scales;
    for (size_t i = 0; i < states.size(); ++i) {
      if (off[i]) continue;
      const TeqGroup& g = *states[i].group;
      AddUnit(g, result.kept_units);
      at::Tensor s = states[i].log_s.detach().exp();
      if (!g.norm.empty()) {
        const at::Tensor norm = original.param(g.norm).to(at::kFloat);
        const std::string norm_tensor = g.norm + ".weight";
        const at::Tensor folded =
            ((norm + o.norm_shift) / s - o.norm_shift).to(stored(norm_tensor));
        const at::Tensor applied = folded.to(at::kFloat) + o.norm_shift;
        const at::Tensor ok = (applied != 0) & (norm + o.norm_shift != 0);
        s = at::where(ok, (norm + o.norm_shift) / at::where(ok, applied, at::ones_like(applied)),
                      s);
        result.weights.param(g.norm) = folded.to(at::kFloat).to(norm.device());
        result.changed.emplace_back(norm_tensor, folded.to(at::kCPU));
      }
      for (const std::string& name : g.params) {
        const std::string tensor = name + ".weight";
        at::Tensor p = (original.param(name).to(at::kFloat) * s).to(stored(tensor));
        result.weights.param(name) = p.to(at::kFloat);
        result.changed.emplace_back(tensor, p.to(at::kCPU));
      }
      AddLinearScales(g, s, original, scales);
    }
    for (const auto& [name, sc] : scales) {
      at::Tensor ws = sc.Apply(original.linear(name).weight.to(at::kFloat));
      // A 16-bit reader (of a norm's output: a rows_of group's Linears are all quantized)
      // is exported as it is now.
      if (quantized.count(name) == 0) {
        const std::string tensor = name + ".weight";
        ws = ws.to(stored(tensor));
        result.changed.emplace_back(tensor, ws.to(at::kCPU));
        ws = ws.to(at::kFloat);
      }
      result.weights.FindLinear(name)->weight = ws;
    }
    return result;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("TEQ failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {  // LibTorch 1.13 also throws plain runtime_errors
    return absl::InternalError(absl::StrCat("TEQ failed: ", e.what()));
  }
}

absl::StatusOr<BlockWeights> WithChangedTensors(
    const BlockWeights& weights, const std::vector<std::pair<std::string, at::Tensor>>& changed) {
  BlockWeights out = weights;
  constexpr absl::string_view kSuffix = ".weight";
  for (const auto& [tensor, value] : changed) {
    if (!absl::EndsWith(tensor, kSuffix)) {
      return absl::InternalError(absl::StrCat("TEQ: changed tensor ", tensor, " is not a weight"));
    }
    const std::string module = tensor.substr(0, tensor.size() - kSuffix.size());
    at::Tensor* target = nullptr;
    for (auto& [name, t] : out.params) {
      if (name == module) target = &t;
    }
    if (LinearWeights* lw = out.FindLinear(module); lw != nullptr) target = &lw->weight;
    if (target == nullptr || target->sizes() != value.sizes()) {
      return absl::InternalError(
          absl::StrCat("TEQ: changed tensor ", tensor, " does not match the block"));
    }
    *target = value.to(target->device(), at::kFloat);
  }
  return out;
}

}  // namespace signround
