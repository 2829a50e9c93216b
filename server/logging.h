// spdlog set-up for signround-server: stderr, one line per event, text or
// JSON ({"time","level","job","msg"}; the job id comes from a leading
// "job=<id> " of the message, which every job line has).
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace signround::server {

// `format` is "text" or "json"; INVALID_ARGUMENT otherwise.
absl::Status ConfigureLogging(absl::string_view format);

}  // namespace signround::server
