#include "src/pipeline/quantize_pipeline.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/proc_stats.h"
#include "src/common/status_macros.h"
#include "src/contract/auto_scheme.h"
#include "src/data/text_dataset.h"
#include "src/data/token_dataset.h"
#include "src/data/token_tensor.h"
#include "src/eval/perplexity.h"
#include "src/export/export_format.h"
#include "src/export/gguf_mix.h"
#include "src/export/quantization_config.h"
#include "src/model/checkpoint.h"
#include "src/model/family.h"
#include "src/model/model_ends.h"
#include "src/pipeline/auto_scheme.h"
#include "src/pipeline/model_free_rtn.h"
#include "src/pipeline/outputs.h"
#include "src/quant/teq.h"
#include "src/tensor/device.h"
#include "src/tensor/torch_tensor.h"

namespace signround {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

// Whether the run pushes calibration data through the blocks. Without a calibration file
// (allowed only for RTN, iters 0) each block is rounded to nearest straight from its weights:
// no embedding, no activations, no forward pass. Such a run is told apart everywhere:
// settings (and report "config") carry "calibrated": false and "calib": null, report.json
// has "calibration": null, and block stats report loss_iter0 = loss_best = 0 and best_iter 0
// (nothing was measured) with "calibrated": false on each block event.
bool Calibrated(const QuantizeOptions& o) { return !o.calib_path.empty(); }

// The tuner's options: the job's settings and the engine's own knobs.
TuneOptions TuneOptionsOf(const QuantizeOptions& o) {
  TuneOptions t;
  t.iters = o.settings.iters;
  t.lr = o.settings.lr;
  t.minmax_lr = o.settings.minmax_lr;
  t.batch_size = o.settings.batch_size;
  t.gradient_accumulate_steps = o.gradient_accumulate_steps;
  t.enable_minmax_tuning = o.enable_minmax_tuning;
  t.seed = o.settings.seed;
  t.scale_search = o.settings.scale_search;
  t.loss_filter = o.settings.loss_filter;
  return t;
}

// The seed of block `index`'s batch draws (the tuning's and TEQ's).
uint64_t BlockSeed(const QuantizeOptions& o, int64_t index) {
  return o.settings.seed + static_cast<uint64_t>(index);
}

ExportWaivers WaiversOf(const QuantizeOptions& o) {
  return {o.settings.allow_split_fused, o.settings.allow_gguf_without_vocab};
}

absl::StatusOr<std::vector<ExportFormat>> FormatsOf(const contract::QuantizeSettings& s) {
  std::vector<ExportFormat> out;
  for (const std::string& name : s.formats) {
    absl::StatusOr<ExportFormat> f = contract::FindExportFormat(name);
    if (!f.ok()) return Invalid(absl::StrCat("format ", f.status().message()));
    out.push_back(*std::move(f));
  }
  if (out.empty()) return Invalid("no export format");
  return out;
}

absl::Status ValidateOptions(const QuantizeOptions& o) {
  SR_RETURN_IF_ERROR(ValidateQuantScheme(o.settings.scheme()));
  if (o.settings.nsamples <= 0)
    return Invalid(absl::StrCat("nsamples must be positive, got ", o.settings.nsamples));
  if (o.settings.seqlen < 2)
    return Invalid(absl::StrCat("seqlen must be at least 2, got ", o.settings.seqlen));
  if (o.settings.iters < 0)
    return Invalid(absl::StrCat("iters must be >= 0, got ", o.settings.iters));
  if (!Calibrated(o) && o.settings.iters != 0) {
    return Invalid(
        absl::StrCat("a calibration file is required unless iters is 0 (recipe rtn); "
                     "iters is ",
                     o.settings.iters));
  }
  if (!Calibrated(o) && o.settings.scale_search) {
    return Invalid(
        "scale_search (recipe opt_rtn) weighs each layer's inputs: it needs a calibration file");
  }
  SR_RETURN_IF_ERROR(contract::CheckAutoScheme(o.settings));
  if (!Calibrated(o) && o.settings.target_bits > 0) {
    return Invalid("target_bits (mixed bits) measures each layer: it needs a calibration file");
  }
  if (o.settings.teq_iters < 0 || o.settings.teq_iters > contract::kMaxTeqIters) {
    return Invalid(absl::StrCat("teq_iters must be in 0..", contract::kMaxTeqIters, ", got ",
                                o.settings.teq_iters));
  }
  if (!Calibrated(o) && o.settings.teq_iters > 0) {
    return Invalid("teq_iters (TEQ) trains on the block loss: it needs a calibration file");
  }
  if (o.settings.batch_size <= 0) {
    return Invalid(absl::StrCat("batch_size must be positive, got ", o.settings.batch_size));
  }
  if (o.gradient_accumulate_steps <= 0) {
    return Invalid("gradient_accumulate_steps must be positive");
  }
  if (o.settings.lr < 0 || o.settings.minmax_lr < 0)
    return Invalid("learning rates must be positive");
  if (o.out_dir.empty()) return Invalid("an output directory is required");
  if (o.max_shard_bytes == 0) return Invalid("max_shard_size must be positive");
  SR_RETURN_IF_ERROR(ValidatePackedTorchDtype(o.settings.packed_dtype));
  std::error_code ec;
  if (fs::equivalent(o.model_dir, o.out_dir, ec)) {
    return Invalid("the output directory must differ from the model directory");
  }
  return absl::OkStatus();
}

// Every setting that shapes the result; the work directory resumes only when
// these are identical, and report.json records them. An uncalibrated run lists
// no calibration or tuning settings (none of them changes its result), has
// "calib": null, and can never resume a calibrated run's blocks or the reverse.
json SettingsJson(const QuantizeOptions& o, const Checkpoint& ckpt) {
  // (Keys are sorted on output, so the order they are added in does not matter.)
  json s = {{"model", o.model_name.empty() ? o.model_dir : o.model_name},
            {"model_parameters", ckpt.parameter_count()},
            {"calibrated", Calibrated(o)},
            {"bits", o.settings.bits},
            {"group_size", o.settings.group_size},
            {"sym", o.settings.sym},
            {"layer_config", contract::LayerOverridesToJson(o.settings.layer_overrides)},
            {"recipe", o.settings.recipe},
            {"iters", o.settings.iters},
            {"device", o.device},
            {"scale_dtype", "float16"}};
  if (!Calibrated(o)) {
    s["calib"] = nullptr;
    return s;
  }
  const TuneOptions tune = TuneOptionsOf(o);
  s.update({{"calib", o.calib_name.empty() ? o.calib_path : o.calib_name},
            {"calib_concat", o.calib_concat},
            {"lr", EffectiveLr(tune)},
            {"minmax_lr", EffectiveMinmaxLr(tune)},
            {"nsamples", o.settings.nsamples},
            {"seqlen", o.settings.seqlen},
            {"batch_size", o.settings.batch_size},
            {"gradient_accumulate_steps", o.gradient_accumulate_steps},
            {"enable_minmax_tuning", o.enable_minmax_tuning},
            {"enable_quanted_input", o.enable_quanted_input},
            {"scale_search", o.settings.scale_search},
            {"loss_filter", o.settings.loss_filter},
            {"target_bits", o.settings.target_bits},
            {"scheme_candidates", o.settings.scheme_candidates},
            {"teq_iters", o.settings.teq_iters},
            {"seed", o.settings.seed}});
  return s;
}

absl::StatusOr<at::Tensor> LoadCalibration(const QuantizeOptions& o, const ModelConfig& c) {
  SR_ASSIGN_OR_RETURN(
      std::vector<TokenRow> rows,
      LoadDatasetRows(o.calib_path, o.model_dir, {o.calib_concat, o.settings.seqlen}));
  auto samples = SelectSamples(rows, o.settings.nsamples, o.settings.seqlen);
  if (!samples.ok()) {
    return Invalid(absl::StrCat(o.calib_path, ": ", samples.status().message()));
  }
  SR_RETURN_IF_ERROR(CheckTokenIds(*samples, c.vocab_size, o.calib_path));
  return TokenRowsToTensor(*samples);
}

// The experts of `tokens` that received fewer than kMinExpertTokens.
std::vector<int64_t> StarvedExperts(const std::vector<int64_t>& tokens) {
  std::vector<int64_t> out;
  for (size_t e = 0; e < tokens.size(); ++e) {
    if (tokens[e] < contract::kMinExpertTokens) out.push_back(static_cast<int64_t>(e));
  }
  return out;
}

// The quantized layers of block `layer`; those of the experts in `round_only`
// are rounded to nearest instead of tuned.
std::vector<LayerToQuantize> BlockLayers(const std::vector<LayerPlan>& plans, int64_t layer,
                                         const std::vector<int64_t>& round_only = {}) {
  std::vector<LayerToQuantize> out;
  const std::string prefix = absl::StrCat("model.layers.", layer, ".");
  for (const LayerPlan& p : plans) {
    if (p.layer.layer == layer && p.quantized) {
      const bool starved = p.layer.expert >= 0 && std::find(round_only.begin(), round_only.end(),
                                                            p.layer.expert) != round_only.end();
      out.push_back({p.layer.name.substr(prefix.size()), p.scheme, starved});
    }
  }
  return out;
}

json LayersJson(const std::vector<LayerPlan>& plans) {
  json out = json::array();
  for (const LayerPlan& p : plans) {
    if (p.quantized) {
      json layer = {{"name", p.layer.name},
                    {"bits", p.scheme.bits},
                    {"group_size", p.scheme.group_size},
                    {"sym", p.scheme.sym}};
      if (p.scheme.float_min) layer["float_min"] = true;
      if (contract::IsKQuant(p.scheme.data_type)) {
        layer["data_type"] = contract::DataTypeName(p.scheme.data_type);
      }
      out.push_back(std::move(layer));
    } else {
      out.push_back({{"name", p.layer.name}, {"bits", contract::kKeepBits}, {"reason", p.reason}});
    }
  }
  return out;
}

// report.json's "calibration": the data the blocks saw, or null for RTN without any.
json CalibrationJson(const QuantizeOptions& o) {
  if (!Calibrated(o)) return nullptr;
  return {{"path", o.calib_name.empty() ? o.calib_path : o.calib_name},
          {"nsamples", o.settings.nsamples},
          {"seqlen", o.settings.seqlen},
          {"concat", o.calib_concat}};
}

struct RunContext {
  const QuantizeOptions& options;
  const Checkpoint& ckpt;
  const BlockImpl& impl;
  at::Device device;
  at::ScalarType dtype;
  const ProgressFn& progress;
};

// Lists a finished block in `blocks` and reports it as progress; CANCELLED when
// the receiver asks to stop.
absl::Status ReportBlock(const RunContext& ctx, const BlockStats& stats, bool resumed,
                         json& blocks) {
  blocks.push_back(BlockStatsToJson(stats));
  ProgressEvent event{"block",
                      {stats, ctx.ckpt.config().num_hidden_layers, resumed},
                      json{{"calibrated", Calibrated(ctx.options)}}};
  if (ctx.progress && !ctx.progress(event)) {
    return absl::CancelledError(absl::StrCat("cancelled after block ", stats.index));
  }
  return absl::OkStatus();
}

// Block `index` from the work directory when an earlier run finished it
// (*resumed), else made by `make` from the block's layers and saved there.
absl::StatusOr<StoredBlock> ResumeOrMake(
    const BlockStore& store, const std::vector<LayerPlan>& plans, int64_t index,
    const std::string& prefix,
    const std::function<absl::StatusOr<StoredBlock>(const std::vector<LayerToQuantize>&)>& make,
    bool* resumed, const std::vector<int64_t>& round_only = {}) {
  *resumed = store.Has(index);
  if (*resumed) return store.Load(index, prefix);
  SR_ASSIGN_OR_RETURN(StoredBlock block, make(BlockLayers(plans, index, round_only)));
  SR_RETURN_IF_ERROR(store.Save(block, prefix));
  return block;
}

// What tuning one block reads: its original weights and its two chains.
struct BlockChains {
  int64_t index;
  const BlockWeights& original;
  const RopeTables& rope;
  const at::Tensor& in;      // the block's input: the quantized chain's, or the fp one's
  const at::Tensor& fp_out;  // the original block's output on the fp chain
};

// TEQ's scales for block b (teq.h), trained as the block's tuning would draw batches.
absl::StatusOr<TeqResult> RunTeq(const RunContext& ctx, const BlockChains& b,
                                 const std::vector<LayerToQuantize>& layers,
                                 const TuneOptions& tune) {
  const ModelConfig& c = ctx.ckpt.config();
  const ModelFamily* family = FindModelFamily(c.model_type);
  if (family == nullptr) return Invalid(absl::StrCat("TEQ: unknown model_type ", c.model_type));
  const std::string prefix = absl::StrCat("model.layers.", b.index, ".");
  TeqOptions t;
  t.iters = ctx.options.settings.teq_iters;
  t.batch_size = ctx.options.settings.batch_size;
  t.loss_filter = ctx.options.settings.loss_filter;
  t.hold_out = ctx.options.settings.iters == 0;  // teq.h: held out only before rounding
  t.norm_shift = c.gemma_norms ? 1.0 : 0.0;
  t.compute_dtype = ctx.dtype;
  t.weight_dtype = tune.weight_dtype;
  t.stored_dtype = [&](const std::string& tensor) {
    absl::StatusOr<Checkpoint::Tensor> found = ctx.ckpt.Find(prefix + tensor);
    std::optional<at::ScalarType> type;
    if (found.ok()) type = ToScalarType(found->entry->dtype);
    return type.value_or(at::kFloat);
  };
  return TrainTeq(c, ctx.impl.forward, b.original, b.rope,
                  TeqGroups(family->block_layout(c, b.index)), layers, b.in, b.fp_out, t,
                  BlockSeed(ctx.options, b.index));
}

// Block b's `layers` tuned under `t` (TuneBlock). With TEQ its scales come first (RunTeq):
// with iters 0 the block is rounded from the transformed weights; before SignRound it is
// tuned with and without them and keeps them only when the tuned block then fits all the
// samples better. TEQ's stats and the tensors it changed go to *block.
absl::StatusOr<BlockTuneResult> TuneBlockLayers(const RunContext& ctx, const BlockChains& b,
                                                const std::vector<LayerToQuantize>& layers,
                                                const TuneOptions& t, StoredBlock& block) {
  const ModelConfig& c = ctx.ckpt.config();
  const QuantizeOptions& o = ctx.options;
  auto tune_from = [&](const BlockWeights& w) {
    return TuneBlock(c, ctx.impl.forward, w, b.rope, layers, b.in, b.fp_out, t,
                     BlockSeed(o, b.index));
  };
  if (o.settings.teq_iters == 0) return tune_from(b.original);
  SR_ASSIGN_OR_RETURN(TeqResult teq, RunTeq(ctx, b, layers, t));
  block.stats.teq =
      BlockStats::Teq{teq.loss_iter0, teq.loss_best, teq.kept, std::move(teq.kept_units), {}};
  if (!teq.kept) return tune_from(b.original);
  if (o.settings.iters == 0) {
    SR_ASSIGN_OR_RETURN(BlockTuneResult rounded, tune_from(teq.weights));
    block.changed = std::move(teq.changed);
    return rounded;
  }
  SR_ASSIGN_OR_RETURN(BlockTuneResult without, tune_from(b.original));
  SR_ASSIGN_OR_RETURN(BlockTuneResult with, tune_from(teq.weights));
  SR_ASSIGN_OR_RETURN(BlockWeights transformed, WithChangedTensors(b.original, teq.changed));
  auto loss = [&](const BlockWeights& w, const std::vector<QuantizedLinear>& q) {
    return BlockLoss(ForwardAll(c, ctx.impl.forward, WithQuantizedWeights(w, q, ctx.dtype), b.rope,
                                b.in, o.settings.batch_size),
                     b.fp_out, o.settings.loss_filter)
        .item<double>();
  };
  BlockStats::Teq& s = *block.stats.teq;
  s.tuned =
      BlockStats::Teq::Tuned{loss(b.original, without.layers), loss(transformed, with.layers)};
  if (s.tuned->loss < s.tuned->loss_without) {
    block.changed = std::move(teq.changed);
    return with;
  }
  s.kept = false;
  s.units.clear();
  return without;
}

// Tunes (or reloads) every block, carrying the fp and quantized chains.
absl::StatusOr<json> RunBlocks(const RunContext& ctx, const BlockStore& store,
                               const std::vector<LayerPlan>& plans, const at::Tensor& ids) {
  const ModelConfig& c = ctx.ckpt.config();
  const QuantizeOptions& o = ctx.options;
  SR_ASSIGN_OR_RETURN(at::Tensor embed, LoadEmbedding(ctx.ckpt, ctx.dtype, ctx.device));
  at::Tensor fp_in = Embed(c, embed, ids.to(ctx.device));
  embed = at::Tensor();
  at::Tensor q_in = fp_in;
  const RopeTables rope = MakeRopeTables(c, o.settings.seqlen, ctx.device);
  json blocks = json::array();
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    Clock::time_point start = Clock::now();
    const std::string prefix = absl::StrCat("model.layers.", i, ".");
    SR_ASSIGN_OR_RETURN(BlockWeights original, ctx.impl.load(ctx.ckpt, i, at::kFloat, ctx.device));
    const BlockWeights base = WithQuantizedWeights(original, {}, ctx.dtype);
    // An MoE block counts the tokens each expert receives on the chain it is tuned on.
    std::vector<int64_t> expert_tokens;
    const bool moe = c.IsMoeLayer(i) && !store.Has(i);
    at::Tensor fp_out = ForwardAll(c, ctx.impl.forward, base, rope, fp_in, o.settings.batch_size,
                                   moe && !o.enable_quanted_input ? &expert_tokens : nullptr);
    if (moe && o.enable_quanted_input) {
      ForwardAll(c, ctx.impl.forward, base, rope, q_in, o.settings.batch_size, &expert_tokens);
    }
    const std::vector<int64_t> starved = StarvedExperts(expert_tokens);
    bool resumed = false;
    auto tune = [&](const std::vector<LayerToQuantize>& layers) -> absl::StatusOr<StoredBlock> {
      BlockTuneResult r;
      StoredBlock block;
      if (!layers.empty()) {
        TuneOptions t = TuneOptionsOf(o);
        t.compute_dtype = ctx.dtype;
        SR_ASSIGN_OR_RETURN(t.weight_dtype, WeightDType(ctx.ckpt, prefix + layers[0].name));
        const BlockChains b{i, original, rope, o.enable_quanted_input ? q_in : fp_in, fp_out};
        SR_ASSIGN_OR_RETURN(r, TuneBlockLayers(ctx, b, layers, t, block));
      }
      block.layers = std::move(r.layers);
      block.stats.index = i;
      block.stats.layers_quantized = static_cast<int>(layers.size());
      block.stats.loss_iter0 = r.loss_iter0;
      block.stats.loss_best = r.loss_best;
      block.stats.best_iter = r.best_iter;
      block.stats.seconds = SecondsSince(start);
      block.stats.expert_tokens = expert_tokens;
      block.stats.rounded_experts = starved;
      return block;
    };
    SR_ASSIGN_OR_RETURN(StoredBlock block,
                        ResumeOrMake(store, plans, i, prefix, tune, &resumed, starved));
    if (o.enable_quanted_input) {
      SR_ASSIGN_OR_RETURN(BlockWeights transformed, WithChangedTensors(original, block.changed));
      q_in = ForwardAll(c, ctx.impl.forward,
                        WithQuantizedWeights(transformed, block.layers, ctx.dtype), rope, q_in,
                        o.settings.batch_size);
    } else {
      q_in = fp_out;
    }
    fp_in = fp_out;
    SR_RETURN_IF_ERROR(ReportBlock(ctx, block.stats, resumed, blocks));
  }
  return blocks;
}

