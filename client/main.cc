// signround: the command-line client of signround-server. Flags only; the
// commands are in client/commands.h.

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/exit_codes.h"

namespace signround::cli {
namespace {

constexpr const char* kFooter =
    "Output: people get a key: value block (get), a table (list), the job id (submit) and, for\n"
    "watch, a progress bar on a terminal or one line per event otherwise. With --json, stdout\n"
    "holds one JSON object per line (proto field names, every field printed): get and cancel\n"
    "print the Job; list prints one Job per line (every page's with --all); watch prints one\n"
    "JobEvent per line; submit prints the SubmitJobResponse, then with --watch its events.\n"
    "Errors go to stderr as one line: signround: <RPC> failed: <CODE>: <message>.\n\n"
    "Security: --tls-ca CA.pem (or --tls) talks TLS; --tls-cert and --tls-key add a client\n"
    "certificate (mutual TLS). The bearer token comes from --token-file or $SIGNROUND_TOKEN and\n"
    "is sent as 'authorization: Bearer TOKEN' on every request (there is no --token flag:\n"
    "command lines are visible to other users). Environment defaults: $SIGNROUND_SERVER,\n"
    "$SIGNROUND_TLS_CA, $SIGNROUND_TLS_CERT, $SIGNROUND_TLS_KEY, $SIGNROUND_TOKEN.\n\n";

// Seconds: a finite number in [min, 1e7].
CLI::Validator Seconds(double min) {
  return CLI::Validator(
      [min](std::string& text) -> std::string {
        double v = 0;
        if (!absl::SimpleAtod(text, &v) || !std::isfinite(v) || v < min || v > 1e7) {
          return absl::StrCat("'", text, "' is not a number of seconds in [", min, ", 1e7]");
        }
        return "";
      },
      "SECONDS");
}

std::string DefaultServer() {
  const char* env = std::getenv("SIGNROUND_SERVER");
  return env != nullptr && env[0] != '\0' ? env : GlobalOptions().server;
}

// A path option defaulting to $`env`: errors name the flag when it was given,
// the variable otherwise.
void AddPathOption(CLI::App& app, const std::string& flag, const char* env, PathOption* option,
                   const std::string& help) {
  const char* value = std::getenv(env);
  if (value != nullptr && value[0] != '\0') *option = {value, absl::StrCat("$", env)};
  app.add_option_function<std::string>(
         flag,
         [option, flag](const std::string& path) {
           *option = {path, flag};
         },
         absl::StrCat(help, " (default: $", env, ")"))
      ->type_name("PEM");
}

void AddSecurityOptions(CLI::App& app, GlobalOptions* global) {
  app.add_flag("--tls", global->tls, "Use TLS, verifying the server against the system's roots");
  AddPathOption(app, "--tls-ca", "SIGNROUND_TLS_CA", &global->tls_ca,
                "Use TLS, verifying the server against the CA certificate(s) in this PEM file");
  AddPathOption(app, "--tls-cert", "SIGNROUND_TLS_CERT", &global->tls_cert,
                "Client certificate (PEM) for mutual TLS; needs --tls-key; implies TLS");
  AddPathOption(app, "--tls-key", "SIGNROUND_TLS_KEY", &global->tls_key,
                "Private key of --tls-cert (PEM)");
  app.add_option("--tls-server-name", global->tls_server_name,
                 "Name to check in the server's certificate instead of the --server host")
      ->check(CLI::Validator(
          [](std::string& s) { return s.empty() ? std::string("must not be empty") : ""; },
          "NAME"));
  app.add_option_function<std::string>(
         "--token-file",
         [global](const std::string& path) {
           global->token_file = {path, "--token-file"};
         },
         "File holding the bearer token (surrounding whitespace ignored); default: "
         "$SIGNROUND_TOKEN")
      ->type_name("PATH");
}

void AddReconnectTimeout(CLI::App* cmd, double* seconds) {
  cmd->add_option("--reconnect-timeout", *seconds,
                  "Seconds to keep reconnecting when the stream breaks (server restarting)")
      ->check(Seconds(0))
      ->capture_default_str();
}

void AddGlobalOptions(CLI::App& app, GlobalOptions* global) {
  global->server = DefaultServer();
  app.add_option("--server", global->server, "Server HOST:PORT (default: $SIGNROUND_SERVER)")
      ->check(CLI::Validator(
          [](std::string& s) { return s.empty() ? std::string("must not be empty") : ""; },
          "HOST:PORT"))
      ->capture_default_str();
  app.add_flag("--json", global->json, "Machine output on stdout: one JSON object per line");
  app.add_option("--timeout", global->timeout_s, "Deadline of each request, in seconds")
      ->check(Seconds(0.001))
      ->capture_default_str();
}

CLI::App* AddListCommand(CLI::App& app, ListOptions* list) {
  CLI::App* cmd = app.add_subcommand("list", "List jobs, newest first");
  cmd->add_option("--state", list->state, "Only jobs in this state (e.g. running)");
  cmd->add_option("--label", list->labels, "Only jobs with label key=value (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--page-size", list->page_size, "Jobs per page (server default: 50)");
  cmd->add_option("--page-token", list->page_token, "Page token from an earlier list");
  cmd->add_flag("--all", list->all, "Every page, not just the first");
  return cmd;
}

int Main(int argc, char** argv) {
  CLI::App app{"signround: submit SignRound quantization jobs to signround-server and follow them"};
  app.footer(absl::StrCat(kFooter, kExitCodesHelp));
  app.require_subcommand(1);
  app.fallthrough();
  GlobalOptions global;
  AddGlobalOptions(app, &global);
  AddSecurityOptions(app, &global);

  SubmitOptions submit;
  CLI::App* submit_cmd = app.add_subcommand("submit", "Submit a job; prints its id");
  AddSpecFlags(submit_cmd, &submit.spec);
  submit_cmd->add_flag("--watch", submit.watch,
                       "Follow the job until it ends; the exit code tells how it ended");
  AddReconnectTimeout(submit_cmd, &submit.reconnect_timeout_s);

  GetOptions get;
  CLI::App* get_cmd = app.add_subcommand("get", "Show one job");
  get_cmd->add_option("JOB_ID", get.job_id, "Job id")->required();

  ListOptions list;
  CLI::App* list_cmd = AddListCommand(app, &list);

  WatchOptions watch;
  CLI::App* watch_cmd = app.add_subcommand(
      "watch", "Follow a job's events until it ends; the exit code tells how it ended");
  watch_cmd->add_option("JOB_ID", watch.job_id, "Job id")->required();
  watch_cmd->add_option("--from", watch.from_sequence, "First event sequence to show");
  AddReconnectTimeout(watch_cmd, &watch.reconnect_timeout_s);

  CancelOptions cancel;
  CLI::App* cancel_cmd = app.add_subcommand("cancel", "Cancel a job; prints its state then");
  cancel_cmd->add_option("JOB_ID", cancel.job_id, "Job id")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::fprintf(stderr, "signround: usage error: %s (see signround --help)\n", e.what());
    return kExitInvalid;
  }
  // PEM files and the token, read and checked before anything is sent.
  absl::StatusOr<Security> security = LoadSecurity(global);
  if (!security.ok()) {
    PrintError(security.status().message());
    return kExitInvalid;
  }
  global.security = *std::move(security);
  if (submit_cmd->parsed()) return RunSubmit(global, submit);
  if (get_cmd->parsed()) return RunGet(global, get);
  if (list_cmd->parsed()) return RunList(global, list);
  if (watch_cmd->parsed()) return RunWatch(global, watch);
  if (cancel_cmd->parsed()) return RunCancel(global, cancel);
  return kExitInvalid;
}

}  // namespace
}  // namespace signround::cli

int main(int argc, char** argv) {
  try {
    return signround::cli::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "signround: error: unexpected failure: %s\n", e.what());
    return signround::cli::kExitError;
  }
}
