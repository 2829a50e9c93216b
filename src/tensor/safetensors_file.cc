#include "src/tensor/safetensors_file.h"

#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"

namespace signround {

absl::StatusOr<std::shared_ptr<const SafetensorsFile>> SafetensorsFile::Open(
    const std::string& path) {
  SR_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> mapping, MappedFile::Open(path));
  absl::string_view bytes(reinterpret_cast<const char*>(mapping->data()), mapping->size());
  SR_ASSIGN_OR_RETURN(SafetensorsHeader header,
                      ParseSafetensorsHeader(bytes, mapping->size(), path));
  return std::shared_ptr<const SafetensorsFile>(
      new SafetensorsFile(std::move(mapping), std::move(header)));
}

absl::StatusOr<const TensorEntry*> SafetensorsFile::Find(absl::string_view name) const {
  const TensorEntry* entry = header_.Find(name);
  if (entry == nullptr) {
    return absl::NotFoundError(absl::StrCat(path(), ": no tensor named '", name, "'"));
  }
  return entry;
}

absl::string_view SafetensorsFile::Bytes(const TensorEntry& entry) const {
  const char* base = reinterpret_cast<const char*>(mapping_->data());
  return absl::string_view(base + header_.data_start + entry.begin, entry.nbytes());
}

}  // namespace signround
