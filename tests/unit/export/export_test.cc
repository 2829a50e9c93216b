// The torch-free parts of the packed exports: quantization_config written and
// read back, its hostile variants, shards, sizes, format lists, staging
// directories, ExportPacked on hand-built sources, and our packed-Linear reader
// on a hand-packed GPTQ v2 layer.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/export/export_format.h"
#include "src/export/export_source.h"
#include "src/export/packed_exporter.h"
#include "src/export/quantization_config.h"
#include "src/export/sharded_safetensors.h"
#include "src/export/staging_dir.h"
#include "src/model/checkpoint.h"
#include "src/model/packed_linear.h"
#include "src/model/random_checkpoint.h"
#include "src/tensor/half.h"
#include "src/tensor/safetensors_file.h"
#include "src/tensor/safetensors_writer.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

template <typename T>
absl::string_view AsChars(const std::vector<T>& v) {
  return absl::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

std::vector<LayerPlan> Plans(const QuantScheme& scheme, const char* layer_config) {
  RandomCheckpointOptions o;
  o.hidden_size = 64;
  o.intermediate_size = 96;
  o.num_layers = 2;
  ModelConfig config = *RandomCheckpointConfig(o);
  auto overrides = ParseLayerConfig(layer_config, "layers.json");
  EXPECT_TRUE(overrides.ok()) << overrides.status();
  return PlanLayers(DecoderLinears(config), scheme, *overrides);
}

// Every layer resolves, from the written config, to exactly what the plan says.
void ExpectRoundTrip(PackedFormat format, const QuantScheme& scheme,
                     const std::vector<LayerPlan>& plans) {
  ExportOptions options;
  options.scheme = scheme;
  ojson written = MakeQuantizationConfig(format, options, plans);
  auto parsed = PackedQuantizationConfig::Parse(ojson::parse(written.dump()), "qc");
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << written.dump(2);
  for (const LayerPlan& p : plans) {
    std::optional<PackedScheme> s = parsed->Resolve(p.layer.name);
    ASSERT_EQ(s.has_value(), p.quantized) << p.layer.name << "\n" << written.dump(2);
    if (!s) continue;
    EXPECT_EQ(s->bits, p.scheme.bits) << p.layer.name;
    EXPECT_EQ(s->group_size, p.scheme.group_size) << p.layer.name;
  }
}

TEST(QuantizationConfig, AutoRoundSymmetricWithOverrides) {
  const QuantScheme scheme{4, 32, true};
  // intermediate 96 is a multiple of 32, so only the config keeps layers 16-bit.
  auto plans = Plans(scheme, R"({"layers\\.0\\.mlp\\.": {"bits": 16},
                                 "o_proj": {"bits": 8, "group_size": 64}})");
  ExportOptions options;
  options.scheme = scheme;
  options.settings = {{"iters", 200}, {"lr", 0.01}, {"nsamples", 128}, {"seqlen", 256}};
  ojson c = MakeQuantizationConfig(PackedFormat::kAutoRound, options, plans);
  EXPECT_EQ(c["quant_method"], "auto-round");
  EXPECT_EQ(c["packing_format"], "auto_round:auto_gptq");
  EXPECT_EQ(c["bits"], 4);
  EXPECT_EQ(c["group_size"], 32);
  EXPECT_EQ(c["sym"], true);
  EXPECT_EQ(c["data_type"], "int");
  EXPECT_EQ(c["block_name_to_quantize"], "model.layers");
  EXPECT_FALSE(c.contains("iters"));  // the default
  EXPECT_EQ(c["lr"], 0.01);           // not 1/iters, the default
  EXPECT_EQ(c["seqlen"], 256);
  EXPECT_EQ(c["extra_config"]["model.layers.0.mlp.up_proj"],
            ojson({{"bits", 16}, {"data_type", "fp"}}));
  EXPECT_EQ(c["extra_config"]["model.layers.1.self_attn.o_proj"],
            ojson({{"bits", 8}, {"group_size", 64}}));
  EXPECT_FALSE(c["extra_config"].contains("model.layers.1.mlp.up_proj"));
  ExpectRoundTrip(PackedFormat::kAutoRound, scheme, plans);
}

