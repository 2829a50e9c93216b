// LoadTokenizer (src/tokenizer/tokenizer.h): errors name the model directory or the file.
#include "src/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include "tests/testing/test_files.h"

namespace signround {
namespace {

TEST(LoadTokenizerTest, ErrorsNameTheFile) {
  testing::TempDir dir;
  auto none = LoadTokenizer(dir.path());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find(dir.path()), absl::string_view::npos);
  testing::WriteFile(dir.File("tokenizer.model"), "not a protobuf at all \x01\x02");
  auto bad = LoadTokenizer(dir.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("tokenizer.model"), absl::string_view::npos)
      << bad.status();
}

}  // namespace
}  // namespace signround
