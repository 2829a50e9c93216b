#include "src/tensor/safetensors_writer.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"

namespace signround {
namespace {

absl::Status ValidateSpecs(const std::vector<TensorSpec>& specs, const std::string& path) {
  std::set<absl::string_view> seen;
  for (const TensorSpec& s : specs) {
    if (s.name.empty() || s.name == "__metadata__") {
      return absl::InvalidArgumentError(absl::StrCat(path, ": invalid tensor name '", s.name, "'"));
    }
    if (!seen.insert(s.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": duplicate tensor name '", s.name, "'"));
    }
    for (int64_t d : s.shape) {
      if (d < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": tensor '", s.name, "' has a negative dimension"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

uint64_t TensorSpec::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

absl::StatusOr<std::string> SafetensorsHeaderBlock(
    const std::vector<TensorSpec>& specs, const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  nlohmann::json meta = nlohmann::json::object();
  for (const auto& [k, v] : metadata) meta[k] = v;
  meta["format"] = "pt";
  header["__metadata__"] = meta;
  uint64_t offset = 0;
  for (const TensorSpec& s : specs) {
    uint64_t end = offset + s.nbytes();
    header[s.name] = {{"dtype", std::string(DTypeName(s.dtype))},
                      {"shape", s.shape},
                      {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string json_text;
  try {
    json_text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // invalid UTF-8 in a name
    return absl::InvalidArgumentError(absl::StrCat("cannot encode header: ", e.what()));
  }
  // Pad with spaces so the data buffer starts 8-byte aligned.
  json_text.append((8 - json_text.size() % 8) % 8, ' ');
  std::string block(8, '\0');
  uint64_t n = json_text.size();
  for (int i = 0; i < 8; ++i) block[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  block += json_text;
  return block;
}

absl::Status WriteSafetensors(const std::string& path, std::vector<TensorSpec> specs,
                              const TensorBytesFn& bytes,
                              const std::map<std::string, std::string>& metadata) {
  SR_RETURN_IF_ERROR(ValidateSpecs(specs, path));
  std::sort(specs.begin(), specs.end(),
            [](const TensorSpec& a, const TensorSpec& b) { return a.name < b.name; });
  SR_ASSIGN_OR_RETURN(std::string header, SafetensorsHeaderBlock(specs, metadata));

  AtomicFileWriter out(path);
  SR_RETURN_IF_ERROR(out.Open());
  SR_RETURN_IF_ERROR(out.Write(header));
  for (const TensorSpec& s : specs) {
    SR_ASSIGN_OR_RETURN(absl::string_view data, bytes(s));
    if (data.size() != s.nbytes()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", s.name, "' has ",
                                                     data.size(), " bytes, expected ", s.nbytes()));
    }
    SR_RETURN_IF_ERROR(out.Write(data));
  }
  return out.Commit();
}

}  // namespace signround
