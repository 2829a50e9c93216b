#include "worker/eval_command.h"

#include <chrono>
#include <cstdio>

#include <ATen/Parallel.h>

#include "nlohmann/json.hpp"
#include "src/data/text_dataset.h"
#include "src/data/token_dataset.h"
#include "src/eval/perplexity.h"
#include "src/model/checkpoint.h"
#include "src/tensor/device.h"
#include "worker/command.h"

namespace signround::worker {

CLI::App* AddEvalCommand(CLI::App& app, EvalOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Perplexity of a checkpoint (plain, or packed auto_round / auto_gptq, dequantized) on "
      "{\"input_ids\": [...]} JSONL rows (fp32)");
  cmd->add_option("--model", o.model_dir, "Hugging Face checkpoint directory")->required();
  cmd->add_option("--data,--eval", o.eval_file,
                  "JSONL of {\"input_ids\": [...]} rows, or text (JSONL of {\"text\": ...} or "
                  "one text per line), joined and cut into max_position_embeddings chunks")
      ->required();
  cmd->add_option("--batch-size", o.batch_size, "Rows per forward call")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--threads", o.threads, "CPU threads (default: LibTorch's choice)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--device", o.device, "cpu or cuda:N")->capture_default_str();
  cmd->add_flag("--json", o.json, "Print one JSON object instead of text");
  return cmd;
}

int RunEval(const EvalOptions& o) {
  auto start = std::chrono::steady_clock::now();
  ConfigureEngineThreads(o.threads);
  absl::StatusOr<at::Device> device = ParseDevice(o.device);
  if (!device.ok()) return ReportError(device.status());
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(o.model_dir);
  if (!ckpt.ok()) return ReportError(ckpt.status());
  // Text data: tokenized, joined and cut into context-length chunks (EvalTextOptions).
  absl::StatusOr<std::vector<TokenRow>> rows = LoadDatasetRows(
      o.eval_file, o.model_dir, EvalTextOptions(ckpt->config(), /*fallback_len=*/2048));
  if (!rows.ok()) return ReportError(rows.status());
  absl::Status ids_ok = CheckTokenIds(*rows, ckpt->config().vocab_size, o.eval_file);
  if (!ids_ok.ok()) return ReportError(ids_ok);
  PerplexityOptions options;
  options.batch_size = o.batch_size;
  options.device = *device;
  absl::StatusOr<PerplexityResult> r = EvaluatePerplexity(*ckpt, *rows, options);
  if (!r.ok()) return ReportError(r.status());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.json) {
    nlohmann::json report = {{"model_dir", o.model_dir},
                             {"eval_file", o.eval_file},
                             {"rows", r->rows},
                             {"predictions", r->predictions},
                             {"mean_nll", r->mean_nll},
                             {"perplexity", r->perplexity},
                             {"batch_size", o.batch_size},
                             {"device", o.device},
                             {"threads", at::get_num_threads()},
                             {"seconds", seconds}};
    std::printf("%s\n", report.dump(2).c_str());
  } else {
    std::printf("perplexity: %.6f\n", r->perplexity);
    std::printf("mean nll:   %.6f nats over %lld predictions in %lld rows\n", r->mean_nll,
                static_cast<long long>(r->predictions), static_cast<long long>(r->rows));
    const int threads = at::get_num_threads();
    std::printf("seconds:    %.2f (%d thread%s)\n", seconds, threads, threads == 1 ? "" : "s");
  }
  return 0;
}

}  // namespace signround::worker
