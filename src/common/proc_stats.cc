#include "src/common/proc_stats.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace signround {

ProcessMemory ReadProcessMemory() {
  std::ifstream in("/proc/self/status");
  std::string line;
  ProcessMemory m;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key;
    uint64_t kb = 0;
    fields >> key >> kb;
    if (key == "VmRSS:") m.rss_bytes = kb * 1024;
    if (key == "RssFile:") m.rss_file_bytes = kb * 1024;
    if (key == "VmHWM:") m.peak_rss_bytes = kb * 1024;
  }
  return m;
}

uint64_t MappingResidentBytes(const void* start) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  const auto want = reinterpret_cast<uintptr_t>(start);
  while (std::getline(in, line)) {
    unsigned long long lo = 0, hi = 0;
    // A mapping header: "lo-hi perms offset dev inode path".
    if (std::sscanf(line.c_str(), "%llx-%llx ", &lo, &hi) == 2 && line.find('-') < 17) {
      inside = (lo == want);
      continue;
    }
    unsigned long long kb = 0;
    if (inside && std::sscanf(line.c_str(), "Rss: %llu kB", &kb) == 1) return kb * 1024;
  }
  return 0;
}

}  // namespace signround
