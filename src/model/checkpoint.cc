#include "src/model/checkpoint.h"

#include <sys/stat.h>

#include <cerrno>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/common/file_util.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"
#include "src/model/layout.h"

namespace signround {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxIndexBytes = 64 << 20;

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Opens a shard; a missing file is the checkpoint's fault, so INVALID_ARGUMENT.
absl::StatusOr<std::shared_ptr<const SafetensorsFile>> OpenShard(const std::string& path,
                                                                 absl::string_view referrer) {
  auto file = SafetensorsFile::Open(path);
  if (absl::IsNotFound(file.status())) {
    return absl::InvalidArgumentError(
        absl::StrCat(referrer, ": names shard '", path, "', which does not exist"));
  }
  return file;
}

// weight_map of the index: tensor name -> shard file name.
absl::StatusOr<std::map<std::string, std::string>> ReadWeightMap(const std::string& index_path) {
  SR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path, kMaxIndexBytes));
  SR_ASSIGN_OR_RETURN(json root, ParseJsonObject(text, index_path));
  auto it = root.find("weight_map");
  if (it == root.end() || !it->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": key 'weight_map' is missing or not an object"));
  }
  std::map<std::string, std::string> out;
  for (const auto& [tensor, shard] : it->items()) {
    if (!shard.is_string() || !IsPlainFileName(shard.get<std::string>())) {
      return absl::InvalidArgumentError(absl::StrCat(
          index_path, ": weight_map entry for tensor '", tensor,
          "' must be a plain file name in the checkpoint directory, got ", shard.dump()));
    }
    out[tensor] = shard.get<std::string>();
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": weight_map is empty"));
  }
  return out;
}

// The quantization_config of config.json, else of quantization_config.json, if any.
absl::StatusOr<std::optional<PackedQuantizationConfig>> ReadQuantizationConfig(
    const std::string& dir) {
  for (const char* file : {"config.json", "quantization_config.json"}) {
    const std::string path = JoinPath(dir, file);
    if (!FileExists(path)) continue;
    SR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, kMaxIndexBytes));
    SR_ASSIGN_OR_RETURN(nlohmann::ordered_json root, ParseOrderedJsonObject(text, path));
    const bool whole_file = std::string(file) != "config.json";
    auto it = root.find("quantization_config");
    if (!whole_file && (it == root.end() || it->is_null())) continue;
    const std::string where = whole_file ? path : path + ": quantization_config";
    SR_ASSIGN_OR_RETURN(PackedQuantizationConfig config,
                        PackedQuantizationConfig::Parse(whole_file ? root : *it, where));
    return std::optional<PackedQuantizationConfig>(std::move(config));
  }
  return std::nullopt;
}

// A Linear stored packed in place of `weight_name` ("P.weight"), validated, or
// nullopt when the checkpoint has no P.qweight.
absl::StatusOr<std::optional<PackedLinear>> FindPackedLinear(const Checkpoint& ckpt,
                                                             const std::string& weight_name,
                                                             const std::vector<int64_t>& shape) {
  const std::string suffix = ".weight";
  if (weight_name.size() <= suffix.size() || shape.size() != 2) return std::nullopt;
  const std::string name = weight_name.substr(0, weight_name.size() - suffix.size());
  auto qweight = ckpt.tensors().find(name + ".qweight");
  if (qweight == ckpt.tensors().end()) return std::nullopt;
  if (!ckpt.quantization()) {
    return absl::InvalidArgumentError(absl::StrCat(
        qweight->second.file->path(), ": tensor '", name,
        ".qweight' is packed, but config.json has no quantization_config describing it"));
  }
  std::optional<PackedScheme> scheme = ckpt.quantization()->Resolve(name);
  if (!scheme) {
    return absl::InvalidArgumentError(absl::StrCat(
        ckpt.dir(), ": quantization_config leaves '", name, "' unquantized, but the checkpoint ",
        "has '", name, ".qweight' and no '", weight_name, "'"));
  }
  auto lookup = [&](const std::string& tensor) {
    auto it = ckpt.tensors().find(tensor);
    return it == ckpt.tensors().end() ? TensorRef{} : it->second;
  };
  SR_ASSIGN_OR_RETURN(PackedLinear linear, OpenPackedLinear(name, shape[0], shape[1], *scheme,
                                                            ckpt.quantization()->zeros(), lookup));
  return std::optional<PackedLinear>(std::move(linear));
}

}  // namespace

