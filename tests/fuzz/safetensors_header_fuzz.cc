// The safetensors header parser as the loader calls it (SafetensorsFile::Open
// passes the whole mapped file: an 8-byte length, the JSON header, the data),
// then the invariants a successful parse promises: entries sorted by name,
// sizes matching shapes and dtypes, and offsets tiling the data buffer.
#include <cstddef>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "src/tensor/safetensors_header.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

void CheckHeader(const signround::SafetensorsHeader& h, uint64_t file_size) {
  FUZZ_CHECK(h.header_bytes <= signround::kMaxSafetensorsHeaderBytes);
  FUZZ_CHECK(h.data_start == 8 + h.header_bytes);
  FUZZ_CHECK(h.data_start + h.data_bytes == file_size);
  uint64_t total = 0;
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const signround::TensorEntry& e = h.tensors[i];
    if (i > 0) FUZZ_CHECK(h.tensors[i - 1].name < e.name);
    FUZZ_CHECK(h.Find(e.name) == &e);
    FUZZ_CHECK(e.begin <= e.end && e.end <= h.data_bytes);
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      FUZZ_CHECK(d >= 0);
      numel *= static_cast<uint64_t>(d);
    }
    FUZZ_CHECK(numel == e.numel);
    FUZZ_CHECK(e.nbytes() == e.numel * signround::DTypeSize(e.dtype));
    FUZZ_CHECK(!signround::DescribeTensor(e).empty());
    total += e.nbytes();
  }
  FUZZ_CHECK(total == h.data_bytes);  // the entries tile the buffer: no holes, no overlaps
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<signround::SafetensorsHeader> h =
      signround::ParseSafetensorsHeader(bytes, size, "fuzz.safetensors");
  if (h.ok()) {
    CheckHeader(*h, size);
  } else {
    FUZZ_CHECK(h.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(h.status().message(), "fuzz.safetensors: "));
  }
  // A prefix of a larger file (the header-only read a lazy loader may do):
  // the same header with 4096 more data bytes claimed.
  absl::StatusOr<signround::SafetensorsHeader> larger =
      signround::ParseSafetensorsHeader(bytes, size + 4096, "fuzz.safetensors");
  if (larger.ok()) CheckHeader(*larger, size + 4096);
  return 0;
}
