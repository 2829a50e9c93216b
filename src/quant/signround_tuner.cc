#include "src/quant/signround_tuner.h"

#include <ATen/core/grad_mode.h>
#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/model/block_ops.h"
#include "src/quant/batch_sampler.h"
#include "src/quant/scale_search.h"

namespace signround {
namespace {

struct TunedLayer {
  std::string name;
  QuantScheme scheme;
  GroupedWeight weight;
  RoundingParams params;
  // alpha's and beta's steps are minmax_lr times this (WidenSearchedRange's step scale).
  double minmax_step = 1.0;
};

at::Tensor CastOrUndefined(const at::Tensor& t, at::ScalarType dtype) {
  return t.defined() ? t.to(dtype) : t;
}

BlockWeights CastBlock(const BlockWeights& w, at::ScalarType dtype) {
  BlockWeights out = w;
  for (auto& [name, t] : out.params) t = CastOrUndefined(t, dtype);
  for (auto& [name, l] : out.linears) {
    l.weight = CastOrUndefined(l.weight, dtype);
    l.bias = CastOrUndefined(l.bias, dtype);
  }
  return out;
}

// Loss of one micro-batch with the current parameters; backward when asked.
double MicroBatchLoss(const ModelConfig& config, BlockForwardFn forward, const BlockWeights& base,
                      std::vector<TunedLayer>& layers, const RopeTables& rope,
                      const at::Tensor& q_in, const at::Tensor& fp_out,
                      const std::vector<int64_t>& idx, double divisor, bool backward,
                      const TuneOptions& o) {
  at::Tensor loss;
  {
    BlockWeights w = base;
    for (TunedLayer& l : layers) {
      // W^ rounded to the checkpoint's weight dtype, in the compute dtype.
      w.FindLinear(l.name)->weight =
          QuantDequantWeight(l.weight, l.scheme, l.params, o.weight_dtype, o.compute_dtype);
    }
    at::Tensor out = forward(config, w, rope, SampleRows(q_in, idx), nullptr);
    loss = BlockLoss(out.to(at::kFloat), SampleRows(fp_out, idx).to(at::kFloat), o.loss_filter) /
           divisor;
  }
  // Each W^ now lives only in the graph, which frees it once its layer's backward has run.
  if (backward) (loss * 1000.0).backward();
  return loss.item<double>();
}

void SignSgdStep(std::vector<TunedLayer>& layers, double lr, double minmax_lr, bool minmax) {
  at::NoGradGuard no_grad;
  auto step = [](at::Tensor& p, double rate) {
    if (!p.grad().defined()) return;
    p.sub_(p.mutable_grad().sign_(), rate);  // the gradient is dropped next: sign it in place
    p.mutable_grad().reset();                // autograd hands the next gradient over without a copy
  };
  for (TunedLayer& l : layers) {
    step(l.params.v, lr);
    if (minmax) {
      step(l.params.alpha, minmax_lr * l.minmax_step);
      step(l.params.beta, minmax_lr * l.minmax_step);
    }
  }
}

// Overwrites `snapshot` in place: no second copy of every V alive at once.
void CopySnapshot(const std::vector<TunedLayer>& layers, std::vector<RoundingParams>& snapshot) {
  at::NoGradGuard no_grad;
  for (size_t k = 0; k < layers.size(); ++k) {
    snapshot[k].v.copy_(layers[k].params.v);
    snapshot[k].alpha.copy_(layers[k].params.alpha);
    snapshot[k].beta.copy_(layers[k].params.beta);
  }
}

std::vector<RoundingParams> Snapshot(const std::vector<TunedLayer>& layers) {
  std::vector<RoundingParams> out;
  for (const TunedLayer& l : layers) {
    out.push_back({l.params.v.detach().clone(), l.params.alpha.detach().clone(),
                   l.params.beta.detach().clone()});
  }
  return out;
}

// The mean square of each Linear's inputs per input channel [in] (fp32, on the inputs'
// device), over every token of `x` run through the block in batches of `batch_size`:
// what llama.cpp's importance matrix holds. By layer name.
std::map<std::string, at::Tensor> InputImportance(const ModelConfig& config, BlockForwardFn forward,
                                                  const BlockWeights& weights,
                                                  const RopeTables& rope, const at::Tensor& x,
                                                  int64_t batch_size) {
  at::NoGradGuard no_grad;
  std::map<const LinearWeights*, std::pair<at::Tensor, int64_t>> sums;
  ScopedLinearInputObserver observer([&](const LinearWeights& w, const at::Tensor& in) {
    at::Tensor flat = in.reshape({-1, in.size(-1)}).to(at::kFloat);
    auto& [sum, count] = sums[&w];
    at::Tensor s = flat.pow(2).sum(0);
    sum = sum.defined() ? sum.add_(s) : s;
    count += flat.size(0);
  });
  for (int64_t b = 0; b < x.size(0); b += batch_size) {
    forward(config, weights, rope, x.narrow(0, b, std::min(batch_size, x.size(0) - b)), nullptr);
  }
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, lw] : weights.linears) {
    auto it = sums.find(&lw);
    if (it == sums.end() || it->second.second == 0) continue;
    out[name] = it->second.first / static_cast<double>(it->second.second);
  }
  return out;
}

