// The GGUF exporter (src/export/gguf_exporter.h), checked through an independent GGUF reader
// (tests/testing/gguf_reader.h: it shares no code with the writer): header, metadata types and
// values, tensor infos, alignment and offsets, and every tensor's data dequantized back and
// compared with the engine's integer weights and the checkpoint; CheckGgufExport, the format
// names and the Llama q/k row permutation.
#include <sys/stat.h>

#include <dirent.h>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/export/export_source.h"
#include "src/export/gguf_exporter.h"
#include "src/export/gguf_file.h"
#include "src/export/gguf_quants.h"
#include "src/model/checkpoint.h"
#include "src/model/config.h"
#include "src/model/layout.h"
#include "src/model/random_checkpoint.h"
#include "src/quant/layer_plan.h"
#include "src/tensor/half.h"
#include "src/tensor/safetensors_writer.h"
#include "tests/testing/gguf_reader.h"
#include "tests/testing/test_files.h"
#include "tests/unit/export/export_fixtures.h"

namespace signround {
namespace {

using namespace ::signround::testing::gguf;  // NOLINT: the reader's types
using ::signround::testing::TempDir;
using ::testing::ElementsAre;

// --- synthetic jobs -------------------------------------------------------

uint64_t Hash(absl::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

std::string Bytes16(const std::vector<uint16_t>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 2);
}

// Writes config.json and model.safetensors with random values (norms near 1).
void WriteCheckpoint(const std::string& dir, const ModelConfig& config, DType dtype) {
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  testing::WriteFile(dir + "/config.json", ModelConfigToJson(config).dump(2));
  std::vector<TensorSpec> specs;
  for (const ExpectedTensor& t : ExpectedTensors(config)) specs.push_back({t.name, dtype, t.shape});
  std::string buf;
  auto fill = [&](const TensorSpec& spec) -> absl::StatusOr<absl::string_view> {
    std::mt19937_64 rng(Hash(spec.name));
    std::uniform_real_distribution<float> u(-0.05f, 0.05f);
    const bool norm = spec.name.find("norm") != std::string::npos;
    buf.clear();
    for (uint64_t i = 0; i < spec.numel(); ++i) {
      float v = norm ? 1.0f + 10 * u(rng) : u(rng);
      if (dtype == DType::kF32) {
        buf.append(reinterpret_cast<const char*>(&v), 4);
      } else {
        uint16_t h = dtype == DType::kF16 ? FloatToF16(v) : FloatToBF16(v);
        buf.append(reinterpret_cast<const char*>(&h), 2);
      }
    }
    return absl::string_view(buf);
  };
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", specs, fill).ok());
}

// Writes one block file per decoder layer holding P.codes / P.scales / P.zeros
// of its quantized Linears, random within each scheme (some scales negative).
std::vector<std::string> WriteBlockFiles(const std::string& dir, const ModelConfig& config,
                                         const std::vector<LayerPlan>& plans) {
  std::vector<std::string> files;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    std::vector<TensorSpec> specs;
    std::map<std::string, std::string> data;
    for (const LayerPlan& p : plans) {
      if (p.layer.layer != i || !p.quantized) continue;
      const int64_t gs = p.scheme.group_size > 0 ? p.scheme.group_size : p.layer.in;
      const int64_t out = p.layer.out, in = p.layer.in, groups = (in + gs - 1) / gs;
      std::mt19937_64 rng(Hash(p.layer.name) + 7);
      const int max_code = (1 << p.scheme.bits) - 1;
      std::string codes, zeros;
      std::vector<uint16_t> scales;
      for (int64_t k = 0; k < out * in; ++k)
        codes.push_back(static_cast<char>(rng() % (max_code + 1)));
      for (int64_t k = 0; k < out * groups; ++k) {
        const float s = std::uniform_real_distribution<float>(0.001f, 0.02f)(rng);
        scales.push_back(FloatToF16(k % 7 == 3 ? -s : s));
        zeros.push_back(
            static_cast<char>(p.scheme.sym ? 1 << (p.scheme.bits - 1) : rng() % (max_code + 1)));
      }
      specs.push_back({p.layer.name + ".codes", DType::kU8, {out, in}});
      specs.push_back({p.layer.name + ".scales", DType::kF16, {out, groups}});
      specs.push_back({p.layer.name + ".zeros", DType::kU8, {out, groups}});
      data[p.layer.name + ".codes"] = codes;
      data[p.layer.name + ".scales"] = Bytes16(scales);
      data[p.layer.name + ".zeros"] = zeros;
    }
    files.push_back(absl::StrCat(dir, "/block_", i, ".safetensors"));
    auto bytes = [&](const TensorSpec& s) -> absl::StatusOr<absl::string_view> {
      return absl::string_view(data[s.name]);
    };
    EXPECT_TRUE(WriteSafetensors(files.back(), specs, bytes).ok());
  }
  return files;
}

ModelConfig TinyConfig() {
  RandomCheckpointOptions o;
  o.hidden_size = 64;
  o.intermediate_size = 96;
  o.num_layers = 2;
  o.num_heads = 4;
  o.num_kv_heads = 2;
  o.vocab_size = 40;
  o.max_position_embeddings = 512;
  absl::StatusOr<ModelConfig> c = RandomCheckpointConfig(o);
  if (!c.ok()) throw std::runtime_error(std::string(c.status().message()));
  c->rms_norm_eps = 1e-5;
  c->rope_theta = 500000.0;
  c->bos_token_id = 1;
  c->eos_token_ids = {2};
  return *c;
}

// A checkpoint, its block files and the export source over them.
struct Job {
  std::unique_ptr<TempDir> tmp = std::make_unique<TempDir>();
  std::string model_dir;
  std::unique_ptr<Checkpoint> ckpt;
  std::unique_ptr<ExportSource> source;
  std::string out;  // the GGUF path
};

std::unique_ptr<Job> MakeJob(const ModelConfig& config, DType dtype, const QuantScheme& scheme,
                             const std::string& layer_config = "",
                             const std::string& model_name = "tiny-llama") {
  auto job = std::make_unique<Job>();
  job->model_dir = job->tmp->File(model_name);
  WriteCheckpoint(job->model_dir, config, dtype);
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(job->model_dir);
  if (!ckpt.ok()) throw std::runtime_error(std::string(ckpt.status().message()));
  job->ckpt = std::make_unique<Checkpoint>(*std::move(ckpt));
  std::vector<LayerOverride> overrides;
  if (!layer_config.empty()) overrides = *ParseLayerConfig(layer_config, "layers.json");
  std::vector<LayerPlan> plans = PlanLayers(DecoderLinears(config), scheme, overrides);
  std::vector<std::string> files = WriteBlockFiles(job->tmp->path(), config, plans);
  absl::StatusOr<ExportSource> source = ExportSource::Open(*job->ckpt, plans, files);
  if (!source.ok()) throw std::runtime_error(std::string(source.status().message()));
  job->source = std::make_unique<ExportSource>(*std::move(source));
  job->out = job->tmp->File("out.gguf");
  return job;
}

// The checkpoint tensor's values as doubles.
std::vector<double> CheckpointValues(const Job& job, const std::string& name) {
  Checkpoint::Tensor t = *job.ckpt->Find(name);
  absl::string_view b = job.source->Bytes(t);
  std::vector<double> out;
  for (uint64_t i = 0; i < t.entry->numel; ++i) {
    if (t.entry->dtype == DType::kF32) {
      float f;
      std::memcpy(&f, b.data() + 4 * i, 4);
      out.push_back(f);
    } else if (t.entry->dtype == DType::kF16) {
      out.push_back(Half(U16(b, 2 * i)));
    } else {
      out.push_back(BF16ToFloat(U16(b, 2 * i)));
    }
  }
  return out;
}

// --- expectations -----------------------------------------------------------

void ExpectU32(const GgufContents& g, const std::string& key, uint64_t v) {
  SCOPED_TRACE(key);
  ASSERT_EQ(g.kv.count(key), 1u);
  EXPECT_EQ(g.kv.at(key).type, kU32);
  EXPECT_EQ(g.kv.at(key).u, v);
}
void ExpectF32(const GgufContents& g, const std::string& key, double v) {
  SCOPED_TRACE(key);
  ASSERT_EQ(g.kv.count(key), 1u);
  EXPECT_EQ(g.kv.at(key).type, kF32);
  EXPECT_EQ(g.kv.at(key).f, static_cast<float>(v));
}
void ExpectStr(const GgufContents& g, const std::string& key, const std::string& v) {
  SCOPED_TRACE(key);
  ASSERT_EQ(g.kv.count(key), 1u);
  EXPECT_EQ(g.kv.at(key).type, kStr);
  EXPECT_EQ(g.kv.at(key).s, v);
}

// Every element of every tensor in the file: the parameter count llama.cpp's converter
// sizes a model by (gguf-py's GGUFWriter.get_total_parameter_count, dense models).
uint64_t ParameterCount(const GgufContents& g) {
  uint64_t total = 0;
  for (const TensorInfo& t : g.tensors) {
    uint64_t n = 1;
    for (uint64_t d : t.ne) n *= d;
    total += n;
  }
  return total;
}

// gguf-py's model_weight_count_rounded_notation(n, min_digits=2), spelled out again:
// n in K (below 1e6), M, B or T, with 2 - (digits of the rounded value) decimals.
std::string RoundedNotation(uint64_t n) {
  const double x = static_cast<double>(n);
  const char* suffix = x >= 1e12 ? "T" : x >= 1e9 ? "B" : x >= 1e6 ? "M" : "K";
  const double scaled = x * (x >= 1e12 ? 1e-12 : x >= 1e9 ? 1e-9 : x >= 1e6 ? 1e-6 : 1e-3);
  const long long rounded = std::llrint(scaled);  // Python's round(): half to even
  int decimals = 2;
  for (long long r = rounded; r > 0 && decimals > 0; r /= 10) --decimals;
  return absl::StrFormat("%.*f%s", decimals, scaled, suffix);
}

// Every model key of an export of `c`, and no other non-tokenizer key.
void ExpectModelMetadata(const GgufContents& g, const ModelConfig& c, const std::string& arch,
                         uint32_t file_type, const std::string& name) {
  EXPECT_EQ(g.version, 3u);
  ExpectStr(g, "general.architecture", arch);
  ExpectStr(g, "general.type", "model");
  ExpectStr(g, "general.name", name);
  ExpectStr(g, "general.size_label", RoundedNotation(ParameterCount(g)));
  ExpectU32(g, "general.quantization_version", 2);
  ExpectU32(g, "general.file_type", file_type);
  ExpectU32(g, arch + ".context_length", c.max_position_embeddings);
  ExpectU32(g, arch + ".embedding_length", c.hidden_size);
  ExpectU32(g, arch + ".block_count", c.num_hidden_layers);
  ExpectU32(g, arch + ".feed_forward_length", c.intermediate_size);
  ExpectU32(g, arch + ".attention.head_count", c.num_attention_heads);
  ExpectU32(g, arch + ".attention.head_count_kv", c.num_key_value_heads);
  ExpectF32(g, arch + ".attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  ExpectF32(g, arch + ".rope.freq_base", c.rope_theta);
  ExpectU32(g, arch + ".rope.dimension_count", c.head_dim);
  ExpectU32(g, arch + ".vocab_size", c.vocab_size);
  size_t expected = 16;
  if (c.head_dim * c.num_attention_heads != c.hidden_size) {
    ExpectU32(g, arch + ".attention.key_length", c.head_dim);
    ExpectU32(g, arch + ".attention.value_length", c.head_dim);
    expected += 2;
  }
  if (c.rope_scaling && c.rope_scaling->type == "linear") {
    ExpectStr(g, arch + ".rope.scaling.type", "linear");
    ExpectF32(g, arch + ".rope.scaling.factor", c.rope_scaling->factor);
    expected += 2;
  }
  size_t model_keys = 0;
  for (const auto& [key, value] : g.kv) model_keys += key.rfind("tokenizer.", 0) != 0;
  EXPECT_EQ(model_keys, expected);
  EXPECT_EQ(g.kv.count("general.alignment"), 0u);
}

struct Expected {
  std::string hf;  // checkpoint tensor or quantized layer prefix
  uint32_t type;
  int64_t permute_heads;  // q/k rows
};

// The tensors an export of `job` must hold, by GGUF name.
std::map<std::string, Expected> ExpectedTensors(const Job& job, bool permute) {
  const ModelConfig& c = job.source->config();
  std::map<std::string, Expected> out;
  const uint32_t embd = c.hidden_size % 32 == 0 ? kTQ8_0 : kTF16;
  out["token_embd.weight"] = {"model.embed_tokens.weight", embd, 0};
  out["output_norm.weight"] = {"model.norm.weight", kTF32, 0};
  if (!c.tie_word_embeddings) out["output.weight"] = {"lm_head.weight", embd, 0};
  if (c.rope_scaling && c.rope_scaling->type == "llama3") out["rope_freqs.weight"] = {"", kTF32, 0};
  const std::pair<const char*, const char*> linears[] = {
      {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"}, {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},  {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"}};
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string blk = absl::StrCat("blk.", i, "."),
                      hf = absl::StrCat("model.layers.", i, ".");
    out[blk + "attn_norm.weight"] = {hf + "input_layernorm.weight", kTF32, 0};
    out[blk + "ffn_norm.weight"] = {hf + "post_attention_layernorm.weight", kTF32, 0};
    for (const auto& [gguf, hf_suffix] : linears) {
      const std::string prefix = hf + hf_suffix;
      int64_t heads = 0;
      if (permute && std::string(gguf) == "attn_q") heads = c.num_attention_heads;
      if (permute && std::string(gguf) == "attn_k") heads = c.num_key_value_heads;
      const LayerPlan* plan = job.source->Plan(prefix);
      uint32_t type = kTF16;
      if (plan->quantized) {
        type = plan->scheme.bits == 8 ? kTQ8_0 : plan->scheme.sym ? kTQ4_0 : kTQ4_1;
      }
      out[blk + gguf + ".weight"] = {plan->quantized ? prefix : prefix + ".weight", type, heads};
      if (plan->layer.bias) out[blk + gguf + ".bias"] = {prefix + ".bias", kTF32, heads};
    }
  }
  return out;
}

// The nearest-fp16 check: `bits` is at least as close to `exact` as its neighbours.
void ExpectNearestHalf(uint16_t bits, double exact) {
  const double v = Half(bits);
  for (int delta : {-1, 1}) {
    const uint16_t n = static_cast<uint16_t>(bits + delta);
    if ((n & 0x7c00) == 0x7c00) continue;
    if ((n & 0x8000) != (bits & 0x8000)) continue;
    EXPECT_LE(std::fabs(v - exact), std::fabs(Half(n) - exact)) << "m " << v << " vs " << exact;
  }
  const double other_zero = Half(bits ^ 0x8000);  // across zero
  EXPECT_LE(std::fabs(v - exact), std::fabs(other_zero - exact) + 1e-30);
}

// Checks every tensor of the exported file against its source.
void CheckTensors(const Job& job, const GgufContents& g, bool permute) {
  std::map<std::string, Expected> expected = ExpectedTensors(job, permute);
  ASSERT_EQ(g.tensors.size(), expected.size());
  for (const TensorInfo& t : g.tensors) {
    SCOPED_TRACE(t.name);
    ASSERT_EQ(expected.count(t.name), 1u);
    const Expected& e = expected[t.name];
    EXPECT_EQ(t.type, e.type);
    if (t.name == "rope_freqs.weight") continue;  // checked by its own test
    const std::vector<double> x = Dequantize(g, t);
    const IntegerLayer* layer = *job.source->Layer(e.hf);
    if (layer == nullptr) {  // from the checkpoint
      Checkpoint::Tensor src = *job.ckpt->Find(e.hf);
      std::vector<uint64_t> ne(src.entry->shape.rbegin(), src.entry->shape.rend());
      ASSERT_EQ(t.ne, ne);
      const std::vector<double> w = CheckpointValues(job, e.hf);
      const int64_t rows = src.entry->shape[0];
      const int64_t cols = static_cast<int64_t>(w.size()) / rows;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t hf_row = e.permute_heads ? HfRow(r, rows, e.permute_heads) : r;
        for (int64_t k = 0; k < cols; ++k) {
          const double want = w[hf_row * cols + k], got = x[r * cols + k];
          if (t.type == kTF32) {
            ASSERT_EQ(got, want) << "row " << r << " col " << k;
          } else if (t.type == kTF16) {
            ASSERT_EQ(got, Half(FloatToF16(static_cast<float>(want)))) << "row " << r;
          }
        }
      }
      if (t.type == kTQ8_0) {  // against a reference quantize_row_q8_0_ref
        const absl::string_view d = g.Data(t, TensorBytes(t));
        for (size_t b = 0; b < w.size() / 32; ++b) {
          double amax = 0;
          for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(w[b * 32 + j]));
          const float scale = static_cast<float>(amax) / 127.0f;
          const float id = scale != 0 ? 1.0f / scale : 0.0f;
          ASSERT_EQ(U16(d, b * 34), FloatToF16(scale)) << "block " << b;
          for (int j = 0; j < 32; ++j) {
            ASSERT_EQ(static_cast<int8_t>(d[b * 34 + 2 + j]),
                      static_cast<int>(std::roundf(static_cast<float>(w[b * 32 + j]) * id)));
          }
        }
      }
      continue;
    }
    // A quantized layer: every element against scale * (code - zero).
    ASSERT_THAT(t.ne, ElementsAre(layer->in, layer->out));
    const absl::string_view d = g.Data(t, TensorBytes(t));
    for (int64_t r = 0; r < layer->out; ++r) {
      const int64_t n = e.permute_heads ? HfRow(r, layer->out, e.permute_heads) : r;
      for (int64_t k = 0; k < layer->in; ++k) {
        const int64_t grp = k / 32;
        const double scale = Half(layer->scale_bits(n, grp));
        const int code = layer->code(n, k), zero = layer->zero(n, grp);
        const double got = x[r * layer->in + k];
        if (t.type == kTQ4_1) {
          const size_t block = (r * layer->in + k) / 32 * 20;
          ASSERT_EQ(U16(d, block), layer->scale_bits(n, grp));
          const double m = Half(U16(d, block + 2));
          ASSERT_EQ(got, code * scale + m) << "row " << r << " col " << k;
          ASSERT_LE(std::fabs(got - scale * (code - zero)), std::fabs(m + zero * scale));
          if (k % 32 == 0) ExpectNearestHalf(U16(d, block + 2), -zero * scale);
        } else {
          ASSERT_EQ(got, scale * (code - zero)) << "row " << r << " col " << k;
        }
      }
    }
  }
}

