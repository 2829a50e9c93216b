// Packing acceptance: the engine's integer codes, scales and zero points go
// through PackLinear, and an independent reader written here (bit by bit, from
// FORMATS.md's rule) gets back exactly the engine's codes and its dequantized
// weights, for bits 2/3/4/8, sym and asym, group sizes 32/128/-1, and in-features
// that are not a multiple of the group size. The checkpoint reader
// (DequantizePackedLinear) is held to the same result.
#include "src/export/gptq_packing.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "src/quant/qdq.h"
#include "src/tensor/half.h"
#include "src/tensor/safetensors_writer.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

// Bit t of stream word `word` of column `col`, read one bit at a time (no
// shortcut shared with the packer).
int Bit(const std::vector<int32_t>& words, int64_t columns, int64_t stream_bit, int64_t col) {
  const uint32_t w = static_cast<uint32_t>(words[(stream_bit / 32) * columns + col]);
  return (w >> (stream_bit % 32)) & 1u;
}

// Value j of the `bits`-wide LSB-first stream of column `col`.
int StreamValue(const std::vector<int32_t>& words, int64_t columns, int bits, int64_t j,
                int64_t col) {
  int v = 0;
  for (int t = 0; t < bits; ++t) v |= Bit(words, columns, int64_t{bits} * j + t, col) << t;
  return v;
}

// Value j of row `row` of qzeros [G, W]: the row is the stream (a one-column view).
int RowStreamValue(const std::vector<int32_t>& qzeros, int64_t words_per_row, int bits, int64_t row,
                   int64_t j) {
  std::vector<int32_t> one(qzeros.begin() + row * words_per_row,
                           qzeros.begin() + (row + 1) * words_per_row);
  return StreamValue(one, 1, bits, j, 0);
}

struct EngineLayer {
  IntegerWeight integer;
  at::Tensor dequant;  // [out, in] fp32
  IntegerLayer view;
};

// Random weights quantized by the engine with random (non-RTN) rounding
// parameters, so codes cover more than round-to-nearest would.
EngineLayer Quantize(const QuantScheme& scheme, int64_t out, int64_t in, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor w = at::randn({out, in}) * 0.05;
  GroupedWeight g = GroupWeight(w, scheme.group_size);
  RoundingParams p = InitialRoundingParams(g);
  p.v = at::rand_like(p.v) - 0.5;
  p.alpha = 0.6 + 0.4 * at::rand_like(p.alpha);
  p.beta = 0.6 + 0.4 * at::rand_like(p.beta);
  QdqResult r = QuantDequant(g, scheme, p);
  EngineLayer e;
  e.integer = ToIntegerWeight(g, scheme, r);
  e.dequant = r.dequant.detach().contiguous();
  e.integer.codes = e.integer.codes.contiguous();
  e.integer.scales = e.integer.scales.contiguous();
  e.integer.zeros = e.integer.zeros.contiguous();
  auto bytes = [](const at::Tensor& t) {
    return absl::string_view(static_cast<const char*>(t.data_ptr()), t.nbytes());
  };
  e.view = {"model.layers.0.mlp.down_proj",
            scheme,
            out,
            in,
            bytes(e.integer.codes),
            bytes(e.integer.scales),
            bytes(e.integer.zeros)};
  return e;
}

struct Case {
  int bits;
  int group_size;
  bool sym;
  int64_t in;
};

std::string Name(const ::testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  return "W" + std::to_string(c.bits) + "G" +
         (c.group_size < 0 ? std::string("all") : std::to_string(c.group_size)) +
         (c.sym ? "Sym" : "Asym") + "In" + std::to_string(c.in);
}

class PackingRoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(PackingRoundTrip, IndependentReaderRecoversEngineCodesAndWeights) {
  const Case c = GetParam();
  const int64_t out = 64, K = c.in, N = out;
  const int b = c.bits;
  EngineLayer e = Quantize({c.bits, c.group_size, c.sym}, out, K, 1000 + b * 10 + c.in);
  const IntegerLayer& l = e.view;
  const int64_t G = l.groups();
  const int64_t group = l.group();
  const uint8_t* codes = e.integer.codes.data_ptr<uint8_t>();
  const uint8_t* zps = e.integer.zeros.data_ptr<uint8_t>();
  const at::Half* scales = e.integer.scales.data_ptr<at::Half>();
  const float* want = e.dequant.data_ptr<float>();

