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
// so the recipe's values stand for the rest. They start at the contract's
// defaults (shown in --help).
struct SettingFlags {
  SettingFlags();
  int bits;
  int group_size;
  bool sym;
  int iters;
  int nsamples;
  int seqlen;
  int batch_size;
  double lr;
  double minmax_lr;
  uint64_t seed;
  bool scale_search;
  bool loss_filter;
  double target_bits;
  int teq_iters;
  std::string scheme_candidates;  // comma-separated
  std::string recipe;
  std::string formats;  // comma-separated
  std::string packed_dtype;
  std::string layer_config_path;
  bool allow_split_fused;
  bool allow_gguf_without_vocab;
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