// --- tests ----------------------------------------------------------------

TEST(GgufExportTest, Q4_0FromBF16Checkpoint) {
  ModelConfig c = TinyConfig();
  auto job = MakeJob(c, DType::kBF16, Scheme(4, 32, true));
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_0, job->out).ok());
  GgufContents g = ReadGguf(job->out);
  ExpectModelMetadata(g, c, "llama", 2, "tiny-llama");
  // No tokenizer file: only the "no_vocab" marker, which llama.cpp needs to load the file.
  for (const auto& [key, value] : g.kv) {
    if (key.rfind("tokenizer.", 0) == 0) {
      EXPECT_EQ(key, "tokenizer.ggml.model");
    }
  }
  ExpectStr(g, "tokenizer.ggml.model", "no_vocab");
  CheckTensors(*job, g, /*permute=*/true);
}

TEST(GgufExportTest, Q4_1FromF32CheckpointWithHeadDimAndBiases) {
  ModelConfig c = TinyConfig();
  c.head_dim = 32;  // != hidden / heads: key_length and value_length are written
  c.qkv_bias = c.o_bias = true;
  c.tie_word_embeddings = true;
  auto job = MakeJob(c, DType::kF32, Scheme(4, 32, false));
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_1, job->out).ok());
  GgufContents g = ReadGguf(job->out);
  ExpectModelMetadata(g, c, "llama", 3, "tiny-llama");
  EXPECT_EQ(g.kv.count("output.weight"), 0u);
  CheckTensors(*job, g, /*permute=*/true);
  EXPECT_EQ(g.Tensor("blk.1.attn_q.bias").ne, std::vector<uint64_t>{128});
}

