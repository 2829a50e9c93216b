// Memory figures of this process from /proc (Linux), for reports and benchmarks.
#pragma once

#include <cstdint>

namespace signround {

struct ProcessMemory {
  uint64_t rss_bytes = 0;       // VmRSS
  uint64_t rss_file_bytes = 0;  // RssFile: file-backed pages (libraries and mappings)
  uint64_t peak_rss_bytes = 0;  // VmHWM
};

// Zeros where /proc is unavailable.
ProcessMemory ReadProcessMemory();

// Resident bytes of the mapping that starts at `start` (its "Rss:" in
// /proc/self/smaps), or 0 when there is no such mapping.
uint64_t MappingResidentBytes(const void* start);

}  // namespace signround