// Rounds `weight` ([out, in], any float dtype) to nearest under `scheme` a chunk of rows at a
// time (the quantizer works per row), so the fp32 copies and temporaries stay small next to
// a large embedding.
QuantizedLinear RoundRowsToNearest(const std::string& name, const at::Tensor& weight,
                                   const QuantScheme& scheme, at::ScalarType weight_dtype) {
  at::NoGradGuard no_grad;
  const int64_t step =
      std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(1, weight.size(1)));
  std::vector<at::Tensor> dequant, codes, scales, zeros, mins, sub_scales, sub_mins, d, dmin;
  for (int64_t r0 = 0; r0 < weight.size(0); r0 += step) {
    const GroupedWeight g =
        GroupWeight(weight.narrow(0, r0, std::min(step, weight.size(0) - r0)), scheme.group_size);
    const QdqResult r = QuantDequant(g, scheme, InitialRoundingParams(g));
    const IntegerWeight iw = ToIntegerWeight(g, scheme, r);
    dequant.push_back(r.dequant.to(weight_dtype));
    for (auto [list, t] : {std::pair{&codes, iw.codes},
                           {&scales, iw.scales},
                           {&zeros, iw.zeros},
                           {&mins, iw.mins},
                           {&sub_scales, iw.sub_scales},
                           {&sub_mins, iw.sub_mins},
                           {&d, iw.d},
                           {&dmin, iw.dmin}}) {
      if (t.defined()) list->push_back(t);
    }
  }
  auto cat = [](const std::vector<at::Tensor>& parts) {
    return parts.empty() ? at::Tensor() : at::cat(parts, 0);
  };
  return {name, scheme, cat(dequant),
          IntegerWeight{cat(codes), cat(scales), cat(zeros), cat(mins), cat(sub_scales),
                        cat(sub_mins), cat(d), cat(dmin)}};
}

