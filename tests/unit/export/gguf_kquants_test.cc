// The k-quant packers (src/export/gguf_kquants.h) checked two ways: an unpacker written here
// from the block layouts of llama.cpp's ggml-common.h / dequantize_row_*_K (not from the
// packer's helpers) reads the bytes back, and llama.cpp's own Python dequantizer (gguf-py,
// tests/testing/llama_gguf_py.h) reads a GGUF file of packed tensors.

#include "src/export/gguf_kquants.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/export/gguf_file.h"
#include "src/tensor/half.h"
#include "tests/testing/llama_gguf_py.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

using ::testing::HasSubstr;

constexpr GgmlType kKTypes[] = {GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K,
                                GgmlType::kQ6_K};

// --- the layouts, written out independently ---

struct Layout {
  int q_max, sub_blocks, scale_max, min_max;  // min_max -1: no mins
  bool has_dmin;
};

Layout LayoutOf(GgmlType t) {
  switch (t) {
    case GgmlType::kQ2_K:
      return {3, 16, 15, 15, true};
    case GgmlType::kQ3_K:
      return {7, 16, 63, -1, false};
    case GgmlType::kQ4_K:
      return {15, 8, 63, 63, true};
    case GgmlType::kQ5_K:
      return {31, 8, 63, 63, true};
    default:  // Q6_K
      return {63, 16, 255, -1, false};
  }
}

