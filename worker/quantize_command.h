// `signround-worker quantize`: runs SignRound (or RTN) on a checkpoint and
// writes each requested export format and report.json. The job's settings come
// from a settings file (--settings, what the job service writes) or from flags;
// both resolve through src/contract/settings.h.
#pragma once

#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "src/pipeline/quantize_pipeline.h"

namespace signround::worker {

// The job-setting flags as given; only those given reach the QuantizeRequest,
// so the recipe's values stand for the rest.
struct SettingFlags {
  int bits = 4;
  int group_size = 128;
  bool sym = true;
  int iters = 200;
  int nsamples = 128;
  int seqlen = 2048;
  int batch_size = 8;
  double lr = 0;
  double minmax_lr = 0;
  uint64_t seed = 42;
  std::string recipe = "default";
  std::string formats = "auto_round";
  std::string packed_dtype = "float16";
  std::string layer_config_path;
  bool allow_split_fused = false;
  bool allow_gguf_without_vocab = false;
};

struct QuantizeCommandOptions {
  QuantizeOptions job;  // inputs and engine knobs; job.settings from below
  SettingFlags flags;
  std::string settings_path;  // --settings: the job's settings file
  std::string progress = "bar";
  std::string max_shard_size = "5GB";
  int threads = 0;
  CLI::App* cmd = nullptr;  // to tell which options were given explicitly
};

CLI::App* AddQuantizeCommand(CLI::App& app, QuantizeCommandOptions& options);

int RunQuantizeCommand(QuantizeCommandOptions options);

}  // namespace signround::worker
