// `signround-worker cp SRC DST`: copies files and directories between local
// paths, file:// and s3:// locations with the service's own storage code.
#pragma once

#include <string>

#include "CLI/CLI.hpp"

namespace signround::worker {

struct CpOptions {
  std::string src;
  std::string dst;
  std::string endpoint;             // --s3-endpoint, else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
  std::string region;               // --region, else AWS_REGION / AWS_DEFAULT_REGION / profile
  std::string addressing = "auto";  // auto, path, virtual
  std::string part_size = "16MiB";
  std::string multipart_threshold = "64MiB";
  int parallel = 4;
  int max_attempts = 10;
  bool json = false;
};

CLI::App* AddCpCommand(CLI::App& app, CpOptions& options);

int RunCp(const CpOptions& options);

}  // namespace signround::worker