// The quantized ends (`ends`: a GGUF k-quant mix's token embedding and lm_head) rounded
// to nearest into the store's ends file, unless an earlier run left it there.
absl::Status QuantizeEnds(const RunContext& ctx, const BlockStore& store,
                          const std::vector<LayerPlan>& ends) {
  if (ends.empty() || store.HasEnds()) return absl::OkStatus();
  StoredBlock block;
  block.stats.index = -1;
  const Clock::time_point start = Clock::now();
  for (const LayerPlan& p : ends) {
    if (!p.quantized) continue;
    // A tied model's lm_head is its embedding: only the embedding is a tensor. Loaded in its
    // own dtype: the rounding widens a chunk of rows at a time to fp32.
    SR_ASSIGN_OR_RETURN(at::ScalarType weight_dtype, WeightDType(ctx.ckpt, p.layer.name));
    SR_ASSIGN_OR_RETURN(at::Tensor w, LoadCheckpointTensor(ctx.ckpt, p.layer.name + ".weight",
                                                           weight_dtype, ctx.device));
    block.layers.push_back(RoundRowsToNearest(p.layer.name, w, p.scheme, weight_dtype));
    ++block.stats.layers_quantized;
  }
  block.stats.seconds = SecondsSince(start);
  return store.SaveEnds(block);
}

