// A model's tokenizer.model (SentencePiece) through Debian's libsentencepiece:
// the processor's own normalizer spec applies; BOS is prepended when the
// model defines one and add_special_tokens is set (Llama's convention), no EOS.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "src/common/utf8.h"
#include "src/tokenizer/tokenizer.h"

namespace signround {

// Loads `model_path` (a SentencePiece ModelProto). Errors name the file:
// NOT_FOUND when it does not exist, INVALID_ARGUMENT when it does not parse.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceTokenizer(
    const std::string& model_path);

}  // namespace signround
