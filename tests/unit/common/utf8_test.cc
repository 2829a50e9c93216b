// UTF-8 validation (src/common/utf8.h).
#include "src/common/utf8.h"

#include <gtest/gtest.h>

namespace signround {
namespace {

TEST(Utf8Test, FirstInvalidOffset) {
  EXPECT_EQ(FirstInvalidUtf8Offset(""), -1);
  EXPECT_EQ(FirstInvalidUtf8Offset("F\xc3\xbchrer \xf0\x9f\xa6\x99"), -1);
  EXPECT_EQ(FirstInvalidUtf8Offset("x\x80"), 1);
  EXPECT_EQ(FirstInvalidUtf8Offset("xy\xf4\x90\x80\x80"), 2);  // above U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8Offset("\xe0\x80\x80"), 0);        // overlong
}

}  // namespace
}  // namespace signround
