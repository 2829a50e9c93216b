#include "src/model/family.h"

#include "absl/strings/str_join.h"

namespace signround {
namespace {

constexpr ModelFamily kFamilies[] = {
    {"llama", 2048, 1e-6, false, true},
    {"mistral", 4096 * 32, 1e-6, false, false},
    {"qwen2", 32768, 1e-6, true, false},
};

}  // namespace

const ModelFamily* FindModelFamily(absl::string_view model_type) {
  for (const ModelFamily& f : kFamilies) {
    if (f.model_type == model_type) return &f;
  }
  return nullptr;
}

std::string SupportedModelTypes() {
  return absl::StrJoin(kFamilies, ", ", [](std::string* out, const ModelFamily& f) {
    out->append(f.model_type.data(), f.model_type.size());
  });
}

}  // namespace signround
