// The dashboard's static files (src/dashboard/assets/), compiled into the binary by
// embed_assets.cmake: the page works offline and needs no files beside the server.
#pragma once

#include <vector>

#include "absl/strings/string_view.h"

namespace signround::dashboard {

struct Asset {
  absl::string_view name;  // "index.html", "app.js", ...
  absl::string_view content;
};

const std::vector<Asset>& Assets();

}  // namespace signround::dashboard