  // v2 stores every zero point; v1 every one but an asymmetric 0.
  bool has_zero_zp = false;
  for (int64_t i = 0; i < N * G; ++i) has_zero_zp |= zps[i] == 0;
  for (ZeroPointFormat zf : {ZeroPointFormat::kV1, ZeroPointFormat::kV2}) {
    SCOPED_TRACE(zf == ZeroPointFormat::kV1 ? "v1" : "v2");
    absl::StatusOr<GptqTensors> packed = PackLinear(l, zf, /*with_g_idx=*/true);
    if (zf == ZeroPointFormat::kV1 && has_zero_zp) {
      ASSERT_EQ(packed.status().code(), absl::StatusCode::kFailedPrecondition);
      continue;
    }
    ASSERT_TRUE(packed.ok()) << packed.status();
    const GptqTensors& p = *packed;
    ASSERT_EQ(p.qweight.size(), static_cast<size_t>(K * b / 32 * N));
    ASSERT_EQ(p.qzeros.size(), static_cast<size_t>(G * (N * b / 32)));
    ASSERT_EQ(p.scales.size(), static_cast<size_t>(G * N));
    ASSERT_EQ(p.g_idx.size(), static_cast<size_t>(K));
    const int off = zf == ZeroPointFormat::kV1 ? 1 : 0;
    for (int64_t k = 0; k < K; ++k) ASSERT_EQ(p.g_idx[k], k / group) << k;
    int64_t mismatches = 0;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t k = 0; k < K; ++k) {
        const int64_t g = p.g_idx[k];
        const int code = StreamValue(p.qweight, N, b, k, n);
        const int zero = RowStreamValue(p.qzeros, N * b / 32, b, g, n) + off;
        mismatches += code != codes[n * K + k];
        mismatches += zero != zps[n * G + g];
        mismatches += p.scales[g * N + n] != scales[n * G + g].x;
        const float x = F16ToFloat(p.scales[g * N + n]) * static_cast<float>(code - zero);
        mismatches += x != want[n * K + k];
      }
    }
    EXPECT_EQ(mismatches, 0);

    // The checkpoint reader, from a safetensors file of the packed tensors.
    testing::TempDir dir;
    const std::string path = dir.File("packed.safetensors");
    std::vector<TensorSpec> specs = {{l.name + ".qweight", DType::kI32, p.qweight_shape()},
                                     {l.name + ".qzeros", DType::kI32, p.qzeros_shape()},
                                     {l.name + ".scales", DType::kF16, p.scales_shape()},
                                     {l.name + ".g_idx", DType::kI32, {K}}};
    auto bytes = [&](const TensorSpec& s) -> absl::StatusOr<absl::string_view> {
      auto view = [](const auto& v) {
        return absl::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(v[0]));
      };
      if (s.name == l.name + ".qweight") return view(p.qweight);
      if (s.name == l.name + ".qzeros") return view(p.qzeros);
      if (s.name == l.name + ".scales") return view(p.scales);
      return view(p.g_idx);
    };
    ASSERT_TRUE(WriteSafetensors(path, specs, bytes).ok());
    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok()) << file.status();
    auto lookup = [&](const std::string& name) {
      auto e = (*file)->Find(name);
      return e.ok() ? TensorRef{*file, *e} : TensorRef{};
    };
    auto linear = OpenPackedLinear(l.name, N, K, {b, c.group_size}, zf, lookup);
    ASSERT_TRUE(linear.ok()) << linear.status();
    auto w = DequantizePackedLinear(*linear);
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(std::memcmp(w->data(), want, N * K * sizeof(float)), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    BitsGroupsSymmetry, PackingRoundTrip,
    ::testing::Values(Case{2, 32, true, 256}, Case{2, 32, false, 256}, Case{3, 32, true, 256},
                      Case{3, 32, false, 256}, Case{4, 32, true, 256}, Case{4, 32, false, 256},
                      Case{8, 32, true, 256}, Case{8, 32, false, 256}, Case{2, 128, true, 256},
                      Case{3, 128, false, 256}, Case{4, 128, true, 256}, Case{8, 128, false, 256},
                      Case{2, -1, false, 256}, Case{3, -1, true, 256}, Case{4, -1, false, 256},
                      Case{8, -1, true, 256},
                      // in = 160 is not a multiple of 128: the last group holds 32 columns.
                      Case{3, 128, true, 160}, Case{4, 128, false, 160}),
    Name);

// Symmetric v1 zero points are the constants FORMATS.md names.
TEST(GptqPacking, SymmetricV1ZeroWords) {
  const std::pair<int, uint32_t> cases[] = {{2, 0x55555555u}, {4, 0x77777777u}, {8, 0x7F7F7F7Fu}};
  for (auto [bits, word] : cases) {
    EngineLayer e = Quantize({bits, 32, true}, 64, 64, 7);
    auto p = PackLinear(e.view, ZeroPointFormat::kV1, false);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(p->g_idx.empty());
    for (int32_t z : p->qzeros) ASSERT_EQ(static_cast<uint32_t>(z), word) << bits;
  }
}

TEST(GptqPacking, V1RefusesZeroPointZero) {
  EngineLayer e = Quantize({4, 32, false}, 32, 32, 3);
  std::vector<uint8_t> zeros(32, 5);
  zeros[17] = 0;
  e.view.zeros = absl::string_view(reinterpret_cast<const char*>(zeros.data()), zeros.size());
  auto p = PackLinear(e.view, ZeroPointFormat::kV1, true);
  ASSERT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(p.status().message(),
            "model.layers.0.mlp.down_proj: row 17, group 0 has zero point 0, which the GPTQ v1 "
            "zero-point format (stored as zp - 1) cannot represent; pack asymmetric layers with "
            "v2 zero points (ZeroPointsFor)");
  EXPECT_TRUE(PackLinear(e.view, ZeroPointFormat::kV2, true).ok());
}

// A code wider than the layer's bits is an engine bug: INTERNAL naming the row, for the
// word-aligned widths (packed as a tiled transpose) and for 3 bits (a bit stream).
TEST(GptqPacking, RefusesACodeWiderThanTheBits) {
  for (int bits : {2, 3, 4, 8}) {
    if (bits == 8) continue;  // every byte fits 8 bits
    EngineLayer e = Quantize({bits, 32, true}, 64, 96, 11);
    std::string codes(e.view.codes);
    codes[37 * 96 + 50] = static_cast<char>(1 << bits);
    e.view.codes = codes;
    auto p = PackLinear(e.view, ZeroPointFormat::kV1, false);
    ASSERT_EQ(p.status().code(), absl::StatusCode::kInternal) << bits;
    EXPECT_EQ(p.status().message(), absl::StrCat("model.layers.0.mlp.down_proj: code ", 1 << bits,
                                                 " at row 37 does not fit ", bits, " bits"));
  }
}

}  // namespace
}  // namespace signround
