#include "src/data/token_dataset.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(ParseTokenRows, ReadsRowsAndSkipsEmptyLines) {
  absl::StatusOr<std::vector<TokenRow>> rows = ParseTokenRows(
      "{\"input_ids\": [1, 2, 3]}\n\n   \n{\"input_ids\": [], \"text\": \"x\"}\r\n"
      "{\"input_ids\": [0, 2147483647]}",
      "f.jsonl");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_THAT((*rows)[0], ElementsAre(1, 2, 3));
  EXPECT_TRUE((*rows)[1].empty());
  EXPECT_THAT((*rows)[2], ElementsAre(0, 2147483647));
}

// The error for `line` placed on line 3 of a file, after two good lines.
std::string ErrorOnLine3(const std::string& line) {
  std::string text = "{\"input_ids\": [1]}\n\n" + line + "\n{\"input_ids\": [2]}\n";
  absl::StatusOr<std::vector<TokenRow>> rows = ParseTokenRows(text, "data/eval.jsonl");
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument) << line;
  return std::string(rows.status().message());
}

TEST(ParseTokenRows, HostileLinesNameTheFileLineAndProblem) {
  EXPECT_THAT(ErrorOnLine3("{\"input_ids\": [1, 2"),
              StartsWith("data/eval.jsonl:3: not valid JSON: "));
  EXPECT_THAT(ErrorOnLine3("input_ids = [1]"), StartsWith("data/eval.jsonl:3: not valid JSON: "));
  EXPECT_EQ(ErrorOnLine3("[1, 2, 3]"), "data/eval.jsonl:3: expected a JSON object, got array");
  EXPECT_EQ(ErrorOnLine3("{\"ids\": [1]}"), "data/eval.jsonl:3: no 'input_ids' key");
  EXPECT_EQ(ErrorOnLine3("{\"input_ids\": \"1 2 3\"}"),
            "data/eval.jsonl:3: 'input_ids' must be a list of non-negative integers, got "
            "string \"1 2 3\"");
  EXPECT_EQ(ErrorOnLine3("{\"input_ids\": {\"a\": 1}}"),
            "data/eval.jsonl:3: 'input_ids' must be a list of non-negative integers, got object");
  EXPECT_EQ(ErrorOnLine3("{\"input_ids\": [4, -3]}"),
            "data/eval.jsonl:3: input_ids[1] must be a non-negative integer, got number -3");
  EXPECT_EQ(ErrorOnLine3("{\"input_ids\": [1.5]}"),
            "data/eval.jsonl:3: input_ids[0] must be a non-negative integer, got number 1.5");
  EXPECT_EQ(ErrorOnLine3("{\"input_ids\": [1, null]}"),
            "data/eval.jsonl:3: input_ids[1] must be a non-negative integer, got null");
  EXPECT_EQ(ErrorOnLine3("{\"input_ids\": [[1]]}"),
            "data/eval.jsonl:3: input_ids[0] must be a non-negative integer, got array");
  EXPECT_EQ(ErrorOnLine3("{\"input_ids\": [true]}"),
            "data/eval.jsonl:3: input_ids[0] must be a non-negative integer, got boolean true");
  EXPECT_EQ(ErrorOnLine3("{\"input_ids\": [7, 2147483648]}"),
            "data/eval.jsonl:3: input_ids[1] = 2147483648 is too large for int32");
  EXPECT_EQ(ErrorOnLine3("{\"input_ids\": [18446744073709551615]}"),
            "data/eval.jsonl:3: input_ids[0] = 18446744073709551615 is too large for int32");
  EXPECT_EQ(ErrorOnLine3("{\"input_ids\": [1], \"input_ids\": [2]}"),
            "data/eval.jsonl:3: duplicate key 'input_ids'");
}

TEST(ParseTokenRows, NegativeZeroIsZero) {
  absl::StatusOr<std::vector<TokenRow>> rows = ParseTokenRows("{\"input_ids\": [-0]}", "f");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_THAT((*rows)[0], ElementsAre(0));
}

TEST(LoadTokenRows, ReadsAFileAndNamesItInErrors) {
  testing::TempDir dir;
  std::string path = dir.File("rows.jsonl");
  testing::WriteFile(path, "{\"input_ids\": [5, 6]}\n{\"input_ids\": [7]}\n");
  absl::StatusOr<std::vector<TokenRow>> rows = LoadTokenRows(path);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->size(), 2u);
  testing::WriteFile(path, "{\"input_ids\": [5, 6]}\n{\"input_ids\": [x]}\n");
  EXPECT_THAT(std::string(LoadTokenRows(path).status().message()),
              StartsWith(path + ":2: not valid JSON"));
  EXPECT_EQ(LoadTokenRows(dir.File("missing.jsonl")).status().code(), absl::StatusCode::kNotFound);
}

TEST(CheckTokenIds, NamesTheRowPositionAndId) {
  std::vector<TokenRow> rows = {{1, 2, 3}, {4, 5, 511, 512, 9}};
  EXPECT_TRUE(CheckTokenIds(rows, 513, "eval.jsonl").ok());
  absl::Status s = CheckTokenIds(rows, 512, "eval.jsonl");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "eval.jsonl: row 2, position 4: token id 512 is not below vocab_size 512");
}

TEST(SelectSamples, DropsShortRowsTruncatesLongOnesAndKeepsOrder) {
  std::vector<TokenRow> rows = {{1, 2}, {3, 4, 5, 6, 7}, {8, 9, 10}, {11}, {12, 13, 14, 15}};
  absl::StatusOr<std::vector<TokenRow>> s = SelectSamples(rows, 2, 3);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->size(), 2u);
  EXPECT_THAT((*s)[0], ElementsAre(3, 4, 5));
  EXPECT_THAT((*s)[1], ElementsAre(8, 9, 10));
  s = SelectSamples(rows, 3, 3);
  ASSERT_TRUE(s.ok());
  EXPECT_THAT((*s)[2], ElementsAre(12, 13, 14));
}

TEST(SelectSamples, TooFewLongRowsIsAClearError) {
  std::vector<TokenRow> rows = {{1, 2, 3, 4}, {1, 2}, {1, 2, 3, 4, 5}, {1, 2, 3}};
  absl::StatusOr<std::vector<TokenRow>> s = SelectSamples(rows, 3, 4);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.status().message(), "only 2 rows have at least 4 tokens, need 3");
  EXPECT_EQ(SelectSamples(rows, 0, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SelectSamples(rows, 1, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace signround
