// SentencePiece tokenizer.model against Hugging Face's ids (the shared
// llama-spm cases, encoded without BOS/EOS as their SOURCE.md says), LoadTokenizer's
// choice of file, invalid UTF-8, and rows from text (src/data/text_dataset.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "src/data/text_dataset.h"
#include "src/tokenizer/sentencepiece_tokenizer.h"
#include "src/tokenizer/tokenizer.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

std::string SpmDir() { return testing::SharedDir() + "/testdata/tokenizers/llama-spm"; }

bool HaveShared() { return std::filesystem::exists(SpmDir() + "/tokenizer.model"); }

TEST(SentencePieceTest, EveryLlamaCaseEncodesExactly) {
  if (!HaveShared()) GTEST_SKIP() << "no ../shared llama-spm test data";
  auto tok = LoadSentencePieceTokenizer(SpmDir() + "/tokenizer.model");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 32000);
  std::ifstream in(SpmDir() + "/cases.jsonl");
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json c = nlohmann::json::parse(line);
    const std::string text = c["text"];
    const std::vector<int64_t> want = c["ids"].get<std::vector<int64_t>>();
    auto ids = (*tok)->Encode(text, /*add_special_tokens=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, want) << "text: " << nlohmann::json(text).dump();
    // With special tokens, Llama prepends BOS (1) and nothing else.
    auto with_bos = (*tok)->Encode(text, true);
    ASSERT_TRUE(with_bos.ok());
    ASSERT_EQ(with_bos->size(), want.size() + 1);
    EXPECT_EQ(with_bos->front(), 1);
    ++cases;
  }
  EXPECT_EQ(cases, 46);
}

TEST(SentencePieceTest, LoadTokenizerPicksTokenizerModel) {
  if (!HaveShared()) GTEST_SKIP() << "no ../shared llama-spm test data";
  auto tok = LoadTokenizer(SpmDir());
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->Describe(), "tokenizer.model (SentencePiece)");
  auto ids = (*tok)->Encode("Hello world");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int64_t>{1, 15043, 3186}));
}

TEST(SentencePieceTest, InvalidUtf8IsAnErrorWithTheOffset) {
  if (!HaveShared()) GTEST_SKIP() << "no ../shared llama-spm test data";
  auto tok = LoadTokenizer(SpmDir());
  ASSERT_TRUE(tok.ok()) << tok.status();
  for (const std::string& bad : {std::string("ab\xff"), std::string("ab\xc3"),
                                 std::string("ab\xed\xa0\x80"), std::string("ab\xc0\xaf")}) {
    auto ids = (*tok)->Encode(bad);
    ASSERT_FALSE(ids.ok());
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(ids.status().message().find("byte offset 2"), absl::string_view::npos)
        << ids.status();
  }
  auto empty = (*tok)->Encode("");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, std::vector<int64_t>{1});
  auto big = (*tok)->Encode(std::string(1 << 20, 'a'), false);
  ASSERT_TRUE(big.ok());
  EXPECT_FALSE(big->empty());
}

TEST(Utf8Test, FirstInvalidOffset) {
  EXPECT_EQ(FirstInvalidUtf8Offset(""), -1);
  EXPECT_EQ(FirstInvalidUtf8Offset("F\xc3\xbchrer \xf0\x9f\xa6\x99"), -1);
  EXPECT_EQ(FirstInvalidUtf8Offset("x\x80"), 1);
  EXPECT_EQ(FirstInvalidUtf8Offset("xy\xf4\x90\x80\x80"), 2);  // above U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8Offset("\xe0\x80\x80"), 0);        // overlong
}

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