absl::Status Checkpoint::CheckExpectedTensors() {
  for (const ExpectedTensor& want : ExpectedTensors(config())) {
    auto found = tensors().find(want.name);
    if (found == tensors().end()) {
      // A Linear may be stored packed instead (P.qweight, P.qzeros, P.scales).
      SR_ASSIGN_OR_RETURN(std::optional<PackedLinear> packed,
                          FindPackedLinear(*this, want.name, want.shape));
      if (packed) {
        std::string name = packed->name;
        packed_.emplace(std::move(name), *std::move(packed));
        continue;
      }
      return absl::InvalidArgumentError(absl::StrCat(dir_, ": tensor '", want.name,
                                                     "' is missing (config.json implies shape [",
                                                     absl::StrJoin(want.shape, ", "), "])"));
    }
    const TensorEntry& got = *found->second.entry;
    if (got.shape != want.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(found->second.file->path(), ": tensor '", want.name, "' has shape [",
                       absl::StrJoin(got.shape, ", "), "] but config.json implies [",
                       absl::StrJoin(want.shape, ", "), "]"));
    }
    if (!IsFloatingWeightDType(got.dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat(found->second.file->path(), ": tensor '", want.name, "' has dtype ",
                       DTypeName(got.dtype), "; expected F32, F16, BF16 or F64"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> Checkpoint::Open(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoStatus(errno, dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": not a directory"));
  }
  Checkpoint ckpt;
  ckpt.dir_ = dir;
  SR_ASSIGN_OR_RETURN(ckpt.config_, LoadModelConfig(JoinPath(dir, "config.json")));

  const std::string index_path = JoinPath(dir, kIndexFileName);
  const std::string single_path = JoinPath(dir, kSingleFileName);
  if (FileExists(index_path)) {
    SR_ASSIGN_OR_RETURN(auto weight_map, ReadWeightMap(index_path));
    std::map<std::string, std::shared_ptr<const SafetensorsFile>> shards;
    for (const auto& [tensor, shard] : weight_map) {
      if (shards.count(shard)) continue;
      SR_ASSIGN_OR_RETURN(
          shards[shard],
          OpenShard(JoinPath(dir, shard), absl::StrCat(index_path, ": tensor '", tensor, "'")));
    }
    for (const auto& [tensor, shard] : weight_map) {
      const auto& file = shards[shard];
      const TensorEntry* entry = file->header().Find(tensor);
      if (entry == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(index_path, ": tensor '", tensor,
                                                       "' is mapped to '", shard,
                                                       "', which has no such tensor"));
      }
      ckpt.tensors_[tensor] = Tensor{file, entry};
    }
    for (const auto& [name, file] : shards) {
      for (const TensorEntry& e : file->header().tensors) {
        if (!weight_map.count(e.name)) {
          return absl::InvalidArgumentError(absl::StrCat(file->path(), ": tensor '", e.name,
                                                         "' is not listed in ", kIndexFileName));
        }
      }
      ckpt.files_.push_back(file);
    }
  } else if (FileExists(single_path)) {
    SR_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(single_path));
    for (const TensorEntry& e : file->header().tensors) ckpt.tensors_[e.name] = Tensor{file, &e};
    ckpt.files_.push_back(std::move(file));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, ": has neither ", kSingleFileName, " nor ", kIndexFileName));
  }
  SR_ASSIGN_OR_RETURN(ckpt.quantization_, ReadQuantizationConfig(dir));
  SR_RETURN_IF_ERROR(ckpt.CheckExpectedTensors());
  return ckpt;
}

absl::StatusOr<Checkpoint::Tensor> Checkpoint::Find(absl::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(dir_, ": no tensor named '", name, "'"));
  }
  return it->second;
}

absl::StatusOr<Checkpoint> Checkpoint::WithReplacedTensors(
    const std::map<std::string, Tensor, std::less<>>& replaced) const {
  Checkpoint out = *this;
  for (const auto& [name, t] : replaced) {
    auto it = out.tensors_.find(name);
    if (it == out.tensors_.end() || it->second.entry->dtype != t.entry->dtype ||
        it->second.entry->shape != t.entry->shape) {
      return absl::InternalError(
          absl::StrCat(dir_, ": replacement for '", name, "' does not match the checkpoint"));
    }
    it->second = t;
  }
  return out;
}

uint64_t Checkpoint::parameter_count() const {
  uint64_t n = 0;
  for (const auto& [name, t] : tensors_) n += t.entry->numel;
  return n;
}

}  // namespace signround
