#include "src/pipeline/block_store.h"

#include <sys/stat.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "src/common/file_util.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"
#include "src/tensor/torch_tensor.h"

namespace signround {
namespace {

using nlohmann::json;

constexpr char kSettingsFile[] = "settings.json";
constexpr char kStatsKey[] = "signround.block";

json StatsToJson(const StoredBlock& b) {
  json layers = json::array();
  for (const QuantizedLinear& l : b.layers) {
    json layer = {{"name", l.name},
                  {"bits", l.scheme.bits},
                  {"group_size", l.scheme.group_size},
                  {"sym", l.scheme.sym}};
    if (l.scheme.float_min) layer["float_min"] = true;
    if (contract::IsKQuant(l.scheme.data_type)) {
      layer["data_type"] = contract::DataTypeName(l.scheme.data_type);
    }
    layers.push_back(std::move(layer));
  }
  json j = BlockStatsToJson(b.stats);
  j["layers"] = layers;
  if (!b.changed.empty()) {
    json changed = json::array();
    for (const auto& [name, t] : b.changed) changed.push_back(name);
    j["changed"] = changed;
  }
  return j;
}

}  // namespace

absl::StatusOr<BlockStore> BlockStore::Open(const std::string& dir, const std::string& settings) {
  SR_RETURN_IF_ERROR(MakeDirectories(dir));
  std::string settings_path = JoinPath(dir, kSettingsFile);
  auto previous = ReadFileToString(settings_path, 16 << 20);
  if (!previous.ok() || *previous != settings) {
    // Other settings (or none recorded): finished blocks do not apply.
    SR_RETURN_IF_ERROR(RemoveTree(dir));
    SR_RETURN_IF_ERROR(MakeDirectories(dir));
    SR_RETURN_IF_ERROR(WriteFileAtomically(settings_path, settings));
  }
  BlockStore store;
  store.dir_ = dir;
  return store;
}

std::string BlockStore::BlockPath(int64_t index) const {
  return JoinPath(dir_, absl::StrFormat("block-%05d.safetensors", index));
}

bool BlockStore::Has(int64_t index) const {
  struct stat st;
  return ::stat(BlockPath(index).c_str(), &st) == 0;
}

std::string BlockStore::EndsPath() const { return JoinPath(dir_, "ends.safetensors"); }

bool BlockStore::HasEnds() const {
  struct stat st;
  return ::stat(EndsPath().c_str(), &st) == 0;
}

absl::Status BlockStore::SaveEnds(const StoredBlock& ends) const {
  return SaveTo(EndsPath(), ends, "");
}

absl::StatusOr<StoredBlock> BlockStore::LoadEnds() const { return LoadFrom(EndsPath(), ""); }

absl::Status BlockStore::Save(const StoredBlock& block, const std::string& prefix) const {
  return SaveTo(BlockPath(block.stats.index), block, prefix);
}

absl::StatusOr<StoredBlock> BlockStore::Load(int64_t index, const std::string& prefix) const {
  return LoadFrom(BlockPath(index), prefix);
}

absl::Status BlockStore::SaveTo(const std::string& path, const StoredBlock& block,
                                const std::string& prefix) const {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const QuantizedLinear& l : block.layers) {
    std::string p = prefix + l.name;
    tensors.emplace_back(p + ".dequant", l.dequant.to(at::kCPU));
    tensors.emplace_back(p + ".codes", l.integer.codes.to(at::kCPU));
    if (contract::IsKQuant(l.scheme.data_type)) {
      tensors.emplace_back(p + ".sub_scales", l.integer.sub_scales.to(at::kCPU));
      tensors.emplace_back(p + ".d", l.integer.d.to(at::kCPU));
      if (!l.scheme.sym) {
        tensors.emplace_back(p + ".sub_mins", l.integer.sub_mins.to(at::kCPU));
        tensors.emplace_back(p + ".dmin", l.integer.dmin.to(at::kCPU));
      }
      continue;
    }
    tensors.emplace_back(p + ".scales", l.integer.scales.to(at::kCPU));
    if (l.scheme.float_min) {
      tensors.emplace_back(p + ".mins", l.integer.mins.to(at::kCPU));
    } else {
      tensors.emplace_back(p + ".zeros", l.integer.zeros.to(at::kCPU));
    }
  }
  for (const auto& [name, t] : block.changed) tensors.emplace_back(prefix + name, t.to(at::kCPU));
  return WriteTensors(path, tensors, {{kStatsKey, StatsToJson(block).dump()}});
}

