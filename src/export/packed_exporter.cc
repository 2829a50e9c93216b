#include "src/export/packed_exporter.h"

#include <cstring>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"
#include "src/export/gptq_packing.h"
#include "src/export/sharded_safetensors.h"
#include "src/export/staging_dir.h"
#include "src/tensor/float_bytes.h"

namespace signround {
namespace {

constexpr uint64_t kMaxConfigBytes = 16 << 20;

// Splits "P.suffix" into P and "suffix".
std::pair<std::string, std::string> SplitLast(const std::string& name) {
  size_t dot = name.rfind('.');
  if (dot == std::string::npos) return {name, ""};
  return {name.substr(0, dot), name.substr(dot + 1)};
}

template <typename T>
absl::string_view AsBytes(const std::vector<T>& v) {
  return absl::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// Produces every tensor's bytes: packed Linears are packed once per layer as
// their first tensor is asked for, everything else comes straight from the map.
class TensorSource {
 public:
  TensorSource(const ExportSource& source, ZeroPointFormat zeros, bool g_idx)
      : source_(source), zeros_(zeros), g_idx_(g_idx) {}

  absl::StatusOr<absl::string_view> Bytes(const TensorSpec& spec) {
    if (previous_) source_.Release(*previous_);
    previous_.reset();
    auto [prefix, suffix] = SplitLast(spec.name);
    if (source_.QuantizedPlan(prefix) != nullptr) {
      if (packed_name_ != prefix) {
        SR_ASSIGN_OR_RETURN(const IntegerLayer* layer, source_.Layer(prefix));
        if (layer == nullptr) return absl::InternalError(absl::StrCat(prefix, ": no weights"));
        SR_ASSIGN_OR_RETURN(packed_, PackLinear(*layer, zeros_, g_idx_));
        packed_name_ = prefix;
        source_.Release(prefix);
      }
      if (suffix == "qweight") return AsBytes(packed_.qweight);
      if (suffix == "qzeros") return AsBytes(packed_.qzeros);
      if (suffix == "scales") return AsBytes(packed_.scales);
      if (suffix == "g_idx") return AsBytes(packed_.g_idx);
      if (suffix == "bias") {  // stored F16 beside the packed weight
        SR_ASSIGN_OR_RETURN(Checkpoint::Tensor bias, source_.checkpoint().Find(spec.name));
        buffer_ =
            FloatsToBytes(FloatsFromBytes(source_.Bytes(bias), bias.entry->dtype), DType::kF16);
        source_.Release(bias);
        return absl::string_view(buffer_);
      }
      return absl::InternalError(absl::StrCat("no packed tensor named ", spec.name));
    }
    SR_ASSIGN_OR_RETURN(Checkpoint::Tensor t, source_.checkpoint().Find(spec.name));
    previous_ = t;
    return source_.Bytes(t);
  }

 private:
  const ExportSource& source_;
  ZeroPointFormat zeros_;
  bool g_idx_;
  std::string packed_name_;
  GptqTensors packed_;
  std::string buffer_;
  std::optional<Checkpoint::Tensor> previous_;
};

// The tensors of the packed checkpoint: the original ones, with each quantized
// Linear's weight replaced by its packed tensors and its bias made F16.
std::vector<TensorSpec> PackedSpecs(const ExportSource& source, bool g_idx) {
  std::vector<TensorSpec> specs;
  for (const auto& [name, t] : source.checkpoint().tensors()) {
    auto [prefix, suffix] = SplitLast(name);
    const LayerPlan* plan = source.QuantizedPlan(prefix);
    if (plan == nullptr) {
      specs.push_back({name, t.entry->dtype, t.entry->shape});
    } else if (suffix == "bias") {
      specs.push_back({name, DType::kF16, t.entry->shape});
    } else if (suffix == "weight") {
      IntegerLayer shape;
      shape.scheme = plan->scheme;
      shape.out = plan->layer.out;
      shape.in = plan->layer.in;
      const int b = shape.scheme.bits;
      const int64_t K = shape.in, N = shape.out, G = shape.groups();
      specs.push_back({prefix + ".qweight", DType::kI32, {K * b / 32, N}});
      specs.push_back({prefix + ".qzeros", DType::kI32, {G, N * b / 32}});
      specs.push_back({prefix + ".scales", DType::kF16, {G, N}});
      if (g_idx) specs.push_back({prefix + ".g_idx", DType::kI32, {K}});
    }
  }
  return specs;
}

}  // namespace

absl::Status ExportPacked(const ExportSource& source, PackedFormat format,
                          const ExportOptions& options, const std::string& dir) {
  SR_RETURN_IF_ERROR(ValidatePackedTorchDtype(options.packed_torch_dtype));
  const ZeroPointFormat zeros = ZeroPointsFor(source.plans());
  const bool g_idx = format == PackedFormat::kAutoGptq;

  const std::string config_path = JoinPath(source.checkpoint().dir(), "config.json");
  SR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(config_path, kMaxConfigBytes));
  SR_ASSIGN_OR_RETURN(nlohmann::ordered_json config, ParseOrderedJsonObject(text, config_path));
  nlohmann::ordered_json quantization = MakeQuantizationConfig(format, options, source.plans());
  // The scales' dtype, not the original's: vLLM computes a float32 model in bf16, and
  // its GPTQ kernel (asymmetric, 2- and 3-bit layers) takes fp16 only.
  SetConfigTorchDtype(config, options.packed_torch_dtype);
  config["quantization_config"] = quantization;

  TensorSource tensors(source, zeros, g_idx);
  std::vector<TensorSpec> specs = PackedSpecs(source, g_idx);
  std::vector<std::string> quantized;  // in the order TensorSource asks for them
  for (const TensorSpec& spec : specs) {
    auto [prefix, suffix] = SplitLast(spec.name);
    if (suffix == "qweight") quantized.push_back(prefix);
  }
  source.WillAsk(std::move(quantized), /*with_dequant=*/false);
  SR_RETURN_IF_ERROR(WriteShardedSafetensors(
      dir, std::move(specs), [&](const TensorSpec& spec) { return tensors.Bytes(spec); },
      options.max_shard_bytes));
  SR_RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "config.json"), config.dump(2) + "\n"));
  const std::string quantization_text = quantization.dump(2) + "\n";
  SR_RETURN_IF_ERROR(
      WriteFileAtomically(JoinPath(dir, "quantization_config.json"), quantization_text));
  if (format == PackedFormat::kAutoGptq) {  // GPTQModel reads this one before config.json
    SR_RETURN_IF_ERROR(
        WriteFileAtomically(JoinPath(dir, "quantize_config.json"), quantization_text));
  }
  return CopyTokenizerFiles(source.checkpoint().dir(), dir);
}

}  // namespace signround