TEST(QuantizationConfig, AutoRoundAsymmetricUsesV2) {
  const QuantScheme scheme{2, 128, false};
  auto plans = Plans(scheme, "{}");
  ExportOptions options;
  options.scheme = scheme;
  EXPECT_EQ(ZeroPointsFor(plans), ZeroPointFormat::kV2);
  ojson c = MakeQuantizationConfig(PackedFormat::kAutoRound, options, plans);
  EXPECT_EQ(c["packing_format"], "auto_round");
  EXPECT_FALSE(c.contains("extra_config"));
  EXPECT_FALSE(c.contains("meta"));
  ExpectRoundTrip(PackedFormat::kAutoRound, scheme, plans);
  ojson g = MakeQuantizationConfig(PackedFormat::kAutoGptq, options, plans);
  EXPECT_EQ(g["checkpoint_format"], "gptq_v2");
  EXPECT_EQ(g["sym"], false);
  ExpectRoundTrip(PackedFormat::kAutoGptq, scheme, plans);
}

// A symmetric job keeps GPTQ v1 ("gptq", stored zp - 1) in both formats; GPTQModel's
// meta names us, as "name:version" (GPTQModel checks versions only for its own name).
TEST(QuantizationConfig, SymmetricJobsStayV1) {
  const QuantScheme scheme{4, 32, true};
  auto plans = Plans(scheme, R"({"down_proj": {"bits": 8}, "layers\\.1\\.": {"bits": 16}})");
  ExportOptions options;
  options.scheme = scheme;
  EXPECT_EQ(ZeroPointsFor(plans), ZeroPointFormat::kV1);
  ojson g = MakeQuantizationConfig(PackedFormat::kAutoGptq, options, plans);
  EXPECT_EQ(g["checkpoint_format"], "gptq");
  EXPECT_EQ(g["meta"], ojson::parse(R"({"quantizer": ["signround:0.1.0"]})"));
  std::vector<std::string> keys;
  for (const auto& [key, value] : g.items()) keys.push_back(key);
  EXPECT_EQ(keys, std::vector<std::string>({"quant_method", "bits", "group_size", "sym", "desc_act",
                                            "true_sequential", "damp_percent", "lm_head",
                                            "checkpoint_format", "dynamic", "meta"}));
  ExpectRoundTrip(PackedFormat::kAutoGptq, scheme, plans);
  EXPECT_EQ(MakeQuantizationConfig(PackedFormat::kAutoRound, options, plans)["packing_format"],
            "auto_round:auto_gptq");
}

TEST(QuantizationConfig, PackedTorchDtype) {
  EXPECT_TRUE(ValidatePackedTorchDtype("float16").ok());
  EXPECT_TRUE(ValidatePackedTorchDtype("bfloat16").ok());
  for (const char* bad : {"float32", "fp16", "", "Float16"}) {
    absl::Status s = ValidatePackedTorchDtype(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(s.message(),
              absl::StrCat("packed dtype '", bad, "' is not one of float16, bfloat16"));
  }
  // Whichever of torch_dtype / dtype (newer transformers) the config has; torch_dtype
  // when it has neither. Other keys keep their order.
  ojson old_style = ojson::parse(R"({"a": 1, "torch_dtype": "float32", "b": 2})");
  SetConfigTorchDtype(old_style, "float16");
  EXPECT_EQ(old_style.dump(), R"({"a":1,"torch_dtype":"float16","b":2})");
  ojson new_style = ojson::parse(R"({"dtype": "bfloat16", "a": 1})");
  SetConfigTorchDtype(new_style, "float16");
  EXPECT_EQ(new_style.dump(), R"({"dtype":"float16","a":1})");
  ojson both = ojson::parse(R"({"dtype": "float32", "torch_dtype": "float32"})");
  SetConfigTorchDtype(both, "bfloat16");
  EXPECT_EQ(both.dump(), R"({"dtype":"bfloat16","torch_dtype":"bfloat16"})");
  ojson neither = ojson::parse(R"({"a": 1})");
  SetConfigTorchDtype(neither, "float16");
  EXPECT_EQ(neither.dump(), R"({"a":1,"torch_dtype":"float16"})");
}

TEST(QuantizationConfig, GptqDynamicSkipsAndOverrides) {
  const QuantScheme scheme{4, 128, true};
  auto plans = Plans(scheme, R"({"layers\\.1\\.mlp\\.down": {"bits": 16},
                                 "layers\\.0\\.self_attn\\.q": {"bits": 3, "sym": false}})");
  ExportOptions options;
  options.scheme = scheme;
  ojson c = MakeQuantizationConfig(PackedFormat::kAutoGptq, options, plans);
  EXPECT_EQ(c["quant_method"], "gptq");
  EXPECT_EQ(c["desc_act"], false);
  EXPECT_EQ(c["true_sequential"], false);
  EXPECT_EQ(c["damp_percent"], 0.01);
  EXPECT_EQ(c["lm_head"], false);
  EXPECT_EQ(c["dynamic"]["-:model\\.layers\\.1\\.mlp\\.down_proj$"], ojson::object());
  EXPECT_EQ(c["dynamic"]["+:model\\.layers\\.0\\.self_attn\\.q_proj$"],
            ojson({{"bits", 3}, {"group_size", 128}, {"sym", false}}));
  EXPECT_EQ(c["dynamic"].size(), 2u);
  // One asymmetric layer makes the whole file v2: GPTQ v1 cannot store its zero point 0.
  EXPECT_EQ(c["checkpoint_format"], "gptq_v2");
  EXPECT_EQ(c["meta"]["quantizer"], ojson::array({"signround:0.1.0"}));
  ExpectRoundTrip(PackedFormat::kAutoGptq, scheme, plans);
}