TEST(GgufExportTest, Q8_0WithQ4_0AndSixteenBitOverrides) {
  ModelConfig c = TinyConfig();
  c.rope_scaling = RopeScaling{"linear", 2.5};
  auto job = MakeJob(c, DType::kF16, Scheme(8, 32, true),
                     R"({"mlp\\.up_proj": {"bits": 4}, "layers\\.1\\.mlp\\.gate": {"bits": 16}})");
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ8_0, job->out).ok());
  GgufContents g = ReadGguf(job->out);
  ExpectModelMetadata(g, c, "llama", 7, "tiny-llama");
  CheckTensors(*job, g, /*permute=*/true);
  EXPECT_EQ(g.Tensor("blk.0.attn_q.weight").type, kTQ8_0);
  EXPECT_EQ(g.Tensor("blk.0.ffn_up.weight").type, kTQ4_0);
  EXPECT_EQ(g.Tensor("blk.1.ffn_gate.weight").type, kTF16);
}

TEST(GgufExportTest, NothingQuantizableIsAllF16) {
  ModelConfig c = TinyConfig();
  c.hidden_size = 48;  // no Linear has both dims multiples of 32; embedding rows are not
  c.head_dim = 16;     // whole Q8_0 blocks either: F16
  auto job = MakeJob(c, DType::kF16, Scheme(4, 32, true));
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_0, job->out).ok());
  GgufContents g = ReadGguf(job->out);
  ExpectModelMetadata(g, c, "llama", 2, "tiny-llama");
  CheckTensors(*job, g, /*permute=*/true);
  EXPECT_EQ(g.Tensor("token_embd.weight").type, kTF16);
  EXPECT_EQ(g.Tensor("output.weight").type, kTF16);
  EXPECT_EQ(g.Tensor("blk.1.ffn_down.weight").type, kTF16);
}

TEST(GgufExportTest, MixedQ4_0AndQ8_0Layers) {
  ModelConfig c = TinyConfig();
  auto job = MakeJob(c, DType::kF32, Scheme(4, 32, true),
                     R"({"down_proj": {"bits": 8}, "layers\\.0\\.self_attn\\.k": {"bits": 16}})");
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_0, job->out).ok());
  GgufContents g = ReadGguf(job->out);
  CheckTensors(*job, g, /*permute=*/true);
  EXPECT_EQ(g.Tensor("blk.1.ffn_down.weight").type, kTQ8_0);
  EXPECT_EQ(g.Tensor("blk.0.attn_k.weight").type, kTF16);  // permuted F16
  EXPECT_EQ(g.Tensor("blk.1.attn_k.weight").type, kTQ4_0);
}

TEST(GgufExportTest, Qwen2HasBiasesAndNoPermutation) {
  ModelConfig c = TinyConfig();
  c.model_type = "qwen2";
  c.qkv_bias = true;
  auto job = MakeJob(c, DType::kBF16, Scheme(4, 32, true));
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_0, job->out).ok());
  GgufContents g = ReadGguf(job->out);
  ExpectModelMetadata(g, c, "qwen2", 2, "tiny-llama");
  CheckTensors(*job, g, /*permute=*/false);
  EXPECT_EQ(g.Tensor("blk.0.attn_k.bias").type, kTF32);
}

TEST(GgufExportTest, BpeTokenizerMetadata) {
  ModelConfig c = TinyConfig();
  c.model_type = "qwen2";
  c.qkv_bias = true;
  auto job = MakeJob(c, DType::kBF16, Scheme(4, 32, false));
  testing::WriteFile(job->model_dir + "/tokenizer.json", R"({
    "added_tokens": [{"id": 38, "content": "<|endoftext|>", "special": true}],
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
      {"type": "ByteLevel", "use_regex": false}]},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}})");
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_1, job->out).ok());
  GgufContents g = ReadGguf(job->out);
  ExpectModelMetadata(g, c, "qwen2", 3, "tiny-llama");
  ExpectStr(g, "tokenizer.ggml.model", "gpt2");
  ExpectStr(g, "tokenizer.ggml.pre", "qwen2");
  const Value& tokens = g.kv.at("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.elem_type, kStr);
  ASSERT_EQ(tokens.items.size(), 40u);
  EXPECT_EQ(tokens.items[2].s, "ab");
  EXPECT_EQ(tokens.items[3].s, "[PAD3]");
  EXPECT_EQ(tokens.items[38].s, "<|endoftext|>");
  const Value& types = g.kv.at("tokenizer.ggml.token_type");
  ASSERT_EQ(types.elem_type, kI32);
  EXPECT_EQ(types.items[0].i, 1);
  EXPECT_EQ(types.items[3].i, 5);
  EXPECT_EQ(types.items[38].i, 3);
  const Value& merges = g.kv.at("tokenizer.ggml.merges");
  ASSERT_EQ(merges.elem_type, kStr);
  ASSERT_EQ(merges.items.size(), 1u);
  EXPECT_EQ(merges.items[0].s, "a b");
  ExpectU32(g, "tokenizer.ggml.bos_token_id", 1);
  ExpectU32(g, "tokenizer.ggml.eos_token_id", 2);
  EXPECT_EQ(g.kv.count("tokenizer.ggml.scores"), 0u);
  EXPECT_EQ(g.kv.size(), 16u + 7u);  // model, pre, tokens, token_type, merges, bos, eos
  CheckTensors(*job, g, /*permute=*/false);
}