absl::StatusOr<StoredBlock> BlockStore::LoadFrom(const std::string& path,
                                                 const std::string& prefix) const {
  SR_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  auto it = file->header().metadata.find(kStatsKey);
  if (it == file->header().metadata.end()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no block stats"));
  }
  SR_ASSIGN_OR_RETURN(json stats, ParseJsonObject(it->second, path));
  StoredBlock b;
  SR_ASSIGN_OR_RETURN(b.stats, BlockStatsFromJson(stats, absl::StrCat(path, ": bad block stats")));
  try {
    for (const json& l : stats.at("layers")) {
      QuantizedLinear q;
      q.name = l.at("name").get<std::string>();
      q.scheme = {l.at("bits").get<int>(), l.at("group_size").get<int>(), l.at("sym").get<bool>(),
                  l.value("float_min", false)};
      const std::string data_type = l.value("data_type", "int");
      std::optional<contract::DataType> type = contract::ParseDataType(data_type);
      if (!type) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": bad block stats: data_type '", data_type, "'"));
      }
      q.scheme.data_type = *type;
      std::string p = prefix + q.name;
      SR_ASSIGN_OR_RETURN(q.dequant, LoadTensor(file, p + ".dequant"));
      SR_ASSIGN_OR_RETURN(q.integer.codes, LoadTensor(file, p + ".codes"));
      if (contract::IsKQuant(q.scheme.data_type)) {
        SR_ASSIGN_OR_RETURN(q.integer.sub_scales, LoadTensor(file, p + ".sub_scales"));
        SR_ASSIGN_OR_RETURN(q.integer.d, LoadTensor(file, p + ".d"));
        if (!q.scheme.sym) {
          SR_ASSIGN_OR_RETURN(q.integer.sub_mins, LoadTensor(file, p + ".sub_mins"));
          SR_ASSIGN_OR_RETURN(q.integer.dmin, LoadTensor(file, p + ".dmin"));
        }
        b.layers.push_back(std::move(q));
        continue;
      }
      SR_ASSIGN_OR_RETURN(q.integer.scales, LoadTensor(file, p + ".scales"));
      if (q.scheme.float_min) {
        SR_ASSIGN_OR_RETURN(q.integer.mins, LoadTensor(file, p + ".mins"));
      } else {
        SR_ASSIGN_OR_RETURN(q.integer.zeros, LoadTensor(file, p + ".zeros"));
      }
      b.layers.push_back(std::move(q));
    }
    for (const json& name : stats.value("changed", json::array())) {
      const std::string tensor = name.get<std::string>();
      SR_ASSIGN_OR_RETURN(at::Tensor t, LoadTensor(file, prefix + tensor));
      b.changed.emplace_back(tensor, std::move(t));
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": bad block stats: ", e.what()));
  }
  return b;
}

absl::StatusOr<std::map<std::string, TensorRef, std::less<>>> BlockStore::ChangedTensors(
    int64_t index, const std::string& prefix) const {
  const std::string path = BlockPath(index);
  SR_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  auto it = file->header().metadata.find(kStatsKey);
  if (it == file->header().metadata.end()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no block stats"));
  }
  SR_ASSIGN_OR_RETURN(json stats, ParseJsonObject(it->second, path));
  std::map<std::string, TensorRef, std::less<>> out;
  try {
    for (const json& name : stats.value("changed", json::array())) {
      const std::string tensor = prefix + name.get<std::string>();
      SR_ASSIGN_OR_RETURN(const TensorEntry* entry, file->Find(tensor));
      out[tensor] = TensorRef{file, entry};
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": bad block stats: ", e.what()));
  }
  return out;
}

absl::Status BlockStore::Remove() const { return RemoveTree(dir_); }

}  // namespace signround