// Whether `scheme` starts from the importance-weighted scale search: a k-quant always,
// an integer scheme (not float_min) when the job asks for it.
bool Searched(const QuantScheme& scheme, bool scale_search) {
  if (contract::IsKQuant(scheme.data_type)) return true;
  return scale_search && !scheme.float_min;
}

bool AnySearched(const std::vector<LayerToQuantize>& layers, bool scale_search) {
  return std::any_of(layers.begin(), layers.end(),
                     [&](const LayerToQuantize& l) { return Searched(l.scheme, scale_search); });
}

// `importance`: each Linear's input importance (InputImportance), for the scale search.
absl::StatusOr<std::vector<TunedLayer>> PrepareLayers(
    const BlockWeights& original, const std::vector<LayerToQuantize>& layers, bool trainable,
    bool minmax, bool scale_search, const std::map<std::string, at::Tensor>& importance) {
  std::vector<TunedLayer> out;
  for (const LayerToQuantize& l : layers) {
    const LinearWeights* lw = original.FindLinear(l.name);
    if (lw == nullptr) return absl::InvalidArgumentError(absl::StrCat("no layer named ", l.name));
    TunedLayer t{l.name, l.scheme, GroupWeight(lw->weight, l.scheme.group_size), {}};
    t.params = InitialRoundingParams(t.weight);
    // With calibration data, a k-quant starts where the importance-weighted scale search
    // lands (without, it is plain rounding to nearest: on llama-k256 the search weighted by
    // the weights alone gave lower weight MSE but higher perplexity); so does an integer
    // scheme with scale_search.
    if (auto it = importance.find(l.name);
        Searched(l.scheme, scale_search) && it != importance.end()) {
      if (contract::IsKQuant(l.scheme.data_type)) {
        KQuantSearchRange(t.weight, l.scheme, it->second);
      } else {
        IntSearchRange(t.weight, l.scheme, it->second);
        t.minmax_step = WidenSearchedRange(t.weight, t.params);
      }
    }
    if (trainable && !l.round_only) {
      t.params.v.requires_grad_(true);
      t.params.alpha.requires_grad_(minmax);
      t.params.beta.requires_grad_(minmax);
    }
    out.push_back(std::move(t));
  }
  return out;
}

// The layer's final integer codes, scales and zero points with `params`, and its W^ in
// `weight_dtype`: the one exit of tuning (model-free RTN restates it: src/quant/rtn_kernel.h).
QuantizedLinear FinishLayer(const TunedLayer& layer, const RoundingParams& params,
                            at::ScalarType weight_dtype) {
  at::NoGradGuard no_grad;
  QdqResult r = QuantDequant(layer.weight, layer.scheme, params);
  return {layer.name, layer.scheme, r.dequant.to(weight_dtype).contiguous(),
          ToIntegerWeight(layer.weight, layer.scheme, r)};
}

}  // namespace

at::Tensor SampleRows(const at::Tensor& x, const std::vector<int64_t>& idx) {
  return x.index_select(0, at::tensor(idx, at::kLong).to(x.device()));
}

