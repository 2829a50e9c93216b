#include "src/export/gguf_exporter.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "src/common/status_macros.h"
#include "src/export/gguf_file.h"
#include "src/export/gguf_quants.h"
#include "src/export/gguf_tokenizer.h"
#include "src/model/family.h"
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
  std::vector<GgufFormat> legacy;
  for (GgufFormat f : contract::kGgufFormats) {
    if (!contract::IsKQuantMix(f)) legacy.push_back(f);
  }
  const size_t n = legacy.size();
  for (size_t i = 0; i < n; ++i) {
    const GgufFormat f = legacy[i];
    const contract::GgufFormatInfo& info = contract::GgufFormatOf(f);
    if (i > 0) out += i + 1 == n ? " or " : ", ";
    absl::StrAppend(&out, info.bits, "-bit ", info.sym ? "symmetric" : "asymmetric", " (",
                    GgmlTypeName(FormatType(f)), ")");
  }
  return out;
}

// The family's GGUF naming (its arch is "" when the family has none).
const GgufNaming& Naming(const ModelConfig& c) {
  static const GgufNaming kNone{};
  const ModelFamily* family = FindModelFamily(c.model_type);
  return family == nullptr ? kNone : family->gguf;
}

// "llama, mistral, ...": the model types with a GGUF architecture.
std::string GgufModelTypes() {
  std::string out;
  for (const ModelFamily* f : ModelFamilies()) {
    if (f->gguf.arch.empty()) continue;
    absl::StrAppend(&out, out.empty() ? "" : ", ", f->model_type);
  }
  return out;
}

// The key of a block tensor in GgufNaming::block_tensors: its module name, with
// the expert index of an expert's Linear replaced by "*".
std::string BlockTensorKey(absl::string_view module, int64_t expert) {
  if (expert < 0) return std::string(module);
  std::vector<std::string> parts = absl::StrSplit(module, '.');
  for (std::string& part : parts) {
    if (part == std::to_string(expert)) {
      part = "*";
      break;
    }
  }
  return absl::StrJoin(parts, ".");
}

const GgufBlockTensor* FindBlockTensor(const GgufNaming& naming, absl::string_view key) {
  for (const GgufBlockTensor& t : naming.block_tensors) {
    if (t.module == key) return &t;
  }
  return nullptr;
}

bool Stacked(const GgufBlockTensor& t) { return absl::StrContains(t.module, "*"); }

// Norm weights (the converter's rule: HF names ending in "norm.weight").
bool IsNorm(absl::string_view module) { return absl::EndsWith(module, "norm"); }

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
  // Checkpoint tensors, or quantized Linear prefixes: one, or each expert's of a
  // stacked tensor in expert order.
  std::vector<std::string> sources;
  int64_t permute_heads = 0;  // > 0: rows reordered by LlamaQkRowOrder
  float shift = 0;            // added to every value (GgufNaming::norm_shift)
  std::vector<float> values;  // kValues
};

absl::StatusOr<TensorJob> CheckpointJob(const ExportSource& source, std::string gguf_name,
                                        std::string hf_name, GgmlType type,
                                        int64_t permute_heads = 0, float shift = 0) {
  SR_ASSIGN_OR_RETURN(Checkpoint::Tensor t, source.checkpoint().Find(hf_name));
  TensorJob job;
  job.info = {std::move(gguf_name), t.entry->shape, type};
  job.sources = {std::move(hf_name)};
  job.permute_heads = permute_heads;
  job.shift = shift;
  return job;
}

// Q8_0 for rows that split into 32-value blocks, else F16.
GgmlType EmbeddingType(int64_t row) { return row % 32 == 0 ? GgmlType::kQ8_0 : GgmlType::kF16; }

// The token embedding / lm_head (`hf`: "model.embed_tokens", "lm_head"): the engine's
// integer weights when the job quantized it (a k-quant mix), else the checkpoint's
// tensor as Q8_0 (F16 when its rows do not split into blocks of 32).
absl::StatusOr<TensorJob> EndJob(const ExportSource& source, std::string gguf_name,
                                 const std::string& hf) {
  const LayerPlan* plan = source.EndPlan(hf);
  if (plan == nullptr) {
    return CheckpointJob(source, std::move(gguf_name), hf + ".weight",
                         EmbeddingType(source.config().hidden_size));
  }
  std::optional<GgmlType> type = GgmlTypeForScheme(plan->scheme);
  if (!type) return absl::InternalError(absl::StrCat(hf, ": no GGUF type"));
  TensorJob job;
  job.info = {std::move(gguf_name), {plan->layer.out, plan->layer.in}, *type};
  job.kind = TensorJob::kInteger;
  job.sources = {hf};
  return job;
}

