// The bearer-token side of the API (src/auth/tokens_file.h). The first byte
// chooses: even, the rest is a --tokens-file text for TokenTable::Parse; odd,
// the rest is `authorization` metadata values (split at '\n') checked against
// a fixed table by Authenticate. Answers are INVALID_ARGUMENT (a file) or
// UNAUTHENTICATED (a call), and a refused call's message never quotes what the
// caller sent: there are only a few fixed messages.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "src/auth/tokens_file.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

const signround::auth::TokenTable& FixedTable() {
  // SHA-256 of "good-token".
  static const auto* table = new signround::auth::TokenTable(*signround::auth::TokenTable::Parse(
      R"({"tokens": [{"sha256": "461caa80a52104436e34006189430d13aba103b2c4344d446ea3d9324b0de1c0",
                      "tenant": "team-a", "role": "submitter"}]})",
      "fixed"));
  return *table;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    absl::StatusOr<signround::auth::TokenTable> t = signround::auth::TokenTable::Parse(text, "f");
    if (!t.ok()) {
      FUZZ_CHECK(t.status().code() == absl::StatusCode::kInvalidArgument);
      return 0;
    }
    FUZZ_CHECK(t->tenant_count() <= t->token_count());
    return 0;
  }
  std::vector<absl::string_view> values = absl::StrSplit(text, '\n');
  if (text.empty()) values.clear();
  absl::StatusOr<signround::auth::Principal> p =
      signround::auth::Authenticate(FixedTable(), values);
  if (p.ok()) {
    FUZZ_CHECK(p->tenant == "team-a");
    return 0;
  }
  FUZZ_CHECK(p.status().code() == absl::StatusCode::kUnauthenticated);
  static auto* messages = new std::set<std::string>();
  messages->insert(std::string(p.status().message()));
  FUZZ_CHECK(messages->size() <= 4);  // none, several, not "Bearer", unknown token
  return 0;
}