// Every block tuned on the calibration tokens `ids`, then the quantized ends; LibTorch's
// exceptions become errors.
absl::StatusOr<json> QuantizeBlocks(const RunContext& ctx, const BlockStore& store,
                                    const std::vector<LayerPlan>& plans,
                                    const std::vector<LayerPlan>& ends, const at::Tensor& ids) {
  try {
    SR_ASSIGN_OR_RETURN(json blocks, RunBlocks(ctx, store, plans, ids));
    SR_RETURN_IF_ERROR(QuantizeEnds(ctx, store, ends));
    return blocks;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("quantize failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {  // LibTorch 1.13 also throws plain runtime_errors
    return absl::InternalError(absl::StrCat("quantize failed: ", e.what()));
  }
}

// Perplexity of the original and of the fake-quantized model (each quantized
// Linear's weight, and a mix's quantized ends, replaced by the engine's W^ in the
// checkpoint's dtype, from `source`).
absl::StatusOr<json> Evaluate(const RunContext& ctx, const ExportSource& source,
                              const std::vector<TokenRow>& rows) {
  PerplexityOptions po;
  po.batch_size = ctx.options.eval_batch_size;
  po.device = ctx.device;
  SR_ASSIGN_OR_RETURN(PerplexityResult before, EvaluatePerplexity(ctx.ckpt, rows, po));
  // W^ of quantized layer `p` as `dtype` on `device`.
  auto dequant = [&](const LayerPlan& p, at::ScalarType dtype,
                     at::Device device) -> absl::StatusOr<at::Tensor> {
    SR_ASSIGN_OR_RETURN(DequantView v, source.Dequant(p.layer.name));
    std::optional<at::ScalarType> type = ToScalarType(v.dtype);
    if (!type) return absl::InternalError(absl::StrCat(p.layer.name, ": W^ has no LibTorch type"));
    at::Tensor w = at::from_blob(const_cast<char*>(v.bytes.data()), {p.layer.out, p.layer.in},
                                 at::TensorOptions().dtype(*type))
                       .to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
    source.Release(p.layer.name);
    return w;
  };
  for (const char* end : {"model.embed_tokens", "lm_head"}) {
    if (const LayerPlan* p = source.EndPlan(end); p != nullptr) {
      SR_ASSIGN_OR_RETURN(at::Tensor w, dequant(*p, at::kFloat, at::kCPU));
      (p->layer.name == "lm_head" ? po.lm_head : po.embedding) = std::move(w);
    }
  }
  po.block_weights = [&](int64_t layer) -> absl::StatusOr<BlockWeights> {
    // The source's checkpoint: with TEQ, the norms it changed.
    SR_ASSIGN_OR_RETURN(BlockWeights w,
                        ctx.impl.load(source.checkpoint(), layer, po.dtype, po.device));
    const std::string prefix = absl::StrCat("model.layers.", layer, ".");
    for (const LayerPlan& p : source.plans()) {
      if (p.layer.layer != layer || !p.quantized) continue;
      LinearWeights* lw = w.FindLinear(p.layer.name.substr(prefix.size()));
      if (lw == nullptr)
        return absl::InternalError(absl::StrCat(p.layer.name, ": not in the block"));
      SR_ASSIGN_OR_RETURN(lw->weight, dequant(p, po.dtype, po.device));
    }
    return w;
  };
  SR_ASSIGN_OR_RETURN(PerplexityResult after, EvaluatePerplexity(source.checkpoint(), rows, po));
  return json{{"original", before.perplexity}, {"quantized", after.perplexity}};
}

}  // namespace

