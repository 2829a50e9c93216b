// Token rows as a tensor (src/data/token_tensor.h): stacked, or padded to the longest row.
#include "src/data/token_tensor.h"

#include <ATen/ATen.h>

#include "gtest/gtest.h"

namespace signround {
namespace {

TEST(TokenTensor, StacksEqualRowsAndPadsUnequalOnes) {
  absl::StatusOr<at::Tensor> t = TokenRowsToTensor({{1, 2, 3}, {4, 5, 6}});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(*t, at::tensor({1, 2, 3, 4, 5, 6}, at::kLong).view({2, 3})));
  absl::StatusOr<at::Tensor> bad = TokenRowsToTensor({{1, 2, 3}, {4, 5}});
  EXPECT_EQ(bad.status().message(), "token rows: row 2 has 2 tokens, row 1 has 3");
  EXPECT_FALSE(TokenRowsToTensor({}).ok());
  absl::StatusOr<at::Tensor> padded = PadTokenRows({{1}, {}, {4, 5, 6}}, 9);
  ASSERT_TRUE(padded.ok());
  EXPECT_TRUE(at::equal(*padded, at::tensor({1, 9, 9, 9, 9, 9, 4, 5, 6}, at::kLong).view({3, 3})));
}

}  // namespace
}  // namespace signround
