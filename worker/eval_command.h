// `signround-worker eval`: perplexity of a checkpoint on a token-id JSONL file.
#pragma once

#include <cstdint>
#include <string>

#include "CLI/CLI.hpp"

namespace signround::worker {

struct EvalOptions {
  std::string model_dir;
  std::string eval_file;
  int64_t batch_size = 8;
  int threads = 0;  // 0: LibTorch's default
  std::string device = "cpu";
  bool json = false;
};

// Adds the subcommand to `app`; `options` is filled when it is parsed.
CLI::App* AddEvalCommand(CLI::App& app, EvalOptions& options);

// Runs it; returns the process exit code.
int RunEval(const EvalOptions& options);

}  // namespace signround::worker
