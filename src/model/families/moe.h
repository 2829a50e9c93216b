// Reading and laying out the sparse MoE MLP that qwen3_moe and mixtral share.
#pragma once

#include <string>
#include <vector>

#include "src/common/json_util.h"
#include "src/model/config.h"
#include "src/model/family.h"

namespace signround::families {

// Checks `moe` against the config (1 <= experts_per_token <= num_experts, ...)
// and stores it; `key` names the expert-count key in errors.
absl::Status SetMoe(const JsonFields& f, absl::string_view experts_key, MoeConfig moe,
                    ModelConfig& c);

// The router `router` [num_experts, hidden] and every expert's
// `experts_prefix`N.{gate,up,down}.
void AddSparseMoe(const ModelConfig& c, absl::string_view router, absl::string_view experts_prefix,
                  absl::string_view gate, absl::string_view up, absl::string_view down,
                  BlockLayout& out);

// expert_count and expert_used_count (GGUF metadata, u32).
std::vector<GgufKey> GgufExpertKeys(const ModelConfig& c);

}  // namespace signround::families