TEST(GgufExportTest, Llama3RopeFreqs) {
  ModelConfig c = TinyConfig();
  c.head_dim = 64;
  c.rope_scaling = RopeScaling{"llama3", 8.0, 1.0, 4.0, 256};
  auto job = MakeJob(c, DType::kBF16, Scheme(4, 32, true));
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_0, job->out).ok());
  GgufContents g = ReadGguf(job->out);
  ExpectModelMetadata(g, c, "llama", 2, "tiny-llama");
  CheckTensors(*job, g, true);
  const TensorInfo& t = g.Tensor("rope_freqs.weight");
  ASSERT_EQ(t.ne, std::vector<uint64_t>{32});
  std::vector<double> got = Dequantize(g, t);
  // transformers' llama3 rule: 1 for short wavelengths, `factor` for long, smooth between.
  int ones = 0, factors = 0, smooth = 0;
  for (int i = 0; i < 32; ++i) {
    const double freq = 1.0 / std::pow(500000.0, 2.0 * i / 64);
    const double wavelen = 2 * M_PI / freq;
    double want;
    if (wavelen < 256 / 4.0) {
      want = 1, ++ones;
    } else if (wavelen > 256 / 1.0) {
      want = 8, ++factors;
    } else {
      const double s = (256 / wavelen - 1.0) / (4.0 - 1.0);
      want = 1 / ((1 - s) / 8 + s), ++smooth;
    }
    EXPECT_NEAR(got[i], want, 1e-5 * want) << i;
  }
  EXPECT_GT(ones, 0);
  EXPECT_GT(factors, 0);
  EXPECT_GT(smooth, 0);
  EXPECT_EQ(Llama3RopeFactors(c).size(), 32u);
}

TEST(GgufExportTest, BabyLlamaWithTokenizer) {
  const std::string shared = testing::SharedDir();
  if (shared.empty()) GTEST_SKIP() << "no ../shared";
  const std::string dir = shared + "/models/babyllama-105";
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  TempDir tmp;
  std::vector<LayerPlan> plans = PlanLayers(DecoderLinears(ckpt->config()), Scheme(4, 32, true));
  std::vector<std::string> files = WriteBlockFiles(tmp.path(), ckpt->config(), plans);
  absl::StatusOr<ExportSource> source = ExportSource::Open(*ckpt, plans, files);
  ASSERT_TRUE(source.ok()) << source.status();
  const std::string out = tmp.File(GgufFileName("babyllama-105", GgufFormat::kQ4_0));
  EXPECT_THAT(out, ::testing::EndsWith("/babyllama-105-Q4_0.gguf"));
  ASSERT_TRUE(ExportGguf(*source, GgufFormat::kQ4_0, out).ok());
  GgufContents g = ReadGguf(out);
  ExpectModelMetadata(g, ckpt->config(), "llama", 2, "babyllama-105");
  ExpectStr(g, "tokenizer.ggml.model", "llama");
  ExpectStr(g, "tokenizer.ggml.pre", "default");  // llama.cpp's converter's, for SentencePiece
  const Value& tokens = g.kv.at("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.elem_type, kStr);
  ASSERT_EQ(tokens.items.size(), 105u);
  EXPECT_EQ(tokens.items[0].s, "<unk>");
  EXPECT_EQ(tokens.items[1].s, "<s>");
  EXPECT_EQ(tokens.items[3].s, "\xe2\x96\x81");
  const Value& scores = g.kv.at("tokenizer.ggml.scores");
  ASSERT_EQ(scores.elem_type, kF32);
  ASSERT_EQ(scores.items.size(), 105u);
  EXPECT_EQ(scores.items[4].f, -1.0);
  const Value& types = g.kv.at("tokenizer.ggml.token_type");
  ASSERT_EQ(types.elem_type, kI32);
  ASSERT_EQ(types.items.size(), 105u);
  EXPECT_EQ(types.items[0].i, 2);
  EXPECT_EQ(types.items[1].i, 3);
  EXPECT_EQ(types.items[2].i, 3);
  EXPECT_EQ(types.items[50].i, 1);
  ExpectU32(g, "tokenizer.ggml.bos_token_id", 1);
  ExpectU32(g, "tokenizer.ggml.eos_token_id", 2);
  ExpectU32(g, "tokenizer.ggml.unknown_token_id", 0);
  EXPECT_EQ(g.kv.count("tokenizer.ggml.padding_token_id"), 0u);
  EXPECT_EQ(g.kv.count("output.weight"), 0u);  // tied
  Job view;
  view.ckpt = std::make_unique<Checkpoint>(*std::move(ckpt));
  view.source = std::make_unique<ExportSource>(*std::move(source));
  CheckTensors(view, g, true);
}

// general.size_label on hand-counted models (the label llama.cpp's converter would write).
TEST(GgufExportTest, SizeLabelCountsEveryTensorInTheFile) {
  // TinyConfig, untied: per layer 2 norms of 64, q 64x64, k and v 32x64, o 64x64, gate, up
  // and down 96x64 = 30848; two layers 61696; token_embd and output 40x64 each, output_norm
  // 64: 66880 = 66.88K -> "67K". Tied: no output (-2560) = 64320 -> "64K".
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    ModelConfig c = TinyConfig();
    c.tie_word_embeddings = tied;
    auto job = MakeJob(c, DType::kBF16, Scheme(4, 32, true));
    ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_0, job->out).ok());
    GgufContents g = ReadGguf(job->out);
    EXPECT_EQ(ParameterCount(g), tied ? 64320u : 66880u);
    ExpectStr(g, "general.size_label", tied ? "64K" : "67K");
    ExpectStr(g, "general.type", "model");
  }
  // Llama-3 RoPE scaling adds the rope_freqs tensor (head_dim / 2 = 32 values).
  {
    ModelConfig c = TinyConfig();
    c.head_dim = 64;  // q 256x64, k and v 128x64, o 64x256
    c.rope_scaling = RopeScaling{"llama3", 8.0, 1.0, 4.0, 256};
    auto job = MakeJob(c, DType::kBF16, Scheme(4, 32, true));
    ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_0, job->out).ok());
    GgufContents g = ReadGguf(job->out);
    // 2 x (128 + 16384 + 8192 + 8192 + 16384 + 18432) + 2 x 2560 + 64 + 32 = 140640
    EXPECT_EQ(ParameterCount(g), 140640u);
    ExpectStr(g, "general.size_label", "141K");
  }
  // Millions keep one decimal below 9.5M: hidden 256, 4 heads of 64, intermediate 512,
  // 2 layers, vocab 1000: per layer 512 + 4 x 65536 + 3 x 131072 = 655872; ends
  // 2 x 256000 + 256: 1824000 -> "1.8M".
  {
    ModelConfig c = TinyConfig();
    c.hidden_size = 256;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 4;
    c.head_dim = 64;
    c.intermediate_size = 512;
    c.vocab_size = 1000;
    auto job = MakeJob(c, DType::kBF16, Scheme(8, 32, true));
    ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ8_0, job->out).ok());
    GgufContents g = ReadGguf(job->out);
    EXPECT_EQ(ParameterCount(g), 1824000u);
    ExpectStr(g, "general.size_label", "1.8M");
  }
}

// The test's own notation against gguf-py's on counts around each boundary.
TEST(GgufExportTest, RoundedNotationMatchesGgufPy) {
  EXPECT_EQ(RoundedNotation(260), "0.26K");
  EXPECT_EQ(RoundedNotation(499), "0.50K");  // round(0.499) = 0: two decimals
  EXPECT_EQ(RoundedNotation(4400), "4.4K");
  EXPECT_EQ(RoundedNotation(9499), "9.5K");
  EXPECT_EQ(RoundedNotation(9500), "10K");   // round(9.5) = 10: two digits, no decimals
  EXPECT_EQ(RoundedNotation(10500), "10K");  // 10.5 rounds half to even
  EXPECT_EQ(RoundedNotation(11500), "12K");
  EXPECT_EQ(RoundedNotation(999999), "1000K");
  EXPECT_EQ(RoundedNotation(1000000), "1.0M");
  EXPECT_EQ(RoundedNotation(6738415616), "6.7B");
  EXPECT_EQ(RoundedNotation(70553706496), "71B");
  EXPECT_EQ(RoundedNotation(1500000000000), "1.5T");
}

