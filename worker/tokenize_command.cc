#include "worker/tokenize_command.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/tokenizer/tokenizer.h"
#include "worker/command.h"

namespace signround::worker {
namespace {

void PrintIds(const std::vector<int64_t>& ids, bool json) {
  const std::string joined = absl::StrJoin(ids, json ? ", " : " ");
  if (json) {
    std::printf("{\"ids\": [%s]}\n", joined.c_str());
  } else {
    std::printf("%s\n", joined.c_str());
  }
}

// Each line of `path` (without its newline, "\r\n" too), one output line each.
int TokenizeFile(const Tokenizer& tok, const std::string& path, bool json) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ReportError(absl::NotFoundError(absl::StrCat(path, ": cannot open the file")));
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    absl::StatusOr<std::vector<int64_t>> ids = tok.Encode(line, true);
    if (!ids.ok()) {
      return ReportError(absl::Status(ids.status().code(),
                                      absl::StrCat(path, ":", n, ": ", ids.status().message())));
    }
    PrintIds(*ids, json);
  }
  return 0;
}

}  // namespace

CLI::App* AddTokenizeCommand(CLI::App& app, TokenizeOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Token ids of a text with a model's tokenizer (tokenizer.json or .model)");
  o.cmd = cmd;
  cmd->add_option("--model", o.model_dir, "Model directory (only tokenizer files needed)")
      ->required();
  CLI::Option* text = cmd->add_option("--text", o.text, "Text to tokenize");
  CLI::Option* file = cmd->add_option("--file", o.file, "File: one output line per input line");
  text->excludes(file);
  file->excludes(text);
  cmd->add_flag("--json", o.json, "Print {\"ids\": [...]} per text");
  return cmd;
}

int RunTokenizeCommand(const TokenizeOptions& o) {
  const bool has_text = o.cmd != nullptr && o.cmd->count("--text") > 0;
  const bool has_file = o.cmd != nullptr && o.cmd->count("--file") > 0;
  if (!has_text && !has_file) {
    return ReportError(absl::InvalidArgumentError("tokenize: give --text or --file"));
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(o.model_dir);
  if (!tok.ok()) return ReportError(tok.status());
  if (has_file) return TokenizeFile(**tok, o.file, o.json);
  absl::StatusOr<std::vector<int64_t>> ids = (*tok)->Encode(o.text, true);
  if (!ids.ok()) return ReportError(ids.status());
  PrintIds(*ids, o.json);
  return 0;
}

}  // namespace signround::worker
