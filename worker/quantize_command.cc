#include "worker/quantize_command.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "src/export/export_format.h"
#include "src/export/sharded_safetensors.h"
#include "worker/command.h"

namespace signround::worker {
namespace {

using nlohmann::json;

// One JSON object per line on stdout, for the job server.
bool PrintJsonEvent(const ProgressEvent& e) {
  json j = {{"event", e.kind}, {"block_count", e.block_count}};
  if (e.kind == "block") {
    j.update(BlockStatsToJson(e.block));
    j["resumed"] = e.resumed;
    if (e.detail.is_object()) j.update(e.detail);  // "calibrated"
  } else if (!e.detail.is_null()) {
    j["detail"] = e.detail;
  }
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
  return true;
}

// A progress bar on stderr: redrawn in place on a terminal, one line per block otherwise.
bool PrintBar(const ProgressEvent& e) {
  if (e.kind == "export") {
    const std::string format = e.detail.value("format", "");
    if (e.detail.contains("error")) {
      std::fprintf(stderr, "export %s failed: %s\n", format.c_str(),
                   e.detail.value("error", "").c_str());
    } else {
      std::fprintf(stderr, "exported %s to %s/\n", format.c_str(),
                   e.detail.value("dir", "").c_str());
    }
    return true;
  }
  if (e.kind != "block") return true;
  const int width = 30;
  int64_t done = e.block.index + 1;
  int filled = static_cast<int>(width * done / std::max<int64_t>(1, e.block_count));
  std::string bar = std::string(filled, '#') + std::string(width - filled, '.');
  bool tty = ::isatty(STDERR_FILENO);
  // Without calibration nothing is measured: no losses to show.
  const bool calibrated = !e.detail.is_object() || e.detail.value("calibrated", true);
  const std::string loss =
      calibrated ? absl::StrFormat("loss %.6g -> %.6g (best iter %d)", e.block.loss_iter0,
                                   e.block.loss_best, e.block.best_iter)
                 : std::string("RTN, no calibration");
  std::fprintf(stderr, "%s[%s] block %lld/%lld  %s  %.1fs%s%s", tty ? "\r" : "", bar.c_str(),
               static_cast<long long>(done), static_cast<long long>(e.block_count), loss.c_str(),
               e.block.seconds, e.resumed ? " (resumed)" : "",
               tty && done < e.block_count ? "" : "\n");
  std::fflush(stderr);
  return true;
}

}  // namespace

CLI::App* AddQuantizeCommand(CLI::App& app, QuantizeCommandOptions& o) {
  CLI::App* cmd = app.add_subcommand("quantize", "Quantize a checkpoint with SignRound");
  QuantizeOptions& j = o.job;
  cmd->add_option("--model", j.model_dir, "Hugging Face checkpoint directory")->required();
  cmd->add_option("--calib", j.calib_path,
                  "Calibration data: JSONL of {\"input_ids\": [...]}, JSONL of {\"text\": ...} "
                  "or a plain text file (one text per line), text tokenized with the model's "
                  "tokenizer (optional with --iters 0 / --recipe rtn: plain round-to-nearest "
                  "from the weights alone)");
  cmd->add_flag("--calib-concat", j.calib_concat,
                "Text data: join the tokenized texts (BOS first each) and cut --seqlen chunks, "
                "instead of one sample per text of at least --seqlen tokens");
  cmd->add_option("--out", j.out_dir, "Output directory (reruns resume here)")->required();
  cmd->add_option("--model-name", j.model_name,
                  "How settings and report.json name the model (default: the --model path)");
  cmd->add_option("--calib-name", j.calib_name,
                  "How settings and report.json name the calibration data (default: the path)");
  cmd->add_option("--eval", j.eval_path, "Evaluation JSONL: perplexity before and after");
  cmd->add_option("--bits", j.scheme.bits, "Weight bits: 2, 3, 4 or 8")->capture_default_str();
  cmd->add_option("--group-size", j.scheme.group_size, "Group size (-1: per output channel)")
      ->capture_default_str();
  cmd->add_flag("--sym,!--asym", j.scheme.sym, "Symmetric (default) or asymmetric");
  cmd->add_option("--iters", j.tune.iters, "Tuning iterations per block (0: RTN)");
  cmd->add_option("--nsamples", j.nsamples, "Calibration samples");
  cmd->add_option("--seqlen", j.seqlen, "Tokens per calibration sample")->capture_default_str();
  cmd->add_option("--batch-size", j.tune.batch_size, "Samples per tuning step")
      ->capture_default_str();
  cmd->add_option("--gradient-accumulate-steps", j.tune.gradient_accumulate_steps,
                  "Micro-batches per tuning step")
      ->capture_default_str();
  cmd->add_option("--lr", j.tune.lr, "Learning rate of V (default 1/iters)");
  cmd->add_option("--minmax-lr", j.tune.minmax_lr, "Learning rate of alpha/beta (default lr)");
  cmd->add_flag("!--disable-minmax-tuning", j.tune.enable_minmax_tuning,
                "Tune only V, not the clipping ranges");
  cmd->add_flag("!--disable-quanted-input", j.enable_quanted_input,
                "Tune each block on the fp chain instead of the quantized one");
  cmd->add_option("--seed", j.tune.seed, "Seed of batch sampling")->capture_default_str();
  cmd->add_option("--recipe", j.recipe, "default, best, light or rtn")->capture_default_str();
  cmd->add_option("--layer-config", j.layer_config_path,
                  "JSON {\"<regex>\": {\"bits\": .., \"group_size\": .., \"sym\": ..}}");
  cmd->add_option("--format", j.formats,
                  absl::StrCat("Comma-separated export formats, one subdirectory each: ",
                               kExportFormatNames))
      ->capture_default_str();
  cmd->add_option("--packed-dtype", j.packed_dtype,
                  "torch_dtype of the auto_round / auto_gptq config.json: float16 (vLLM's GPTQ "
                  "kernels need it) or bfloat16")
      ->capture_default_str();
  cmd->add_flag("--allow-split-fused", j.waivers.allow_split_fused,
                "Write auto_round / auto_gptq even when q/k/v or gate/up have different schemes "
                "(vLLM fuses them and refuses such a checkpoint); report.json warns");
  cmd->add_flag("--allow-gguf-without-vocab", j.waivers.allow_gguf_without_vocab,
                "Write GGUF from a checkpoint without tokenizer.model / tokenizer.json (llama.cpp "
                "cannot tokenize text with it); report.json warns");
  cmd->add_option("--max-shard-size", o.max_shard_size,
                  "Largest safetensors shard (5GB = 5e9 bytes, 2GiB = 2^31)")
      ->capture_default_str();
  cmd->add_option("--device", j.device, "cpu or cuda:N")->capture_default_str();
  cmd->add_option("--threads", o.threads, "CPU threads (0: LibTorch's default)");
  cmd->add_option("--progress", o.progress, "bar (stderr) or json (one event per line, stdout)")
      ->check(CLI::IsMember({"bar", "json"}))
      ->capture_default_str();
  o.cmd = cmd;
  return cmd;
}

int RunQuantizeCommand(QuantizeCommandOptions o) {
  // The recipe sets defaults; flags given explicitly win.
  QuantizeOptions given = o.job;
  if (absl::Status s = ApplyRecipe(o.job.recipe, o.job); !s.ok()) return ReportError(s);
  if (o.cmd->count("--iters")) o.job.tune.iters = given.tune.iters;
  if (o.cmd->count("--nsamples")) o.job.nsamples = given.nsamples;
  if (o.cmd->count("--lr")) o.job.tune.lr = given.tune.lr;
  if (o.cmd->count("--calib") && o.job.calib_path.empty()) {
    return ReportError(absl::InvalidArgumentError("--calib: the path is empty"));
  }
  if (o.job.calib_path.empty() && o.job.tune.iters != 0) {
    return ReportError(
        absl::InvalidArgumentError("--calib: required unless --iters 0 (recipe rtn)"));
  }
  absl::StatusOr<uint64_t> shard = ParseByteSize(o.max_shard_size);
  if (!shard.ok()) {
    return ReportError(
        absl::InvalidArgumentError(absl::StrCat("--max-shard-size: ", shard.status().message())));
  }
  o.job.max_shard_bytes = *shard;
  if (!o.job.layer_config_path.empty()) {
    auto overrides = LoadLayerConfig(o.job.layer_config_path);
    if (!overrides.ok()) return ReportError(overrides.status());
    o.job.overrides = *std::move(overrides);
  }
  ConfigureEngineThreads(o.threads);
  ProgressFn progress = o.progress == "json" ? ProgressFn(PrintJsonEvent) : ProgressFn(PrintBar);
  absl::StatusOr<json> report = RunQuantize(o.job, progress);
  if (!report.ok()) return ReportError(report.status());
  for (const std::string& warning : report->value("warnings", std::vector<std::string>())) {
    std::fprintf(stderr, "signround-worker: warning: %s\n", warning.c_str());
  }
  if (o.progress == "json") {
    PrintJsonEvent({"done",
                    static_cast<int64_t>((*report)["blocks"].size()),
                    {},
                    false,
                    {{"out", o.job.out_dir}}});
  }
  std::fprintf(stderr, "wrote %s in %.1f s", o.job.out_dir.c_str(),
               (*report)["seconds_total"].get<double>());
  if (report->contains("perplexity")) {
    std::fprintf(stderr, "; perplexity %.4f -> %.4f",
                 (*report)["perplexity"]["original"].get<double>(),
                 (*report)["perplexity"]["quantized"].get<double>());
  }
  std::fprintf(stderr, "\n");
  const json failed = report->value("failed_outputs", json::object());
  if (failed.empty()) return 0;
  // The other formats and report.json are written, the tuned blocks kept for a rerun.
  for (const auto& [format, message] : failed.items()) {
    std::fprintf(stderr, "signround-worker: error: format %s failed: %s\n", format.c_str(),
                 message.get<std::string>().c_str());
  }
  return kExitSomeFormatsFailed;
}

}  // namespace signround::worker
