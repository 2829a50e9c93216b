// UTF-8 validation for hostile text (labels, patterns, tokenizer input).
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace signround {

// The byte offset of the first invalid UTF-8 sequence in `text`, or -1 when
// it is all valid (overlong forms, surrogates and code points above U+10FFFF
// are invalid).
int64_t FirstInvalidUtf8Offset(absl::string_view text);

// A short, printable rendering of a hostile string for messages: 'text' with
// quotes, backslashes and bytes outside printable ASCII as \xNN, cut after 64 bytes
// with "...".
std::string QuoteUntrusted(absl::string_view text);

}  // namespace signround
