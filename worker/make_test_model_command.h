// `signround-worker make-test-model`: writes a random-initialised checkpoint.
#pragma once

#include <string>

#include "CLI/CLI.hpp"
#include "src/model/random_checkpoint.h"

namespace signround::worker {

struct MakeTestModelOptions {
  std::string out_dir;
  std::string dtype = "bf16";
  RandomCheckpointOptions model;
};

CLI::App* AddMakeTestModelCommand(CLI::App& app, MakeTestModelOptions& options);

int RunMakeTestModel(MakeTestModelOptions options);

}  // namespace signround::worker
