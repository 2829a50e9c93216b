// The byte-level BPE tokenizer of a Hugging Face tokenizer.json (GPT-2,
// Llama-3, Qwen2 layouts): added tokens matched first, Split / ByteLevel
// pre-tokenization, rank-ordered merges, and the post-processor's BOS/EOS.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "src/tokenizer/tokenizer.h"

namespace signround {

// Loads a tokenizer.json whose model is BPE (also the older layout with no
// model.type, which Hugging Face infers as BPE from vocab + merges), with an
// optional tokenizer_config.json path ("" for none) for add_bos_token /
// bos_token (and add_eos_token / eos_token). Anything unsupported (model
// type, normalizer, pre-tokenizer, post-processor kind) is INVALID_ARGUMENT
// naming it; truncation and padding settings are ignored.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadBpeTokenizer(
    const std::string& tokenizer_json_path, const std::string& tokenizer_config_path);

}  // namespace signround
