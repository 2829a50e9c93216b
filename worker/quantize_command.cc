#include "worker/quantize_command.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/contract/recipe.h"
#include "src/contract/settings.h"
#include "src/export/export_format.h"
#include "src/export/quantization_config.h"
#include "src/export/sharded_safetensors.h"
#include "worker/command.h"

namespace signround::worker {
namespace {

using nlohmann::json;

// One JSON object per line on stdout, for the job server.
bool PrintJsonEvent(const ProgressEvent& e) {
  std::printf("%s\n", contract::ProgressEventLine(e).c_str());
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
  int64_t done = e.block.stats.index + 1;
  int filled = static_cast<int>(width * done / std::max<int64_t>(1, e.block.block_count));
  std::string bar = std::string(filled, '#') + std::string(width - filled, '.');
  bool tty = ::isatty(STDERR_FILENO);
  // Without calibration nothing is measured: no losses to show.
  const bool calibrated = !e.detail.is_object() || e.detail.value("calibrated", true);
  const std::string loss =
      calibrated ? absl::StrFormat("loss %.6g -> %.6g (best iter %d)", e.block.stats.loss_iter0,
                                   e.block.stats.loss_best, e.block.stats.best_iter)
                 : std::string("RTN, no calibration");
  std::fprintf(stderr, "%s[%s] block %lld/%lld  %s  %.1fs%s%s", tty ? "\r" : "", bar.c_str(),
               static_cast<long long>(done), static_cast<long long>(e.block.block_count),
               loss.c_str(), e.block.stats.seconds, e.block.resumed ? " (resumed)" : "",
               tty && done < e.block.block_count ? "" : "\n");
  std::fflush(stderr);
  return true;
}

// The flags that set job settings; each excludes --settings.
void AddSettingFlags(CLI::App* cmd, SettingFlags& f, CLI::Option* settings) {
  std::vector<CLI::Option*> options = {
      cmd->add_option("--bits", f.bits,
                      absl::StrCat("Weight bits: ", contract::SchemeBitsList(" or ")))
          ->capture_default_str(),
      cmd->add_option("--group-size", f.group_size, "Group size (-1: per output channel)")
          ->capture_default_str(),
      cmd->add_flag("--sym,!--asym", f.sym, "Symmetric (default) or asymmetric"),
      cmd->add_option("--iters", f.iters, "Tuning iterations per block (0: RTN)"),
      cmd->add_option("--nsamples", f.nsamples, "Calibration samples"),
      cmd->add_option("--seqlen", f.seqlen, "Tokens per calibration sample")->capture_default_str(),
      cmd->add_option("--batch-size", f.batch_size, "Samples per tuning step")
          ->capture_default_str(),
      cmd->add_option("--lr", f.lr, "Learning rate of V (default 1/iters)"),
      cmd->add_option("--minmax-lr", f.minmax_lr, "Learning rate of alpha/beta (default lr)"),
      cmd->add_option("--seed", f.seed, "Seed of batch sampling")->capture_default_str(),
      cmd->add_flag("--scale-search,!--no-scale-search", f.scale_search,
                    "Start integer layers from the importance-weighted scale search (needs "
                    "--calib; default: the recipe's, on in opt_rtn, and on for the default "
                    "recipe at --bits 2 or 3 --sym)"),
      cmd->add_flag("--loss-filter,!--no-loss-filter", f.loss_filter,
                    "Leave the largest 0.1% squared errors out of the block loss (default off; "
                    "on for the default recipe at --bits 2 or 3 --sym)"),
      cmd->add_option("--target-bits", f.target_bits,
                      "Mixed bits: the average weight bits AutoScheme allocates (0: off; needs "
                      "--calib)"),
      cmd->add_option("--teq-iters", f.teq_iters,
                      "TEQ: Adam steps per block on per-channel scales folded into the norms "
                      "before quantizing (0: off; needs --calib)")
          ->capture_default_str(),
      cmd->add_option("--scheme-candidates", f.scheme_candidates,
                      "Comma-separated schemes AutoScheme picks from: W<bits>G<group_size> or W16 "
                      "(default W2,W3,W4,W8 at --group-size, and W16)"),
      cmd->add_option("--recipe", f.recipe, contract::kRecipeNames)->capture_default_str(),
      cmd->add_option("--layer-config", f.layer_config_path,
                      "JSON {\"<regex>\": {\"bits\": .., \"group_size\": .., \"sym\": ..}}"),
      cmd->add_option("--format", f.formats,
                      absl::StrCat("Comma-separated export formats, one subdirectory each: ",
                                   contract::kExportFormatNames))
          ->capture_default_str(),
      cmd->add_option("--packed-dtype", f.packed_dtype,
                      "torch_dtype of the auto_round / auto_gptq config.json: float16 (vLLM's "
                      "GPTQ kernels need it) or bfloat16")
          ->capture_default_str(),
      cmd->add_flag("--allow-split-fused", f.allow_split_fused,
                    "Write auto_round / auto_gptq even when q/k/v or gate/up have different "
                    "schemes (vLLM fuses them and refuses such a checkpoint); report.json warns"),
      cmd->add_flag("--allow-gguf-without-vocab", f.allow_gguf_without_vocab,
                    "Write GGUF from a checkpoint without tokenizer.model / tokenizer.json "
                    "(llama.cpp cannot tokenize text with it); report.json warns"),
  };
  for (CLI::Option* o : options) o->excludes(settings);
}

// The request the flags make: only what was given, so the recipe's values stand.
absl::StatusOr<contract::QuantizeRequest> RequestFromFlags(const QuantizeCommandOptions& o) {
  const SettingFlags& f = o.flags;
  auto given = [&o](const char* flag) { return o.cmd->count(flag) > 0; };
  contract::QuantizeRequest r;
  // The recipe and format names are checked here to keep the flags' wording.
  if (absl::Status s = contract::FindRecipe(f.recipe).status(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("recipe ", s.message()));
  }
  r.recipe = f.recipe;
  SR_ASSIGN_OR_RETURN(std::vector<ExportFormat> formats, ParseExportFormats(f.formats));
  for (const ExportFormat& format : formats) r.formats.push_back(format.name);
  if (given("--bits")) r.bits = f.bits;
  if (given("--group-size")) r.group_size = f.group_size;
  if (given("--sym")) r.sym = f.sym;
  if (given("--iters")) r.iters = f.iters;
  if (given("--nsamples")) r.nsamples = f.nsamples;
  if (given("--seqlen")) r.seqlen = f.seqlen;
  if (given("--batch-size")) r.batch_size = f.batch_size;
  if (given("--lr")) r.lr = f.lr;
  if (given("--minmax-lr")) r.minmax_lr = f.minmax_lr;
  if (given("--seed")) r.seed = f.seed;
  if (given("--scale-search")) r.scale_search = f.scale_search;
  if (given("--loss-filter")) r.loss_filter = f.loss_filter;
  if (given("--target-bits")) r.target_bits = f.target_bits;
  if (given("--teq-iters")) r.teq_iters = f.teq_iters;
  if (given("--scheme-candidates")) {
    r.scheme_candidates = absl::StrSplit(f.scheme_candidates, ',', absl::SkipWhitespace());
  }
  if (absl::Status s = ValidatePackedTorchDtype(f.packed_dtype); !s.ok()) return s;
  r.packed_dtype = f.packed_dtype;
  if (!f.layer_config_path.empty()) {
    SR_ASSIGN_OR_RETURN(r.layer_overrides, contract::LoadLayerConfig(f.layer_config_path));
  }
  r.allow_split_fused = f.allow_split_fused;
  r.allow_gguf_without_vocab = f.allow_gguf_without_vocab;
  return r;
}

// The job's settings: the --settings file, or the flags resolved.
absl::StatusOr<contract::QuantizeSettings> LoadSettings(const QuantizeCommandOptions& o) {
  if (!o.settings_path.empty()) {
    SR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(o.settings_path, 16 << 20));
    return contract::ParseSettingsFile(text, o.settings_path);
  }
  SR_ASSIGN_OR_RETURN(contract::QuantizeRequest request, RequestFromFlags(o));
  return contract::ResolveSettings(request);
}

}  // namespace

