// `signround-worker quantize`: runs SignRound (or RTN) on a checkpoint and
// writes each requested export format and report.json.
#pragma once

#include <string>

#include "CLI/CLI.hpp"
#include "src/pipeline/quantize_pipeline.h"

namespace signround::worker {

struct QuantizeCommandOptions {
  QuantizeOptions job;
  std::string progress = "bar";
  std::string max_shard_size = "5GB";
  int threads = 0;
  CLI::App* cmd = nullptr;  // to tell which options were given explicitly
};

CLI::App* AddQuantizeCommand(CLI::App& app, QuantizeCommandOptions& options);

int RunQuantizeCommand(QuantizeCommandOptions options);

}  // namespace signround::worker
