// Writes random-initialised checkpoints of any supported family (config.json +
// safetensors, optionally sharded) for tests, benchmarks and the demo. The
// output depends only on the options: same seed, same bytes.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "src/model/config.h"
#include "src/tensor/dtype.h"

namespace signround {

struct RandomCheckpointOptions {
  std::string model_type = "llama";
  int64_t hidden_size = 256;
  int64_t intermediate_size = 704;
  int64_t num_layers = 2;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;
  int64_t vocab_size = 1024;
  int64_t max_position_embeddings = 2048;
  DType dtype = DType::kBF16;  // kF32, kF16 or kBF16
  uint64_t seed = 0;
  int shards = 1;
  bool tie_word_embeddings = false;
  // MoE families (qwen3_moe, mixtral): 0 keeps the family's default. Each
  // expert has intermediate_size hidden units.
  int64_t num_experts = 0;
  int64_t experts_per_token = 0;
};

// The config the options describe, validated exactly as a reader would.
absl::StatusOr<ModelConfig> RandomCheckpointConfig(const RandomCheckpointOptions& options);

// Writes the checkpoint into `out_dir`, which must not exist or be empty. The
// files are written into a temporary directory beside it and renamed into
// place at the end, so a failure leaves nothing behind.
absl::Status WriteRandomCheckpoint(const std::string& out_dir,
                                   const RandomCheckpointOptions& options);

}  // namespace signround