// The tensor of Linears `linears` (one, or every expert's of a stacked tensor:
// [experts, out, in]), from their integer weights when quantized, else F16.
absl::StatusOr<TensorJob> LinearJob(const ExportSource& source, const std::string& name,
                                    const std::vector<const LinearLayer*>& linears, bool stacked,
                                    int64_t permute_heads) {
  const LinearLayer& first = *linears.front();
  TensorJob job;
  job.info.name = name + ".weight";
  job.info.shape = {first.out, first.in};
  if (stacked) job.info.shape.insert(job.info.shape.begin(), static_cast<int64_t>(linears.size()));
  job.permute_heads = permute_heads;
  const LayerPlan* plan = source.Plan(first.name);
  const bool quantized = plan != nullptr && plan->quantized;
  job.kind = quantized ? TensorJob::kInteger : TensorJob::kCheckpoint;
  job.info.type = GgmlType::kF16;
  if (quantized) {
    std::optional<GgmlType> type = GgmlTypeForScheme(plan->scheme);
    if (!type) return absl::InternalError(absl::StrCat(first.name, ": no GGUF type"));
    job.info.type = *type;
  }
  for (const LinearLayer* l : linears) {
    const LayerPlan* p = source.Plan(l->name);
    // CheckGgufExport refuses a stack of different schemes.
    if (quantized != (p != nullptr && p->quantized) ||
        (quantized && GgmlTypeForScheme(p->scheme) != job.info.type)) {
      return absl::InternalError(absl::StrCat(l->name, ": a stacked expert of another scheme"));
    }
    if (!quantized) SR_RETURN_IF_ERROR(source.checkpoint().Find(l->name + ".weight").status());
    job.sources.push_back(quantized ? l->name : l->name + ".weight");
  }
  return job;
}

