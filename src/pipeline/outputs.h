// The artifacts of a finished quantize run, assembled from the original
// checkpoint and the work directory's finished blocks, one tensor at a time.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "src/model/checkpoint.h"
#include "src/pipeline/block_store.h"

namespace signround {

inline constexpr char kIntegerWeightsFile[] = "quantized_weights.safetensors";

// Writes into `out_dir`:
// - model.safetensors: every tensor of `ckpt` under its own name and dtype,
//   the quantized Linears' weights replaced by W^ (a fake-quantized model that
//   loads like the original);
// - quantized_weights.safetensors: for each quantized Linear P, P.codes (U8
//   [out, in]), P.scales (F16 [out, G]) and P.zeros (U8 [out, G]);
// - config.json and the tokenizer / generation files, copied.
absl::Status WriteQuantizedCheckpoint(const Checkpoint& ckpt, const BlockStore& store,
                                      const std::string& out_dir);

}  // namespace signround
