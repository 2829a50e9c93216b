// Our packed-Linear reader (src/model/packed_linear.h) on a GPTQ v2 Linear packed by hand.
#include "src/model/packed_linear.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "src/tensor/half.h"
#include "src/tensor/safetensors_file.h"
#include "src/tensor/safetensors_writer.h"
#include "tests/testing/test_files.h"
#include "tests/unit/export/export_fixtures.h"

namespace signround {
namespace {

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
