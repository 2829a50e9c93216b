// Seconds per SignRound tuning iteration of one decoder block. By default a random
// Llama-7B-shaped block (hidden 4096, intermediate 11008, 32 heads) at a CPU-sized token
// count; with --checkpoint, block 0 of a checkpoint tuned on the embedding of --calibration's
// token rows (the fp block's output as the target, as the quantize pipeline does): the same
// block and data the reference tool tunes in bench/gpu/run.sh. Prints the median over
// repeats, the FLOPs of one iteration and the rate achieved, the loss, and peak memory;
// --json writes the same figures.
//
//   build/bin/bench_block_tuning [--nsamples 8 --seqlen 64 --batch-size 4 --iters 3
//                                 --repeats 3 --device cpu|cuda:0]
//                                [--checkpoint DIR --calibration ROWS.jsonl]
//                                [--peak-tflops 790] [--json FILE]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#if defined(SIGNROUND_BENCH_CUDA_STATS)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "CLI/CLI.hpp"
#include "nlohmann/json.hpp"
#include "src/common/proc_stats.h"
#include "src/data/token_dataset.h"
#include "src/data/token_tensor.h"
#include "src/model/block_registry.h"
#include "src/model/block_weights.h"
#include "src/model/checkpoint.h"
#include "src/model/layout.h"
#include "src/model/model_ends.h"
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
    b.params.emplace_back(
        p.name, p.shape.size() == 1 ? at::ones(p.shape, on) : at::randn(p.shape, on) * 0.02);
  }
  for (const BlockLinear& l : layout.linears) {
    b.linears.push_back({l.name, {at::randn({l.out, l.in}, on) * 0.02, {}}});
  }
  return b;
}

[[noreturn]] void Fail(const absl::Status& status) {
  std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
  std::exit(2);
}

template <typename T>
T OrFail(absl::StatusOr<T> value) {
  if (!value.ok()) Fail(value.status());
  return *std::move(value);
}

// What the block is tuned on: its fp32 weights, input and fp output.
struct BenchBlock {
  ModelConfig config;
  BlockForwardFn forward = nullptr;
  BlockWeights weights;
  at::Tensor q_in, fp_out;
  at::ScalarType weight_dtype = at::kBFloat16;
};

// Block 0 of `dir` and the embedding of `calibration`'s rows; fp_out from the fp block in
// the compute dtype (as src/pipeline/quantize_pipeline.cc makes it).
BenchBlock FromCheckpoint(const std::string& dir, const std::string& calibration, at::Device device,
                          const TuneOptions& tune) {
  const Checkpoint ckpt = OrFail(Checkpoint::Open(dir));
  BenchBlock b;
  b.config = ckpt.config();
  const BlockImpl* impl = OrFail(FindBlockImpl(b.config.model_type));
  b.forward = impl->forward;
  b.weights = OrFail(impl->load(ckpt, 0, at::kFloat, device));
  b.weight_dtype = OrFail(WeightDType(ckpt, "model.layers.0." + b.weights.linears.front().first));
  const at::Tensor ids = OrFail(TokenRowsToTensor(OrFail(LoadTokenRows(calibration))));
  const at::Tensor embed = OrFail(LoadEmbedding(ckpt, tune.compute_dtype, device));
  b.q_in = Embed(b.config, embed, ids.to(device));
  const RopeTables rope = MakeRopeTables(b.config, ids.size(1), device);
  b.fp_out =
      ForwardAll(b.config, b.forward, WithQuantizedWeights(b.weights, {}, tune.compute_dtype), rope,
                 b.q_in, tune.batch_size);
  return b;
}

