// Starting a program from a test with fork + execve, no shell: stdin from
// /dev/null, stdout and stderr into files, no other descriptors inherited.
// Everything is prepared before fork(), since the test process may have
// threads (gRPC's, the fault proxy's).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace signround::testing {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0]: the executable's path
  std::vector<std::string> env;   // the whole environment, "NAME=value"
  std::string stdout_path, stderr_path;
  bool append = false;  // append to the output files instead of truncating them
};

// The child's pid, or -1 (errno set) when the files cannot be opened or fork fails.
// An exec failure shows as the child's exit code 127.
pid_t SpawnProcess(SpawnOptions options);

// The file's bytes, or nullopt when it cannot be read whole (also a /proc file
// whose process exits meanwhile: read(2), not iostreams, which throw then).
std::optional<std::string> ReadWholeFile(const std::string& path);
// The file's bytes, or "" when it cannot be read whole.
std::string ReadFileOrEmpty(const std::string& path);

}  // namespace signround::testing
