// LoadTokenizer: picks tokenizer.json (BPE) or tokenizer.model (SentencePiece)
// from a model directory.
#include "src/tokenizer/tokenizer.h"

#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "src/tokenizer/bpe_tokenizer.h"
#include "src/tokenizer/sentencepiece_tokenizer.h"

namespace signround {
namespace {

bool IsRegularFile(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_dir) {
  const std::filesystem::path dir(model_dir);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(model_dir, ": not a directory"));
  }
  const std::filesystem::path json = dir / "tokenizer.json";
  const std::filesystem::path config = dir / "tokenizer_config.json";
  const std::filesystem::path spm = dir / "tokenizer.model";
  absl::Status bpe_error;
  if (IsRegularFile(json)) {
    auto bpe = LoadBpeTokenizer(json.string(), IsRegularFile(config) ? config.string() : "");
    if (bpe.ok()) return bpe;
    bpe_error = bpe.status();
  }
  if (IsRegularFile(spm)) return LoadSentencePieceTokenizer(spm.string());
  if (!bpe_error.ok()) return bpe_error;
  return absl::NotFoundError(
      absl::StrCat(model_dir, ": no tokenizer.json or tokenizer.model in the directory"));
}

}  // namespace signround
