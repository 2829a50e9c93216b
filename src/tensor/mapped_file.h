// A read-only view of a whole file through mmap. Pages are brought in only
// when touched, so opening a large checkpoint costs almost nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace signround {

class MappedFile {
 public:
  // Maps `path` privately (copy-on-write: writes through the mapping never
  // reach the file). An empty file maps to a null pointer with size 0.
  static absl::StatusOr<std::shared_ptr<MappedFile>> Open(const std::string& path);

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }

  // Drops the resident pages that lie wholly inside [offset, offset + length)
  // (madvise MADV_DONTNEED): they are read from the file again if touched.
  // Only for ranges nobody wrote through the mapping (writes would be lost).
  void Evict(uint64_t offset, uint64_t length) const;
  // Asks the kernel to start reading [offset, offset + length) in the background
  // (madvise MADV_WILLNEED), so a later pass over it does not wait for the disk.
  void Prefetch(uint64_t offset, uint64_t length) const;
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, uint8_t* data, uint64_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  uint8_t* data_;
  uint64_t size_;
};

}  // namespace signround
