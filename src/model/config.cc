#include "src/model/config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"
#include "src/model/family.h"

namespace signround {
namespace {

using nlohmann::json;

// Far above any real model, and small enough that products of two dimensions
// never overflow int64.
constexpr int64_t kMaxDim = int64_t{1} << 24;
// Far above any real model (Llama 3.1 405B has 126), and small enough that
// what is kept or written per layer (gemma3's layer_types) stays small.
constexpr int64_t kMaxLayers = int64_t{1} << 16;
constexpr uint64_t kMaxConfigBytes = 16 << 20;

absl::StatusOr<int64_t> PositiveInt(const JsonFields& f, absl::string_view key,
                                    int64_t max = kMaxDim) {
  SR_ASSIGN_OR_RETURN(int64_t v, f.Int(key));
  if (v <= 0 || v > max) {
    return f.Error(key, absl::StrCat("must be between 1 and ", max, ", got ", v));
  }
  return v;
}

absl::StatusOr<int64_t> OptionalPositiveInt(const JsonFields& f, absl::string_view key,
                                            int64_t fallback) {
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> v, f.OptionalInt(key));
  if (!v) return fallback;
  if (*v <= 0 || *v > kMaxDim) {
    return f.Error(key, absl::StrCat("must be between 1 and ", kMaxDim, ", got ", *v));
  }
  return *v;
}

absl::StatusOr<double> OptionalPositiveDouble(const JsonFields& f, absl::string_view key,
                                              double fallback) {
  SR_ASSIGN_OR_RETURN(std::optional<double> v, f.OptionalDouble(key));
  if (!v) return fallback;
  if (!(*v > 0)) return f.Error(key, absl::StrCat("must be positive, got ", *v));
  return *v;
}

absl::StatusOr<std::optional<RopeScaling>> ParseRopeScaling(const JsonFields& top,
                                                            absl::string_view label) {
  const json* value = top.Get("rope_scaling");
  if (value == nullptr) return std::optional<RopeScaling>();
  if (!value->is_object()) return top.Error("rope_scaling", "must be an object or null");
  JsonFields f(*value, absl::StrCat(label, ": rope_scaling"));
  SR_ASSIGN_OR_RETURN(std::optional<std::string> type, f.OptionalString("rope_type"));
  if (!type) {
    SR_ASSIGN_OR_RETURN(type, f.OptionalString("type"));
  }
  if (!type) return f.Error("rope_type", "is missing");
  if (*type == "default") return std::optional<RopeScaling>();
  if (*type != "linear" && *type != "llama3") {
    return f.Error("rope_type",
                   absl::StrCat("'", *type, "' is not supported (supported: linear, llama3)"));
  }
  RopeScaling rs;
  rs.type = *type;
  SR_ASSIGN_OR_RETURN(rs.factor, OptionalPositiveDouble(f, "factor", 0));
  if (rs.factor == 0) return f.Error("factor", "is missing");
  if (*type == "linear") return std::optional<RopeScaling>(rs);
  SR_ASSIGN_OR_RETURN(rs.low_freq_factor, OptionalPositiveDouble(f, "low_freq_factor", 1.0));
  SR_ASSIGN_OR_RETURN(rs.high_freq_factor, OptionalPositiveDouble(f, "high_freq_factor", 4.0));
  if (rs.high_freq_factor <= rs.low_freq_factor) {
    return f.Error("high_freq_factor", "must be greater than low_freq_factor");
  }
  SR_ASSIGN_OR_RETURN(rs.original_max_position_embeddings,
                      OptionalPositiveInt(f, "original_max_position_embeddings", 8192));
  return std::optional<RopeScaling>(rs);
}

absl::Status ParseBiases(const JsonFields& f, const ModelFamily& family, ModelConfig& c) {
  SR_ASSIGN_OR_RETURN(std::optional<bool> attention_bias, f.OptionalBool("attention_bias"));
  SR_ASSIGN_OR_RETURN(std::optional<bool> mlp_bias, f.OptionalBool("mlp_bias"));
  if (family.qkv_bias_always) {
    c.qkv_bias = true;
  } else if (family.honours_attention_bias) {
    c.qkv_bias = c.o_bias = attention_bias.value_or(false);
  }
  if (family.honours_mlp_bias) c.mlp_bias = mlp_bias.value_or(false);
  return absl::OkStatus();
}

// Relations between fields that a well-formed config must satisfy.
absl::Status CheckHeads(ModelConfig& c, const JsonFields& f, const ModelFamily& family,
                        absl::string_view label) {
  SR_ASSIGN_OR_RETURN(c.num_key_value_heads,
                      OptionalPositiveInt(f, "num_key_value_heads", c.num_attention_heads));
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": num_attention_heads (", c.num_attention_heads,
                     ") is not a multiple of num_key_value_heads (", c.num_key_value_heads, ")"));
  }
  SR_ASSIGN_OR_RETURN(std::optional<int64_t> head_dim, f.OptionalInt("head_dim"));
  if (head_dim) {
    SR_ASSIGN_OR_RETURN(c.head_dim, OptionalPositiveInt(f, "head_dim", 0));
  } else if (family.default_head_dim > 0) {
    c.head_dim = family.default_head_dim;
  } else if (c.hidden_size % c.num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        label, ": hidden_size (", c.hidden_size, ") is not divisible by num_attention_heads (",
        c.num_attention_heads, ") and no head_dim is given"));
  } else {
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": head_dim (", c.head_dim, ") must be even for rotary embeddings"));
  }
  if (c.num_attention_heads * c.head_dim > kMaxDim) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": num_attention_heads * head_dim exceeds ", kMaxDim));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text, absl::string_view label) {
  SR_ASSIGN_OR_RETURN(json root, ParseJsonObject(json_text, label));
  JsonFields f(root, std::string(label));
  ModelConfig c;
  SR_ASSIGN_OR_RETURN(c.model_type, f.String("model_type"));
  const ModelFamily* family = FindModelFamily(c.model_type);
  if (family == nullptr) {
    return f.Error("model_type", absl::StrCat("'", c.model_type, "' is not supported (supported: ",
                                              SupportedModelTypes(), ")"));
  }
  SR_ASSIGN_OR_RETURN(c.architectures, f.OptionalStringList("architectures"));
  SR_ASSIGN_OR_RETURN(c.hidden_size, PositiveInt(f, "hidden_size"));
  SR_ASSIGN_OR_RETURN(c.intermediate_size, PositiveInt(f, "intermediate_size"));
  SR_ASSIGN_OR_RETURN(c.num_hidden_layers, PositiveInt(f, "num_hidden_layers", kMaxLayers));
  SR_ASSIGN_OR_RETURN(c.num_attention_heads, PositiveInt(f, "num_attention_heads"));
  SR_ASSIGN_OR_RETURN(c.vocab_size, PositiveInt(f, "vocab_size"));
  SR_RETURN_IF_ERROR(CheckHeads(c, f, *family, label));
  SR_ASSIGN_OR_RETURN(
      c.max_position_embeddings,
      OptionalPositiveInt(f, "max_position_embeddings", family->default_max_position_embeddings));
  SR_ASSIGN_OR_RETURN(c.rms_norm_eps,
                      OptionalPositiveDouble(f, "rms_norm_eps", family->default_rms_norm_eps));
  SR_ASSIGN_OR_RETURN(c.rope_theta,
                      OptionalPositiveDouble(f, "rope_theta", family->default_rope_theta));
  SR_ASSIGN_OR_RETURN(c.rope_scaling, ParseRopeScaling(f, label));
  SR_ASSIGN_OR_RETURN(std::optional<bool> tie, f.OptionalBool("tie_word_embeddings"));
  c.tie_word_embeddings = tie.value_or(family->default_tie_word_embeddings);
  SR_RETURN_IF_ERROR(ParseBiases(f, *family, c));
  SR_ASSIGN_OR_RETURN(std::optional<std::string> act, f.OptionalString("hidden_act"));
  if (act && *act != "silu") {
    return f.Error("hidden_act", absl::StrCat("'", *act, "' is not supported (only silu)"));
  }
  SR_ASSIGN_OR_RETURN(std::optional<std::string> dtype, f.OptionalString("torch_dtype"));
  c.torch_dtype = dtype.value_or("");
  SR_ASSIGN_OR_RETURN(c.bos_token_id, f.OptionalInt("bos_token_id"));
  SR_ASSIGN_OR_RETURN(c.eos_token_ids, f.OptionalIntOrIntList("eos_token_id"));
  if (family->read_config != nullptr) SR_RETURN_IF_ERROR(family->read_config(f, c));
  return c;
}

