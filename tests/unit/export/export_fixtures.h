// Helpers shared by the export tests (tests/unit/export/) and the packed-Linear reader's
// test (tests/unit/model/packed_linear_test.cc).
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "src/contract/scheme.h"

namespace signround {

// The bytes of `v`, for a safetensors writer's data callback.
template <typename T>
inline absl::string_view AsChars(const std::vector<T>& v) {
  return absl::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

inline contract::QuantScheme Scheme(int bits, int group_size, bool sym) {
  contract::QuantScheme s;
  s.bits = bits;
  s.group_size = group_size;
  s.sym = sym;
  return s;
}

}  // namespace signround