TEST(GgufExportTest, BadCodeFailsAndLeavesNoFile) {
  ModelConfig c = TinyConfig();
  auto job = MakeJob(c, DType::kBF16, Scheme(4, 32, true));
  // Rewrite layer 1's block file with one code past 4 bits, then reopen.
  std::vector<LayerPlan> plans = job->source->plans();
  std::vector<TensorSpec> specs;
  std::map<std::string, std::string> data;
  for (const LayerPlan& p : plans) {
    if (p.layer.layer != 1) continue;
    const IntegerLayer* l = *job->source->Layer(p.layer.name);
    specs.push_back({p.layer.name + ".codes", DType::kU8, {l->out, l->in}});
    specs.push_back({p.layer.name + ".scales", DType::kF16, {l->out, l->groups()}});
    specs.push_back({p.layer.name + ".zeros", DType::kU8, {l->out, l->groups()}});
    data[p.layer.name + ".codes"] = std::string(l->codes);
    data[p.layer.name + ".scales"] = std::string(l->scales);
    data[p.layer.name + ".zeros"] = std::string(l->zeros);
  }
  data["model.layers.1.mlp.down_proj.codes"][77] = 16;
  const std::string bad = job->tmp->File("bad_block_1.safetensors");
  ASSERT_TRUE(WriteSafetensors(bad, specs, [&](const TensorSpec& s) {
                return absl::StatusOr<absl::string_view>(data[s.name]);
              }).ok());
  absl::StatusOr<ExportSource> source =
      ExportSource::Open(*job->ckpt, plans, {job->tmp->File("block_0.safetensors"), bad});
  ASSERT_TRUE(source.ok()) << source.status();
  absl::Status s = ExportGguf(*source, GgufFormat::kQ4_0, job->out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(s.message(), "model.layers.1.mlp.down_proj: row 0 group 2: code 16 exceeds 15");
  // Neither the file nor a temporary one is left behind.
  DIR* d = ::opendir(job->tmp->path().c_str());
  for (dirent* e; (e = ::readdir(d)) != nullptr;) {
    EXPECT_EQ(std::string(e->d_name).find("out.gguf"), std::string::npos) << e->d_name;
  }
  ::closedir(d);
}

// --- CheckGgufExport --------------------------------------------------------

std::vector<LayerPlan> Plans(const ModelConfig& c, const QuantScheme& s,
                             const std::string& layer_config = "") {
  std::vector<LayerOverride> o;
  if (!layer_config.empty()) o = *ParseLayerConfig(layer_config, "layers.json");
  return PlanLayers(DecoderLinears(c), s, o);
}

std::string CheckMessage(GgufFormat f, const ModelConfig& c, const std::vector<LayerPlan>& p) {
  absl::Status s = CheckGgufExport(f, c, p);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  return std::string(s.message());
}

TEST(CheckGgufExportTest, AcceptsExactMappings) {
  ModelConfig c = TinyConfig();
  EXPECT_TRUE(CheckGgufExport(GgufFormat::kQ4_0, c, Plans(c, Scheme(4, 32, true))).ok());
  EXPECT_TRUE(CheckGgufExport(GgufFormat::kQ4_1, c, Plans(c, Scheme(4, 32, false))).ok());
  EXPECT_TRUE(CheckGgufExport(GgufFormat::kQ8_0, c, Plans(c, Scheme(8, 32, true))).ok());
  EXPECT_TRUE(CheckGgufExport(GgufFormat::kQ4_0, c,
                              Plans(c, Scheme(4, 32, true), R"({"down": {"bits": 8}})"))
                  .ok());
  EXPECT_TRUE(CheckGgufExport(GgufFormat::kQ8_0, c,
                              Plans(c, Scheme(2, 128, true), R"({".": {"bits": 16}})"))
                  .ok());  // nothing quantized
  c.model_type = "mistral";
  EXPECT_TRUE(CheckGgufExport(GgufFormat::kQ4_0, c, Plans(c, Scheme(4, 32, true))).ok());
}

TEST(CheckGgufExportTest, RefusesTheDefaultSchemeOfAnotherFormat) {
  ModelConfig c = TinyConfig();
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, Plans(c, Scheme(2, 128, true))),
            "gguf:q4_0 needs 4-bit symmetric group-size-32 layers; this job quantizes to 2-bit "
            "symmetric group 128 (use auto_round or auto_gptq)");
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, Plans(c, Scheme(4, 32, false))),
            "gguf:q4_0 needs 4-bit symmetric group-size-32 layers; this job quantizes to 4-bit "
            "asymmetric group 32 (use gguf:q4_1)");
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_1, c, Plans(c, Scheme(4, 128, false))),
            "gguf:q4_1 needs 4-bit asymmetric group-size-32 layers; this job quantizes to 4-bit "
            "asymmetric group 128 (use auto_round or auto_gptq)");
  EXPECT_EQ(CheckMessage(GgufFormat::kQ8_0, c, Plans(c, Scheme(4, 32, true))),
            "gguf:q8_0 needs 8-bit symmetric group-size-32 layers; this job quantizes to 4-bit "
            "symmetric group 32 (use gguf:q4_0)");
  EXPECT_EQ(CheckMessage(GgufFormat::kQ8_0, c, Plans(c, Scheme(8, 32, false))),
            "gguf:q8_0 needs 8-bit symmetric group-size-32 layers; this job quantizes to 8-bit "
            "asymmetric group 32 (use auto_round or auto_gptq)");
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, Plans(c, Scheme(4, -1, true))),
            "gguf:q4_0 needs 4-bit symmetric group-size-32 layers; this job quantizes to 4-bit "
            "symmetric group -1 (use auto_round or auto_gptq)");
}

TEST(CheckGgufExportTest, RefusesALayerWithNoExactType) {
  ModelConfig c = TinyConfig();
  EXPECT_EQ(
      CheckMessage(GgufFormat::kQ4_0, c,
                   Plans(c, Scheme(4, 32, true), R"({"layers\\.1\\.mlp\\.down": {"bits": 2}})")),
      "gguf:q4_0: layer model.layers.1.mlp.down_proj is 2-bit symmetric group 32; GGUF stores "
      "only group-size-32 layers of 4-bit symmetric (Q4_0), 4-bit asymmetric (Q4_1) or 8-bit "
      "symmetric (Q8_0) (use auto_round or auto_gptq)");
}

TEST(CheckGgufExportTest, RefusesModelTypesAndRopeScaling) {
  ModelConfig c = TinyConfig();
  std::vector<LayerPlan> p = Plans(c, Scheme(4, 32, true));
  c.model_type = "gemma";
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, p),
            "gguf:q4_0: model_type 'gemma' cannot be exported (llama, mistral, qwen2, qwen3, "
            "qwen3_moe, mixtral, gemma3_text, phi3)");
  c.model_type = "qwen2";
  c.rope_scaling = RopeScaling{"llama3", 8.0};
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, p),
            "gguf:q4_0: rope_scaling type 'llama3' cannot be exported for model_type 'qwen2' "
            "(GGUF export supports linear, and llama3 for llama)");
  c.rope_scaling = RopeScaling{"yarn", 4.0};
  c.model_type = "llama";
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, p),
            "gguf:q4_0: rope_scaling type 'yarn' cannot be exported for model_type 'llama' "
            "(GGUF export supports linear, and llama3 for llama)");
}

// --- the other families: tensor plans from GgufNaming ------------------------

// A tiny config of `model_type` (2 layers, hidden 64, 4 heads of 16, 2 KV heads, ffn 32;
// MoE: 4 experts, 2 per token, each with ffn 32), as make-test-model writes it.
ModelConfig FamilyConfig(const std::string& model_type, int64_t layers = 2) {
  RandomCheckpointOptions o;
  o.model_type = model_type;
  o.hidden_size = 64;
  o.intermediate_size = 32;
  o.num_layers = layers;
  o.num_heads = 4;
  o.num_kv_heads = 2;
  o.vocab_size = 40;
  o.max_position_embeddings = 512;
  o.num_experts = 4;
  o.experts_per_token = 2;
  absl::StatusOr<ModelConfig> c = RandomCheckpointConfig(o);
  if (!c.ok()) throw std::runtime_error(std::string(c.status().message()));
  if (c->gemma_norms) c->query_pre_attn_scalar = 16;  // llama.cpp's head_dim^-0.5
  return *c;
}

std::set<std::string> TensorNames(const GgufContents& g) {
  std::set<std::string> out;
  for (const TensorInfo& t : g.tensors) out.insert(t.name);
  return out;
}