at::Tensor BlockLoss(const at::Tensor& out, const at::Tensor& target, bool filter) {
  const int64_t n = out.numel();
  const auto dropped = static_cast<int64_t>(static_cast<double>(n) * kLossFilterFraction);
  if (!filter || dropped == 0) return at::mse_loss(out, target);
  at::Tensor se = (out - target).pow(2).reshape({-1});
  const at::Tensor largest = std::get<1>(se.detach().topk(dropped, 0, /*largest=*/true,
                                                          /*sorted=*/false));
  return se.index_fill(0, largest, 0.0).sum() / static_cast<double>(n - dropped);
}

double EffectiveLr(const TuneOptions& o) { return o.lr > 0 ? o.lr : 1.0 / std::max(1, o.iters); }

double EffectiveMinmaxLr(const TuneOptions& o) {
  return o.minmax_lr > 0 ? o.minmax_lr : EffectiveLr(o);
}

BlockWeights WithQuantizedWeights(const BlockWeights& weights,
                                  const std::vector<QuantizedLinear>& layers,
                                  at::ScalarType dtype) {
  BlockWeights out = CastBlock(weights, dtype);
  for (const QuantizedLinear& l : layers) {
    LinearWeights* w = out.FindLinear(l.name);
    w->weight = l.dequant.to(w->weight.device(), dtype);
  }
  return out;
}

absl::StatusOr<BlockTuneResult> TuneBlock(const ModelConfig& config, BlockForwardFn forward,
                                          const BlockWeights& original, const RopeTables& rope,
                                          const std::vector<LayerToQuantize>& layers,
                                          const at::Tensor& q_in, const at::Tensor& fp_out,
                                          const TuneOptions& o, uint64_t block_seed) {
  try {
    const bool tune = o.iters > 0;
    const std::map<std::string, at::Tensor> importance =
        AnySearched(layers, o.scale_search)
            ? InputImportance(config, forward, CastBlock(original, o.compute_dtype), rope, q_in,
                              o.batch_size)
            : std::map<std::string, at::Tensor>();
    auto prepared =
        PrepareLayers(original, layers, tune, o.enable_minmax_tuning, o.scale_search, importance);
    if (!prepared.ok()) return prepared.status();
    std::vector<TunedLayer>& tuned = *prepared;
    const BlockWeights base = CastBlock(original, o.compute_dtype);
    const double lr = EffectiveLr(o);
    const double minmax_lr = EffectiveMinmaxLr(o);
    const int steps = std::max(1, o.gradient_accumulate_steps);
    BatchSampler sampler(q_in.size(0), o.batch_size, block_seed);

    BlockTuneResult result;
    double best = std::numeric_limits<double>::infinity();
    std::vector<RoundingParams> best_params = Snapshot(tuned);
    for (int i = 0; i < std::max(1, o.iters); ++i) {
      std::optional<at::NoGradGuard> no_grad;
      if (!tune) no_grad.emplace();
      double loss = 0;
      for (int s = 0; s < steps; ++s) {
        loss += MicroBatchLoss(config, forward, base, tuned, rope, q_in, fp_out, sampler.Next(),
                               steps, tune, o);
      }
      if (i == 0) result.loss_iter0 = loss;
      // The loss was measured with the parameters before this step.
      if (loss < best) {
        best = loss;
        result.best_iter = i;
        CopySnapshot(tuned, best_params);
      }
      if (tune) {
        double decay = 1.0 - static_cast<double>(i) / o.iters;
        SignSgdStep(tuned, lr * decay, minmax_lr * decay, o.enable_minmax_tuning);
      }
    }
    result.loss_best = best;

    for (size_t k = 0; k < tuned.size(); ++k) {
      tuned[k].params = {};  // the tuned V and its gradient are done with
      result.layers.push_back(FinishLayer(tuned[k], best_params[k], o.weight_dtype));
    }
    return result;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("tuning failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {  // LibTorch 1.13 also throws plain runtime_errors
    return absl::InternalError(absl::StrCat("tuning failed: ", e.what()));
  }
}

}  // namespace signround
