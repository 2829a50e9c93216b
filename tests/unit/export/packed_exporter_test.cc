// ExportPacked (src/export/packed_exporter.h) on hand-built sources: auto_gptq and auto_round
// written, opened by our reader and dequantized back to the engine's weights exactly.
#include "src/export/packed_exporter.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "src/common/file_util.h"
#include "src/export/export_source.h"
#include "src/export/quantization_config.h"
#include "src/model/checkpoint.h"
#include "src/model/packed_linear.h"
#include "src/model/random_checkpoint.h"
#include "src/tensor/half.h"
#include "src/tensor/safetensors_writer.h"
#include "tests/testing/test_files.h"
#include "tests/unit/export/export_fixtures.h"

namespace signround {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

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

}  // namespace
}  // namespace signround