// GGUF tensor `name` holds the Linears `layers` (one [out, in], or a stack of experts
// [experts, out, in] in expert order): every element from the integer weights when they
// are quantized, else the checkpoint's weights rounded to F16.
void ExpectLinearTensor(const Job& job, const GgufContents& g, const std::string& name,
                        const std::vector<std::string>& layers, uint32_t type,
                        int64_t permute_heads = 0) {
  SCOPED_TRACE(name);
  const TensorInfo& t = g.Tensor(name);
  EXPECT_EQ(t.type, type);
  const LinearLayer* first = nullptr;
  std::vector<LinearLayer> linears = DecoderLinears(job.source->config());
  for (const LinearLayer& l : linears) {
    if (l.name == layers.front()) first = &l;
  }
  ASSERT_NE(first, nullptr);
  const int64_t out = first->out, in = first->in;
  std::vector<uint64_t> ne = {static_cast<uint64_t>(in), static_cast<uint64_t>(out)};
  if (layers.size() > 1) ne.push_back(layers.size());
  ASSERT_EQ(t.ne, ne);
  const std::vector<double> x = Dequantize(g, t);
  for (size_t e = 0; e < layers.size(); ++e) {
    const IntegerLayer* layer = *job.source->Layer(layers[e]);
    const std::vector<double> w =
        layer == nullptr ? CheckpointValues(job, layers[e] + ".weight") : std::vector<double>();
    for (int64_t r = 0; r < out; ++r) {
      const int64_t n = permute_heads ? HfRow(r, out, permute_heads) : r;
      for (int64_t k = 0; k < in; ++k) {
        const double got = x[(e * out + r) * in + k];
        if (layer != nullptr) {
          ASSERT_EQ(got, Half(layer->scale_bits(n, k / 32)) *
                             (layer->code(n, k) - layer->zero(n, k / 32)))
              << layers[e] << " row " << r << " col " << k;
        } else {
          ASSERT_EQ(got, Half(FloatToF16(static_cast<float>(w[n * in + k]))))
              << layers[e] << " row " << r << " col " << k;
        }
      }
    }
  }
}

// GGUF tensor `name` is the checkpoint's `hf` in F32 plus `shift`.
void ExpectF32Tensor(const Job& job, const GgufContents& g, const std::string& name,
                     const std::string& hf, float shift = 0) {
  SCOPED_TRACE(name);
  const TensorInfo& t = g.Tensor(name);
  EXPECT_EQ(t.type, kTF32);
  Checkpoint::Tensor src = *job.ckpt->Find(hf);
  std::vector<uint64_t> ne(src.entry->shape.rbegin(), src.entry->shape.rend());
  ASSERT_EQ(t.ne, ne);
  const std::vector<double> w = CheckpointValues(job, hf), x = Dequantize(g, t);
  ASSERT_EQ(x.size(), w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    ASSERT_EQ(x[i], static_cast<float>(w[i]) + shift) << i;
  }
}

std::vector<std::string> Experts(int64_t layer, const std::string& prefix, const std::string& name,
                                 int64_t experts) {
  std::vector<std::string> out;
  for (int64_t e = 0; e < experts; ++e) {
    out.push_back(absl::StrCat("model.layers.", layer, ".", prefix, e, ".", name));
  }
  return out;
}

TEST(GgufFamilyExportTest, Qwen3MoeStacksEachLayersExperts) {
  ModelConfig c = FamilyConfig("qwen3_moe");
  // Layer 1's experts stay 16-bit (all of them: one stacked tensor has one type).
  auto job = MakeJob(c, DType::kBF16, Scheme(4, 32, true),
                     R"({"layers\\.1\\.mlp\\.experts\\.": {"bits": 16}})");
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_0, job->out).ok());
  GgufContents g = ReadGguf(job->out);
  ExpectStr(g, "general.architecture", "qwen3moe");
  ExpectU32(g, "qwen3moe.feed_forward_length", c.intermediate_size);
  ExpectU32(g, "qwen3moe.expert_count", 4);
  ExpectU32(g, "qwen3moe.expert_used_count", 2);
  ExpectU32(g, "qwen3moe.expert_feed_forward_length", 32);
  ExpectU32(g, "qwen3moe.rope.dimension_count", 16);
  ExpectF32(g, "qwen3moe.attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  std::set<std::string> want = {"token_embd.weight", "output_norm.weight", "output.weight"};
  for (int i = 0; i < 2; ++i) {
    for (const char* n :
         {"attn_norm", "ffn_norm", "attn_q_norm", "attn_k_norm", "attn_q", "attn_k", "attn_v",
          "attn_output", "ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"}) {
      want.insert(absl::StrCat("blk.", i, ".", n, ".weight"));
    }
  }
  EXPECT_EQ(TensorNames(g), want);
  for (int64_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    const std::string blk = absl::StrCat("blk.", i, "."),
                      hf = absl::StrCat("model.layers.", i, ".");
    const uint32_t type = i == 0 ? kTQ4_0 : kTF16;
    ExpectLinearTensor(*job, g, blk + "ffn_gate_exps.weight",
                       Experts(i, "mlp.experts.", "gate_proj", 4), type);
    ExpectLinearTensor(*job, g, blk + "ffn_up_exps.weight",
                       Experts(i, "mlp.experts.", "up_proj", 4), type);
    ExpectLinearTensor(*job, g, blk + "ffn_down_exps.weight",
                       Experts(i, "mlp.experts.", "down_proj", 4), type);
    EXPECT_EQ(g.Tensor(blk + "ffn_down_exps.weight").ne, (std::vector<uint64_t>{32, 64, 4}));
    ExpectLinearTensor(*job, g, blk + "attn_q.weight", {hf + "self_attn.q_proj"}, kTQ4_0);
    ExpectLinearTensor(*job, g, blk + "attn_k.weight", {hf + "self_attn.k_proj"}, kTQ4_0);
    ExpectF32Tensor(*job, g, blk + "ffn_gate_inp.weight", hf + "mlp.gate.weight");
    EXPECT_EQ(g.Tensor(blk + "ffn_gate_inp.weight").ne, (std::vector<uint64_t>{64, 4}));
    ExpectF32Tensor(*job, g, blk + "attn_q_norm.weight", hf + "self_attn.q_norm.weight");
    ExpectF32Tensor(*job, g, blk + "attn_k_norm.weight", hf + "self_attn.k_norm.weight");
    ExpectF32Tensor(*job, g, blk + "ffn_norm.weight", hf + "post_attention_layernorm.weight");
  }
}

TEST(GgufFamilyExportTest, MixtralIsLlamaWithExperts) {
  ModelConfig c = FamilyConfig("mixtral");
  auto job = MakeJob(c, DType::kF16, Scheme(8, 32, true),
                     R"({"layers\\.0\\.block_sparse_moe\\.experts\\.\\d+\\.w2": {"bits": 4}})");
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ8_0, job->out).ok());
  GgufContents g = ReadGguf(job->out);
  ExpectStr(g, "general.architecture", "llama");
  ExpectU32(g, "llama.feed_forward_length", 32);
  ExpectU32(g, "llama.expert_count", 4);
  ExpectU32(g, "llama.expert_used_count", 2);
  EXPECT_EQ(g.kv.count("llama.expert_feed_forward_length"), 0u);
  EXPECT_EQ(g.tensors.size(), 3u + 2 * 10);
  for (int64_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    const std::string blk = absl::StrCat("blk.", i, "."),
                      hf = absl::StrCat("model.layers.", i, ".");
    // w1 / w3 / w2 are gate / up / down.
    ExpectLinearTensor(*job, g, blk + "ffn_gate_exps.weight",
                       Experts(i, "block_sparse_moe.experts.", "w1", 4), kTQ8_0);
    ExpectLinearTensor(*job, g, blk + "ffn_up_exps.weight",
                       Experts(i, "block_sparse_moe.experts.", "w3", 4), kTQ8_0);
    ExpectLinearTensor(*job, g, blk + "ffn_down_exps.weight",
                       Experts(i, "block_sparse_moe.experts.", "w2", 4), i == 0 ? kTQ4_0 : kTQ8_0);
    // The "llama" architecture's q/k row order.
    ExpectLinearTensor(*job, g, blk + "attn_q.weight", {hf + "self_attn.q_proj"}, kTQ8_0, 4);
    ExpectLinearTensor(*job, g, blk + "attn_k.weight", {hf + "self_attn.k_proj"}, kTQ8_0, 2);
    ExpectF32Tensor(*job, g, blk + "ffn_gate_inp.weight", hf + "block_sparse_moe.gate.weight");
    ExpectF32Tensor(*job, g, blk + "ffn_norm.weight", hf + "post_attention_layernorm.weight");
  }
}

