// A reader-side check of a GGUF v3 file (FORMATS.md), written for hostile
// input: the header, every metadata key/value (all value types; arrays nested
// at most kGgufMaxArrayDepth deep), the tensor infos and the data layout. The
// writer runs it over every file it makes before publishing it; the fuzz
// target tests/fuzz/gguf_check_fuzz.cc runs it over arbitrary bytes.
//
// Checked: the magic and version; counts bounded by the bytes available (no
// allocation is sized by a count read from the file); keys of 1 to 65535
// bytes of printable ASCII, unique; string values that fit in the file;
// known value types, bools 0 or 1; general.alignment a u32 power of two
// (default 32); tensor names of 1 to 63 bytes, unique; 1 to 4 dims, each > 0,
// whose product fits in int64; known ggml types (gguf_file.h) with rows of
// whole blocks; offsets aligned, increasing, not overlapping, and every
// tensor's data within the file.
//
// Errors say what is wrong and at which byte: DATA_LOSS when the file ends
// before something it declares, INVALID_ARGUMENT for anything malformed.
// Memory use is bounded by the bytes of the keys and tensor names present
// (plus a 64 KiB read window for files), whatever the counts say.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace signround {

inline constexpr uint64_t kGgufMaxKeyBytes = 65535;      // the GGUF spec's limit
inline constexpr uint64_t kGgufMaxTensorNameBytes = 63;  // llama.cpp's GGML_MAX_NAME - 1
inline constexpr int kGgufMaxArrayDepth = 8;  // an array of arrays of ... at most this deep

// What a file that passes looks like.
struct GgufLayout {
  uint32_t version = 0;
  uint64_t tensor_count = 0;
  uint64_t kv_count = 0;
  uint64_t alignment = 0;   // general.alignment, or 32
  uint64_t infos_end = 0;   // the byte after the last tensor info
  uint64_t data_start = 0;  // infos_end rounded up to the alignment
  uint64_t data_end = 0;    // data_start + the end of the last tensor's data
};

// Checks a GGUF file of `file_size` bytes whose first bytes are `head` (the
// whole file, or at least everything up to the end of the tensor infos).
// Bytes past the head are never read: a check that needs them fails with
// INVALID_ARGUMENT, saying the head is too short. `label` starts every message.
absl::StatusOr<GgufLayout> CheckGgufBytes(absl::string_view head, uint64_t file_size,
                                          absl::string_view label = "GGUF");

// Checks the GGUF file at `path` with bounded reads (a 64 KiB window; string
// and array payloads are skipped, not read, unless they must be inspected).
absl::StatusOr<GgufLayout> CheckGgufFile(const std::string& path);

}  // namespace signround
