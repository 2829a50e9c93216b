#include "src/attempts/checkpoint_mirror.h"

#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/contract/settings.h"
#include "src/storage/transfer.h"

namespace signround::jobs {
namespace {

constexpr char kSettings[] = "settings.json";

bool IsCheckpointName(absl::string_view name) {
  if (name == kSettings) return true;
  // block-NNNNN.safetensors
  if (!absl::ConsumePrefix(&name, "block-") || !absl::ConsumeSuffix(&name, ".safetensors")) {
    return false;
  }
  if (name.size() < 5 || name.size() > 9) return false;
  for (char c : name) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

absl::Status PutFile(Location& dir, const std::string& local, const std::string& name) {
  const std::string key = absl::StrCat(dir.key, "/", name);
  absl::Status s = dir.store->Put(local, key, nullptr);
  if (!s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat("saving checkpoint ", dir.store->Describe(key), ": ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace

std::string CheckpointUri(const std::string& output_uri) {
  std::string base = output_uri;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return absl::StrCat(base, "/", contract::kWorkDirName);
}

absl::Status PushCheckpoint(const std::string& output_uri, const std::string& work_dir,
                            int block_index, const S3Options& s3) {
  SR_ASSIGN_OR_RETURN(Location dir, OpenLocation(CheckpointUri(output_uri), s3));
  const std::string block = absl::StrFormat("block-%05d.safetensors", block_index);
  // settings.json first: blocks are only ever read beside the settings they were made with.
  SR_RETURN_IF_ERROR(PutFile(dir, JoinPath(work_dir, kSettings), kSettings));
  return PutFile(dir, JoinPath(work_dir, block), block);
}

absl::StatusOr<int> PullCheckpoints(const std::string& output_uri, const std::string& work_dir,
                                    const S3Options& s3) {
  SR_ASSIGN_OR_RETURN(Location dir, OpenLocation(CheckpointUri(output_uri), s3));
  SR_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, ListAll(*dir.store, dir.key + "/"));
  SR_RETURN_IF_ERROR(MakeDirectories(work_dir));
  int pulled = 0;
  for (const ObjectInfo& o : objects) {
    const std::string name = o.key.substr(dir.key.size() + 1);
    if (!IsCheckpointName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(dir.store->Describe(o.key),
                                                     ": not a block checkpoint (settings.json or ",
                                                     "block-NNNNN.safetensors)"));
    }
    const std::string local = JoinPath(work_dir, name);
    if (::access(local.c_str(), F_OK) == 0) continue;
    absl::Status s = dir.store->Get(o.key, local, nullptr);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("fetching checkpoint ", dir.store->Describe(o.key),
                                                 ": ", s.message()));
    }
    ++pulled;
  }
  return pulled;
}

absl::Status DeleteCheckpoints(const std::string& output_uri, const S3Options& s3) {
  SR_ASSIGN_OR_RETURN(Location dir, OpenLocation(CheckpointUri(output_uri), s3));
  SR_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, ListAll(*dir.store, dir.key + "/"));
  for (const ObjectInfo& o : objects) SR_RETURN_IF_ERROR(dir.store->Delete(o.key));
  if (dir.local) ::rmdir(dir.LocalPath().c_str());  // the emptied folder, when a directory
  return absl::OkStatus();
}

}  // namespace signround::jobs
