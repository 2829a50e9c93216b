// Seconds per SignRound tuning iteration of one decoder block, by default
// Llama-7B-shaped (hidden 4096, intermediate 11008, 32 heads) at a CPU-sized
// token count. Prints the median over repeats.
//
//   build/bin/bench_block_tuning [--nsamples 8 --seqlen 64 --batch-size 4 --iters 3
//                                 --repeats 3 --device cpu|cuda:0]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "CLI/CLI.hpp"
#include "nlohmann/json.hpp"
#include "src/common/proc_stats.h"
#include "src/model/block_registry.h"
#include "src/model/layout.h"
#include "src/quant/signround_tuner.h"
#include "src/tensor/device.h"

namespace {

using namespace signround;

// Block 0 of the config's family: unit norms, weights (and routers) N(0, 0.02^2).
BlockWeights RandomBlock(const ModelConfig& c, at::Device device) {
  const auto on = at::TensorOptions().device(device);
  const BlockLayout layout = DecoderBlockLayout(c, 0);
  BlockWeights b;
  for (const BlockParam& p : layout.params) {
    b.params.emplace_back(p.name, p.shape.size() == 1 ? at::ones(p.shape, on)
                                                      : at::randn(p.shape, on) * 0.02);
  }
  for (const BlockLinear& l : layout.linears) {
    b.linears.push_back({l.name, {at::randn({l.out, l.in}, on) * 0.02, {}}});
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"SignRound block tuning benchmark"};
  int64_t hidden = 4096, intermediate = 11008, heads = 32, kv_heads = 32;
  int64_t nsamples = 8, seqlen = 64;
  int repeats = 3, bits = 4, group_size = 128;
  std::string device_name = "cpu";
  TuneOptions tune;
  tune.iters = 3;
  tune.batch_size = 4;
  app.add_option("--hidden", hidden)->capture_default_str();
  app.add_option("--intermediate", intermediate)->capture_default_str();
  app.add_option("--heads", heads)->capture_default_str();
  app.add_option("--kv-heads", kv_heads)->capture_default_str();
  app.add_option("--nsamples", nsamples)->capture_default_str();
  app.add_option("--seqlen", seqlen)->capture_default_str();
  app.add_option("--batch-size", tune.batch_size)->capture_default_str();
  app.add_option("--iters", tune.iters, "Iterations per timed run")->capture_default_str();
  app.add_option("--repeats", repeats)->capture_default_str();
  app.add_option("--bits", bits)->capture_default_str();
  app.add_option("--group-size", group_size)->capture_default_str();
  app.add_option("--device", device_name)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto device = ParseDevice(device_name);
  nlohmann::json cj = {
      {"model_type", "llama"},  {"hidden_size", hidden},        {"intermediate_size", intermediate},
      {"num_hidden_layers", 1}, {"num_attention_heads", heads}, {"num_key_value_heads", kv_heads},
      {"vocab_size", 32000}};
  auto config = ParseModelConfig(cj.dump(), "bench config");
  if (!device.ok() || !config.ok()) {
    std::fprintf(stderr, "error: %s\n",
                 std::string((device.ok() ? config.status() : device.status()).message()).c_str());
    return 2;
  }
  const bool cuda = device->is_cuda();
  tune.compute_dtype = cuda ? at::kBFloat16 : at::kFloat;
  tune.weight_dtype = at::kBFloat16;
  at::manual_seed(0);
  BlockWeights block = RandomBlock(*config, *device);
  RopeTables rope = MakeRopeTables(*config, seqlen, *device);
  auto act = at::TensorOptions().device(*device).dtype(tune.compute_dtype);
  at::Tensor q_in = at::randn({nsamples, seqlen, hidden}, act);
  at::Tensor fp_out = at::randn({nsamples, seqlen, hidden}, act);
  std::vector<LayerToQuantize> layers;
  for (const auto& [name, linear] : block.linears) {
    layers.push_back({name, {bits, group_size, true}});
  }
  BlockForwardFn forward = *FindBlockForward("llama");

  auto run = [&](int iters) {
    TuneOptions o = tune;
    o.iters = iters;
    auto t0 = std::chrono::steady_clock::now();
    auto r = TuneBlock(*config, forward, block, rope, layers, q_in, fp_out, o, 42);
    if (!r.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(r.status().message()).c_str());
      std::exit(1);
    }
    r->layers.back().dequant.sum().item<double>();  // waits for the device
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  run(1);               // warm-up: allocator, kernels, BLAS handles
  double rtn = run(0);  // the fixed cost (grouping, final quantization)
  std::vector<double> per_iter;
  for (int r = 0; r < repeats; ++r) per_iter.push_back((run(tune.iters) - rtn) / tune.iters);
  std::sort(per_iter.begin(), per_iter.end());

  int64_t params = 0;
  for (const auto& [name, l] : block.linears) params += l.weight.numel();
  std::printf(
      "block:                 hidden %lld, intermediate %lld, heads %lld/%lld, %.1fM "
      "quantized weights, W%d G%d\n",
      static_cast<long long>(hidden), static_cast<long long>(intermediate),
      static_cast<long long>(heads), static_cast<long long>(kv_heads), params / 1e6, bits,
      group_size);
  std::printf("device:                %s (%s compute), %d threads\n", device_name.c_str(),
              cuda ? "bf16" : "fp32", at::get_num_threads());
  std::printf("tokens per iteration:  %lld (batch %lld x seqlen %lld)\n",
              static_cast<long long>(tune.batch_size * seqlen),
              static_cast<long long>(tune.batch_size), static_cast<long long>(seqlen));
  std::printf("seconds per iteration: %.3f median of %d (min %.3f, max %.3f)\n",
              per_iter[per_iter.size() / 2], repeats, per_iter.front(), per_iter.back());
  std::printf("fixed cost per block:  %.3f s (RTN: grouping + final codes)\n", rtn);
  std::printf("peak rss:              %.2f GiB\n",
              ReadProcessMemory().peak_rss_bytes / 1073741824.0);
  return 0;
}
