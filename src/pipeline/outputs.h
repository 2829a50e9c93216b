// The artifacts of a finished quantize run: every requested export format,
// each written into a staging directory and renamed into place, from the
// original checkpoint and the work directory's finished blocks.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "src/export/export_format.h"
#include "src/export/export_source.h"
#include "src/model/checkpoint.h"
#include "src/pipeline/block_store.h"

namespace signround {

// The fake-quantized model into `dir`: every tensor of `ckpt` under its own
// name and dtype, each quantized Linear's weight replaced by the engine's W^
// (it loads like the original), sharded at `max_shard_bytes`, with
// config.json and the tokenizer files.
absl::Status WriteFakeQuantized(const Checkpoint& ckpt, const BlockStore& store,
                                const std::string& dir, uint64_t max_shard_bytes);

// Writes every format into `out_dir`/<format.dir_name>; calls `done(format)`
// after each. Returns {format name: subdirectory}.
absl::StatusOr<nlohmann::json> WriteExports(const Checkpoint& ckpt, const BlockStore& store,
                                            const std::vector<LayerPlan>& plans,
                                            const std::vector<ExportFormat>& formats,
                                            const ExportOptions& options,
                                            const std::string& out_dir,
                                            const std::function<void(const ExportFormat&)>& done);

}  // namespace signround
