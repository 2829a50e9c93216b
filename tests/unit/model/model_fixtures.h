// Helpers shared by the tests of src/model: a small random checkpoint's options.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "src/model/random_checkpoint.h"

namespace signround {

// Two layers of hidden size 32 in BF16, `model_type`'s family.
inline RandomCheckpointOptions Small(absl::string_view model_type) {
  RandomCheckpointOptions o;
  o.model_type = std::string(model_type);
  o.hidden_size = 32;
  o.intermediate_size = 64;
  o.num_layers = 2;
  o.num_heads = 4;
  o.num_kv_heads = 2;
  o.vocab_size = 48;
  o.max_position_embeddings = 64;
  o.dtype = DType::kBF16;
  o.seed = 9;
  return o;
}

}  // namespace signround
