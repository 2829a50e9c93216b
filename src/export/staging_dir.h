// An export's output directory, built under a temporary name and renamed into
// place when complete, so a failed or interrupted export never leaves anything
// that looks finished.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace signround {

class StagingDir {
 public:
  // Creates `parent`/.`name`.partial (emptying a leftover one) and `parent` if needed.
  static absl::StatusOr<StagingDir> Create(const std::string& parent, const std::string& name);

  StagingDir(StagingDir&& other) noexcept;
  StagingDir& operator=(StagingDir&&) = delete;
  StagingDir(const StagingDir&) = delete;
  ~StagingDir();  // removes the temporary directory unless committed

  // Where to write the files.
  const std::string& path() const { return tmp_; }
  // The directory's final name.
  const std::string& final_path() const { return final_; }

  // Renames the directory to `parent`/`name`, replacing an older export there.
  absl::Status Commit();

 private:
  StagingDir(std::string tmp, std::string final) : tmp_(std::move(tmp)), final_(std::move(final)) {}
  std::string tmp_;
  std::string final_;
  bool done_ = false;
};

// Copies the tokenizer and generation files (TokenizerFileNames()) that exist
// in `model_dir` into `to`.
absl::Status CopyTokenizerFiles(const std::string& model_dir, const std::string& to);

}  // namespace signround
