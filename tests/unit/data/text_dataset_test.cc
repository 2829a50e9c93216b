// Rows of token ids from text (src/data/text_dataset.h): per text and concatenated, text
// files and their errors.
#include "src/data/text_dataset.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/tokenizer/tokenizer.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

// A tokenizer with one id per byte and BOS 1, so the expected rows are plain.
class ByteTokenizer : public Tokenizer {
 public:
  absl::StatusOr<std::vector<int64_t>> Encode(absl::string_view text,
                                              bool add_special_tokens) const override {
    std::vector<int64_t> ids;
    if (add_special_tokens) ids.push_back(1);
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  int64_t vocab_size() const override { return 256; }
  std::string Describe() const override { return "bytes"; }
};

TEST(TextDatasetTest, PerTextAndConcatRows) {
  ByteTokenizer tok;
  std::vector<TextRecord> texts = {{"abc", 1}, {"de", 2}, {"fghij", 3}};
  auto per = TokenizeTexts(texts, tok, {}, "t");
  ASSERT_TRUE(per.ok());
  ASSERT_EQ(per->size(), 3u);
  EXPECT_EQ((*per)[1], (TokenRow{1, 'd', 'e'}));
  auto cat = TokenizeTexts(texts, tok, {true, 4}, "t");
  ASSERT_TRUE(cat.ok());
  // 1abc 1de1 fghi, remainder "j" dropped
  ASSERT_EQ(cat->size(), 3u);
  EXPECT_EQ((*cat)[0], (TokenRow{1, 'a', 'b', 'c'}));
  EXPECT_EQ((*cat)[1], (TokenRow{1, 'd', 'e', 1}));
  EXPECT_EQ((*cat)[2], (TokenRow{'f', 'g', 'h', 'i'}));
}

TEST(TextDatasetTest, FilesAndErrors) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("a.jsonl"), "{\"text\": \"one\"}\n\n{\"text\": \"two\"}\n");
  auto kind = DetectDatasetKind(dir.File("a.jsonl"));
  ASSERT_TRUE(kind.ok());
  EXPECT_EQ(*kind, DatasetKind::kTextJsonl);
  auto texts = LoadTexts(dir.File("a.jsonl"), *kind);
  ASSERT_TRUE(texts.ok()) << texts.status();
  ASSERT_EQ(texts->size(), 2u);
  EXPECT_EQ((*texts)[1].text, "two");
  EXPECT_EQ((*texts)[1].line, 3);

  testing::WriteFile(dir.File("b.txt"), "first line\n  \nthird \xff line\n");
  auto kind_b = DetectDatasetKind(dir.File("b.txt"));
  ASSERT_TRUE(kind_b.ok());
  EXPECT_EQ(*kind_b, DatasetKind::kPlainText);
  auto bad = LoadTexts(dir.File("b.txt"), *kind_b);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("b.txt:3:"), absl::string_view::npos) << bad.status();

  testing::WriteFile(dir.File("ids.jsonl"), "{\"input_ids\": [1, 2]}\n");
  auto kind_ids = DetectDatasetKind(dir.File("ids.jsonl"));
  ASSERT_TRUE(kind_ids.ok());
  EXPECT_EQ(*kind_ids, DatasetKind::kTokenIds);

  testing::WriteFile(dir.File("empty.txt"), "\n  \n");
  auto empty = DetectDatasetKind(dir.File("empty.txt"));
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("empty"), absl::string_view::npos);
}

}  // namespace
}  // namespace signround
