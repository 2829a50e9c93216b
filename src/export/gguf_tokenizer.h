// The tokenizer metadata of a GGUF file (tokenizer.ggml.*), read from the
// model directory: a SentencePiece tokenizer.model (protobuf, parsed by hand)
// becomes the "llama" vocabulary, a Hugging Face BPE tokenizer.json the "gpt2"
// one. Both inputs are hostile: errors are INVALID_ARGUMENT naming the file
// and, for the protobuf, the byte offset.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/export/gguf_file.h"
#include "src/model/config.h"

namespace signround {

// Token types, numbered as SentencePiece and llama.cpp number them.
enum GgufTokenType : int32_t {
  kTokenNormal = 1,
  kTokenUnknown = 2,
  kTokenControl = 3,
  kTokenUserDefined = 4,
  kTokenUnused = 5,
  kTokenByte = 6,
};

struct GgufVocab {
  std::string model;  // tokenizer.ggml.model: "llama" or "gpt2"
  // tokenizer.ggml.pre: "default" for SentencePiece (as llama.cpp's converter writes);
  // for BPE the recognised pre-tokenizer, empty when not recognised
  std::string pre;
  std::vector<std::string> tokens;
  std::vector<float> scores;  // SentencePiece only
  std::vector<int32_t> token_types;
  std::vector<std::string> merges;  // BPE only, "a b"
  std::optional<uint32_t> bos_id, eos_id, unk_id, pad_id;
};

// Parses a SentencePiece ModelProto. Pieces beyond the last up to `vocab_size`
// are padded with "[PAD<i>]" (score 0, UNUSED); more pieces than `vocab_size`
// is an error. `label` (the path) starts every error.
absl::StatusOr<GgufVocab> ParseSentencePieceModel(absl::string_view bytes, absl::string_view label,
                                                  int64_t vocab_size);

// Parses a Hugging Face tokenizer.json with a BPE model: tokens by id (gaps and
// the rest up to config.vocab_size padded as above), added tokens (CONTROL when
// special, else USER_DEFINED), merges, and bos/eos from `config`.
absl::StatusOr<GgufVocab> ParseHfBpeTokenizer(absl::string_view json_text, absl::string_view label,
                                              const ModelConfig& config);

// The vocabulary of `model_dir`: tokenizer.model when present, else
// tokenizer.json, else nullopt (the file then says tokenizer.ggml.model "no_vocab").
absl::StatusOr<std::optional<GgufVocab>> LoadGgufVocab(const std::string& model_dir,
                                                       const ModelConfig& config);

// Adds the tokenizer.ggml.* keys.
void AddVocabMetadata(const GgufVocab& vocab, GgufMetadata* metadata);

}  // namespace signround
