#include "src/contract/scheme.h"

#include <gtest/gtest.h>

#include <string>

#include "gmock/gmock.h"

namespace signround::contract {
namespace {

using ::testing::HasSubstr;

TEST(ValidateQuantSchemeTest, DefaultIsValid) { EXPECT_TRUE(ValidateQuantScheme({}).ok()); }

TEST(ValidateQuantSchemeTest, AcceptsSupportedBitsAndGroupSizes) {
  for (int bits : {2, 3, 4, 8}) {
    for (int group_size : {-1, 32, 128}) {
      for (bool sym : {true, false}) {
        absl::Status s = ValidateQuantScheme(QuantScheme{bits, group_size, sym});
        EXPECT_TRUE(s.ok()) << "bits " << bits << " group_size " << group_size << ": " << s;
      }
    }
  }
}

TEST(ValidateQuantSchemeTest, RejectsUnsupportedBits) {
  for (int bits : {0, 1, 5, 6, 7, 16, -4}) {
    absl::Status s = ValidateQuantScheme(QuantScheme{bits, 128});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "bits " << bits;
    EXPECT_THAT(std::string(s.message()), HasSubstr("bits must be 2, 3, 4 or 8"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("got " + std::to_string(bits)));
  }
}

TEST(ValidateQuantSchemeTest, RejectsBadGroupSizes) {
  for (int group_size : {0, -2, -128}) {
    absl::Status s = ValidateQuantScheme(QuantScheme{4, group_size});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "group_size " << group_size;
    EXPECT_THAT(std::string(s.message()), HasSubstr("group_size must be positive or -1"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("got " + std::to_string(group_size)));
  }
}

TEST(Scheme, BitsAreTheOneSet) {
  for (int b : {2, 3, 4, 8}) EXPECT_TRUE(IsSchemeBits(b)) << b;
  for (int b : {0, 1, 5, 6, 7, 16, -4}) EXPECT_FALSE(IsSchemeBits(b)) << b;
  EXPECT_EQ(SchemeBitsList(), "2, 3, 4, 8");
  EXPECT_EQ(SchemeBitsList(" or "), "2, 3, 4 or 8");
  EXPECT_EQ(SchemeBitsList(", ", true), "2, 3, 4, 8, 16");
}

TEST(Scheme, RequestGroupSizesArePowersOfTwoFrom32) {
  for (int g : {-1, 32, 64, 128, 65536}) EXPECT_TRUE(IsRequestGroupSize(g)) << g;
  for (int g : {0, 16, 48, 100, 131072, -2}) EXPECT_FALSE(IsRequestGroupSize(g)) << g;
}

TEST(Scheme, ValidateNamesTheBadField) {
  EXPECT_TRUE(ValidateQuantScheme({4, 128, true}).ok());
  EXPECT_TRUE(ValidateQuantScheme({2, -1, false}).ok());
  EXPECT_EQ(ValidateQuantScheme({5, 128, true}).message(), "bits must be 2, 3, 4 or 8, got 5");
  EXPECT_EQ(ValidateQuantScheme({4, 0, true}).message(),
            "group_size must be positive or -1 (per output channel), got 0");
  EXPECT_EQ(ValidateQuantScheme({4, 32, true, true}).message(),
            "a real-valued minimum needs an asymmetric scheme");
}

TEST(Scheme, SameSchemeComparesEveryField) {
  EXPECT_TRUE(SameScheme({4, 32, false}, {4, 32, false}));
  EXPECT_FALSE(SameScheme({4, 32, false}, {4, 32, false, true}));
  EXPECT_FALSE(SameScheme({4, 32, false}, {4, 64, false}));
  EXPECT_FALSE(SameScheme({4, 32, true}, {4, 32, false}));
}

TEST(Scheme, Descriptions) {
  EXPECT_EQ(DescribeScheme({2, -1, false}), "2-bit g-1 asym");
  EXPECT_EQ(DescribeScheme({4, 32, false, true}), "4-bit g32 asym float-min");
  EXPECT_EQ(DescribeSchemeLong({2, 128, true}), "2-bit symmetric group 128");
}

}  // namespace
}  // namespace signround::contract
