#include "src/quant/teq.h"

#include <ATen/core/grad_mode.h>
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
  at::Tensor log_s;  // [hidden] fp32
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
        ++norms;
      }
      if (p.reads == input) g.params.push_back(p.name);
    }
    for (const BlockLinear& l : layout.linears) {
      if (l.reads == input) g.linears.push_back(l.name);
    }
    if (norms == 1 && !g.linears.empty()) out.push_back(std::move(g));
  }
  return out;
}

absl::StatusOr<TeqResult> TrainTeq(const ModelConfig& config, BlockForwardFn forward,
                                   const BlockWeights& original, const RopeTables& rope,
                                   const std::vector<TeqGroup>& groups,
                                   const std::vector<LayerToQuantize>& layers,
                                   const at::Tensor& q_in, const at::Tensor& fp_out,
                                   const TeqOptions& o, uint64_t block_seed) {
  try {
    std::map<std::string, const LayerToQuantize*> quantized;
    for (const LayerToQuantize& l : layers) quantized[l.name] = &l;
    // The groups with a quantized reader: scaling the others changes nothing worth it.
    std::vector<const TeqGroup*> active;
    for (const TeqGroup& g : groups) {
      bool any = false;
      for (const std::string& name : g.linears) {
        if (original.FindLinear(name) == nullptr) {
          return absl::InternalError(absl::StrCat("TEQ: no Linear ", name, " in the block"));
        }
        any = any || quantized.count(name) != 0;
      }
      if (any) active.push_back(&g);
    }
    // The block with every quantized Linear outside the groups at its fixed W^.
    BlockWeights base = original;
    std::map<std::string, bool> in_group;
    for (const TeqGroup* g : active) {
      for (const std::string& name : g->linears) in_group[name] = true;
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
      const at::Tensor& norm = original.param(g->norm);
      at::Tensor log_s = at::zeros({norm.size(0)}, norm.options().dtype(at::kFloat));
      states.push_back(
          {g, log_s.requires_grad_(true), at::zeros_like(log_s), at::zeros_like(log_s)});
    }
    TeqResult result;
    // The block at the current scales: norms divided, readers multiplied (and rounded).
    auto scaled_block = [&]() {
      BlockWeights w = base;
      for (GroupState& st : states) {
        const at::Tensor s = st.log_s.exp();
        at::Tensor& norm = w.param(st.group->norm);
        norm = ((original.param(st.group->norm) + o.norm_shift) / s - o.norm_shift)
                   .to(o.compute_dtype);
        for (const std::string& name : st.group->params) {
          w.param(name) = (original.param(name) * s).to(o.compute_dtype);
        }
        for (const std::string& name : st.group->linears) {
          at::Tensor ws = original.linear(name).weight * s;
          auto it = quantized.find(name);
          if (it != quantized.end()) {
            ws = RoundedToNearest(ws, it->second->scheme).to(o.weight_dtype);
          }
          w.FindLinear(name)->weight = ws.to(o.compute_dtype);
        }
      }
      return w;
    };

    // The block loss over every calibration sample at the current scales.
    auto full_loss = [&]() {
      at::NoGradGuard no_grad;
      const BlockWeights w = scaled_block();
      double sum = 0;
      const int64_t n = q_in.size(0);
      for (int64_t b = 0; b < n; b += o.batch_size) {
        const int64_t rows = std::min(o.batch_size, n - b);
        at::Tensor out = forward(config, w, rope, q_in.narrow(0, b, rows), nullptr);
        sum +=
            BlockLoss(out.to(at::kFloat), fp_out.narrow(0, b, rows).to(at::kFloat), o.loss_filter)
                .item<double>() *
            static_cast<double>(rows);
      }
      return sum / static_cast<double>(n);
    };

    result.loss_iter0 = full_loss();
    if (states.empty()) {  // no quantized Linear reads a norm's output
      result.loss_best = result.loss_iter0;
      result.weights = original;
      return result;
    }
    BatchSampler sampler(q_in.size(0), o.batch_size, block_seed);
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
    // The trained scales stand only when they lower the loss over all the samples (random
    // batches are too noisy to pick the best step by).
    result.loss_best = o.iters > 0 ? full_loss() : result.loss_iter0;
    result.kept = result.loss_best < result.loss_iter0;
    if (!result.kept) {
      result.loss_best = result.loss_iter0;
      result.weights = original;
      return result;
    }

    // Fold the scales. The norm is rounded to its stored dtype; the readers take the
    // scale that the rounded norm actually applies, so W s (x / s) = W x up to that rounding.
    at::NoGradGuard no_grad;
    result.weights = original;
    auto stored = [&](const std::string& tensor) {
      return o.stored_dtype ? o.stored_dtype(tensor) : at::kFloat;
    };
    for (GroupState& st : states) {
      const TeqGroup& g = *st.group;
      const at::Tensor s = st.log_s.detach().exp();
      const at::Tensor norm = original.param(g.norm).to(at::kFloat);
      const std::string norm_tensor = g.norm + ".weight";
      const at::Tensor folded = ((norm + o.norm_shift) / s - o.norm_shift).to(stored(norm_tensor));
      const at::Tensor applied = folded.to(at::kFloat) + o.norm_shift;
      const at::Tensor ok = (applied != 0) & (norm + o.norm_shift != 0);
      const at::Tensor s_eff =
          at::where(ok, (norm + o.norm_shift) / at::where(ok, applied, at::ones_like(applied)), s);
      result.weights.param(g.norm) = folded.to(at::kFloat).to(norm.device());
      result.changed.emplace_back(norm_tensor, folded.to(at::kCPU));
      for (const std::string& name : g.params) {
        const std::string tensor = name + ".weight";
        at::Tensor p = (original.param(name).to(at::kFloat) * s_eff).to(stored(tensor));
        result.weights.param(name) = p.to(at::kFloat);
        result.changed.emplace_back(tensor, p.to(at::kCPU));
      }
      for (const std::string& name : g.linears) {
        at::Tensor ws = original.linear(name).weight.to(at::kFloat) * s_eff;
        if (quantized.count(name) == 0) {  // kept 16-bit: exported as it is now
          const std::string tensor = name + ".weight";
          ws = ws.to(stored(tensor));
          result.changed.emplace_back(tensor, ws.to(at::kCPU));
          ws = ws.to(at::kFloat);
        }
        result.weights.FindLinear(name)->weight = ws;
      }
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
