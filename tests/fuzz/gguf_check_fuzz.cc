// The reader-side GGUF check (src/export/gguf_check.h) on arbitrary bytes, as
// a whole file and as the head of a larger one, then the promises of a pass:
// the layout is consistent, the head up to the tensor infos is enough, and a
// longer file (more data) passes too.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "src/export/gguf_check.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

void CheckLayout(const signround::GgufLayout& l, uint64_t file_size) {
  FUZZ_CHECK(l.version == 3);
  FUZZ_CHECK(l.alignment != 0 && (l.alignment & (l.alignment - 1)) == 0);
  FUZZ_CHECK(l.infos_end >= 24 && l.infos_end <= l.data_start);
  FUZZ_CHECK(l.data_start % l.alignment == 0 && l.data_start - l.infos_end < l.alignment);
  FUZZ_CHECK(l.data_start <= l.data_end && l.data_end <= file_size);
  FUZZ_CHECK(l.tensor_count != 0 || l.data_end == l.data_start);
}

bool Same(const signround::GgufLayout& a, const signround::GgufLayout& b) {
  return a.version == b.version && a.tensor_count == b.tensor_count && a.kv_count == b.kv_count &&
         a.alignment == b.alignment && a.infos_end == b.infos_end && a.data_start == b.data_start &&
         a.data_end == b.data_end;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<signround::GgufLayout> whole = signround::CheckGgufBytes(bytes, size, "fuzz");
  if (!whole.ok()) {
    FUZZ_CHECK(whole.status().code() == absl::StatusCode::kInvalidArgument ||
               whole.status().code() == absl::StatusCode::kDataLoss);
  } else {
    CheckLayout(*whole, size);
    // The head alone is enough, and gives the same layout.
    absl::StatusOr<signround::GgufLayout> head =
        signround::CheckGgufBytes(bytes.substr(0, whole->infos_end), size, "fuzz");
    FUZZ_CHECK(head.ok() && Same(*head, *whole));
  }
  // The same bytes as the head of a file with 1 MiB more data: a file that
  // passed still passes, with the same layout.
  const uint64_t larger_size = size + (uint64_t{1} << 20);
  absl::StatusOr<signround::GgufLayout> larger =
      signround::CheckGgufBytes(bytes, larger_size, "fuzz");
  if (larger.ok()) CheckLayout(*larger, larger_size);
  if (whole.ok()) FUZZ_CHECK(larger.ok() && Same(*larger, *whole));
  return 0;
}
