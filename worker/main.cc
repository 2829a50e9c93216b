// signround-worker: the engine process. Runs one job (or a tool command) and
// exits; the job server starts it as a child process.

#include <cstdio>
#include <exception>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "worker/command.h"
#include "worker/cp_command.h"
#include "worker/eval_command.h"
#include "worker/inspect_command.h"
#include "worker/make_test_model_command.h"
#include "worker/quantize_command.h"
#include "worker/tokenize_command.h"

namespace signround::worker {

int ReportError(const absl::Status& status) {
  std::fprintf(stderr, "signround-worker: error: %s\n", std::string(status.message()).c_str());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnimplemented:
      return 2;
    default:
      return 1;
  }
}

namespace {

int Main(int argc, char** argv) {
  ConfigureEngineAllocator();
  CLI::App app{"signround-worker: quantize LLM checkpoints with SignRound"};
  app.require_subcommand(1);
  InspectOptions inspect;
  MakeTestModelOptions make_test_model;
  EvalOptions eval;
  QuantizeCommandOptions quantize;
  CpOptions cp;
  TokenizeOptions tokenize;
  CLI::App* inspect_cmd = AddInspectCommand(app, inspect);
  CLI::App* make_cmd = AddMakeTestModelCommand(app, make_test_model);
  CLI::App* eval_cmd = AddEvalCommand(app, eval);
  CLI::App* quantize_cmd = AddQuantizeCommand(app, quantize);
  CLI::App* cp_cmd = AddCpCommand(app, cp);
  CLI::App* tokenize_cmd = AddTokenizeCommand(app, tokenize);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (inspect_cmd->parsed()) return RunInspect(inspect);
  if (make_cmd->parsed()) return RunMakeTestModel(make_test_model);
  if (eval_cmd->parsed()) return RunEval(eval);
  if (quantize_cmd->parsed()) return RunQuantizeCommand(quantize);
  if (cp_cmd->parsed()) return RunCp(cp);
  if (tokenize_cmd->parsed()) return RunTokenizeCommand(tokenize);
  return 2;
}

}  // namespace
}  // namespace signround::worker

int main(int argc, char** argv) {
  try {
    return signround::worker::Main(argc, argv);
  } catch (const std::exception& e) {
    // Nothing should get here; if something does, one line and no trace.
    return signround::worker::ReportError(
        absl::InternalError(absl::StrCat("unexpected failure: ", e.what())));
  }
}
