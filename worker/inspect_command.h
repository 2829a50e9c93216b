// `signround-worker inspect`: what a checkpoint holds and what quantization
// would do to each decoder Linear.
#pragma once

#include <string>

#include "CLI/CLI.hpp"
#include "src/quant/layer_plan.h"

namespace signround::worker {

struct InspectOptions {
  std::string model_dir;
  QuantScheme scheme;
  bool json = false;
};

// Adds the subcommand to `app`; `options` is filled when it is parsed.
CLI::App* AddInspectCommand(CLI::App& app, InspectOptions& options);

// Runs it; returns the process exit code.
int RunInspect(const InspectOptions& options);

}  // namespace signround::worker