TEST(GgufFamilyExportTest, Gemma3NormsShiftedAndSlidingWindow) {
  ModelConfig c = FamilyConfig("gemma3_text", 3);
  c.tie_word_embeddings = true;
  c.sliding_window = 64;
  c.rope_theta = 1e6;
  c.rope_local_theta = 1e4;
  c.sliding_layers = {true, true, false};  // llama.cpp's pattern 3
  auto job = MakeJob(c, DType::kBF16, Scheme(4, 32, true));
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_0, job->out).ok());
  GgufContents g = ReadGguf(job->out);
  ExpectStr(g, "general.architecture", "gemma3");
  ExpectU32(g, "gemma3.attention.sliding_window", 64);
  ExpectU32(g, "gemma3.attention.sliding_window_pattern", 3);
  ExpectF32(g, "gemma3.rope.freq_base_swa", 1e4);
  ExpectF32(g, "gemma3.rope.freq_base", 1e6);
  std::set<std::string> want = {"token_embd.weight", "output_norm.weight"};  // tied
  for (int i = 0; i < 3; ++i) {
    for (const char* n : {"attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm",
                          "attn_q_norm", "attn_k_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                          "ffn_gate", "ffn_up", "ffn_down"}) {
      want.insert(absl::StrCat("blk.", i, ".", n, ".weight"));
    }
  }
  EXPECT_EQ(TensorNames(g), want);
  // Every norm is x * (1 + w) in Gemma and x * w in llama.cpp: +1 on export.
  ExpectF32Tensor(*job, g, "output_norm.weight", "model.norm.weight", 1);
  for (int64_t i = 0; i < 3; ++i) {
    const std::string blk = absl::StrCat("blk.", i, "."),
                      hf = absl::StrCat("model.layers.", i, ".");
    ExpectF32Tensor(*job, g, blk + "attn_norm.weight", hf + "input_layernorm.weight", 1);
    ExpectF32Tensor(*job, g, blk + "post_attention_norm.weight",
                    hf + "post_attention_layernorm.weight", 1);
    ExpectF32Tensor(*job, g, blk + "ffn_norm.weight", hf + "pre_feedforward_layernorm.weight", 1);
    ExpectF32Tensor(*job, g, blk + "post_ffw_norm.weight", hf + "post_feedforward_layernorm.weight",
                    1);
    ExpectF32Tensor(*job, g, blk + "attn_q_norm.weight", hf + "self_attn.q_norm.weight", 1);
    ExpectF32Tensor(*job, g, blk + "attn_k_norm.weight", hf + "self_attn.k_norm.weight", 1);
    ExpectLinearTensor(*job, g, blk + "attn_q.weight", {hf + "self_attn.q_proj"}, kTQ4_0);
    ExpectLinearTensor(*job, g, blk + "ffn_gate.weight", {hf + "mlp.gate_proj"}, kTQ4_0);
  }
  // Without a sliding layer, no sliding-window keys: llama.cpp makes every layer global.
  c.sliding_layers = {false, false, false};
  auto global = MakeJob(c, DType::kBF16, Scheme(4, 32, true));
  ASSERT_TRUE(ExportGguf(*global->source, GgufFormat::kQ4_0, global->out).ok());
  GgufContents gg = ReadGguf(global->out);
  EXPECT_EQ(gg.kv.count("gemma3.attention.sliding_window"), 0u);
  EXPECT_EQ(gg.kv.count("gemma3.attention.sliding_window_pattern"), 0u);
  // Every layer sliding: pattern 0.
  c.sliding_layers = {true, true, true};
  auto all = MakeJob(c, DType::kBF16, Scheme(4, 32, true));
  ASSERT_TRUE(ExportGguf(*all->source, GgufFormat::kQ4_0, all->out).ok());
  ExpectU32(ReadGguf(all->out), "gemma3.attention.sliding_window_pattern", 0);
}

TEST(GgufFamilyExportTest, Phi3KeepsFusedLinears) {
  ModelConfig c = FamilyConfig("phi3");
  auto job = MakeJob(c, DType::kF32, Scheme(4, 32, true), "", "phi3-tiny");
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_0, job->out).ok());
  GgufContents g = ReadGguf(job->out);
  ExpectStr(g, "general.architecture", "phi3");
  // No vocabulary with <|endoftext|> etc.: a name llama.cpp's Phi-3 rule does not match.
  ExpectStr(g, "general.name", "phi 3-tiny");
  std::set<std::string> want = {"token_embd.weight", "output_norm.weight", "output.weight"};
  for (int i = 0; i < 2; ++i) {
    for (const char* n :
         {"attn_norm", "ffn_norm", "attn_qkv", "attn_output", "ffn_up", "ffn_down"}) {
      want.insert(absl::StrCat("blk.", i, ".", n, ".weight"));
    }
  }
  EXPECT_EQ(TensorNames(g), want);
  for (int64_t i = 0; i < 2; ++i) {
    const std::string blk = absl::StrCat("blk.", i, "."),
                      hf = absl::StrCat("model.layers.", i, ".");
    ExpectLinearTensor(*job, g, blk + "attn_qkv.weight", {hf + "self_attn.qkv_proj"}, kTQ4_0);
    EXPECT_EQ(g.Tensor(blk + "attn_qkv.weight").ne, (std::vector<uint64_t>{64, 64 + 2 * 32}));
    ExpectLinearTensor(*job, g, blk + "ffn_up.weight", {hf + "mlp.gate_up_proj"}, kTQ4_0);
    EXPECT_EQ(g.Tensor(blk + "ffn_up.weight").ne, (std::vector<uint64_t>{64, 2 * 32}));
    ExpectLinearTensor(*job, g, blk + "ffn_down.weight", {hf + "mlp.down_proj"}, kTQ4_0);
  }
}

TEST(GgufFamilyExportTest, Phi3NameKeptWithThePhi3Tokens) {
  ModelConfig c = FamilyConfig("phi3");
  {
    auto job = MakeJob(c, DType::kBF16, Scheme(4, 32, true), "", "Tiny-Phi-3-PHI3");
    ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_0, job->out).ok());
    ExpectStr(ReadGguf(job->out), "general.name", "Tiny-Phi 3-PHI 3");
  }
  // A vocabulary holding <unk>, <s>, </s> and <|endoftext|>: llama.cpp's rule finds them.
  auto job = MakeJob(c, DType::kBF16, Scheme(4, 32, true), "", "phi3-tiny");
  testing::WriteFile(job->model_dir + "/tokenizer.json", R"({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true},
                     {"id": 1, "content": "<s>", "special": true},
                     {"id": 2, "content": "</s>", "special": true},
                     {"id": 3, "content": "<|endoftext|>", "special": true}],
    "model": {"type": "BPE", "vocab": {"a": 4, "b": 5}, "merges": []}})");
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_0, job->out).ok());
  ExpectStr(ReadGguf(job->out), "general.name", "phi3-tiny");
}

TEST(GgufFamilyExportTest, Qwen3HasQkNormsAndNoPermutation) {
  ModelConfig c = FamilyConfig("qwen3");
  c.head_dim = 32;  // != hidden / heads: key_length and value_length
  auto job = MakeJob(c, DType::kBF16, Scheme(4, 32, true));
  ASSERT_TRUE(ExportGguf(*job->source, GgufFormat::kQ4_0, job->out).ok());
  GgufContents g = ReadGguf(job->out);
  ExpectStr(g, "general.architecture", "qwen3");
  ExpectU32(g, "qwen3.attention.key_length", 32);
  ExpectU32(g, "qwen3.attention.value_length", 32);
  EXPECT_EQ(g.tensors.size(), 3u + 2 * 11);
  for (int64_t i = 0; i < 2; ++i) {
    const std::string blk = absl::StrCat("blk.", i, "."),
                      hf = absl::StrCat("model.layers.", i, ".");
    ExpectF32Tensor(*job, g, blk + "attn_q_norm.weight", hf + "self_attn.q_norm.weight");
    EXPECT_EQ(g.Tensor(blk + "attn_q_norm.weight").ne, std::vector<uint64_t>{32});
    ExpectF32Tensor(*job, g, blk + "attn_k_norm.weight", hf + "self_attn.k_norm.weight");
    ExpectLinearTensor(*job, g, blk + "attn_q.weight", {hf + "self_attn.q_proj"}, kTQ4_0);
    ExpectLinearTensor(*job, g, blk + "attn_k.weight", {hf + "self_attn.k_proj"}, kTQ4_0);
    EXPECT_EQ(g.Tensor(blk + "attn_q.weight").ne, (std::vector<uint64_t>{64, 128}));
  }
}

// --- what llama.cpp cannot represent ----------------------------------------

TEST(CheckGgufExportTest, AcceptsEveryFamily) {
  for (const char* type : {"qwen3", "qwen3_moe", "mixtral", "gemma3_text", "phi3"}) {
    SCOPED_TRACE(type);
    ModelConfig c = FamilyConfig(type);
    EXPECT_TRUE(CheckGgufExport(GgufFormat::kQ4_0, c, Plans(c, Scheme(4, 32, true))).ok());
    EXPECT_TRUE(CheckGgufExport(GgufFormat::kQ8_0, c, Plans(c, Scheme(8, 32, true))).ok());
  }
}