uint16_t U16At(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

// ggml's get_scale_min_k4: sub-block j's 6-bit scale and min from Q4_K/Q5_K's 12 bytes.
void ScaleMinK4(int j, const uint8_t* s, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// Q3_K's 16 6-bit scales, decoded per scale from the 12 bytes: scale i's low nibble is in
// byte i % 8 (low nibble for i < 8, high for i >= 8), its high 2 bits in byte 8 + i % 4 at
// bit 2 * (i / 4).
uint8_t Q3Scale(int i, const uint8_t* s) {
  const int low = (i < 8 ? s[i] : s[i - 8] >> 4) & 0xF;
  const int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
  return static_cast<uint8_t>(low | high << 4);
}

// The block's fields from its bytes, weight by weight (unused fields stay zero).
KQuantBlock Unpack(GgmlType t, const uint8_t* b) {
  KQuantBlock k{};
  for (int w = 0; w < 256; ++w) {
    const int half = w / 128, quarter = (w % 128) / 32, l = w % 32;
    switch (t) {
      case GgmlType::kQ2_K:  // scales[16] qs[64] d dmin
        k.q[w] = (b[16 + 32 * half + l] >> (2 * quarter)) & 3;
        break;
      case GgmlType::kQ3_K: {  // hmask[32] qs[64] scales[12] d
        const int low = (b[32 + 32 * half + l] >> (2 * quarter)) & 3;
        const int high = (b[l] >> (w / 32)) & 1;  // hmask: byte w % 32, bit w / 32
        k.q[w] = static_cast<uint8_t>(low | high << 2);
        break;
      }
      case GgmlType::kQ4_K: {  // d dmin scales[12] qs[128]
        const int chunk = w / 64, in_chunk = w % 64;
        k.q[w] = (b[16 + 32 * chunk + in_chunk % 32] >> (in_chunk < 32 ? 0 : 4)) & 0xF;
        break;
      }
      case GgmlType::kQ5_K: {  // d dmin scales[12] qh[32] qs[128]
        const int chunk = w / 64, in_chunk = w % 64;
        const int low = (b[48 + 32 * chunk + in_chunk % 32] >> (in_chunk < 32 ? 0 : 4)) & 0xF;
        const int high = (b[16 + l] >> (w / 32)) & 1;
        k.q[w] = static_cast<uint8_t>(low | high << 4);
        break;
      }
      default: {  // Q6_K: ql[128] qh[64] scales[16] d
        const uint8_t* ql = b + 64 * half;
        const uint8_t* qh = b + 128 + 32 * half;
        const int low = (ql[l + (quarter % 2) * 32] >> (quarter / 2 * 4)) & 0xF;
        const int high = (qh[l] >> (2 * quarter)) & 3;
        k.q[w] = static_cast<uint8_t>(low | high << 4);
        break;
      }
    }
  }
  switch (t) {
    case GgmlType::kQ2_K:
      for (int s = 0; s < 16; ++s) {
        k.scales[s] = b[s] & 0xF;
        k.mins[s] = b[s] >> 4;
      }
      k.d = U16At(b + 80);
      k.dmin = U16At(b + 82);
      break;
    case GgmlType::kQ3_K:
      for (int s = 0; s < 16; ++s) k.scales[s] = Q3Scale(s, b + 96);
      k.d = U16At(b + 108);
      break;
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
      for (int s = 0; s < 8; ++s) ScaleMinK4(s, b + 4, &k.scales[s], &k.mins[s]);
      k.d = U16At(b);
      k.dmin = U16At(b + 2);
      break;
    default:
      for (int s = 0; s < 16; ++s) k.scales[s] = b[192 + s];
      k.d = U16At(b + 208);
      break;
  }
  return k;
}

// The 256 values from the bytes, in the order and arithmetic of ggml's dequantize_row_*_K
// (this file is built with -ffp-contract=off, as llama.cpp's reference is not fused).
std::vector<float> Dequantize(GgmlType t, const uint8_t* b) {
  std::vector<float> y;
  const KQuantBlock k = Unpack(t, b);
  const float d = F16ToFloat(k.d), dmin = F16ToFloat(k.dmin);
  for (int w = 0; w < 256; ++w) {
    switch (t) {
      case GgmlType::kQ2_K:
      case GgmlType::kQ4_K:
      case GgmlType::kQ5_K: {
        const int s = t == GgmlType::kQ2_K ? w / 16 : w / 32;
        const float dl = d * k.scales[s];
        const float ml = dmin * k.mins[s];
        y.push_back(dl * k.q[w] - ml);
        break;
      }
      case GgmlType::kQ3_K: {
        const float dl = d * (k.scales[w / 16] - 32);
        y.push_back(dl * (k.q[w] - 4));
        break;
      }
      default:
        y.push_back(d * static_cast<int8_t>(k.scales[w / 16]) * (k.q[w] - 32));
        break;
    }
  }
  return y;
}

// The used fields of `b` (unused ones zeroed, as Unpack() leaves them).
KQuantBlock UsedFields(GgmlType t, KQuantBlock b) {
  const Layout lay = LayoutOf(t);
  for (int s = lay.sub_blocks; s < 16; ++s) b.scales[s] = 0;
  for (int s = lay.min_max < 0 ? 0 : lay.sub_blocks; s < 16; ++s) b.mins[s] = 0;
  if (!lay.has_dmin) b.dmin = 0;
  return b;
}

// A random finite fp16 (any sign, subnormals included).
uint16_t RandomF16(std::mt19937& rng) {
  for (;;) {
    const uint16_t h = static_cast<uint16_t>(rng());
    if (((h >> 10) & 0x1f) != 0x1f) return h;
  }
}

// A block with every field random within its range, unused fields random garbage.
KQuantBlock RandomBlock(GgmlType t, std::mt19937& rng) {
  const Layout lay = LayoutOf(t);
  KQuantBlock b;
  for (uint8_t& q : b.q) q = static_cast<uint8_t>(rng() % (lay.q_max + 1));
  for (int s = 0; s < 16; ++s) {
    const bool used = s < lay.sub_blocks;
    b.scales[s] = static_cast<uint8_t>(used ? rng() % (lay.scale_max + 1) : rng());
    b.mins[s] = static_cast<uint8_t>(used && lay.min_max >= 0 ? rng() % (lay.min_max + 1) : rng());
  }
  b.d = RandomF16(rng);
  b.dmin = RandomF16(rng);
  return b;
}

std::string Name(GgmlType t) { return std::string(GgmlTypeName(t)); }

bool SameBits(float a, float b) { return FloatBits(a) == FloatBits(b); }

// Packs `b` after a prefix and checks the bytes decode back to it, bit for bit.
void ExpectRoundTrip(GgmlType t, const KQuantBlock& b, const std::string& what) {
  SCOPED_TRACE(Name(t) + " " + what);
  std::string out = "prefix";
  ASSERT_TRUE(PackKQuantBlock(t, b, &out).ok());
  ASSERT_EQ(out.size(), 6 + GgmlBlockBytes(t));
  EXPECT_EQ(out.substr(0, 6), "prefix");
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(out.data()) + 6;
  const KQuantBlock got = Unpack(t, bytes);
  const KQuantBlock want = UsedFields(t, b);
  for (int w = 0; w < 256; ++w) ASSERT_EQ(int{got.q[w]}, int{want.q[w]}) << "q[" << w << "]";
  for (int s = 0; s < 16; ++s) {
    ASSERT_EQ(int{got.scales[s]}, int{want.scales[s]}) << "scales[" << s << "]";
    ASSERT_EQ(int{got.mins[s]}, int{want.mins[s]}) << "mins[" << s << "]";
  }
  ASSERT_EQ(got.d, want.d);
  ASSERT_EQ(got.dmin, want.dmin);
  const std::vector<float> values = Dequantize(t, bytes);
  for (int w = 0; w < 256; ++w) {
    ASSERT_TRUE(SameBits(values[w], KQuantValue(t, b, w)))
        << "value " << w << ": unpacked " << values[w] << ", KQuantValue " << KQuantValue(t, b, w);
  }
}

TEST(GgufKQuantsTest, TypesAndBlockSizes) {
  struct Want {
    GgmlType t;
    uint32_t id;
    const char* name;
    int64_t bytes;
    int sub_block;
  };
  for (const Want& w :
       {Want{GgmlType::kQ2_K, 10, "Q2_K", 84, 16}, Want{GgmlType::kQ3_K, 11, "Q3_K", 110, 16},
        Want{GgmlType::kQ4_K, 12, "Q4_K", 144, 32}, Want{GgmlType::kQ5_K, 13, "Q5_K", 176, 32},
        Want{GgmlType::kQ6_K, 14, "Q6_K", 210, 16}}) {
    EXPECT_EQ(static_cast<uint32_t>(w.t), w.id);
    EXPECT_EQ(GgmlTypeName(w.t), w.name);
    EXPECT_EQ(GgmlBlockElements(w.t), 256);
    EXPECT_EQ(GgmlBlockBytes(w.t), w.bytes);
    EXPECT_TRUE(IsKQuantType(w.t));
    EXPECT_EQ(KQuantSubBlock(w.t), w.sub_block);
  }
  for (GgmlType t :
       {GgmlType::kF32, GgmlType::kF16, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0}) {
    EXPECT_FALSE(IsKQuantType(t));
    EXPECT_EQ(KQuantSubBlock(t), 0);
  }
  EXPECT_EQ(GgmlBlockElements(GgmlType::kQ8_0), 32);
  EXPECT_EQ(GgmlBlockElements(GgmlType::kF16), 1);
}

TEST(GgufKQuantsTest, RandomBlocksRoundTrip) {
  std::mt19937 rng(20240611);
  for (GgmlType t : kKTypes) {
    for (int i = 0; i < 300; ++i) {
      ExpectRoundTrip(t, RandomBlock(t, rng), "random block " + std::to_string(i));
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(GgufKQuantsTest, ExtremeBlocksRoundTrip) {
  std::mt19937 rng(7);
  for (GgmlType t : kKTypes) {
    const Layout lay = LayoutOf(t);
    KQuantBlock b = RandomBlock(t, rng);
    // Everything at its maximum.
    std::memset(b.q, lay.q_max, sizeof(b.q));
    std::memset(b.scales, lay.scale_max, sizeof(b.scales));
    std::memset(b.mins, lay.min_max < 0 ? 0 : lay.min_max, sizeof(b.mins));
    b.d = 0x7bff;  // 65504, the largest finite fp16
    b.dmin = 0x7bff;
    ExpectRoundTrip(t, b, "all max");
    // Everything zero.
    KQuantBlock z{};
    ExpectRoundTrip(t, z, "all zero");
    // Levels alternating 0 / max, scales alternating 0 / max, negative and subnormal scales.
    for (int w = 0; w < 256; ++w) b.q[w] = (w * 7 + w / 32) % 2 ? lay.q_max : 0;
    for (int s = 0; s < 16; ++s) {
      b.scales[s] = s % 2 ? lay.scale_max : 0;
      b.mins[s] = s % 3 ? 0 : (lay.min_max < 0 ? 0 : lay.min_max);
    }
    b.d = 0x8001;  // the negative smallest subnormal
    b.dmin = 0x0001;
    ExpectRoundTrip(t, b, "alternating");
    // One level at the maximum, one block at a time, in an all-zero block: catches a weight
    // landing in another's bits.
    for (int w = 0; w < 256; ++w) {
      KQuantBlock one{};
      one.q[w] = static_cast<uint8_t>(lay.q_max);
      one.d = 0x3c00;
      ExpectRoundTrip(t, one, "single level " + std::to_string(w));
      if (::testing::Test::HasFatalFailure()) return;
    }
    for (int s = 0; s < lay.sub_blocks; ++s) {
      KQuantBlock one{};
      one.scales[s] = static_cast<uint8_t>(lay.scale_max);
      if (lay.min_max >= 0) one.mins[(s + 1) % lay.sub_blocks] = static_cast<uint8_t>(lay.min_max);
      ExpectRoundTrip(t, one, "single scale " + std::to_string(s));
    }
  }
  // Q6_K's scales are int8: -128 and 127.
  KQuantBlock b{};
  for (int s = 0; s < 16; ++s)
    b.scales[s] = static_cast<uint8_t>(static_cast<int8_t>(s % 2 ? 127 : -128));
  std::memset(b.q, 63, 128);
  b.d = 0x3c00;
  ExpectRoundTrip(GgmlType::kQ6_K, b, "int8 scales -128 and 127");
  EXPECT_EQ(KQuantValue(GgmlType::kQ6_K, b, 0), -128.0f * 31);
  EXPECT_EQ(KQuantValue(GgmlType::kQ6_K, b, 16), 127.0f * 31);
  EXPECT_EQ(KQuantValue(GgmlType::kQ6_K, b, 255), 127.0f * -32);
}

// A few values worked by hand from the formulas, to pin KQuantValue's meaning.
TEST(GgufKQuantsTest, ValuesByHand) {
  KQuantBlock b{};
  b.d = 0x3800;     // 0.5
  b.dmin = 0x4000;  // 2
  b.q[40] = 3;
  b.scales[2] = 5;  // Q2_K weight 40 is in sub-block 2, Q4_K's in sub-block 1
  b.mins[2] = 1;
  b.scales[1] = 6;
  b.mins[1] = 2;
  EXPECT_EQ(KQuantValue(GgmlType::kQ2_K, b, 40), 0.5f * 5 * 3 - 2.0f * 1);
  EXPECT_EQ(KQuantValue(GgmlType::kQ4_K, b, 40), 0.5f * 6 * 3 - 2.0f * 2);
  EXPECT_EQ(KQuantValue(GgmlType::kQ5_K, b, 40), 0.5f * 6 * 3 - 2.0f * 2);
  EXPECT_EQ(KQuantValue(GgmlType::kQ3_K, b, 40), 0.5f * (5 - 32) * (3 - 4));
  EXPECT_EQ(KQuantValue(GgmlType::kQ6_K, b, 40), 0.5f * 5 * (3 - 32));
}

TEST(GgufKQuantsTest, OutOfRangeFieldsAreInternalErrors) {
  std::mt19937 rng(11);
  for (GgmlType t : kKTypes) {
    SCOPED_TRACE(Name(t));
    const Layout lay = LayoutOf(t);
    auto expect_error = [&](const KQuantBlock& b, const std::string& field) {
      std::string out = "x";
      absl::Status s = PackKQuantBlock(t, b, &out);
      EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << field;
      EXPECT_THAT(s.message(), HasSubstr(field));
      EXPECT_THAT(s.message(), HasSubstr(Name(t)));
      EXPECT_EQ(out, "x") << "appended bytes on error: " << field;
    };
    for (int i = 0; i < 20; ++i) {
      KQuantBlock b = RandomBlock(t, rng);
      const int w = static_cast<int>(rng() % 256);
      b.q[w] = static_cast<uint8_t>(lay.q_max + 1 + rng() % (255 - lay.q_max));
      expect_error(b, "q[" + std::to_string(w) + "] = " + std::to_string(b.q[w]));
    }
    KQuantBlock b = RandomBlock(t, rng);
    b.q[255] = 255;
    expect_error(b, "q[255] = 255");
    for (int s = 0; s < lay.sub_blocks; ++s) {
      if (lay.scale_max < 255) {
        KQuantBlock c = RandomBlock(t, rng);
        c.scales[s] = static_cast<uint8_t>(lay.scale_max + 1);
        expect_error(c, "scales[" + std::to_string(s) + "] = " + std::to_string(lay.scale_max + 1));
      }
      if (lay.min_max >= 0) {
        KQuantBlock c = RandomBlock(t, rng);
        c.mins[s] = 255;
        expect_error(c, "mins[" + std::to_string(s) + "] = 255");
      }
    }
    // Unused fields are not checked.
    KQuantBlock c = RandomBlock(t, rng);
    for (int s = lay.sub_blocks; s < 16; ++s) c.scales[s] = 255;
    for (int s = lay.min_max < 0 ? 0 : lay.sub_blocks; s < 16; ++s) c.mins[s] = 255;
    std::string out;
    EXPECT_TRUE(PackKQuantBlock(t, c, &out).ok());
  }
  std::string out;
  absl::Status s = PackKQuantBlock(GgmlType::kQ4_0, KQuantBlock{}, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("Q4_0"));
  EXPECT_TRUE(out.empty());
}

// llama.cpp's own reader and dequantizer (gguf-py's GGUFReader and gguf.quants.dequantize)
// read a GGUF file of packed k-quant tensors to exactly KQuantValue's floats.
TEST(GgufKQuantsTest, LlamaCppPythonDequantizesToKQuantValue) {
  const std::string unavailable = testing::LlamaGgufPyUnavailable();
  if (!unavailable.empty()) GTEST_SKIP() << "llama.cpp's gguf-py: " << unavailable;
  std::mt19937 rng(99);
  struct Tensor {
    GgufTensorInfo info;
    std::vector<KQuantBlock> blocks;  // row-major
  };
  std::vector<Tensor> tensors;
  const int64_t shapes[][2] = {{3, 2}, {2, 3}, {4, 4}, {3, 3}, {2, 4}};  // rows, blocks per row
  for (int i = 0; i < 5; ++i) {
    const GgmlType t = kKTypes[i];
    Tensor tensor;
    tensor.info = {"blk.0." + Name(t) + ".weight", {shapes[i][0], shapes[i][1] * 256}, t};
    for (int64_t n = 0; n < shapes[i][0] * shapes[i][1]; ++n) {
      tensor.blocks.push_back(RandomBlock(t, rng));
    }
    // Extremes in the last block: all-max levels and scales.
    KQuantBlock& last = tensor.blocks.back();
    const Layout lay = LayoutOf(t);
    std::memset(last.q, lay.q_max, 128);
    for (int s = 0; s < 16; s += 3) last.scales[s] = static_cast<uint8_t>(lay.scale_max);
    if (t == GgmlType::kQ6_K) last.scales[1] = 0x80;  // int8 -128
    tensors.push_back(std::move(tensor));
  }
  std::vector<GgufTensorInfo> infos;
  for (const Tensor& t : tensors) infos.push_back(t.info);
  GgufMetadata metadata;
  metadata.AddString("general.name", "kquants");
  testing::TempDir dir;
  const std::string path = dir.File("kquants.gguf");
  ASSERT_TRUE(WriteGgufFile(path, metadata, infos,
                            [&](size_t i, const GgufTensorInfo& info, const GgufWriteFn& write) {
                              std::string bytes;
                              for (const KQuantBlock& b : tensors[i].blocks) {
                                absl::Status s = PackKQuantBlock(info.type, b, &bytes);
                                if (!s.ok()) return s;
                              }
                              return write(bytes);
                            })
                  .ok());

  absl::StatusOr<std::vector<testing::LlamaGgufTensor>> got =
      testing::DequantizeWithLlamaGgufPy(path, dir.File("dequant"));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& want = tensors[i];
    const testing::LlamaGgufTensor& g = (*got)[i];
    SCOPED_TRACE(want.info.name);
    EXPECT_EQ(g.name, want.info.name);
    EXPECT_EQ(g.type, Name(want.info.type));
    EXPECT_EQ(g.type_id, static_cast<uint32_t>(want.info.type));
    EXPECT_EQ(g.shape, want.info.shape);
    absl::StatusOr<std::vector<float>> values = testing::ReadF32File(g.values_path);
    ASSERT_TRUE(values.ok()) << values.status();
    std::vector<float> expected;
    for (const KQuantBlock& b : want.blocks) {
      for (int j = 0; j < 256; ++j) expected.push_back(KQuantValue(want.info.type, b, j));
    }
    ASSERT_EQ(values->size(), expected.size());
    if (std::memcmp(values->data(), expected.data(), expected.size() * sizeof(float)) != 0) {
      for (size_t j = 0; j < expected.size(); ++j) {
        ASSERT_TRUE(SameBits((*values)[j], expected[j]))
            << "value " << j << " (block " << j / 256 << ", weight " << j % 256 << "): llama.cpp "
            << (*values)[j] << ", KQuantValue " << expected[j];
      }
    }
  }
}

}  // namespace
}  // namespace signround