absl::StatusOr<json> RunQuantize(const QuantizeOptions& o, const ProgressFn& progress) {
  Clock::time_point start = Clock::now();
  SR_RETURN_IF_ERROR(ValidateOptions(o));
  SR_ASSIGN_OR_RETURN(at::Device device, ParseDevice(o.device));
  SR_ASSIGN_OR_RETURN(std::vector<ExportFormat> formats, FormatsOf(o.settings));
  SR_ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::Open(o.model_dir));
  if (ckpt.quantization()) {
    return Invalid(absl::StrCat(o.model_dir, ": is already quantized (quant_method '",
                                ckpt.quantization()->method(), "'); give the original model"));
  }
  SR_ASSIGN_OR_RETURN(const BlockImpl* impl, FindBlockImpl(ckpt.config().model_type));
  std::vector<LayerPlan> plans =
      PlanLayers(DecoderLinears(ckpt.config()), o.settings.scheme(), o.settings.layer_overrides);
  UseFormatZeroPoints(formats, plans);
  std::vector<std::string> fallbacks;  // k-quant mix layers that hold another type
  std::vector<LayerPlan> ends;         // the token embedding and lm_head a mix quantizes
  if (std::optional<contract::GgufFormat> mix = contract::KQuantMixOf(o.settings.formats)) {
    fallbacks = ApplyGgufMix(*mix, ckpt.config(), plans);
    ends = GgufMixEnds(*mix, ckpt.config(), &fallbacks);
  }
  SR_ASSIGN_OR_RETURN(std::vector<std::string> warnings,
                      CheckExportFormats(formats, ckpt.config(), o.model_dir, plans, WaiversOf(o)));
  at::Tensor ids;  // [nsamples, seqlen] token ids; undefined without calibration
  if (Calibrated(o)) {
    SR_ASSIGN_OR_RETURN(ids, LoadCalibration(o, ckpt.config()));
  }
  const at::ScalarType dtype = device.is_cuda() ? at::kBFloat16 : at::kFloat;
  // Mixed bits: the allocation becomes layer overrides after the job's own.
  std::optional<SchemeAllocation> allocation;
  if (o.settings.target_bits > 0) {
    SR_ASSIGN_OR_RETURN(allocation,
                        AllocateSchemes(ckpt, *impl, device, dtype, o.settings, plans, ids));
    std::vector<LayerOverride> overrides = o.settings.layer_overrides;
    overrides.insert(overrides.end(), allocation->overrides.begin(), allocation->overrides.end());
    plans = PlanLayers(DecoderLinears(ckpt.config()), o.settings.scheme(), overrides);
    UseFormatZeroPoints(formats, plans);
    SR_ASSIGN_OR_RETURN(
        warnings, CheckExportFormats(formats, ckpt.config(), o.model_dir, plans, WaiversOf(o)));
  }
  std::vector<TokenRow> eval_rows;
  if (!o.eval_path.empty()) {
    SR_ASSIGN_OR_RETURN(eval_rows,
                        LoadDatasetRows(o.eval_path, o.model_dir,
                                        EvalTextOptions(ckpt.config(), o.settings.seqlen)));
    SR_RETURN_IF_ERROR(CheckTokenIds(eval_rows, ckpt.config().vocab_size, o.eval_path));
  }
  json settings = SettingsJson(o, ckpt);
  // The allocation is part of what the finished blocks were made with.
  if (allocation) {
    settings["auto_scheme_layers"] = contract::LayerOverridesToJson(allocation->overrides);
  }
  // TEQ blocks made before it scaled the values and the MLP's hidden units (version 1), or
  // before it judged the scales on held-out samples (2), or before TEQ + SignRound tuned with
  // and without the scales (3), are other blocks than this version's.
  if (o.settings.teq_iters > 0) settings["teq_version"] = 4;
  // Integer blocks tuned from the scale search before its range was widened for the tuning
  // (scale_search.h WidenSearchedRange, version 1), or before a symmetric scale kept its sign
  // (IntSearchRange, 2), are other blocks too.
  if (o.settings.scale_search && o.settings.iters > 0) settings["scale_search_version"] = 3;
  // GGUF Q4_1 layers are tuned with a real-valued minimum: other blocks than an int job's.
  if (std::any_of(plans.begin(), plans.end(),
                  [](const LayerPlan& p) { return p.quantized && p.scheme.float_min; })) {
    settings["float_min"] = true;
  }
  // A calibrated run keeps its blocks in the work directory (a rerun resumes them); a
  // model-free one has none (model_free_rtn.h).
  std::optional<BlockStore> store;
  if (Calibrated(o)) {
    SR_ASSIGN_OR_RETURN(
        store, BlockStore::Open(JoinPath(o.out_dir, contract::kWorkDirName), settings.dump()));
  }
  // An earlier run's report would make this run's unfinished outputs look complete.
  SR_RETURN_IF_ERROR(RemoveTree(JoinPath(o.out_dir, "report.json")));
  // fp32 on CPU; bf16 on CUDA with fp32 tuning parameters and loss.
  RunContext ctx{o, ckpt, *impl, device, dtype, progress};
  if (progress) {
    ProgressEvent event{"start", {{}, ckpt.config().num_hidden_layers, false}, settings};
    progress(event);
  }
  json blocks = json::array();
  std::optional<ModelFreeBlocks> model_free;
  std::optional<Checkpoint> changed;  // the checkpoint with the tensors TEQ changed
  std::optional<ExportSource> source;
  if (store) {
    SR_ASSIGN_OR_RETURN(blocks, QuantizeBlocks(ctx, *store, plans, ends, ids));
    SR_ASSIGN_OR_RETURN(changed, WithStoredChanges(ckpt, *store));
    SR_ASSIGN_OR_RETURN(source, OpenStoredBlocks(*changed, *store, plans, ends));
  } else {
    model_free.emplace(plans, ckpt.config().num_hidden_layers, [&](const BlockStats& stats) {
      return ReportBlock(ctx, stats, /*resumed=*/false, blocks);
    });
    source = RoundFromCheckpoint(
        ckpt, plans, ends, at::get_num_threads(),
        [&](const LayerPlan& p, double seconds) { return model_free->Made(p, seconds); });
  }
  ExportOptions export_options{o.settings.scheme(), settings, o.max_shard_bytes,
                               o.settings.packed_dtype};
  auto exported = [&](const ExportFormat& f, const absl::Status& status) {
    if (!progress || (model_free && !model_free->status().ok())) return;
    json detail = {{"format", f.name}, {"dir", f.dir_name}};
    if (!status.ok()) detail = {{"format", f.name}, {"error", std::string(status.message())}};
    progress({"export", {{}, ckpt.config().num_hidden_layers, false}, detail});
  };
  ExportResults outputs = WriteExports(*source, formats, export_options, o.out_dir, exported);
  json report = {{"model", settings["model"]},
                 {"config", settings},
                 {"calibration", CalibrationJson(o)},
                 {"outputs", outputs.written},
                 {"layers", LayersJson(plans)}};
  if (!ends.empty()) report["ends"] = LayersJson(ends);
  if (!outputs.failed.empty()) report["failed_outputs"] = outputs.failed;
  if (!warnings.empty()) report["warnings"] = warnings;
  if (!fallbacks.empty()) report["gguf_fallbacks"] = fallbacks;
  if (allocation) report["auto_scheme"] = allocation->report;
  if (model_free) SR_RETURN_IF_ERROR(model_free->status());  // cancelled
  if (!o.eval_path.empty()) {
    absl::StatusOr<json> perplexity = Evaluate(ctx, *source, eval_rows);
    if (model_free) SR_RETURN_IF_ERROR(model_free->status());
    SR_RETURN_IF_ERROR(perplexity.status());
    report["perplexity"] = *perplexity;
    if (progress)
      progress({"eval", {{}, ckpt.config().num_hidden_layers, false}, report["perplexity"]});
  }
  if (model_free) SR_RETURN_IF_ERROR(model_free->Flush());
  report["blocks"] = blocks;
  report["seconds_total"] = SecondsSince(start);
  report["peak_rss_bytes"] = ReadProcessMemory().peak_rss_bytes;
  SR_RETURN_IF_ERROR(
      WriteFileAtomically(JoinPath(o.out_dir, "report.json"), report.dump(2) + "\n"));
  // Tuned blocks outlive a failed format: a rerun resumes them and redoes only the exports.
  if (store && outputs.failed.empty()) SR_RETURN_IF_ERROR(store->Remove());
  return report;
}

}  // namespace signround