TEST(QuantizationConfig, ReadsOtherWritersConventions) {
  // auto-round's regex keys and 16-bit "float" layers; GPTQModel's first-match dynamic.
  auto ar = PackedQuantizationConfig::Parse(ojson::parse(R"({
      "quant_method": "auto-round", "bits": 4, "group_size": 128, "sym": true,
      "block_name_to_quantize": "model.layers,model.vision",
      "extra_config": {".*mlp\\.gate.*": {"bits": 16, "data_type": "float"},
                       "model.layers.2.self_attn.v_proj": {"bits": 8}}})"),
                                            "qc");
  ASSERT_TRUE(ar.ok()) << ar.status();
  EXPECT_EQ(ar->zeros(), ZeroPointFormat::kV1);
  EXPECT_FALSE(ar->Resolve("model.layers.0.mlp.gate_proj"));
  EXPECT_EQ(ar->Resolve("model.layers.2.self_attn.v_proj")->bits, 8);
  EXPECT_EQ(ar->Resolve("model.layers.2.self_attn.k_proj")->bits, 4);
  EXPECT_FALSE(ar->Resolve("lm_head"));  // outside the quantized blocks
  auto gptq = PackedQuantizationConfig::Parse(ojson::parse(R"({
      "quant_method": "gptq", "bits": 4, "group_size": 128, "checkpoint_format": "gptq_v2",
      "dynamic": {"+:.*\\.0\\..*": {"bits": 8}, "-:.*\\.0\\.mlp": {}}})"),
                                              "qc");
  ASSERT_TRUE(gptq.ok()) << gptq.status();
  EXPECT_EQ(gptq->zeros(), ZeroPointFormat::kV2);
  EXPECT_EQ(gptq->Resolve("model.layers.0.mlp.up_proj")->bits, 8);  // first match wins
  EXPECT_EQ(gptq->Resolve("model.layers.1.mlp.up_proj")->bits, 4);
}

TEST(QuantizationConfig, HostileConfigsGetPreciseErrors) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"bits": 4, "group_size": 128})", "qc: key 'quant_method' is missing or not a string"},
      {R"({"quant_method": "awq", "bits": 4, "group_size": 128})",
       "qc: quant_method 'awq' is not supported (supported: auto-round, gptq)"},
      {R"({"quant_method": "gptq", "bits": 5, "group_size": 128})",
       "qc: 'bits' must be 2, 3, 4, 8 or >= 16, got 5"},
      {R"({"quant_method": "gptq", "bits": 4, "group_size": 0})",
       "qc: 'group_size' must be positive or -1, got 0"},
      {R"({"quant_method": "gptq", "bits": 4})", "qc: key 'group_size' is missing"},
      {R"({"quant_method": "auto-round", "bits": 4, "group_size": 32,
           "packing_format": "auto_round:auto_awq"})",
       "qc: packing_format 'auto_round:auto_awq' is not supported (auto_round:auto_gptq, "
       "auto_round)"},
      {R"({"quant_method": "gptq", "bits": 4, "group_size": 32, "dynamic": {"-:mlp[": {}}})",
       "qc: dynamic '-:mlp[': not a valid regex"},
      {R"({"quant_method": "gptq", "bits": 4, "group_size": 32, "dynamic": {"x": 3}})",
       "qc: dynamic 'x': must be an object, got 3"},
      {R"({"quant_method": "auto-round", "bits": 4, "group_size": 32,
           "extra_config": {"x": {"bits": "4"}}})",
       "qc: extra_config 'x': 'bits' must be an integer, got \"4\""},
  };
  for (const auto& [text, error] : cases) {
    auto c = PackedQuantizationConfig::Parse(ojson::parse(text), "qc");
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(c.status().message(), error);
  }
}

