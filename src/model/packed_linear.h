// Packed (GPTQ / auto_round) Linears in a checkpoint (FORMATS.md, "auto_round /
// GPTQ packed checkpoints"): the quantization_config that says how each layer
// is stored, the validated tensors of one packed Linear, and dequantization
// back to fp32. Any such checkpoint loads, ours or anyone's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "src/tensor/safetensors_file.h"

namespace signround {

// One tensor of a checkpoint: its (mapped) file and header entry.
struct TensorRef {
  std::shared_ptr<const SafetensorsFile> file;
  const TensorEntry* entry = nullptr;
};

// How zero points are stored: v1 stores zp - 1 (readers add 1), v2 stores zp.
enum class ZeroPointFormat { kV1, kV2 };

// How one layer is stored.
struct PackedScheme {
  int bits = 4;
  int group_size = 128;  // -1: one group per output row
};

// A checkpoint's quantization_config (quant_method "auto-round" or "gptq").
class PackedQuantizationConfig {
 public:
  // Parses the quantization_config object; `where` names it in errors
  // ("dir/config.json: quantization_config"). INVALID_ARGUMENT for methods,
  // packing formats, bits or regexes this reader cannot honour.
  static absl::StatusOr<PackedQuantizationConfig> Parse(const nlohmann::ordered_json& config,
                                                        const std::string& where);

  const std::string& method() const { return method_; }
  ZeroPointFormat zeros() const { return zeros_; }
  // How Linear `name` ("model.layers.0.mlp.up_proj") is stored; nullopt when unquantized.
  std::optional<PackedScheme> Resolve(const std::string& name) const;

 private:
  struct Rule {
    std::string key;  // an exact layer name, or a regex
    std::optional<std::regex> regex;
    bool skip = false;  // gptq "-:" rule
    std::optional<int> bits;
    std::optional<int> group_size;
    bool fp = false;  // data_type "fp" / "float": kept unquantized
  };
  // Parse's steps that fill rules_: auto-round's extra_config, gptq's dynamic.
  absl::Status ParseExtraConfig(const nlohmann::ordered_json& config, const std::string& where);
  absl::Status ParseDynamic(const nlohmann::ordered_json& config, const std::string& where);

  std::string method_;
  ZeroPointFormat zeros_ = ZeroPointFormat::kV1;
  PackedScheme scheme_;
  std::vector<std::string> blocks_;  // auto-round block_name_to_quantize prefixes
  std::vector<Rule> rules_;          // extra_config (auto-round) or dynamic (gptq), in order
};

// One packed Linear: P.qweight, P.qzeros, P.scales and optionally P.g_idx.
struct PackedLinear {
  std::string name;
  PackedScheme scheme;
  ZeroPointFormat zeros = ZeroPointFormat::kV1;
  int64_t in = 0, out = 0, groups = 0;
  TensorRef qweight, qzeros, scales, g_idx;  // g_idx.entry is null when absent
};

// Looks up a checkpoint tensor by name; a null entry when absent.
using TensorLookup = std::function<TensorRef(const std::string& name)>;

// The packed Linear `name` of shape [out, in] stored as `scheme`: checks every
// tensor's dtype and shape (INVALID_ARGUMENT naming the file and tensor).
absl::StatusOr<PackedLinear> OpenPackedLinear(const std::string& name, int64_t out, int64_t in,
                                              const PackedScheme& scheme, ZeroPointFormat zeros,
                                              const TensorLookup& lookup);

// W [out, in] fp32, row-major: W[n][k] = scales[g][n] * (code(k, n) - zero(g, n)),
// g = g_idx[k] (k / group_size without g_idx), zero = stored + 1 for v1. Each
// element is one fp32 product of the scale and an exact integer. INVALID_ARGUMENT
// for a g_idx entry outside [0, groups).
absl::StatusOr<std::vector<float>> DequantizePackedLinear(const PackedLinear& linear);

}  // namespace signround
