#include "src/model/random_checkpoint.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "src/common/file_util.h"
#include "src/common/splitmix64.h"
#include "src/common/status_macros.h"
#include "src/model/checkpoint.h"
#include "src/model/layout.h"
#include "src/tensor/half.h"
#include "src/tensor/safetensors_writer.h"

namespace signround {
namespace {

namespace fs = std::filesystem;

uint64_t Fnv1a64(absl::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

bool IsNorm(absl::string_view name) { return absl::EndsWith(name, "norm.weight"); }

// Fills `out` with the tensor's values: norms are 1, everything else is
// uniform with standard deviation 0.02 (the usual Llama init scale).
void FillTensor(const TensorSpec& spec, uint64_t seed, std::string& out) {
  out.resize(spec.nbytes());
  uint64_t state = seed ^ Fnv1a64(spec.name);
  const float half_width = 0.02f * 1.7320508f;  // uniform(-a, a) has std a / sqrt(3)
  const bool norm = IsNorm(spec.name);
  const uint64_t n = spec.numel();
  char* p = out.data();
  for (uint64_t i = 0; i < n; ++i) {
    float u = static_cast<float>(SplitMix64(state) >> 40) * (1.0f / 16777216.0f);
    float v = norm ? 1.0f : (2.0f * u - 1.0f) * half_width;
    if (spec.dtype == DType::kF32) {
      std::memcpy(p + 4 * i, &v, 4);
    } else {
      uint16_t h = spec.dtype == DType::kBF16 ? FloatToBF16(v) : FloatToF16(v);
      std::memcpy(p + 2 * i, &h, 2);
    }
  }
}

std::string TorchDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF16:
      return "float16";
    case DType::kBF16:
      return "bfloat16";
    default:
      return "float32";
  }
}

// Splits the tensors (in checkpoint order) into `shards` runs of similar size.
std::vector<std::vector<TensorSpec>> SplitIntoShards(const std::vector<TensorSpec>& specs,
                                                     int shards) {
  uint64_t total = 0;
  for (const TensorSpec& s : specs) total += s.nbytes();
  std::vector<std::vector<TensorSpec>> out(static_cast<size_t>(shards));
  size_t current = 0;
  uint64_t done = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    out[current].push_back(specs[i]);
    done += specs[i].nbytes();
    size_t tensors_after = specs.size() - i - 1;
    size_t shards_after = out.size() - current - 1;
    bool full = done * out.size() >= total * (current + 1);
    // Move on when this shard has its share, or when every later shard needs
    // one of the remaining tensors.
    if (shards_after > 0 && (full || tensors_after == shards_after)) ++current;
  }
  return out;
}

absl::Status WriteFiles(const std::string& dir, const ModelConfig& config,
                        const RandomCheckpointOptions& options) {
  SR_RETURN_IF_ERROR(
      WriteFileAtomically(JoinPath(dir, "config.json"), ModelConfigToJson(config).dump(2) + "\n"));
  std::vector<TensorSpec> specs;
  for (const ExpectedTensor& t : ExpectedTensors(config)) {
    specs.push_back({t.name, options.dtype, t.shape});
  }
  std::string buffer;
  auto fill = [&](const TensorSpec& spec) -> absl::StatusOr<absl::string_view> {
    FillTensor(spec, options.seed, buffer);
    return absl::string_view(buffer);
  };
  if (options.shards == 1) {
    return WriteSafetensors(JoinPath(dir, kSingleFileName), specs, fill);
  }
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t total_size = 0;
  std::vector<std::vector<TensorSpec>> shards = SplitIntoShards(specs, options.shards);
  for (size_t i = 0; i < shards.size(); ++i) {
    std::string name = absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, options.shards);
    for (const TensorSpec& s : shards[i]) {
      weight_map[s.name] = name;
      total_size += s.nbytes();
    }
    SR_RETURN_IF_ERROR(WriteSafetensors(JoinPath(dir, name), shards[i], fill));
  }
  nlohmann::json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
  return WriteFileAtomically(JoinPath(dir, kIndexFileName), index.dump(2) + "\n");
}

}  // namespace

absl::StatusOr<ModelConfig> RandomCheckpointConfig(const RandomCheckpointOptions& o) {
  if (o.dtype != DType::kF32 && o.dtype != DType::kF16 && o.dtype != DType::kBF16) {
    return absl::InvalidArgumentError("dtype must be f32, f16 or bf16");
  }
  const ModelFamily* family = FindModelFamily(o.model_type);
  if (family == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("model_type '", o.model_type,
                     "' is not supported (supported: ", SupportedModelTypes(), ")"));
  }
  nlohmann::json j = {
      {"model_type", o.model_type},
      {"architectures", {family->architecture}},
      {"hidden_size", o.hidden_size},
      {"intermediate_size", o.intermediate_size},
      {"num_hidden_layers", o.num_layers},
      {"num_attention_heads", o.num_heads},
      {"num_key_value_heads", o.num_kv_heads},
      {"max_position_embeddings", o.max_position_embeddings},
      {"vocab_size", o.vocab_size},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 10000.0},
      {"tie_word_embeddings", o.tie_word_embeddings},
      {"torch_dtype", TorchDTypeName(o.dtype)},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"hidden_act", "silu"},
  };
  // head_dim = hidden / heads, explicitly: Qwen3's and Gemma 3's defaults are 128 and 256.
  if (o.num_heads > 0 && o.hidden_size % o.num_heads == 0)
    j["head_dim"] = o.hidden_size / o.num_heads;
  SR_ASSIGN_OR_RETURN(ModelConfig config, ParseModelConfig(j.dump(), "make-test-model options"));
  if (config.moe) {
    if (o.num_experts > 0) config.moe->num_experts = o.num_experts;
    if (o.experts_per_token > 0) config.moe->experts_per_token = o.experts_per_token;
    config.moe->expert_intermediate_size = o.intermediate_size;
    config.moe->norm_topk_prob = true;
    SR_ASSIGN_OR_RETURN(
        config, ParseModelConfig(ModelConfigToJson(config).dump(), "make-test-model options"));
  }
  size_t tensors = ExpectedTensors(config).size();
  if (o.shards < 1 || static_cast<size_t>(o.shards) > tensors) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shards must be between 1 and the tensor count (", tensors, "), got ", o.shards));
  }
  return config;
}

absl::Status WriteRandomCheckpoint(const std::string& out_dir,
                                   const RandomCheckpointOptions& options) {
  SR_ASSIGN_OR_RETURN(ModelConfig config, RandomCheckpointConfig(options));
  std::error_code ec;
  fs::path out(out_dir);
  if (fs::exists(out, ec) && !(fs::is_directory(out, ec) && fs::is_empty(out, ec))) {
    return absl::AlreadyExistsError(
        absl::StrCat(out_dir, ": exists and is not an empty directory"));
  }
  if (out.has_parent_path()) fs::create_directories(out.parent_path(), ec);
  std::string tmp = TempPathFor(out_dir);
  if (!fs::create_directory(tmp, ec)) {
    return absl::InternalError(absl::StrCat(tmp, ": cannot create directory: ", ec.message()));
  }
  absl::Status written = WriteFiles(tmp, config, options);
  if (written.ok()) {
    fs::rename(tmp, out, ec);
    if (ec) written = absl::InternalError(absl::StrCat(out_dir, ": ", ec.message()));
  }
  if (!written.ok()) RemoveTree(tmp).IgnoreError();
  return written;
}

}  // namespace signround
