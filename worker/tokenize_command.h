// `signround-worker tokenize`: token ids of a text or of each line of a file,
// with a model directory's tokenizer (only its tokenizer files are needed).
#pragma once

#include <string>

#include "CLI/CLI.hpp"

namespace signround::worker {

struct TokenizeOptions {
  std::string model_dir;
  std::string text;
  std::string file;
  bool json = false;
  CLI::App* cmd = nullptr;  // to tell an empty --text from none
};

// Adds the subcommand to `app`; `options` is filled when it is parsed.
CLI::App* AddTokenizeCommand(CLI::App& app, TokenizeOptions& options);

// Runs it; returns the process exit code.
int RunTokenizeCommand(const TokenizeOptions& options);

}  // namespace signround::worker
