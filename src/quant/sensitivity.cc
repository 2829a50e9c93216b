#include "src/quant/sensitivity.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "src/quant/signround_tuner.h"

namespace signround {

absl::StatusOr<std::vector<std::vector<double>>> BlockSensitivity(
    const ModelConfig& config, BlockForwardFn forward, const BlockWeights& original,
    const RopeTables& rope, const std::vector<std::string>& layers,
    const std::vector<QuantScheme>& schemes, const at::Tensor& x, const at::Tensor& fp_out,
    const SensitivityOptions& o) {
  for (const std::string& name : layers) {
    if (original.FindLinear(name) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("no layer named ", name));
    }
  }
  std::vector<std::vector<double>> scores(layers.size(), std::vector<double>(schemes.size(), 0));
  try {
    BlockWeights w = WithQuantizedWeights(original, {}, o.compute_dtype);
    for (size_t s = 0; s < schemes.size(); ++s) {
      std::vector<at::Tensor> deltas;  // W - W^, fp32, per layer
      for (const std::string& name : layers) {
        at::NoGradGuard no_grad;
        const at::Tensor& weight = original.FindLinear(name)->weight;
        const GroupedWeight g = GroupWeight(weight, schemes[s].group_size);
        const at::Tensor dequant = QuantDequant(g, schemes[s], InitialRoundingParams(g))
                                       .dequant.to(o.weight_dtype)
                                       .to(o.compute_dtype);
        deltas.push_back(weight - dequant.to(at::kFloat));
        w.FindLinear(name)->weight = dequant.detach().requires_grad_(true);
      }
      for (int64_t b = 0; b < x.size(0); b += o.batch_size) {
        const int64_t n = std::min(o.batch_size, x.size(0) - b);
        at::Tensor out = forward(config, w, rope, x.narrow(0, b, n), nullptr);
        at::mse_loss(out.to(at::kFloat), fp_out.narrow(0, b, n).to(at::kFloat)).backward();
        at::NoGradGuard no_grad;
        for (size_t l = 0; l < layers.size(); ++l) {
          at::Tensor& leaf = w.FindLinear(layers[l])->weight;
          if (!leaf.grad().defined()) continue;  // an expert no token reached
          scores[l][s] += (leaf.grad().to(at::kFloat) * deltas[l]).abs().sum().item<double>();
          leaf.mutable_grad().reset();
        }
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("sensitivity failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("sensitivity failed: ", e.what()));
  }
  return scores;
}

}  // namespace signround
