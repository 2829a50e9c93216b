// The worker's --settings file (src/contract/settings.h) on arbitrary bytes, and
// the progress event lines the job service reads from a worker. A settings file
// that parses writes back to text that parses to the same settings; a progress
// line that parses writes back to a line that parses the same.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "src/contract/progress.h"
#include "src/contract/scheme.h"
#include "src/contract/settings.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

void FuzzSettingsFile(absl::string_view text) {
  namespace contract = signround::contract;
  absl::StatusOr<contract::QuantizeSettings> s = contract::ParseSettingsFile(text, "s.json");
  if (!s.ok()) {
    FUZZ_CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(!s->formats.empty());
  (void)contract::ValidateQuantScheme(s->scheme());
  const std::string again = contract::SettingsFileText(*s);
  absl::StatusOr<contract::QuantizeSettings> back = contract::ParseSettingsFile(again, "again");
  FUZZ_CHECK(back.ok());
  FUZZ_CHECK(contract::SettingsFileText(*back) == again);
}

void FuzzProgressLine(absl::string_view line) {
  namespace contract = signround::contract;
  absl::StatusOr<contract::ProgressEvent> e = contract::ParseProgressEventLine(line);
  if (!e.ok()) {
    FUZZ_CHECK(e.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  if (e->kind != "block") return;
  absl::StatusOr<contract::ProgressEvent> back =
      contract::ParseProgressEventLine(contract::ProgressEventLine(*e));
  FUZZ_CHECK(back.ok());
  FUZZ_CHECK(back->block.stats.index == e->block.stats.index);
  FUZZ_CHECK(back->block.block_count == e->block.block_count);
  FUZZ_CHECK(back->block.resumed == e->block.resumed);
}

}  // namespace

// The first byte picks the parser: even the settings file, odd a progress line.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    FuzzSettingsFile(text);
  } else {
    FuzzProgressLine(text);
  }
  return 0;
}
