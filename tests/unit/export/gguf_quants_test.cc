// The GGUF block encoders (src/export/gguf_quants.h): Q8_0 from floats as llama.cpp rounds,
// which schemes have a block type, and the symmetric zero point check.
#include "src/export/gguf_quants.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "src/export/integer_layer.h"
#include "src/tensor/half.h"
#include "tests/testing/gguf_reader.h"
#include "tests/unit/export/export_fixtures.h"

namespace signround {
namespace {

using namespace ::signround::testing::gguf;  // NOLINT: the reader's types

TEST(GgufQuantsTest, Q8_0FromFloatsMatchesLlamaCpp) {
  std::vector<float> x(64, 0.0f);  // second block all zeros: d = 0, q = 0
  for (int j = 0; j < 32; ++j) x[j] = (j - 10) * 0.25f;
  x[5] = -12.7f;  // amax: d = 0.1, so x / d has exact halves nearby
  x[6] = 0.25f;   // 2.5 -> roundf rounds away from zero: 3
  std::string out;
  QuantizeRowQ8_0(x, &out);
  ASSERT_EQ(out.size(), 68u);
  const float d = 12.7f / 127.0f, id = 1.0f / d;
  EXPECT_EQ(U16(out, 0), FloatToF16(d));
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(static_cast<int8_t>(out[2 + j]), static_cast<int>(std::roundf(x[j] * id))) << j;
  }
  EXPECT_EQ(static_cast<int8_t>(out[2 + 5]), -127);
  EXPECT_EQ(static_cast<int8_t>(out[2 + 6]), 3);
  EXPECT_EQ(U16(out, 34), 0);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[36 + j], 0);
}

TEST(GgufQuantsTest, SchemeTypes) {
  EXPECT_EQ(GgmlTypeForScheme(Scheme(4, 32, true)), GgmlType::kQ4_0);
  EXPECT_EQ(GgmlTypeForScheme(Scheme(4, 32, false)), GgmlType::kQ4_1);
  EXPECT_EQ(GgmlTypeForScheme(Scheme(8, 32, true)), GgmlType::kQ8_0);
  EXPECT_EQ(GgmlTypeForScheme(Scheme(8, 32, false)), std::nullopt);
  EXPECT_EQ(GgmlTypeForScheme(Scheme(4, 64, true)), std::nullopt);
  EXPECT_EQ(GgmlTypeForScheme(Scheme(2, 32, true)), std::nullopt);
  EXPECT_EQ(GgmlTypeForScheme(Scheme(3, 32, true)), std::nullopt);
}

TEST(GgufQuantsTest, SymmetricZeroMustBeTheMidpoint) {
  IntegerLayer l;
  l.name = "q";
  l.scheme = Scheme(8, 32, true);
  l.out = 1;
  l.in = 32;
  const std::string codes(32, 'a'), zeros(1, 127), scales(2, '\0');
  l.codes = codes;
  l.zeros = zeros;
  l.scales = scales;
  std::string out;
  absl::Status s = EncodeIntegerRow(l, 0, GgmlType::kQ8_0, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(s.message(), "q: row 0 group 0: symmetric zero point is 127, not 128");
  s = EncodeIntegerRow(l, 0, GgmlType::kQ4_0, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace signround
