// A job's finished-block checkpoints kept where any worker can reach them.
// The worker writes them to OUT/.signround-work/ (settings.json and one
// block-NNNNN.safetensors per finished block); the job service mirrors that
// folder to OUTPUT_URI/.signround-work/ as blocks finish, pulls it into a new
// attempt's work directory (on whichever machine claims the job), and deletes
// it once the job has ended.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/storage/s3_store.h"

namespace signround::jobs {

// OUTPUT_URI/.signround-work (no trailing slash).
std::string CheckpointUri(const std::string& output_uri);

// Uploads settings.json and block `block_index` from `work_dir`.
absl::Status PushCheckpoint(const std::string& output_uri, const std::string& work_dir,
                            int block_index, const S3Options& s3);

// Downloads every checkpoint file `work_dir` lacks; the number downloaded.
// Names other than settings.json and block-NNNNN.safetensors are refused
// (INVALID_ARGUMENT): nothing from the store is trusted as a path.
absl::StatusOr<int> PullCheckpoints(const std::string& output_uri, const std::string& work_dir,
                                    const S3Options& s3);

// Removes the mirrored checkpoints (absent ones are fine).
absl::Status DeleteCheckpoints(const std::string& output_uri, const S3Options& s3);

}  // namespace signround::jobs