TEST(ShardedSafetensors, SplitsAtTheLimitAndReadsBack) {
  testing::TempDir dir;
  RandomCheckpointOptions o;
  o.hidden_size = 64;
  o.intermediate_size = 96;
  o.num_layers = 3;
  o.vocab_size = 128;
  o.dtype = DType::kF32;
  ASSERT_TRUE(WriteRandomCheckpoint(dir.File("model"), o).ok());
  auto ckpt = Checkpoint::Open(dir.File("model"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  std::vector<TensorSpec> specs;
  uint64_t total = 0;
  for (const auto& [name, t] : ckpt->tensors()) {
    specs.push_back({name, t.entry->dtype, t.entry->shape});
    total += t.entry->nbytes();
  }
  auto bytes = [&](const TensorSpec& s) -> absl::StatusOr<absl::string_view> {
    Checkpoint::Tensor t = *ckpt->Find(s.name);
    return t.file->Bytes(*t.entry);
  };
  // 40 KB shards: the 32 KB embedding fills one; layers spread over several.
  const std::string out = dir.File("out");
  ASSERT_TRUE(MakeDirectories(out).ok());
  ASSERT_TRUE(WriteShardedSafetensors(out, specs, bytes, 40'000).ok());
  ASSERT_TRUE(fs::exists(out + "/config.json") == false);
  fs::copy_file(dir.File("model") + "/config.json", out + "/config.json");
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
  auto index =
      nlohmann::json::parse(*ReadFileToString(out + "/model.safetensors.index.json", 1 << 20));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  auto shards = Checkpoint::Open(out);
  ASSERT_TRUE(shards.ok()) << shards.status();
  ASSERT_GT(shards->files().size(), 2u);
  for (const auto& file : shards->files()) {
    uint64_t data = 0;
    for (const TensorEntry& e : file->header().tensors) data += e.nbytes();
    // A shard exceeds the limit only when it holds one tensor that alone does.
    EXPECT_TRUE(data <= 40'000 || file->header().tensors.size() == 1) << file->path();
    EXPECT_NE(file->path().find("-of-"), std::string::npos);
  }
  for (const auto& [name, t] : ckpt->tensors()) {
    Checkpoint::Tensor s = *shards->Find(name);
    EXPECT_EQ(s.file->Bytes(*s.entry), t.file->Bytes(*t.entry)) << name;
  }
  // Under the limit: one model.safetensors, no index.
  const std::string single = dir.File("single");
  ASSERT_TRUE(MakeDirectories(single).ok());
  ASSERT_TRUE(WriteShardedSafetensors(single, specs, bytes, total).ok());
  EXPECT_TRUE(fs::exists(single + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(single + "/model.safetensors.index.json"));
}

TEST(ShardedSafetensors, NaturalOrderAndByteSizes) {
  EXPECT_TRUE(NaturalLess("model.layers.2.mlp", "model.layers.10.mlp"));
  EXPECT_FALSE(NaturalLess("model.layers.10.mlp", "model.layers.2.mlp"));
  EXPECT_TRUE(NaturalLess("a", "b"));
  EXPECT_TRUE(NaturalLess("layer", "layer.1"));
  EXPECT_EQ(*ParseByteSize("5GB"), 5'000'000'000u);
  EXPECT_EQ(*ParseByteSize("2GiB"), 2ull << 30);
  EXPECT_EQ(*ParseByteSize("500mb"), 500'000'000u);
  EXPECT_EQ(*ParseByteSize("1000"), 1000u);
  for (const char* bad : {"", "0", "GB", "-1GB", "1.5GB", "5XB", "99999999999999999999"}) {
    auto s = ParseByteSize(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().message(), std::string("size '") + bad +
                                        "' is not a positive byte count like 5GB, 500MB, 2GiB "
                                        "or 1000000");
  }
}

TEST(ExportFormats, ParsesListsAndRefusesUnknownOrRepeated) {
  auto f = ParseExportFormats("auto_round, gguf:q4_0,fake");
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->size(), 3u);
  EXPECT_EQ((*f)[1].kind, FormatKind::kGguf);
  EXPECT_EQ((*f)[1].dir_name, "gguf-q4_0");
  EXPECT_EQ((*f)[2].kind, FormatKind::kFake);
  EXPECT_EQ(ParseExportFormats("auto_awq").status().message(),
            "format 'auto_awq' is not one of fake, auto_round, auto_gptq, gguf:q4_0, gguf:q4_1, "
            "gguf:q8_0");
  EXPECT_EQ(ParseExportFormats("auto_gptq,auto_gptq").status().message(),
            "format 'auto_gptq' is listed twice");
}

TEST(StagingDir, CommitReplacesAndAbandonedLeavesNothing) {
  testing::TempDir dir;
  {
    auto s = StagingDir::Create(dir.path(), "auto_round");
    ASSERT_TRUE(s.ok()) << s.status();
    testing::WriteFile(s->path() + "/a", "first");
    ASSERT_TRUE(s->Commit().ok());
  }
  EXPECT_EQ(*ReadFileToString(dir.File("auto_round/a"), 100), "first");
  {
    auto s = StagingDir::Create(dir.path(), "auto_round");
    ASSERT_TRUE(s.ok());
    testing::WriteFile(s->path() + "/a", "second");
    // Not committed: a failed export. The earlier one is untouched.
  }
  EXPECT_EQ(*ReadFileToString(dir.File("auto_round/a"), 100), "first");
  EXPECT_FALSE(fs::exists(dir.File(".auto_round.partial")));
  {
    auto s = StagingDir::Create(dir.path(), "auto_round");
    testing::WriteFile(s->path() + "/b", "third");
    ASSERT_TRUE(s->Commit().ok());
  }
  EXPECT_FALSE(fs::exists(dir.File("auto_round/a")));
  EXPECT_EQ(*ReadFileToString(dir.File("auto_round/b"), 100), "third");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

// --- ExportPacked on hand-built sources ---------------------------------------------

// A one-layer F32 checkpoint and the engine's integer weights of its quantized
// layers under `scheme` and `layer_config`: codes (i * 7) % 2^bits, scales
// 0.01 * (1 + i % 5), zero points zero(layer, n, g).
struct PackedSource {
  struct Layer {
    int64_t out = 0, in = 0, groups = 0, group = 0;
    std::vector<uint8_t> codes, zeros;
    std::vector<uint16_t> scales;
    // The engine's W^[n][k].
    float W(int64_t n, int64_t k) const {
      return F16ToFloat(scales[n * groups + k / group]) *
             (static_cast<float>(codes[n * in + k]) - zeros[n * groups + k / group]);
    }
  };
  testing::TempDir dir;
  std::optional<Checkpoint> ckpt;
  std::map<std::string, Layer> layers;
  std::optional<ExportSource> source;
};

void MakePackedSource(PackedSource& s, const QuantScheme& scheme, const char* layer_config,
                      const std::function<uint8_t(const std::string&, int64_t, int64_t)>& zero) {
  RandomCheckpointOptions o;
  o.hidden_size = 64;
  o.intermediate_size = 96;
  o.num_layers = 1;
  o.vocab_size = 64;
  o.dtype = DType::kF32;
  ASSERT_TRUE(WriteRandomCheckpoint(s.dir.File("model"), o).ok());
  auto ckpt = Checkpoint::Open(s.dir.File("model"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  s.ckpt.emplace(*std::move(ckpt));
  auto overrides = ParseLayerConfig(layer_config, "cfg");
  ASSERT_TRUE(overrides.ok()) << overrides.status();
  auto plans = PlanLayers(DecoderLinears(s.ckpt->config()), scheme, *overrides);
  std::vector<TensorSpec> specs;
  for (const LayerPlan& p : plans) {
    if (!p.quantized) continue;
    PackedSource::Layer& l = s.layers[p.layer.name];
    l.out = p.layer.out;
    l.in = p.layer.in;
    l.group = p.scheme.group_size > 0 ? p.scheme.group_size : l.in;
    l.groups = (l.in + l.group - 1) / l.group;
    l.codes.resize(l.out * l.in);
    l.zeros.resize(l.out * l.groups);
    l.scales.resize(l.out * l.groups);
    for (int64_t i = 0; i < l.out * l.in; ++i) {
      l.codes[i] = static_cast<uint8_t>((i * 7) % (1 << p.scheme.bits));
    }
    for (int64_t n = 0; n < l.out; ++n) {
      for (int64_t g = 0; g < l.groups; ++g) {
        l.zeros[n * l.groups + g] = zero(p.layer.name, n, g);
        l.scales[n * l.groups + g] = FloatToF16(0.01f * (1 + (n * l.groups + g) % 5));
      }
    }
    specs.push_back({p.layer.name + ".codes", DType::kU8, {l.out, l.in}});
    specs.push_back({p.layer.name + ".scales", DType::kF16, {l.out, l.groups}});
    specs.push_back({p.layer.name + ".zeros", DType::kU8, {l.out, l.groups}});
  }
  auto bytes = [&](const TensorSpec& t) -> absl::StatusOr<absl::string_view> {
    const size_t dot = t.name.rfind('.');
    const PackedSource::Layer& l = s.layers.at(t.name.substr(0, dot));
    const std::string suffix = t.name.substr(dot + 1);
    if (suffix == "codes") return AsChars(l.codes);
    if (suffix == "zeros") return AsChars(l.zeros);
    return AsChars(l.scales);
  };
  const std::string block = s.dir.File("block-00000.safetensors");
  ASSERT_TRUE(WriteSafetensors(block, specs, bytes).ok());
  auto source = ExportSource::Open(*s.ckpt, plans, {block});
  ASSERT_TRUE(source.ok()) << source.status();
  s.source.emplace(*std::move(source));
}

// Exports `format` into a fresh directory `name` of s.dir and opens it.
std::optional<Checkpoint> ExportAndOpen(const PackedSource& s, PackedFormat format,
                                        const ExportOptions& options, const std::string& name) {
  const std::string out = s.dir.File(name);
  EXPECT_TRUE(MakeDirectories(out).ok());
  absl::Status st = ExportPacked(*s.source, format, options, out);
  EXPECT_TRUE(st.ok()) << st;
  if (!st.ok()) return std::nullopt;
  auto packed = Checkpoint::Open(out);
  EXPECT_TRUE(packed.ok()) << packed.status();
  if (!packed.ok()) return std::nullopt;
  return *std::move(packed);
}

// Every packed Linear of `packed` dequantizes (our reader) to the engine's W^ exactly.
void ExpectDequantizesToSource(const Checkpoint& packed, const PackedSource& s,
                               ZeroPointFormat zeros) {
  ASSERT_EQ(packed.packed_linears().size(), s.layers.size());
  for (const auto& [name, linear] : packed.packed_linears()) {
    SCOPED_TRACE(name);
    EXPECT_EQ(linear.zeros, zeros);
    const PackedSource::Layer& l = s.layers.at(name);
    auto w = DequantizePackedLinear(linear);
    ASSERT_TRUE(w.ok()) << w.status();
    for (int64_t n = 0; n < l.out; ++n) {
      for (int64_t k = 0; k < l.in; ++k) ASSERT_EQ((*w)[n * l.in + k], l.W(n, k)) << n << "," << k;
    }
  }
}

std::vector<int32_t> Int32s(const Checkpoint& ckpt, const std::string& name) {
  auto t = ckpt.Find(name);
  EXPECT_TRUE(t.ok()) << name;
  if (!t.ok()) return {};
  absl::string_view bytes = t->file->Bytes(*t->entry);
  std::vector<int32_t> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

ojson ReadJson(const std::string& path) { return ojson::parse(*ReadFileToString(path, 1 << 20)); }

// An asymmetric layer whose zero points are all 0 (an all-positive weight group, what
// 2-bit asymmetric tuning produces almost always): both formats store it as v2 and
// read back exactly; auto_gptq says so with checkpoint_format "gptq_v2", and writes
// the same object to GPTQModel's quantize_config.json. config.json declares float16.
TEST(ExportPacked, AsymmetricZeroPointZeroIsStoredAsV2InBothFormats) {
  PackedSource s;
  ASSERT_NO_FATAL_FAILURE(MakePackedSource(s, {4, 32, false},
                                           R"j({"^(?!.*up_proj)": {"bits": 16}})j",
                                           [](const std::string&, int64_t, int64_t) { return 0; }));
  ASSERT_EQ(s.layers.size(), 1u);
  ASSERT_EQ(s.layers.begin()->first, "model.layers.0.mlp.up_proj");
  EXPECT_EQ(s.ckpt->config().torch_dtype, "float32");
  ExportOptions options;
  options.scheme = {4, 32, false};

  auto gptq = ExportAndOpen(s, PackedFormat::kAutoGptq, options, "gptq");
  ASSERT_TRUE(gptq);
  ExpectDequantizesToSource(*gptq, s, ZeroPointFormat::kV2);
  EXPECT_NE(gptq->packed_linears().begin()->second.g_idx.entry, nullptr);
  EXPECT_EQ(gptq->config().torch_dtype, "float16");
  const ojson config = ReadJson(s.dir.File("gptq/config.json"));
  const ojson qc = ReadJson(s.dir.File("gptq/quantization_config.json"));
  EXPECT_EQ(config["quantization_config"], qc);
  EXPECT_EQ(ReadJson(s.dir.File("gptq/quantize_config.json")), qc);
  EXPECT_EQ(qc["checkpoint_format"], "gptq_v2");
  EXPECT_EQ(qc["sym"], false);
  EXPECT_EQ(qc["meta"]["quantizer"], ojson::array({"signround:0.1.0"}));

  auto ar = ExportAndOpen(s, PackedFormat::kAutoRound, options, "ar");
  ASSERT_TRUE(ar);
  ExpectDequantizesToSource(*ar, s, ZeroPointFormat::kV2);
  EXPECT_EQ(ar->packed_linears().begin()->second.g_idx.entry, nullptr);
  EXPECT_EQ(ReadJson(s.dir.File("ar/quantization_config.json"))["packing_format"], "auto_round");
  EXPECT_EQ(ReadJson(s.dir.File("ar/config.json"))["torch_dtype"], "float16");
  EXPECT_FALSE(fs::exists(s.dir.File("ar/quantize_config.json")));

  // Every other tensor is the original, byte for byte.
  for (const auto& [name, t] : s.ckpt->tensors()) {
    if (name == "model.layers.0.mlp.up_proj.weight") continue;
    for (const Checkpoint* packed : {&*gptq, &*ar}) {
      auto copy = packed->Find(name);
      ASSERT_TRUE(copy.ok()) << name;
      EXPECT_EQ(copy->file->Bytes(*copy->entry), t.file->Bytes(*t.entry)) << name;
    }
  }
}

// A symmetric job with one asymmetric layer: the whole file is v2, so the symmetric
// layers' zero points 2^(bits-1) are stored as they are (0x88888888 at 4 bits, not
// v1's 0x77777777); the asymmetric layer is a `dynamic` override.
TEST(ExportPacked, OneAsymmetricLayerMakesTheFileV2) {
  PackedSource s;
  ASSERT_NO_FATAL_FAILURE(MakePackedSource(
      s, {4, 32, true}, R"j({"^(?!.*(up|gate)_proj)": {"bits": 16}, "up_proj": {"sym": false}})j",
      [](const std::string& name, int64_t n, int64_t g) -> uint8_t {
        return absl::EndsWith(name, "up_proj") ? (n + 3 * g) % 16 : 8;
      }));
  ASSERT_EQ(s.layers.size(), 2u);
  ExportOptions options;
  options.scheme = {4, 32, true};
  auto gptq = ExportAndOpen(s, PackedFormat::kAutoGptq, options, "gptq");
  ASSERT_TRUE(gptq);
  ExpectDequantizesToSource(*gptq, s, ZeroPointFormat::kV2);
  for (int32_t word : Int32s(*gptq, "model.layers.0.mlp.gate_proj.qzeros")) {
    EXPECT_EQ(static_cast<uint32_t>(word), 0x88888888u);
  }
  const ojson qc = ReadJson(s.dir.File("gptq/quantize_config.json"));
  EXPECT_EQ(qc["checkpoint_format"], "gptq_v2");
  EXPECT_EQ(qc["sym"], true);
  EXPECT_EQ(qc["dynamic"]["+:model\\.layers\\.0\\.mlp\\.up_proj$"],
            ojson({{"bits", 4}, {"group_size", 32}, {"sym", false}}));
  auto ar = ExportAndOpen(s, PackedFormat::kAutoRound, options, "ar");
  ASSERT_TRUE(ar);
  ExpectDequantizesToSource(*ar, s, ZeroPointFormat::kV2);
}

// A symmetric job stays GPTQ v1 (stored zp - 1: 0x55555555 at 2 bits); the packed
// dtype is an option, and one that is neither float16 nor bfloat16 writes nothing.
TEST(ExportPacked, SymmetricJobsStayV1AndTheDtypeIsAnOption) {
  PackedSource s;
  ASSERT_NO_FATAL_FAILURE(MakePackedSource(s, {2, 32, true},
                                           R"j({"^(?!.*(q|k|v)_proj)": {"bits": 16}})j",
                                           [](const std::string&, int64_t, int64_t) { return 2; }));
  ASSERT_EQ(s.layers.size(), 3u);
  ExportOptions options;
  options.scheme = {2, 32, true};
  options.packed_torch_dtype = "bfloat16";
  auto gptq = ExportAndOpen(s, PackedFormat::kAutoGptq, options, "gptq");
  ASSERT_TRUE(gptq);
  ExpectDequantizesToSource(*gptq, s, ZeroPointFormat::kV1);
  for (int32_t word : Int32s(*gptq, "model.layers.0.self_attn.k_proj.qzeros")) {
    EXPECT_EQ(static_cast<uint32_t>(word), 0x55555555u);
  }
  EXPECT_EQ(gptq->config().torch_dtype, "bfloat16");
  EXPECT_EQ(ReadJson(s.dir.File("gptq/quantize_config.json"))["checkpoint_format"], "gptq");

  options.packed_torch_dtype = "float32";
  for (PackedFormat format : {PackedFormat::kAutoGptq, PackedFormat::kAutoRound}) {
    const std::string out = s.dir.File(format == PackedFormat::kAutoGptq ? "bad-gptq" : "bad-ar");
    ASSERT_TRUE(MakeDirectories(out).ok());
    absl::Status st = ExportPacked(*s.source, format, options, out);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(st.message(), "packed dtype 'float32' is not one of float16, bfloat16");
    EXPECT_EQ(std::distance(fs::directory_iterator(out), fs::directory_iterator()), 0);
  }
}

// Our reader on a GPTQ v2 Linear packed by hand (not by our writer): 2-bit, group 16,
// a zero point of 0 in the first group. v2 subtracts the stored zero point, v1 one more.
TEST(PackedLinearReader, GptqV2ZeroPointZeroByHand) {
  testing::TempDir dir;
  constexpr int64_t K = 32, N = 16, G = 2;
  auto code = [](int64_t k, int64_t n) { return static_cast<uint32_t>((k + 2 * n) % 4); };
  auto zero = [](int64_t g, int64_t n) { return g == 0 ? 0u : static_cast<uint32_t>(n % 4); };
  auto scale = [](int64_t g, int64_t n) { return 0.125f * static_cast<float>(1 + n + 3 * g); };
  std::vector<int32_t> qweight(K / 16 * N, 0), qzeros(G * 1, 0);
  std::vector<uint16_t> scales(G * N);
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t n = 0; n < N; ++n) {
      uint32_t word = static_cast<uint32_t>(qweight[(k / 16) * N + n]);
      word |= code(k, n) << (2 * (k % 16));
      qweight[(k / 16) * N + n] = static_cast<int32_t>(word);
    }
  }
  for (int64_t g = 0; g < G; ++g) {
    uint32_t word = 0;
    for (int64_t n = 0; n < N; ++n) {
      word |= zero(g, n) << (2 * n);
      scales[g * N + n] = FloatToF16(scale(g, n));
    }
    qzeros[g] = static_cast<int32_t>(word);
  }
  const std::string path = dir.File("model.safetensors");
  ASSERT_TRUE(WriteSafetensors(path,
                               {{"l.qweight", DType::kI32, {K / 16, N}},
                                {"l.qzeros", DType::kI32, {G, 1}},
                                {"l.scales", DType::kF16, {G, N}}},
                               [&](const TensorSpec& t) -> absl::StatusOr<absl::string_view> {
                                 if (t.name == "l.qweight") return AsChars(qweight);
                                 if (t.name == "l.qzeros") return AsChars(qzeros);
                                 return AsChars(scales);
                               })
                  .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  TensorLookup lookup = [&](const std::string& name) {
    auto e = (*file)->Find(name);
    return TensorRef{*file, e.ok() ? *e : nullptr};
  };
  for (ZeroPointFormat zeros : {ZeroPointFormat::kV2, ZeroPointFormat::kV1}) {
    const int off = zeros == ZeroPointFormat::kV1 ? 1 : 0;
    auto linear = OpenPackedLinear("l", N, K, {2, 16}, zeros, lookup);
    ASSERT_TRUE(linear.ok()) << linear.status();
    auto w = DequantizePackedLinear(*linear);
    ASSERT_TRUE(w.ok()) << w.status();
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t k = 0; k < K; ++k) {
        const int64_t g = k / 16;
        const float want = scale(g, n) * (static_cast<float>(code(k, n)) -
                                          static_cast<float>(zero(g, n)) - static_cast<float>(off));
        ASSERT_EQ((*w)[n * K + k], want) << "v" << (2 - off) << " n " << n << " k " << k;
      }
    }
  }
}

}  // namespace
}  // namespace signround
