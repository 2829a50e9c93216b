// Model families keyed by config.json's `model_type`. Each entry states how
// the family's config differs from plain Llama; later issues hang the block
// implementation off the same registry.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

namespace signround {

struct ModelFamily {
  absl::string_view model_type;
  // max_position_embeddings when config.json leaves it out (transformers' default).
  int64_t default_max_position_embeddings;
  // rms_norm_eps when config.json leaves it out.
  double default_rms_norm_eps;
  // Qwen2 always has q/k/v biases (and no o_proj bias), whatever the config says.
  bool qkv_bias_always;
  // Whether `attention_bias` / `mlp_bias` config keys are honoured.
  bool honours_attention_bias;
};

// The family for `model_type`, or nullptr when it is not supported.
const ModelFamily* FindModelFamily(absl::string_view model_type);

// "llama, mistral, qwen2": for error messages.
std::string SupportedModelTypes();

}  // namespace signround