// Every tensor of the file, named and laid out as the family's GgufNaming says.
absl::StatusOr<std::vector<TensorJob>> PlanTensors(const ExportSource& source) {
  const ModelConfig& c = source.config();
  const GgufNaming& naming = Naming(c);
  std::vector<TensorJob> jobs;
  auto add = [&](absl::StatusOr<TensorJob> job) -> absl::Status {
    SR_RETURN_IF_ERROR(job.status());
    jobs.push_back(*std::move(job));
    return absl::OkStatus();
  };
  SR_RETURN_IF_ERROR(add(EndJob(source, "token_embd.weight", "model.embed_tokens")));
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
    auto gguf_of = [&](const std::string& key) -> absl::StatusOr<const GgufBlockTensor*> {
      const GgufBlockTensor* t = FindBlockTensor(naming, key);
      if (t == nullptr) {
        return absl::InternalError(absl::StrCat(hf, key, ": no GGUF name"));  // checked before
      }
      return t;
    };
    for (const BlockParam& p : DecoderBlockLayout(c, i).params) {
      SR_ASSIGN_OR_RETURN(const GgufBlockTensor* t, gguf_of(p.name));
      SR_RETURN_IF_ERROR(add(CheckpointJob(source, absl::StrCat(blk, t->gguf, ".weight"),
                                           absl::StrCat(hf, p.name, ".weight"), GgmlType::kF32, 0,
                                           IsNorm(p.name) ? naming.norm_shift : 0)));
    }
    // Linears in block order; the experts of a stacked tensor where its first one is.
    std::map<std::string, std::vector<const LinearLayer*>> stacks;
    std::vector<std::string> order;
    for (const LinearLayer& l : linears) {
      if (l.layer != i) continue;
      const std::string key = BlockTensorKey(l.name.substr(hf.size()), l.expert);
      auto [it, inserted] = stacks.try_emplace(key);
      if (inserted) order.push_back(key);
      it->second.push_back(&l);
    }
    for (const std::string& key : order) {
      SR_ASSIGN_OR_RETURN(const GgufBlockTensor* t, gguf_of(key));
      const std::vector<const LinearLayer*>& group = stacks[key];
      const std::string name = blk + std::string(t->gguf);
      int64_t heads = 0;
      if (naming.permute_qk && t->gguf == "attn_q") heads = c.num_attention_heads;
      if (naming.permute_qk && t->gguf == "attn_k") heads = c.num_key_value_heads;
      SR_RETURN_IF_ERROR(add(LinearJob(source, name, group, Stacked(*t), heads)));
      if (group.front()->bias) {
        SR_RETURN_IF_ERROR(add(CheckpointJob(source, name + ".bias", group.front()->name + ".bias",
                                             GgmlType::kF32, heads)));
      }
    }
  }
  SR_RETURN_IF_ERROR(add(CheckpointJob(source, "output_norm.weight", "model.norm.weight",
                                       GgmlType::kF32, 0, naming.norm_shift)));
  if (!c.tie_word_embeddings) {
    SR_RETURN_IF_ERROR(add(EndJob(source, "output.weight", "lm_head")));
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

// general.name: the model directory's name, except that llama.cpp
// (llama_vocab::impl::load) treats every model whose lowercased general.name
// contains "phi3" or "phi-3" as Phi-3, whatever its architecture, and looks up
// <unk>, <s>, </s> and <|endoftext|> in its vocabulary with std::map::at: when
// one is missing the file fails to load ("error loading model vocabulary").
// A Phi-3 checkpoint with another vocabulary (the 512-token SentencePiece one
// of the tiny test models, "phi3-tiny") would never load, so for a vocabulary
// without them the name is written with "phi3" / "phi-3" spelled "phi 3" (as
// the converter's own names read: "Phi 3 Mini 4k Instruct"), which llama.cpp
// does not match. A vocabulary with all four keeps the name and the rule.
std::string GeneralName(const std::string& dir_name, const std::optional<GgufVocab>& vocab) {
  bool has_all = vocab.has_value();
  for (const char* token : {"<unk>", "<s>", "</s>", "<|endoftext|>"}) {
    if (!has_all) break;
    has_all = std::find(vocab->tokens.begin(), vocab->tokens.end(), token) != vocab->tokens.end();
  }
  if (has_all) return dir_name;
  std::string out = dir_name;
  for (;;) {
    const std::string lower = absl::AsciiStrToLower(out);
    size_t at = lower.find("phi3"), len = 4;
    if (at == std::string::npos) at = lower.find("phi-3"), len = 5;
    if (at == std::string::npos) return out;
    out.replace(at, len, absl::StrCat(out.substr(at, 3), " 3"));  // keeps the case of "phi"
  }
}

// `tensors`: the file's tensors, whose elements general.size_label counts.
absl::StatusOr<GgufMetadata> BuildMetadata(const ExportSource& source, GgufFormat format,
                                           const std::vector<TensorJob>& tensors) {
  const ModelConfig& c = source.config();
  const GgufNaming& naming = Naming(c);
  const std::string arch(naming.arch);
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
  SR_ASSIGN_OR_RETURN(std::optional<GgufVocab> vocab, LoadGgufVocab(source.checkpoint().dir(), c));
  m.AddString("general.architecture", arch);
  m.AddString("general.type", "model");
  m.AddString("general.name", GeneralName(ModelName(source.checkpoint().dir()), vocab));
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
  if (naming.metadata != nullptr) {
    for (const GgufKey& key : naming.metadata(c)) {
      switch (key.type) {
        case GgufKey::Type::kU32:
          u32(key.name, key.u32);
          break;
        case GgufKey::Type::kF32:
          m.AddF32(absl::StrCat(arch, ".", key.name), static_cast<float>(key.f32));
          break;
      }
    }
  }
  SR_RETURN_IF_ERROR(status);
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
  std::string buf;
  auto flush = [&](bool last) -> absl::Status {
    if (buf.size() < kFlushBytes && !last) return absl::OkStatus();
    absl::Status s = write(buf);
    buf.clear();
    return s;
  };
  if (job.kind == TensorJob::kValues) {
    SR_RETURN_IF_ERROR(EncodeFloatRow(job.values, job.info.type, &buf));
    return flush(true);
  }
  // Each source is one [rows, ...] matrix (a stacked tensor's experts one after another).
  const int64_t rows = job.info.shape[job.info.shape.size() == 3 ? 1 : 0];
  const std::vector<int64_t> order =
      job.permute_heads > 0 ? LlamaQkRowOrder(rows, job.permute_heads) : std::vector<int64_t>();
  auto src_row = [&](int64_t r) { return order.empty() ? r : order[r]; };
  for (const std::string& name : job.sources) {
    if (job.kind == TensorJob::kInteger) {
      SR_ASSIGN_OR_RETURN(const IntegerLayer* layer, source.Layer(name));
      if (layer == nullptr) {
        return absl::InternalError(absl::StrCat(name, ": no integer weights to export"));
      }
      for (int64_t r = 0; r < rows; ++r) {
        SR_RETURN_IF_ERROR(EncodeIntegerRow(*layer, src_row(r), job.info.type, &buf));
        SR_RETURN_IF_ERROR(flush(false));
      }
      source.Release(name);
      continue;
    }
    SR_ASSIGN_OR_RETURN(Checkpoint::Tensor t, source.checkpoint().Find(name));
    const absl::string_view bytes = source.Bytes(t);
    const size_t row_bytes = bytes.size() / rows;
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> x =
          FloatsFromBytes(bytes.substr(src_row(r) * row_bytes, row_bytes), t.entry->dtype);
      if (job.shift != 0) {
        for (float& v : x) v += job.shift;
      }
      absl::Status s = EncodeFloatRow(x, job.info.type, &buf);
      if (!s.ok()) {
        return absl::Status(s.code(),
                            absl::StrCat(t.file->path(), ": tensor '", name, "': ", s.message()));
      }
      SR_RETURN_IF_ERROR(flush(false));
    }
    source.Release(t);
  }
  return flush(true);
}

}  // namespace

