// Text to token ids with a model's own tokenizer, offline: tokenizer.json
// (byte-level BPE, bpe_tokenizer.h) or tokenizer.model (SentencePiece,
// sentencepiece_tokenizer.h), held to Hugging Face's outputs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace signround {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // The ids of `text`, which must be valid UTF-8 (INVALID_ARGUMENT otherwise).
  // With `add_special_tokens`, BOS / EOS are added as the tokenizer's
  // post-processor (or tokenizer_config.json's add_bos_token) says.
  virtual absl::StatusOr<std::vector<int64_t>> Encode(absl::string_view text,
                                                      bool add_special_tokens = true) const = 0;

  virtual int64_t vocab_size() const = 0;
  // "tokenizer.json (BPE)", "tokenizer.model (SentencePiece)": for messages and reports.
  virtual std::string Describe() const = 0;
};

// The tokenizer of a model directory: tokenizer.json when it holds a model
// this project implements, else tokenizer.model; NOT_FOUND when the directory
// has neither; INVALID_ARGUMENT naming what is unsupported (model type,
// normalizer, pre-tokenizer) when it has only an unsupported tokenizer.json.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_dir);

}  // namespace signround
