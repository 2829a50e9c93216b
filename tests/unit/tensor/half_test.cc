// Float <-> F16/BF16 conversions. Reference values are the IEEE 754 encodings
// (binary16 and bfloat16, round to nearest even), worked out by hand.
#include "src/tensor/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace signround {
namespace {

TEST(Half, F16KnownEncodings) {
  EXPECT_EQ(FloatToF16(0.0f), 0x0000);
  EXPECT_EQ(FloatToF16(-0.0f), 0x8000);
  EXPECT_EQ(FloatToF16(1.0f), 0x3c00);
  EXPECT_EQ(FloatToF16(-2.0f), 0xc000);
  EXPECT_EQ(FloatToF16(65504.0f), 0x7bff);                  // largest finite
  EXPECT_EQ(FloatToF16(65520.0f), 0x7c00);                  // halfway to 65536: ties to even -> inf
  EXPECT_EQ(FloatToF16(6.103515625e-05f), 0x0400);          // smallest normal 2^-14
  EXPECT_EQ(FloatToF16(5.9604644775390625e-08f), 0x0001);   // smallest subnormal 2^-24
  EXPECT_EQ(FloatToF16(2.98023223876953125e-08f), 0x0000);  // 2^-25 ties to even (0)
  EXPECT_EQ(FloatToF16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(FloatToF16(std::nanf("")) & 0x7e00, 0x7e00);
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even -> 1.
  EXPECT_EQ(FloatToF16(1.0f + 0.00048828125f), 0x3c00);
  // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: ties to even -> 1 + 2^-9.
  EXPECT_EQ(FloatToF16(1.0f + 3 * 0.00048828125f), 0x3c02);
}

TEST(Half, F16RoundTripsEveryFiniteValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;  // inf / NaN
    float f = F16ToFloat(static_cast<uint16_t>(h));
    ASSERT_EQ(FloatToF16(f), h) << std::hex << h;
  }
}

TEST(Half, BF16KnownEncodings) {
  EXPECT_EQ(FloatToBF16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBF16(-2.0f), 0xc000);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even -> 1.
  EXPECT_EQ(FloatToBF16(1.00390625f), 0x3f80);
  // 1 + 3 * 2^-8 ties to even -> 1 + 2^-6.
  EXPECT_EQ(FloatToBF16(1.01171875f), 0x3f82);
  EXPECT_TRUE(std::isnan(BF16ToFloat(FloatToBF16(std::nanf("")))));
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = BF16ToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToBF16(f), h) << std::hex << h;
  }
}

}  // namespace
}  // namespace signround