absl::string_view GgufFormatName(GgufFormat format) { return contract::GgufFormatOf(format).name; }

std::string GgufFileName(absl::string_view model_name, GgufFormat format) {
  return absl::StrCat(model_name, "-", contract::GgufFormatOf(format).suffix, ".gguf");
}

absl::string_view GgufLinearName(const ModelConfig& c, const LinearLayer& l) {
  const std::string prefix = absl::StrCat("model.layers.", l.layer, ".");
  if (!absl::StartsWith(l.name, prefix)) return "";
  const GgufBlockTensor* t =
      FindBlockTensor(Naming(c), BlockTensorKey(l.name.substr(prefix.size()), l.expert));
  return t == nullptr ? absl::string_view() : t->gguf;
}

namespace {

// "4-bit symmetric group 32", or "16-bit" for a layer that is not quantized.
std::string DescribePlan(const LayerPlan* p) {
  return p != nullptr && p->quantized ? contract::DescribeSchemeLong(p->scheme) : "16-bit";
}

bool SamePlan(const LayerPlan* a, const LayerPlan* b) {
  const bool qa = a != nullptr && a->quantized, qb = b != nullptr && b->quantized;
  return qa == qb && (!qa || SameScheme(a->scheme, b->scheme));
}

// Every block tensor has a GGUF name, biases only where the architecture loads
// them, and the Linears stacked into one tensor (an MoE layer's experts) one scheme.
absl::Status CheckBlockTensors(absl::string_view fmt, const ModelConfig& c,
                               const GgufNaming& naming, const std::vector<LayerPlan>& plans) {
  std::map<std::string, const LayerPlan*, std::less<>> plan_of;
  for (const LayerPlan& p : plans) plan_of[p.layer.name] = &p;
  auto find_plan = [&](const std::string& name) -> const LayerPlan* {
    auto it = plan_of.find(name);
    return it == plan_of.end() ? nullptr : it->second;
  };
  auto unnamed = [&](const std::string& name) {
    return absl::InvalidArgumentError(absl::StrCat(
        fmt, ": ", name, " has no tensor in llama.cpp's ", naming.arch, " architecture"));
  };
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string hf = absl::StrCat("model.layers.", i, ".");
    const BlockLayout layout = DecoderBlockLayout(c, i);
    for (const BlockParam& p : layout.params) {
      if (FindBlockTensor(naming, p.name) == nullptr) return unnamed(hf + p.name);
    }
    // The first Linear of each stacked tensor, by key.
    std::map<std::string, const BlockLinear*> first;
    for (const BlockLinear& l : layout.linears) {
      const std::string key = BlockTensorKey(l.name, l.expert);
      const GgufBlockTensor* t = FindBlockTensor(naming, key);
      if (t == nullptr) return unnamed(hf + l.name);
      if (l.bias && !t->bias) {
        return absl::InvalidArgumentError(
            absl::StrCat(fmt, ": ", hf, l.name, " has a bias, which llama.cpp's ", naming.arch,
                         " architecture does not load (attention_bias / mlp_bias)"));
      }
      if (!Stacked(*t)) continue;
      auto [it, inserted] = first.try_emplace(key, &l);
      if (inserted) continue;
      const std::string a = hf + it->second->name, b = hf + l.name;
      const LayerPlan *pa = find_plan(a), *pb = find_plan(b);
      if (!SamePlan(pa, pb)) {
        return absl::InvalidArgumentError(absl::StrCat(
            fmt, ": ", b, " is ", DescribePlan(pb), " but ", a, " is ", DescribePlan(pa),
            ": llama.cpp stacks every expert's ", l.name.substr(l.name.rfind('.') + 1),
            " of a layer into one tensor of one type (blk.", i, ".", t->gguf,
            "); give the experts of a layer one scheme"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckGgufExport(GgufFormat format, const ModelConfig& c,
                             const std::vector<LayerPlan>& plans) {
  const absl::string_view fmt = GgufFormatName(format);
  const GgufNaming& naming = Naming(c);
  if (naming.arch.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        fmt, ": model_type '", c.model_type, "' cannot be exported (", GgufModelTypes(), ")"));
  }
  if (c.rope_scaling) {
    const std::string& t = c.rope_scaling->type;
    if (t != "linear" && !(t == "llama3" && naming.llama3_rope)) {
      return absl::InvalidArgumentError(
          absl::StrCat(fmt, ": rope_scaling type '", t, "' cannot be exported for model_type '",
                       c.model_type, "' (GGUF export supports linear, and llama3 for llama)"));
    }
  }
  if (c.hidden_act != naming.hidden_act) {
    return absl::InvalidArgumentError(absl::StrCat(fmt, ": hidden_act '", c.hidden_act,
                                                   "' cannot be exported: llama.cpp's ",
                                                   naming.arch, " computes ", naming.hidden_act));
  }
  if (naming.check != nullptr) {
    if (absl::Status s = naming.check(c); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(fmt, ": ", s.message()));
    }
  }
  const bool mix = contract::IsKQuantMix(format);
  if (std::optional<QuantScheme> s = DefaultScheme(plans); s && !mix) {
    std::optional<GgmlType> type = GgmlTypeForScheme(*s);
    if (type != FormatType(format)) {
      std::string use = "use auto_round or auto_gptq";
      for (GgufFormat other : contract::kGgufFormats) {
        if (contract::IsKQuantMix(other)) continue;
        if (type == FormatType(other)) use = absl::StrCat("use ", GgufFormatName(other));
      }
      return absl::InvalidArgumentError(absl::StrCat(
          fmt, " needs ", contract::GgufFormatNeeds(format), " layers; this job quantizes to ",
          contract::DescribeSchemeLong(*s), " (", use, ")"));
    }
  }
  for (const LayerPlan& p : plans) {
    if (!p.quantized) continue;
    if (contract::IsKQuant(p.scheme.data_type) && !mix) {
      return absl::InvalidArgumentError(absl::StrCat(
          fmt, ": layer ", p.layer.name, " is ", contract::DescribeSchemeLong(p.scheme),
          "; only the k-quant formats (gguf:q4_k_m, ...) store k-quant layers"));
    }
    if (contract::IsKQuant(p.scheme.data_type) && p.layer.in % contract::kKQuantSuperBlock != 0) {
      return absl::InvalidArgumentError(absl::StrCat(fmt, ": layer ", p.layer.name, " has ",
                                                     p.layer.in, " inputs, not a multiple of ",
                                                     contract::kKQuantSuperBlock));
    }
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
  return CheckBlockTensors(fmt, c, naming, plans);
}

absl::Status ExportGguf(const ExportSource& source, GgufFormat format, const std::string& path) {
  SR_RETURN_IF_ERROR(CheckGgufExport(format, source.config(), source.plans()));
  SR_ASSIGN_OR_RETURN(std::vector<TensorJob> jobs, PlanTensors(source));
  SR_ASSIGN_OR_RETURN(GgufMetadata metadata, BuildMetadata(source, format, jobs));
  std::vector<GgufTensorInfo> infos;
  std::vector<std::string> quantized;  // in the order WriteJob asks for them
  for (const TensorJob& j : jobs) {
    infos.push_back(j.info);
    if (j.kind == TensorJob::kInteger)
      quantized.insert(quantized.end(), j.sources.begin(), j.sources.end());
  }
  source.WillAsk(std::move(quantized), /*with_dequant=*/false);
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
