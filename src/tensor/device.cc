#include "src/tensor/device.h"

#include "absl/strings/str_cat.h"

namespace signround {

absl::StatusOr<at::Device> ParseDevice(const std::string& name) {
  const auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("device '", name, "' ", why));
  };
  try {
    at::Device d(name);
    if (!d.is_cpu() && !d.is_cuda()) return invalid("is not cpu or cuda:N");
    if (d.is_cuda() && !at::hasCUDA()) return invalid("needs CUDA, which this build lacks");
    if (d.is_cuda() && d.has_index() && static_cast<size_t>(d.index()) >= at::getNumGPUs()) {
      return invalid(absl::StrCat("does not exist (", at::getNumGPUs(), " CUDA devices)"));
    }
    return d;
  } catch (const c10::Error&) {
    return invalid("is not cpu or cuda:N");
  }
}

}  // namespace signround