bool ModelConfig::IsMoeLayer(int64_t layer) const {
  if (!moe) return false;
  for (int64_t l : moe->mlp_only_layers) {
    if (l == layer) return false;
  }
  return (layer + 1) % moe->decoder_sparse_step == 0;
}

double ModelConfig::AttentionScale() const { return 1.0 / std::sqrt(AttentionScalar()); }

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  SR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, kMaxConfigBytes));
  return ParseModelConfig(text, path);
}

json ModelConfigToJson(const ModelConfig& c) {
  json j = {
      {"model_type", c.model_type},
      {"architectures", c.architectures},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"max_position_embeddings", c.max_position_embeddings},
      {"vocab_size", c.vocab_size},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"hidden_act", c.hidden_act},
  };
  if (c.rope_scaling) {
    json rs = {{"rope_type", c.rope_scaling->type}, {"factor", c.rope_scaling->factor}};
    if (c.rope_scaling->type == "llama3") {
      rs["low_freq_factor"] = c.rope_scaling->low_freq_factor;
      rs["high_freq_factor"] = c.rope_scaling->high_freq_factor;
      rs["original_max_position_embeddings"] = c.rope_scaling->original_max_position_embeddings;
    }
    j["rope_scaling"] = rs;
  } else {
    j["rope_scaling"] = nullptr;
  }
  if (!c.torch_dtype.empty()) j["torch_dtype"] = c.torch_dtype;
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;
  const ModelFamily* family = FindModelFamily(c.model_type);
  if (family != nullptr && family->write_config != nullptr) family->write_config(c, j);
  return j;
}

}  // namespace signround
