// Calibration and evaluation data from text, tokenized with the model's own
// tokenizer (src/tokenizer/tokenizer.h) into the same TokenRow rows that
// token-id JSONL gives (token_dataset.h).
//
// Accepted files (DatasetKind):
// - JSONL whose first non-empty line has "input_ids": token ids, as before.
// - JSONL whose first non-empty line has "text": one {"text": "..."} per line.
// - Any other file (e.g. .txt): plain UTF-8 text, one text per line (as Hugging
//   Face `datasets`' "text" loader splits it); all-whitespace lines are skipped.
//
// Rows from text (ALGORITHM.md section 3):
// - default: one row per text, tokenized with BOS as the tokenizer adds it;
//   SelectSamples then drops rows shorter than seqlen and truncates the rest.
// - concat: every text tokenized the same way (BOS first), joined in order and
//   cut into seqlen-token chunks; the remainder is dropped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/data/token_dataset.h"
#include "src/model/config.h"
#include "src/tokenizer/tokenizer.h"

namespace signround {

enum class DatasetKind { kTokenIds, kTextJsonl, kPlainText };

// One text and its 1-based line in the file, for error messages.
struct TextRecord {
  std::string text;
  int64_t line = 0;
};

struct TextRowsOptions {
  bool concat = false;  // join all texts and cut seqlen chunks
  int64_t seqlen = 0;   // chunk length with concat (must be > 0 then)
};

// The kind of `path` from its first non-empty line (see above).
absl::StatusOr<DatasetKind> DetectDatasetKind(const std::string& path);

// The texts of a text JSONL or plain text file. INVALID_ARGUMENT
// "<path>:<line>: ..." for invalid UTF-8 or a bad JSON line, and
// "<path>: no texts" for a file without any.
absl::StatusOr<std::vector<TextRecord>> LoadTexts(const std::string& path, DatasetKind kind);

// Rows from texts as described above; errors name `label` and the line.
absl::StatusOr<std::vector<TokenRow>> TokenizeTexts(const std::vector<TextRecord>& texts,
                                                    const Tokenizer& tokenizer,
                                                    const TextRowsOptions& options,
                                                    absl::string_view label);

// Evaluation text, as the shared evaluation sets were built: every text
// tokenized (BOS first), joined and cut into chunks of the model's context
// length (max_position_embeddings), or of `fallback_len` when the config has none.
TextRowsOptions EvalTextOptions(const ModelConfig& config, int64_t fallback_len);

// Rows of `path` of any kind: token-id JSONL as LoadTokenRows reads it, or
// text tokenized with the tokenizer of `model_dir`.
absl::StatusOr<std::vector<TokenRow>> LoadDatasetRows(const std::string& path,
                                                      const std::string& model_dir,
                                                      const TextRowsOptions& options);

}  // namespace signround
