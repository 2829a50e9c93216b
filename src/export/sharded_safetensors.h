// A checkpoint's weights as one model.safetensors, or as shards
// model-0000i-of-0000n.safetensors with model.safetensors.index.json when they
// exceed the shard size (the Hugging Face layout, FORMATS.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/tensor/safetensors_writer.h"

namespace signround {

// Writes `specs` into directory `dir`, pulling each tensor's bytes from
// `bytes` one at a time. Tensors fill shards in natural order (layer numbers
// compared as numbers) up to `max_shard_bytes` of tensor data each; a tensor
// larger than that gets a shard of its own.
absl::Status WriteShardedSafetensors(const std::string& dir, std::vector<TensorSpec> specs,
                                     const TensorBytesFn& bytes, uint64_t max_shard_bytes);

// "5GB" (10^9), "500MB", "2GiB" (2^30), "64KiB", "1000" (bytes): a positive
// byte count, INVALID_ARGUMENT naming `text` otherwise.
absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text);

// Orders names so that embedded numbers compare as numbers ("layers.2" < "layers.10").
bool NaturalLess(absl::string_view a, absl::string_view b);

}  // namespace signround