TEST(CheckGgufExportTest, RefusesQwen3MoeDenseLayersAndUnnormalisedRouting) {
  ModelConfig c = FamilyConfig("qwen3_moe", 4);
  c.moe->mlp_only_layers = {1, 3};
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, Plans(c, Scheme(4, 32, true))),
            "gguf:q4_0: mlp_only_layers [1, 3] cannot be exported: llama.cpp's qwen3moe has a "
            "sparse MoE MLP in every layer (no dense MLP layers)");
  c.moe->mlp_only_layers = {};
  c.moe->decoder_sparse_step = 2;
  EXPECT_EQ(CheckMessage(GgufFormat::kQ8_0, c, Plans(c, Scheme(8, 32, true))),
            "gguf:q8_0: decoder_sparse_step 2 cannot be exported: llama.cpp's qwen3moe has a "
            "sparse MoE MLP in every layer (no dense MLP layers)");
  c.moe->decoder_sparse_step = 1;
  c.moe->norm_topk_prob = false;
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, Plans(c, Scheme(4, 32, true))),
            "gguf:q4_0: norm_topk_prob false cannot be exported: llama.cpp's qwen3moe always "
            "renormalises the top-k routing weights to sum to 1");
}

TEST(CheckGgufExportTest, RefusesExpertsOfOneLayerWithDifferentSchemes) {
  ModelConfig c = FamilyConfig("qwen3_moe");
  EXPECT_EQ(
      CheckMessage(GgufFormat::kQ4_0, c,
                   Plans(c, Scheme(4, 32, true),
                         R"({"layers\\.1\\.mlp\\.experts\\.2\\.up_proj": {"bits": 8}})")),
      "gguf:q4_0: model.layers.1.mlp.experts.2.up_proj is 8-bit symmetric group 32 but "
      "model.layers.1.mlp.experts.0.up_proj is 4-bit symmetric group 32: llama.cpp stacks every "
      "expert's up_proj of a layer into one tensor of one type (blk.1.ffn_up_exps); give the "
      "experts of a layer one scheme");
  c = FamilyConfig("mixtral");
  EXPECT_EQ(CheckMessage(GgufFormat::kQ8_0, c,
                         Plans(c, Scheme(8, 32, true), R"({"experts\\.0\\.w2": {"bits": 16}})")),
            "gguf:q8_0: model.layers.0.block_sparse_moe.experts.1.w2 is 8-bit symmetric group 32 "
            "but model.layers.0.block_sparse_moe.experts.0.w2 is 16-bit: llama.cpp stacks every "
            "expert's w2 of a layer into one tensor of one type (blk.0.ffn_down_exps); give the "
            "experts of a layer one scheme");
  // Different layers may differ.
  EXPECT_TRUE(CheckGgufExport(GgufFormat::kQ8_0, c,
                              Plans(c, Scheme(8, 32, true), R"({"layers\\.1\\.": {"bits": 4}})"))
                  .ok());
}

TEST(CheckGgufExportTest, RefusesGemma3WhatLlamaCppIgnores) {
  ModelConfig c = FamilyConfig("gemma3_text", 4);
  const std::vector<LayerPlan> p = Plans(c, Scheme(4, 32, true));
  c.query_pre_attn_scalar = 256;  // transformers' default
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, p),
            "gguf:q4_0: query_pre_attn_scalar 256 cannot be exported: llama.cpp's gemma3 ignores "
            "it and scales attention by 16^-0.5 (head_dim)");
  c.query_pre_attn_scalar = 16;
  c.sliding_layers = {true, false, true, true};  // no i % p < p - 1 gives it
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, p),
            "gguf:q4_0: layer_types (SGSS: S sliding, G global) cannot be exported: llama.cpp's "
            "gemma3 slides layer i iff i % p < p - 1 for one sliding_window_pattern p");
  c.sliding_layers = {true, false, true, false};  // p = 2
  EXPECT_TRUE(CheckGgufExport(GgufFormat::kQ4_0, c, p).ok());
  c.hidden_act = "silu";
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, p),
            "gguf:q4_0: hidden_act 'silu' cannot be exported: llama.cpp's gemma3 computes "
            "gelu_pytorch_tanh");
}

TEST(CheckGgufExportTest, RefusesWhatTheArchitectureDoesNotLoad) {
  ModelConfig c = FamilyConfig("qwen3");
  c.qkv_bias = c.o_bias = true;  // attention_bias: llama.cpp's qwen3 loads no o_proj bias
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, Plans(c, Scheme(4, 32, true))),
            "gguf:q4_0: model.layers.0.self_attn.o_proj has a bias, which llama.cpp's qwen3 "
            "architecture does not load (attention_bias / mlp_bias)");
  c = FamilyConfig("qwen3");
  c.hidden_act = "gelu";
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, Plans(c, Scheme(4, 32, true))),
            "gguf:q4_0: hidden_act 'gelu' cannot be exported: llama.cpp's qwen3 computes silu");
  // Phi-3's sliding window: llama.cpp runs every Phi-3 GGUF without it; not refused.
  c = FamilyConfig("phi3");
  c.sliding_window = 64;
  c.sliding_layers.assign(2, true);
  EXPECT_TRUE(CheckGgufExport(GgufFormat::kQ4_0, c, Plans(c, Scheme(4, 32, true))).ok());
  c = FamilyConfig("phi3");
  c.head_dim = 32;
  EXPECT_EQ(CheckMessage(GgufFormat::kQ4_0, c, Plans(c, Scheme(4, 32, true))),
            "gguf:q4_0: head_dim 32 cannot be exported: llama.cpp's phi3 needs "
            "num_attention_heads * head_dim (128) to equal hidden_size (64)");
}

TEST(GgufFormatTest, Names) {
  EXPECT_EQ(ParseGgufFormat("gguf:q4_0"), GgufFormat::kQ4_0);
  EXPECT_EQ(ParseGgufFormat("gguf:q4_1"), GgufFormat::kQ4_1);
  EXPECT_EQ(ParseGgufFormat("gguf:q8_0"), GgufFormat::kQ8_0);
  EXPECT_EQ(ParseGgufFormat("gguf:q4_k"), std::nullopt);
  EXPECT_EQ(ParseGgufFormat("auto_round"), std::nullopt);
  EXPECT_EQ(GgufFormatName(GgufFormat::kQ4_1), "gguf:q4_1");
  EXPECT_EQ(GgufFileName("m", GgufFormat::kQ8_0), "m-Q8_0.gguf");
}

// --- permutation ------------------------------------------------------------

TEST(GgufPermutationTest, HandComputedRowOrders) {
  // One head of 8 rows: HF halves [0 1 2 3 | 4 5 6 7] interleave.
  EXPECT_THAT(LlamaQkRowOrder(8, 1), ElementsAre(0, 4, 1, 5, 2, 6, 3, 7));
  // Two heads of 4 rows each.
  EXPECT_THAT(LlamaQkRowOrder(8, 2), ElementsAre(0, 2, 1, 3, 4, 6, 5, 7));
  EXPECT_THAT(LlamaQkRowOrder(8, 4), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  for (int64_t r = 0; r < 96; ++r) EXPECT_EQ(LlamaQkRowOrder(96, 3)[r], HfRow(r, 96, 3));
}

TEST(GgufPermutationTest, ScalesAndZerosMoveWithTheirRows) {
  // An 8-row, 32-column asym layer: row n has code n, zero n, scale n + 1.
  IntegerLayer l;
  l.name = "k";
  l.scheme = Scheme(4, 32, false);
  l.out = 8;
  l.in = 32;
  std::string codes, zeros;
  std::vector<uint16_t> scales;
  for (int n = 0; n < 8; ++n) {
    codes.append(32, static_cast<char>(n));
    zeros.push_back(static_cast<char>(n));
    scales.push_back(FloatToF16(n + 1.0f));
  }
  const std::string scale_bytes = Bytes16(scales);
  l.codes = codes;
  l.zeros = zeros;
  l.scales = scale_bytes;
  std::string out;
  for (int64_t hf : LlamaQkRowOrder(8, 1))
    ASSERT_TRUE(EncodeIntegerRow(l, hf, GgmlType::kQ4_1, &out).ok());
  ASSERT_EQ(out.size(), 8u * 20);
  const int want[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(Half(U16(out, r * 20)), want[r] + 1.0) << r;
    EXPECT_EQ(Half(U16(out, r * 20 + 2)), -want[r] * (want[r] + 1.0)) << r;
    EXPECT_EQ(static_cast<uint8_t>(out[r * 20 + 4]), want[r] * 17) << r;
  }
}

}  // namespace
}  // namespace signround