// Floating-point operations of one tuning iteration on `tokens` tokens of `seqlen`: each
// Linear's forward (2 x tokens x weights) and backward (input and weight gradients, twice
// that), and attention's two products (QK^T and AV: 2 x 2 x tokens x seqlen x heads x
// head_dim) forward and backward, counted without the causal half; the quantize-dequantize
// and the norms are left out (elementwise).
double IterationFlops(const ModelConfig& c, const BlockWeights& block, int64_t tokens,
                      int64_t seqlen) {
  double weights = 0;
  for (const auto& [name, l] : block.linears) weights += static_cast<double>(l.weight.numel());
  const int64_t head_dim = c.head_dim > 0 ? c.head_dim : c.hidden_size / c.num_attention_heads;
  const double attention =
      4.0 * tokens * seqlen * static_cast<double>(c.num_attention_heads * head_dim);
  return 3.0 * (2.0 * tokens * weights + attention);
}

// Peak bytes the caching allocator held on `device` since the last reset; -1 when unknown.
int64_t PeakDeviceBytes(at::Device device) {
#if defined(SIGNROUND_BENCH_CUDA_STATS)
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return stats.allocated_bytes[0].peak;  // [0]: the aggregate over pool kinds
  }
#endif
  return -1;
}

void ResetPeakDeviceBytes(at::Device device) {
#if defined(SIGNROUND_BENCH_CUDA_STATS)
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"SignRound block tuning benchmark"};
  int64_t hidden = 4096, intermediate = 11008, heads = 32, kv_heads = 32;
  int64_t nsamples = 8, seqlen = 64;
  int repeats = 3, bits = 4, group_size = 128;
  std::string device_name = "cpu", checkpoint, calibration, json_path;
  double peak_tflops = 0;
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
  auto* ckpt_opt = app.add_option("--checkpoint", checkpoint,
                                  "Tune block 0 of this checkpoint (the shape flags are ignored)");
  app.add_option("--calibration", calibration,
                 "Token-id rows (JSONL) whose embedding is the block's input (with --checkpoint; "
                 "their count and length replace --nsamples and --seqlen)")
      ->needs(ckpt_opt);
  ckpt_opt->needs("--calibration");
  app.add_option("--peak-tflops", peak_tflops,
                 "The device's measured dense matrix rate: prints the floor and the ratio to it");
  app.add_option("--json", json_path, "Also write the figures to this file as JSON");
  CLI11_PARSE(app, argc, argv);

  const at::Device device = OrFail(ParseDevice(device_name));
  const bool cuda = device.is_cuda();
  tune.compute_dtype = cuda ? at::kBFloat16 : at::kFloat;
  tune.weight_dtype = at::kBFloat16;
  at::manual_seed(0);
  BenchBlock b;
  if (!checkpoint.empty()) {
    b = FromCheckpoint(checkpoint, calibration, device, tune);
    nsamples = b.q_in.size(0);
    seqlen = b.q_in.size(1);
    tune.weight_dtype = b.weight_dtype;
  } else {
    nlohmann::json cj = {{"model_type", "llama"},
                         {"hidden_size", hidden},
                         {"intermediate_size", intermediate},
                         {"num_hidden_layers", 1},
                         {"num_attention_heads", heads},
                         {"num_key_value_heads", kv_heads},
                         {"vocab_size", 32000}};
    b.config = OrFail(ParseModelConfig(cj.dump(), "bench config"));
    b.forward = OrFail(FindBlockForward("llama"));
    b.weights = RandomBlock(b.config, device);
    auto act = at::TensorOptions().device(device).dtype(tune.compute_dtype);
    b.q_in = at::randn({nsamples, seqlen, hidden}, act);
    b.fp_out = at::randn({nsamples, seqlen, hidden}, act);
  }
  const ModelConfig& config = b.config;
  const RopeTables rope = MakeRopeTables(config, seqlen, device);
  std::vector<LayerToQuantize> layers;
  for (const auto& [name, linear] : b.weights.linears) {
    layers.push_back({name, {bits, group_size, true}});
  }

  BlockTuneResult last;
  auto run = [&](int iters) {
    TuneOptions o = tune;
    o.iters = iters;
    auto t0 = std::chrono::steady_clock::now();
    auto r = TuneBlock(config, b.forward, b.weights, rope, layers, b.q_in, b.fp_out, o, 42);
    if (!r.ok()) Fail(r.status());
    r->layers.back().dequant.sum().item<double>();  // waits for the device
    last = *std::move(r);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  run(1);               // warm-up: allocator, kernels, BLAS handles
  double rtn = run(0);  // the fixed cost (grouping, final quantization)
  ResetPeakDeviceBytes(device);
  std::vector<double> per_iter;
  for (int r = 0; r < repeats; ++r) per_iter.push_back((run(tune.iters) - rtn) / tune.iters);
  std::sort(per_iter.begin(), per_iter.end());
  const double median = per_iter[per_iter.size() / 2];

  int64_t params = 0;
  for (const auto& [name, l] : b.weights.linears) params += l.weight.numel();
  const int64_t tokens = tune.batch_size * seqlen;
  const double flops = IterationFlops(config, b.weights, tokens, seqlen);
  const double tflops = flops / median / 1e12;
  const int64_t peak_device = PeakDeviceBytes(device);
  std::printf(
      "block:                 %s%s, hidden %lld, intermediate %lld, heads %lld/%lld, "
      "%.1fM quantized weights, W%d G%d\n",
      checkpoint.empty() ? "random" : "block 0 of ", checkpoint.c_str(),
      static_cast<long long>(config.hidden_size), static_cast<long long>(config.intermediate_size),
      static_cast<long long>(config.num_attention_heads),
      static_cast<long long>(config.num_key_value_heads), params / 1e6, bits, group_size);
  std::printf("device:                %s (%s compute), %d threads\n", device_name.c_str(),
              cuda ? "bf16" : "fp32", at::get_num_threads());
  std::printf("tokens per iteration:  %lld (batch %lld x seqlen %lld), %lld samples\n",
              static_cast<long long>(tokens), static_cast<long long>(tune.batch_size),
              static_cast<long long>(seqlen), static_cast<long long>(nsamples));
  std::printf("seconds per iteration: %.4f median of %d (min %.4f, max %.4f)\n", median, repeats,
              per_iter.front(), per_iter.back());
  std::printf("flops per iteration:   %.3g (%.1f TFLOP/s achieved)\n", flops, tflops);
  if (peak_tflops > 0) {
    const double floor = flops / (peak_tflops * 1e12);
    std::printf("floor at %.0f TFLOP/s:  %.4f s per iteration; %.2fx the floor\n", peak_tflops,
                floor, median / floor);
  }
  std::printf("fixed cost per block:  %.3f s (RTN: grouping + final codes)\n", rtn);
  std::printf("loss:                  %.6g at iteration 0 -> %.6g best (iteration %d of %d)\n",
              last.loss_iter0, last.loss_best, last.best_iter, tune.iters);
  if (peak_device >= 0) {
    std::printf("peak device memory:    %.2f GiB (caching allocator, timed runs)\n",
                peak_device / 1073741824.0);
  }
  std::printf("peak rss:              %.2f GiB\n",
              ReadProcessMemory().peak_rss_bytes / 1073741824.0);
  if (!json_path.empty()) {
    nlohmann::json out = {{"side", "signround"},
                          {"checkpoint", checkpoint},
                          {"device", device_name},
                          {"tokens_per_iteration", tokens},
                          {"nsamples", nsamples},
                          {"seqlen", seqlen},
                          {"iters", tune.iters},
                          {"repeats", repeats},
                          {"seconds_per_iteration", median},
                          {"seconds_per_iteration_min", per_iter.front()},
                          {"fixed_seconds", rtn},
                          {"flops_per_iteration", flops},
                          {"tflops", tflops},
                          {"loss_iter0", last.loss_iter0},
                          {"loss_best", last.loss_best},
                          {"best_iter", last.best_iter},
                          {"peak_device_bytes", peak_device},
                          {"peak_rss_bytes", ReadProcessMemory().peak_rss_bytes}};
    std::ofstream(json_path) << out.dump(2) << "\n";
  }
  return 0;
}
