#include "src/export/gguf_exporter.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"
#include "src/export/gguf_file.h"
#include "src/export/gguf_quants.h"
#include "src/export/gguf_tokenizer.h"
#include "src/model/layout.h"
#include "src/tensor/float_bytes.h"

namespace signround {
namespace {

constexpr size_t kFlushBytes = 1 << 20;

GgmlType FormatType(GgufFormat f) {
  return static_cast<GgmlType>(contract::GgufFormatOf(f).ggml_type);
}

// "4-bit symmetric (Q4_0), 4-bit asymmetric (Q4_1) or 8-bit symmetric (Q8_0)".
std::string GgufTypesHeld() {
  std::string out;
  const size_t n = std::size(contract::kGgufFormats);
  for (size_t i = 0; i < n; ++i) {
    const GgufFormat f = contract::kGgufFormats[i];
    const contract::GgufFormatInfo& info = contract::GgufFormatOf(f);
    if (i > 0) out += i + 1 == n ? " or " : ", ";
    absl::StrAppend(&out, info.bits, "-bit ", info.sym ? "symmetric" : "asymmetric", " (",
                    GgmlTypeName(FormatType(f)), ")");
  }
  return out;
}

// The GGUF architecture: "llama" (llama, mistral) or "qwen2"; "" otherwise.
std::string GgufArch(const ModelConfig& c) {
  if (c.model_type == "llama" || c.model_type == "mistral") return "llama";
  if (c.model_type == "qwen2") return "qwen2";
  return "";
}

// The scheme most quantized layers have (the first of equals), or nullopt.
std::optional<QuantScheme> DefaultScheme(const std::vector<LayerPlan>& plans) {
  std::vector<std::pair<QuantScheme, int>> counts;
  for (const LayerPlan& p : plans) {
    if (!p.quantized) continue;
    auto it = std::find_if(counts.begin(), counts.end(),
                           [&](const auto& c) { return SameScheme(c.first, p.scheme); });
    if (it == counts.end()) {
      counts.push_back({p.scheme, 1});
    } else {
      ++it->second;
    }
  }
  if (counts.empty()) return std::nullopt;
  auto best = counts.begin();
  for (auto it = counts.begin(); it != counts.end(); ++it) {
    if (it->second > best->second) best = it;
  }
  return best->first;
}

// One output tensor and where its bytes come from.
struct TensorJob {
  enum Kind { kCheckpoint, kInteger, kValues };
  GgufTensorInfo info;
  Kind kind = kCheckpoint;
  std::string source;         // checkpoint tensor, or quantized Linear prefix
  int64_t permute_heads = 0;  // > 0: rows reordered by LlamaQkRowOrder
  std::vector<float> values;  // kValues
};

// The GGUF name of a decoder Linear ("model.layers.3.mlp.down_proj" -> "ffn_down").
absl::string_view GgufLinearName(absl::string_view hf_name) {
  static const std::pair<absl::string_view, absl::string_view> kNames[] = {
      {".q_proj", "attn_q"},      {".k_proj", "attn_k"},      {".v_proj", "attn_v"},
      {".o_proj", "attn_output"}, {".gate_proj", "ffn_gate"}, {".up_proj", "ffn_up"},
      {".down_proj", "ffn_down"},
  };
  for (const auto& [suffix, name] : kNames) {
    if (absl::EndsWith(hf_name, suffix)) return name;
  }
  return "";
}

absl::StatusOr<TensorJob> CheckpointJob(const ExportSource& source, std::string gguf_name,
                                        std::string hf_name, GgmlType type,
                                        int64_t permute_heads = 0) {
  SR_ASSIGN_OR_RETURN(Checkpoint::Tensor t, source.checkpoint().Find(hf_name));
  TensorJob job;
  job.info = {std::move(gguf_name), t.entry->shape, type};
  job.source = std::move(hf_name);
  job.permute_heads = permute_heads;
  return job;
}

// Q8_0 for rows that split into 32-value blocks, else F16.
GgmlType EmbeddingType(int64_t row) { return row % 32 == 0 ? GgmlType::kQ8_0 : GgmlType::kF16; }

absl::StatusOr<std::vector<TensorJob>> PlanTensors(const ExportSource& source, bool permute) {
  const ModelConfig& c = source.config();
  std::vector<TensorJob> jobs;
  auto add = [&](absl::StatusOr<TensorJob> job) -> absl::Status {
    SR_RETURN_IF_ERROR(job.status());
    jobs.push_back(*std::move(job));
    return absl::OkStatus();
  };
  SR_RETURN_IF_ERROR(add(CheckpointJob(source, "token_embd.weight", "model.embed_tokens.weight",
                                       EmbeddingType(c.hidden_size))));
  if (c.rope_scaling && c.rope_scaling->type == "llama3") {
    TensorJob job;
    job.values = Llama3RopeFactors(c);
    job.kind = TensorJob::kValues;
    job.info = {"rope_freqs.weight", {static_cast<int64_t>(job.values.size())}, GgmlType::kF32};
    jobs.push_back(std::move(job));
  }
  const std::vector<LinearLayer> linears = DecoderLinears(c);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string blk = absl::StrCat("blk.", i, ".");
    const std::string hf = absl::StrCat("model.layers.", i, ".");
    SR_RETURN_IF_ERROR(add(CheckpointJob(source, blk + "attn_norm.weight",
                                         hf + "input_layernorm.weight", GgmlType::kF32)));
    for (const LinearLayer& l : linears) {
      if (l.layer != i) continue;
      const std::string name = blk + std::string(GgufLinearName(l.name));
      if (name == blk + "ffn_gate") {
        SR_RETURN_IF_ERROR(
            add(CheckpointJob(source, blk + "ffn_norm.weight",
                              hf + "post_attention_layernorm.weight", GgmlType::kF32)));
      }
      int64_t heads = 0;
      if (permute && absl::EndsWith(l.name, ".q_proj")) heads = c.num_attention_heads;
      if (permute && absl::EndsWith(l.name, ".k_proj")) heads = c.num_key_value_heads;
      const LayerPlan* plan = source.Plan(l.name);
      if (plan != nullptr && plan->quantized) {
        const IntegerLayer* layer = source.Layer(l.name);
        std::optional<GgmlType> type = GgmlTypeForScheme(plan->scheme);
        if (layer == nullptr || !type) {
          return absl::InternalError(absl::StrCat(l.name, ": no integer weights to export"));
        }
        TensorJob job;
        job.info = {name + ".weight", {l.out, l.in}, *type};
        job.kind = TensorJob::kInteger;
        job.source = l.name;
        job.permute_heads = heads;
        jobs.push_back(std::move(job));
      } else {
        SR_RETURN_IF_ERROR(add(
            CheckpointJob(source, name + ".weight", l.name + ".weight", GgmlType::kF16, heads)));
      }
      if (l.bias) {
        SR_RETURN_IF_ERROR(
            add(CheckpointJob(source, name + ".bias", l.name + ".bias", GgmlType::kF32, heads)));
      }
    }
  }
  SR_RETURN_IF_ERROR(
      add(CheckpointJob(source, "output_norm.weight", "model.norm.weight", GgmlType::kF32)));
  if (!c.tie_word_embeddings) {
    SR_RETURN_IF_ERROR(add(
        CheckpointJob(source, "output.weight", "lm_head.weight", EmbeddingType(c.hidden_size))));
  }
  return jobs;
}

// general.size_label as llama.cpp's converter writes it for a dense model: the
// parameter count (every element of every tensor in the file) scaled to K, M, B or
// T and printed with at least two significant digits ("260K", "15M", "6.7B"), as
// gguf-py's model_weight_count_rounded_notation(count, min_digits=2) does.
std::string SizeLabel(uint64_t params) {
  const double n = static_cast<double>(params);
  double scaled = n * 1e-3;
  const char* suffix = "K";
  if (n >= 1e12) {
    scaled = n * 1e-12, suffix = "T";
  } else if (n >= 1e9) {
    scaled = n * 1e-9, suffix = "B";
  } else if (n >= 1e6) {
    scaled = n * 1e-6, suffix = "M";
  }
  // Decimals: 2 minus the digits of the scaled count rounded half to even (0 has none).
  const int64_t whole = static_cast<int64_t>(std::nearbyint(scaled));
  const int digits = whole == 0 ? 0 : static_cast<int>(std::to_string(whole).size());
  const int decimals = std::max(2 - digits, 0);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f%s", decimals, scaled, suffix);
  return buf;
}

// `tensors`: the file's tensors, whose elements general.size_label counts.
absl::StatusOr<GgufMetadata> BuildMetadata(const ExportSource& source, GgufFormat format,
                                           const std::string& arch,
                                           const std::vector<TensorJob>& tensors) {
  const ModelConfig& c = source.config();
  GgufMetadata m;
  uint64_t params = 0;
  for (const TensorJob& t : tensors) {
    uint64_t numel = 1;
    for (int64_t d : t.info.shape) numel *= static_cast<uint64_t>(d);
    params += numel;
  }
  absl::Status status;
  auto u32 = [&](absl::string_view key, int64_t v) {
    if (v < 0 || v > std::numeric_limits<uint32_t>::max()) {
      status.Update(absl::InvalidArgumentError(
          absl::StrCat(GgufFormatName(format), ": ", key, " = ", v, " does not fit in u32")));
    }
    m.AddU32(absl::StrCat(arch, ".", key), static_cast<uint32_t>(v));
  };
  m.AddString("general.architecture", arch);
  m.AddString("general.type", "model");
  m.AddString("general.name", ModelName(source.checkpoint().dir()));
  m.AddString("general.size_label", SizeLabel(params));
  m.AddU32("general.quantization_version", 2);
  m.AddU32("general.file_type", contract::GgufFormatOf(format).file_type);
  u32("context_length", c.max_position_embeddings);
  u32("embedding_length", c.hidden_size);
  u32("block_count", c.num_hidden_layers);
  u32("feed_forward_length", c.intermediate_size);
  u32("attention.head_count", c.num_attention_heads);
  u32("attention.head_count_kv", c.num_key_value_heads);
  m.AddF32(arch + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  m.AddF32(arch + ".rope.freq_base", static_cast<float>(c.rope_theta));
  u32("rope.dimension_count", c.head_dim);
  u32("vocab_size", c.vocab_size);
  if (c.head_dim * c.num_attention_heads != c.hidden_size) {
    u32("attention.key_length", c.head_dim);
    u32("attention.value_length", c.head_dim);
  }
  if (c.rope_scaling && c.rope_scaling->type == "linear") {
    m.AddString(arch + ".rope.scaling.type", "linear");
    m.AddF32(arch + ".rope.scaling.factor", static_cast<float>(c.rope_scaling->factor));
  }
  SR_RETURN_IF_ERROR(status);
  SR_ASSIGN_OR_RETURN(std::optional<GgufVocab> vocab, LoadGgufVocab(source.checkpoint().dir(), c));
  if (vocab) {
    AddVocabMetadata(*vocab, &m);
  } else {
    // llama.cpp requires the key; "no_vocab" makes it use <arch>.vocab_size placeholder tokens.
    m.AddString("tokenizer.ggml.model", "no_vocab");
  }
  return m;
}

// Streams a tensor's rows through `write`, encoding them into a buffer.
absl::Status WriteJob(const ExportSource& source, const TensorJob& job, const GgufWriteFn& write) {
  const std::vector<int64_t>& shape = job.info.shape;
  const int64_t rows = shape[0];
  std::vector<int64_t> order =
      job.permute_heads > 0 ? LlamaQkRowOrder(rows, job.permute_heads) : std::vector<int64_t>();
  auto src_row = [&](int64_t r) { return order.empty() ? r : order[r]; };
  std::string buf;
  auto flush = [&](bool last) -> absl::Status {
    if (buf.size() < kFlushBytes && !last) return absl::OkStatus();
    absl::Status s = write(buf);
    buf.clear();
    return s;
  };
  switch (job.kind) {
    case TensorJob::kValues:
      SR_RETURN_IF_ERROR(EncodeFloatRow(job.values, job.info.type, &buf));
      return flush(true);
    case TensorJob::kInteger: {
      const IntegerLayer* layer = source.Layer(job.source);
      for (int64_t r = 0; r < rows; ++r) {
        SR_RETURN_IF_ERROR(EncodeIntegerRow(*layer, src_row(r), job.info.type, &buf));
        SR_RETURN_IF_ERROR(flush(false));
      }
      SR_RETURN_IF_ERROR(flush(true));
      source.Release(job.source);
      return absl::OkStatus();
    }
    case TensorJob::kCheckpoint: {
      SR_ASSIGN_OR_RETURN(Checkpoint::Tensor t, source.checkpoint().Find(job.source));
      const absl::string_view bytes = source.Bytes(t);
      const size_t row_bytes = bytes.size() / rows;
      for (int64_t r = 0; r < rows; ++r) {
        absl::Status s = EncodeFloatRow(
            FloatsFromBytes(bytes.substr(src_row(r) * row_bytes, row_bytes), t.entry->dtype),
            job.info.type, &buf);
        if (!s.ok()) {
          return absl::Status(
              s.code(), absl::StrCat(t.file->path(), ": tensor '", job.source, "': ", s.message()));
        }
        SR_RETURN_IF_ERROR(flush(false));
      }
      SR_RETURN_IF_ERROR(flush(true));
      source.Release(t);
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view GgufFormatName(GgufFormat format) { return contract::GgufFormatOf(format).name; }

std::string GgufFileName(absl::string_view model_name, GgufFormat format) {
  return absl::StrCat(model_name, "-", GgmlTypeName(FormatType(format)), ".gguf");
}

absl::Status CheckGgufExport(GgufFormat format, const ModelConfig& c,
                             const std::vector<LayerPlan>& plans) {
  const absl::string_view fmt = GgufFormatName(format);
  const std::string arch = GgufArch(c);
  if (arch.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(fmt, ": model_type '", c.model_type,
                                                   "' cannot be exported (llama, mistral, qwen2)"));
  }
  if (c.rope_scaling) {
    const std::string& t = c.rope_scaling->type;
    if (t != "linear" && !(t == "llama3" && arch == "llama")) {
      return absl::InvalidArgumentError(
          absl::StrCat(fmt, ": rope_scaling type '", t, "' cannot be exported for model_type '",
                       c.model_type, "' (GGUF export supports linear, and llama3 for llama)"));
    }
  }
  if (std::optional<QuantScheme> s = DefaultScheme(plans); s) {
    std::optional<GgmlType> type = GgmlTypeForScheme(*s);
    if (type != FormatType(format)) {
      std::string use = "use auto_round or auto_gptq";
      for (GgufFormat other : contract::kGgufFormats) {
        if (type == FormatType(other)) use = absl::StrCat("use ", GgufFormatName(other));
      }
      return absl::InvalidArgumentError(absl::StrCat(
          fmt, " needs ", contract::GgufFormatNeeds(format), " layers; this job quantizes to ",
          contract::DescribeSchemeLong(*s), " (", use, ")"));
    }
  }
  for (const LayerPlan& p : plans) {
    if (!p.quantized) continue;
    if (!GgmlTypeForScheme(p.scheme)) {
      return absl::InvalidArgumentError(absl::StrCat(
          fmt, ": layer ", p.layer.name, " is ", contract::DescribeSchemeLong(p.scheme),
          "; GGUF stores only group-size-", contract::kGgufGroupSize, " layers of ",
          GgufTypesHeld(), " (use auto_round or auto_gptq)"));
    }
    if (p.layer.in % 32 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(fmt, ": layer ", p.layer.name, " has ",
                                                     p.layer.in, " inputs, not a multiple of 32"));
    }
  }
  return absl::OkStatus();
}

absl::Status ExportGguf(const ExportSource& source, GgufFormat format, const std::string& path) {
  SR_RETURN_IF_ERROR(CheckGgufExport(format, source.config(), source.plans()));
  const std::string arch = GgufArch(source.config());
  SR_ASSIGN_OR_RETURN(std::vector<TensorJob> jobs, PlanTensors(source, arch == "llama"));
  SR_ASSIGN_OR_RETURN(GgufMetadata metadata, BuildMetadata(source, format, arch, jobs));
  std::vector<GgufTensorInfo> infos;
  for (const TensorJob& j : jobs) infos.push_back(j.info);
  return WriteGgufFile(path, metadata, infos,
                       [&](size_t i, const GgufTensorInfo&, const GgufWriteFn& write) {
                         return WriteJob(source, jobs[i], write);
                       });
}

std::vector<int64_t> LlamaQkRowOrder(int64_t rows, int64_t n_head) {
  const int64_t half = rows / n_head / 2;
  std::vector<int64_t> order(static_cast<size_t>(rows));
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) order[(h * half + i) * 2 + j] = (h * 2 + j) * half + i;
    }
  }
  return order;
}

std::vector<float> Llama3RopeFactors(const ModelConfig& c) {
  const RopeScaling& rs = *c.rope_scaling;
  const double old_len = static_cast<double>(rs.original_max_position_embeddings);
  const double low_freq_wavelen = old_len / rs.low_freq_factor;
  const double high_freq_wavelen = old_len / rs.high_freq_factor;
  std::vector<float> out;
  for (int64_t i = 0; i < c.head_dim; i += 2) {
    // torch computes the frequencies in float32.
    const float freq = 1.0f / std::pow(static_cast<float>(c.rope_theta),
                                       static_cast<float>(i) / static_cast<float>(c.head_dim));
    const double wavelen = 2.0 * M_PI / freq;
    double factor;
    if (wavelen < high_freq_wavelen) {
      factor = 1.0;
    } else if (wavelen > low_freq_wavelen) {
      factor = rs.factor;
    } else {
      const double smooth =
          (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
      factor = 1.0 / ((1.0 - smooth) / rs.factor + smooth);
    }
    out.push_back(static_cast<float>(factor));
  }
  return out;
}

}  // namespace signround
