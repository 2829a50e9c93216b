// An open, validated safetensors file. The file is memory-mapped; a tensor's
// bytes are only read from disk when something touches them.
#pragma once

#include <memory>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "src/tensor/mapped_file.h"
#include "src/tensor/safetensors_header.h"

namespace signround {

class SafetensorsFile {
 public:
  // Maps and validates `path`. Errors are INVALID_ARGUMENT naming the file and
  // what is wrong, or NOT_FOUND / PERMISSION_DENIED from the filesystem.
  static absl::StatusOr<std::shared_ptr<const SafetensorsFile>> Open(const std::string& path);

  const std::string& path() const { return mapping_->path(); }
  const SafetensorsHeader& header() const { return header_; }
  uint64_t file_size() const { return mapping_->size(); }

  // The entry named `name`, or NOT_FOUND naming the file.
  absl::StatusOr<const TensorEntry*> Find(absl::string_view name) const;

  // The raw little-endian bytes of an entry of this file (no copy).
  absl::string_view Bytes(const TensorEntry& entry) const;

  // Releases the entry's resident pages once its bytes have been copied or
  // written elsewhere, so streaming through a large checkpoint does not leave
  // it all resident in this process (see MappedFile::Evict).
  void Evict(const TensorEntry& entry) const {
    mapping_->Evict(header_.data_start + entry.begin, entry.nbytes());
  }

  // Starts reading the entry's bytes in the background (MappedFile::Prefetch).
  void Prefetch(const TensorEntry& entry) const {
    mapping_->Prefetch(header_.data_start + entry.begin, entry.nbytes());
  }

  // The mapping, for views that must keep it alive.
  const std::shared_ptr<MappedFile>& mapping() const { return mapping_; }

 private:
  SafetensorsFile(std::shared_ptr<MappedFile> mapping, SafetensorsHeader header)
      : mapping_(std::move(mapping)), header_(std::move(header)) {}

  std::shared_ptr<MappedFile> mapping_;
  SafetensorsHeader header_;
};

}  // namespace signround
