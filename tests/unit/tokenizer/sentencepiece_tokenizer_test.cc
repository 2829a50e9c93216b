// SentencePiece tokenizer.model (src/tokenizer/sentencepiece_tokenizer.h) against Hugging Face's
// ids (the shared llama-spm cases, encoded without BOS/EOS as their SOURCE.md says),
// LoadTokenizer's choice of tokenizer.model, and invalid UTF-8.
#include "src/tokenizer/sentencepiece_tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
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

}  // namespace
}  // namespace signround