SettingFlags::SettingFlags() {
  const contract::QuantizeSettings d;
  bits = d.bits;
  group_size = d.group_size;
  sym = d.sym;
  iters = d.iters;
  nsamples = d.nsamples;
  seqlen = d.seqlen;
  batch_size = d.batch_size;
  lr = d.lr;
  minmax_lr = d.minmax_lr;
  seed = d.seed;
  scale_search = d.scale_search;
  loss_filter = d.loss_filter;
  target_bits = d.target_bits;
  teq_iters = d.teq_iters;
  recipe = d.recipe;
  formats = absl::StrJoin(d.formats, ",");
  packed_dtype = d.packed_dtype;
  allow_split_fused = d.allow_split_fused;
  allow_gguf_without_vocab = d.allow_gguf_without_vocab;
}

CLI::App* AddQuantizeCommand(CLI::App& app, QuantizeCommandOptions& o) {
  CLI::App* cmd = app.add_subcommand("quantize", "Quantize a checkpoint with SignRound");
  QuantizeOptions& j = o.job;
  cmd->add_option("--model", j.model_dir, "Hugging Face checkpoint directory")->required();
  cmd->add_option("--calib", j.calib_path,
                  "Calibration data: JSONL of {\"input_ids\": [...]}, JSONL of {\"text\": ...} "
                  "or a plain text file (one text per line), text tokenized with the model's "
                  "tokenizer (optional with --iters 0 / --recipe rtn: plain round-to-nearest "
                  "from the weights alone; required by --scale-search / --recipe opt_rtn)");
  cmd->add_flag("--calib-concat", j.calib_concat,
                "Text data: join the tokenized texts (BOS first each) and cut --seqlen chunks, "
                "instead of one sample per text of at least --seqlen tokens");
  cmd->add_option("--out", j.out_dir, "Output directory (reruns resume here)")->required();
  cmd->add_option("--model-name", j.model_name,
                  "How settings and report.json name the model (default: the --model path)");
  cmd->add_option("--calib-name", j.calib_name,
                  "How settings and report.json name the calibration data (default: the path)");
  cmd->add_option("--eval", j.eval_path, "Evaluation JSONL: perplexity before and after");
  CLI::Option* settings = cmd->add_option(
      "--settings", o.settings_path,
      "The job's settings as a JSON file (what the job service writes; version 2): instead of "
      "the setting flags below");
  AddSettingFlags(cmd, o.flags, settings);
  cmd->add_option("--gradient-accumulate-steps", j.gradient_accumulate_steps,
                  "Micro-batches per tuning step")
      ->capture_default_str();
  cmd->add_flag("!--disable-minmax-tuning", j.enable_minmax_tuning,
                "Tune only V, not the clipping ranges");
  cmd->add_flag("!--disable-quanted-input", j.enable_quanted_input,
                "Tune each block on the fp chain instead of the quantized one");
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
  absl::StatusOr<contract::QuantizeSettings> settings = LoadSettings(o);
  if (!settings.ok()) return ReportError(settings.status());
  o.job.settings = *std::move(settings);
  if (o.cmd->count("--calib") && o.job.calib_path.empty()) {
    return ReportError(absl::InvalidArgumentError("--calib: the path is empty"));
  }
  if (o.job.calib_path.empty() && o.job.settings.iters != 0) {
    return ReportError(
        absl::InvalidArgumentError("--calib: required unless --iters 0 (recipe rtn)"));
  }
  if (o.job.calib_path.empty() && o.job.settings.scale_search) {
    return ReportError(absl::InvalidArgumentError(
        "--calib: required by the scale search (--scale-search, recipe opt_rtn)"));
  }
  if (o.job.calib_path.empty() && o.job.settings.target_bits > 0) {
    return ReportError(
        absl::InvalidArgumentError("--calib: required by mixed bits (--target-bits)"));
  }
  if (o.job.calib_path.empty() && o.job.settings.teq_iters > 0) {
    return ReportError(absl::InvalidArgumentError("--calib: required by TEQ (--teq-iters)"));
  }
  absl::StatusOr<uint64_t> shard = ParseByteSize(o.max_shard_size);
  if (!shard.ok()) {
    return ReportError(
        absl::InvalidArgumentError(absl::StrCat("--max-shard-size: ", shard.status().message())));
  }
  o.job.max_shard_bytes = *shard;
  ConfigureEngineThreads(o.threads);
  ProgressFn progress = o.progress == "json" ? ProgressFn(PrintJsonEvent) : ProgressFn(PrintBar);
  absl::StatusOr<json> report = RunQuantize(o.job, progress);
  if (!report.ok()) return ReportError(report.status());
  for (const std::string& warning : report->value("warnings", std::vector<std::string>())) {
    std::fprintf(stderr, "signround-worker: warning: %s\n", warning.c_str());
  }
  if (o.progress == "json") {
    PrintJsonEvent({"done",
                    {{}, static_cast<int64_t>((*report)["blocks"].size()), false},
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
