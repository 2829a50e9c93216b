// The artifacts of a finished quantize run: every requested export format,
// each written into a staging directory and renamed into place, from an
// ExportSource (the original checkpoint and the work directory's finished
// blocks, or the layers made on demand by model-free RTN).
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

// The source of the work directory's finished blocks (and the ends file, when the store
// has one); `ends`: the plans of the quantized token embedding / lm_head (a GGUF k-quant
// mix's).
absl::StatusOr<ExportSource> OpenStoredBlocks(const Checkpoint& ckpt, const BlockStore& store,
                                              const std::vector<LayerPlan>& plans,
                                              const std::vector<LayerPlan>& ends);

// `ckpt` with the tensors the finished blocks changed (TEQ's norms) read from the block files.
absl::StatusOr<Checkpoint> WithStoredChanges(const Checkpoint& ckpt, const BlockStore& store);

// The fake-quantized model into `dir`: every tensor of the checkpoint under its own
// name and dtype, each quantized Linear's weight replaced by the engine's W^
// (it loads like the original), sharded at `max_shard_bytes`, with
// config.json and the tokenizer files.
absl::Status WriteFakeQuantized(const ExportSource& source, const std::string& dir,
                                uint64_t max_shard_bytes);

struct ExportResults {
  nlohmann::json written = nlohmann::json::object();  // {format name: subdirectory}
  nlohmann::json failed = nlohmann::json::object();   // {format name: error message}
};

// Writes every format into `out_dir`/<format.dir_name>; calls `done(format, status)`
// after each. A format that fails leaves no directory and does not stop the others:
// its error is in `failed`.
ExportResults WriteExports(
    const ExportSource& source, const std::vector<ExportFormat>& formats,
    const ExportOptions& options, const std::string& out_dir,
    const std::function<void(const ExportFormat&, const absl::Status&)>& done);

}  // namespace signround
