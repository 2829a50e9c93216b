// The torch-free parts of the packed exports: quantization_config written and
// read back, its hostile variants, shards, sizes, format lists, staging
// directories, and ExportPacked on a hand-built source.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "src/common/file_util.h"
#include "src/export/export_format.h"
#include "src/export/export_source.h"
#include "src/export/packed_exporter.h"
#include "src/export/quantization_config.h"
#include "src/export/sharded_safetensors.h"
#include "src/export/staging_dir.h"
#include "src/model/checkpoint.h"
#include "src/model/random_checkpoint.h"
#include "src/tensor/half.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

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
  EXPECT_EQ(ZeroPointsFor(PackedFormat::kAutoRound, plans), ZeroPointFormat::kV2);
  EXPECT_EQ(ZeroPointsFor(PackedFormat::kAutoGptq, plans), ZeroPointFormat::kV1);
  ojson c = MakeQuantizationConfig(PackedFormat::kAutoRound, options, plans);
  EXPECT_EQ(c["packing_format"], "auto_round");
  EXPECT_FALSE(c.contains("extra_config"));
  ExpectRoundTrip(PackedFormat::kAutoRound, scheme, plans);
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
  EXPECT_EQ((*f)[1].kind, ExportFormat::Kind::kGguf);
  EXPECT_EQ((*f)[1].dir_name, "gguf-q4_0");
  EXPECT_EQ((*f)[2].kind, ExportFormat::Kind::kFake);
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

// A source with one asymmetric 4-bit layer whose zero points are all 0 (an
// all-positive weight group): auto_gptq refuses it before writing anything,
// auto_round stores it (v2) and reads back exactly.
TEST(ExportPacked, AutoGptqRefusesZeroPointZeroAutoRoundStoresIt) {
  testing::TempDir dir;
  RandomCheckpointOptions o;
  o.hidden_size = 64;
  o.intermediate_size = 96;
  o.num_layers = 1;
  o.vocab_size = 64;
  o.dtype = DType::kF32;
  ASSERT_TRUE(WriteRandomCheckpoint(dir.File("model"), o).ok());
  auto ckpt = Checkpoint::Open(dir.File("model"));
  ASSERT_TRUE(ckpt.ok());
  auto plans = PlanLayers(DecoderLinears(ckpt->config()), {4, 32, false},
                          *ParseLayerConfig(R"j({"^(?!.*up_proj)": {"bits": 16}})j", "cfg"));
  const LayerPlan* up = nullptr;
  for (const LayerPlan& p : plans) up = p.quantized ? &p : up;
  ASSERT_NE(up, nullptr);
  ASSERT_EQ(up->layer.name, "model.layers.0.mlp.up_proj");
  const int64_t N = up->layer.out, K = up->layer.in, G = K / 32;
  std::vector<uint8_t> codes(N * K), zeros(N * G, 0);
  std::vector<uint16_t> scales(N * G);
  for (int64_t i = 0; i < N * K; ++i) codes[i] = static_cast<uint8_t>((i * 7) % 16);
  for (int64_t i = 0; i < N * G; ++i) scales[i] = FloatToF16(0.01f * (1 + i % 5));
  auto bytes = [&](const TensorSpec& s) -> absl::StatusOr<absl::string_view> {
    if (s.name == up->layer.name + ".codes")
      return absl::string_view(reinterpret_cast<const char*>(codes.data()), codes.size());
    if (s.name == up->layer.name + ".zeros")
      return absl::string_view(reinterpret_cast<const char*>(zeros.data()), zeros.size());
    return absl::string_view(reinterpret_cast<const char*>(scales.data()), scales.size() * 2);
  };
  const std::string block = dir.File("block-00000.safetensors");
  ASSERT_TRUE(WriteSafetensors(block,
                               {{up->layer.name + ".codes", DType::kU8, {N, K}},
                                {up->layer.name + ".scales", DType::kF16, {N, G}},
                                {up->layer.name + ".zeros", DType::kU8, {N, G}}},
                               bytes)
                  .ok());
  auto source = ExportSource::Open(*ckpt, plans, {block});
  ASSERT_TRUE(source.ok()) << source.status();
  ExportOptions options;
  options.scheme = {4, 32, false};

  const std::string gptq = dir.File("gptq");
  ASSERT_TRUE(MakeDirectories(gptq).ok());
  absl::Status s = ExportPacked(*source, PackedFormat::kAutoGptq, options, gptq);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "auto_gptq: layer model.layers.0.mlp.up_proj (asymmetric) has zero point 0 at row 0, "
            "group 0, which GPTQ's v1 zero points (stored as zp - 1) cannot represent; use "
            "--format auto_round, which stores v2 zero points for asymmetric jobs");
  EXPECT_EQ(std::distance(fs::directory_iterator(gptq), fs::directory_iterator()), 0);

  const std::string ar = dir.File("ar");
  ASSERT_TRUE(MakeDirectories(ar).ok());
  ASSERT_TRUE(ExportPacked(*source, PackedFormat::kAutoRound, options, ar).ok());
  auto packed = Checkpoint::Open(ar);
  ASSERT_TRUE(packed.ok()) << packed.status();
  ASSERT_EQ(packed->packed_linears().size(), 1u);
  const PackedLinear& linear = packed->packed_linears().begin()->second;
  EXPECT_EQ(linear.zeros, ZeroPointFormat::kV2);
  auto w = DequantizePackedLinear(linear);
  ASSERT_TRUE(w.ok()) << w.status();
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) {
      ASSERT_EQ((*w)[n * K + k], F16ToFloat(scales[n * G + k / 32]) * codes[n * K + k]);
    }
  }
  // Every other tensor is the original, byte for byte.
  for (const auto& [name, t] : ckpt->tensors()) {
    if (name == up->layer.name + ".weight") continue;
    auto copy = packed->Find(name);
    ASSERT_TRUE(copy.ok()) << name;
    EXPECT_EQ(copy->file->Bytes(*copy->entry), t.file->Bytes(*t.entry)) << name;
  }
}

}  // namespace
}  // namespace signround
