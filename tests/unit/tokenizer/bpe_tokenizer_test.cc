// Byte-level BPE from tokenizer.json: GPT-2's reference cases (Hugging Face
// ids from ../shared), added tokens, and hand-built files for byte_fallback,
// ignore_merges, TemplateProcessing, Split + ByteLevel and the error paths.
#include "src/tokenizer/bpe_tokenizer.h"

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "src/tokenizer/byte_level.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int64_t>;

std::string Gpt2Dir() {
  const std::string shared = testing::SharedDir();
  return shared.empty() ? "" : shared + "/testdata/tokenizers/gpt2";
}

std::unique_ptr<Tokenizer> LoadOrDie(const std::string& path, const std::string& config = "") {
  auto tok = LoadBpeTokenizer(path, config);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

Ids EncodeOrDie(const Tokenizer& tok, const std::string& text, bool special = false) {
  auto ids = tok.Encode(text, special);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : Ids{};
}

class Gpt2Test : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (Gpt2Dir().empty()) GTEST_SKIP() << "../shared is absent";
    tok_ = LoadOrDie(Gpt2Dir() + "/" + GetParam());
    ASSERT_NE(tok_, nullptr);
  }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_P(Gpt2Test, EncodesEveryReferenceCase) {
  std::ifstream in(Gpt2Dir() + "/cases.jsonl");
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    const json c = json::parse(line);
    const std::string text = c["text"].get<std::string>();
    EXPECT_EQ(EncodeOrDie(*tok_, text), c["ids"].get<Ids>()) << "text: " << text;
    // GPT-2's post-processor adds no BOS / EOS (SOURCE.md).
    EXPECT_EQ(EncodeOrDie(*tok_, text, true), c["ids"].get<Ids>()) << "text: " << text;
    ++cases;
  }
  EXPECT_EQ(cases, 46);
  EXPECT_EQ(tok_->vocab_size(), 50257);
}

TEST_P(Gpt2Test, SpecialTokenInTextIsOneId) {
  EXPECT_EQ(EncodeOrDie(*tok_, "Hello world"), (Ids{15496, 995}));  // SOURCE.md spot check
  EXPECT_EQ(EncodeOrDie(*tok_, "<|endoftext|>"), (Ids{50256}));
  EXPECT_EQ(EncodeOrDie(*tok_, "<|endoftext|><|endoftext|>"), (Ids{50256, 50256}));
  Ids expected = EncodeOrDie(*tok_, "Hello ");
  expected.push_back(50256);
  for (int64_t id : EncodeOrDie(*tok_, " world")) expected.push_back(id);
  EXPECT_EQ(EncodeOrDie(*tok_, "Hello <|endoftext|> world"), expected);
  // A partial marker is ordinary text.
  const Ids partial = EncodeOrDie(*tok_, "<|endoftext|");
  EXPECT_GT(partial.size(), 1u);
  EXPECT_EQ(std::count(partial.begin(), partial.end(), 50256), 0);
}

TEST_P(Gpt2Test, HostileInput) {
  EXPECT_EQ(EncodeOrDie(*tok_, ""), Ids{});
  const auto bad = tok_->Encode(std::string("ab\xff" "cd"), false);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("offset 2"), std::string::npos) << bad.status();
  EXPECT_FALSE(tok_->Encode("\xed\xa0\x80", false).ok());  // a UTF-8 encoded surrogate
  EXPECT_FALSE(tok_->Encode("\xc0\xaf", false).ok());      // overlong
  std::string words;
  while (words.size() < (1 << 20)) words += "Hello world, 12345 тест 🦙! ";
  const std::string one_word(1 << 20, 'q');
  const auto start = std::chrono::steady_clock::now();
  const Ids a = EncodeOrDie(*tok_, words);
  const Ids b = EncodeOrDie(*tok_, one_word);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GT(a.size(), 100000u);
  EXPECT_GT(b.size(), 1000u);
  EXPECT_LT(seconds, 60.0);  // O(n log n) merges: a few seconds at most in Release
}

INSTANTIATE_TEST_SUITE_P(Files, Gpt2Test,
                         ::testing::Values("tokenizer.json", "tokenizer.legacy.json"));

// A tokenizer.json with the 256 byte-level characters as ids 0..255, then
// `extra` tokens (ids 256...) and `merges`.
json ByteVocabTokenizer(const std::vector<std::string>& extra, const json& merges) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteToUnicode()[b]] = b;
  for (size_t i = 0; i < extra.size(); ++i) vocab[extra[i]] = 256 + i;
  return {{"version", "1.0"},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
          {"post_processor", nullptr},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

class HandBuiltTest : public ::testing::Test {
 protected:
  std::string Write(const json& j, const std::string& name = "tokenizer.json") {
    const std::string path = dir_.File(name);
    testing::WriteFile(path, j.dump());
    return path;
  }
  absl::Status LoadError(const json& j) {
    auto tok = LoadBpeTokenizer(Write(j), "");
    return tok.ok() ? absl::OkStatus() : tok.status();
  }
  testing::TempDir dir_;
};

TEST_F(HandBuiltTest, SplitThenByteLevelLikeLlama3) {
  const char* kPattern =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  json j = ByteVocabTokenizer({"34", "ĠĠ", "Ġb"}, json::array({"3 4", "Ġ Ġ", "Ġ b"}));
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", kPattern}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  auto tok = LoadOrDie(Write(j));
  ASSERT_NE(tok, nullptr);
  // \p{N}{1,3}: "1234" is "123" + "4", so the "3 4" merge cannot apply.
  EXPECT_EQ(EncodeOrDie(*tok, "1234"), (Ids{'1', '2', '3', '4'}));
  EXPECT_EQ(EncodeOrDie(*tok, "34"), (Ids{256}));
  // \s+(?!\S): "a  b" is "a", " ", " b".
  EXPECT_EQ(EncodeOrDie(*tok, "a  b"), (Ids{'a', ' ', 258}));  // Ġ is byte 0x20
  // Spaces at the end stay one piece: "  " -> "ĠĠ".
  EXPECT_EQ(EncodeOrDie(*tok, "a  "), (Ids{'a', 257}));
  // \p{L}: a Cyrillic word is one piece after a digit.
  const Ids cyr = EncodeOrDie(*tok, "1мир");
  EXPECT_EQ(cyr.size(), 1u + 6u);
}
json SmallTokenizer(const json& vocab, const json& merges) {
  return {{"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
          {"post_processor", nullptr},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

TEST_F(HandBuiltTest, ByteFallbackAndUnk) {
  // The space's byte-level character "Ġ" is not in the vocab: its UTF-8 bytes C4 A0.
  json j = SmallTokenizer({{"a", 0}, {"<0xC4>", 1}, {"<0xA0>", 2}, {"<unk>", 3}}, json::array());
  j["model"]["byte_fallback"] = true;
  auto tok = LoadOrDie(Write(j));
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(EncodeOrDie(*tok, "a a"), (Ids{0, 1, 2, 0}));
  j["model"]["byte_fallback"] = false;
  j["model"]["unk_token"] = "<unk>";
  tok = LoadOrDie(Write(j));
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(EncodeOrDie(*tok, "a a"), (Ids{0, 3, 0}));
}

TEST_F(HandBuiltTest, IgnoreMerges) {
  json j = SmallTokenizer({{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"abc", 4}},
                          json::array({"a b"}));
  auto tok = LoadOrDie(Write(j));
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(EncodeOrDie(*tok, "abc"), (Ids{3, 2}));
  j["model"]["ignore_merges"] = true;
  tok = LoadOrDie(Write(j));
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(EncodeOrDie(*tok, "abc"), (Ids{4}));
  EXPECT_EQ(EncodeOrDie(*tok, "ab"), (Ids{3}));
}

TEST_F(HandBuiltTest, MergesAsPairsAndRankOrder) {
  // "b c" ranks before "a b": "abc" -> a + bc.
  json j = SmallTokenizer({{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}},
                          json::array({json::array({"b", "c"}), json::array({"a", "b"})}));
  auto tok = LoadOrDie(Write(j));
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(EncodeOrDie(*tok, "abc"), (Ids{0, 4}));
  EXPECT_EQ(EncodeOrDie(*tok, "abab"), (Ids{3, 3}));
}

TEST_F(HandBuiltTest, TemplateBosAndConfig) {
  json j = SmallTokenizer({{"a", 0}, {"<s>", 5}, {"</s>", 6}}, json::array());
  j["added_tokens"] = {{{"id", 5}, {"content", "<s>"}, {"special", true}}};
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {5}}, {"tokens", {"<s>"}}}}}}};
  const std::string path = Write(j);
  auto tok = LoadOrDie(path);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(EncodeOrDie(*tok, "a", true), (Ids{5, 0}));
  EXPECT_EQ(EncodeOrDie(*tok, "a", false), (Ids{0}));
  EXPECT_EQ(EncodeOrDie(*tok, "<s>", false), (Ids{5}));  // only special tokens
  // tokenizer_config.json add_bos_token does not add a second BOS.
  const std::string config = dir_.File("tokenizer_config.json");
  testing::WriteFile(config, R"({"add_bos_token": true, "bos_token": {"content": "<s>"},
                                 "add_eos_token": true, "eos_token": "</s>"})");
  tok = LoadOrDie(path, config);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(EncodeOrDie(*tok, "a", true), (Ids{5, 0, 6}));
  // Without a template, add_bos_token adds it.
  j["post_processor"] = nullptr;
  testing::WriteFile(config, R"({"add_bos_token": true, "bos_token": "<s>"})");
  tok = LoadOrDie(Write(j), config);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(EncodeOrDie(*tok, "a", true), (Ids{5, 0}));
  EXPECT_EQ(EncodeOrDie(*tok, "a", false), (Ids{0}));
}

void ExpectErrorMentions(const absl::Status& st, const std::string& what) {
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find(what), std::string::npos) << st;
}

TEST_F(HandBuiltTest, UnsupportedKindsAreNamed) {
  json j = SmallTokenizer({{"a", 0}}, json::array());
  j["normalizer"] = {{"type", "NFKC"}};
  ExpectErrorMentions(LoadError(j), "normalizer NFKC is not supported");
  j["normalizer"] = nullptr;
  j["model"]["type"] = "WordPiece";
  ExpectErrorMentions(LoadError(j), "model type WordPiece");
  j["model"]["type"] = "BPE";
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  ExpectErrorMentions(LoadError(j), "pre_tokenizer Metaspace");
  j["pre_tokenizer"] = {{"type", "ByteLevel"}};
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  ExpectErrorMentions(LoadError(j), "post_processor RobertaProcessing");
}

TEST_F(HandBuiltTest, MalformedFilesAreErrors) {
  json j = SmallTokenizer({{"a", 0}, {"b", "one"}}, json::array());
  ExpectErrorMentions(LoadError(j), "/model/vocab/b");
  j = SmallTokenizer({{"a", 0}}, json::array({"a"}));
  ExpectErrorMentions(LoadError(j), "/model/merges/0");
  j = SmallTokenizer({{"a", 0}}, json::array({"a z"}));
  ExpectErrorMentions(LoadError(j), "/model/merges/0");
  j = SmallTokenizer({{"a", 0}}, json::array());
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", {{{"type", "Split"},
                                            {"pattern", {{"Regex", "(unclosed"}}},
                                            {"behavior", "Isolated"}},
                                           {{"type", "ByteLevel"}}}}};
  ExpectErrorMentions(LoadError(j), "/pre_tokenizer/pretokenizers/0/pattern");
  const std::string full = SmallTokenizer({{"a", 0}}, json::array()).dump();
  const std::string path = dir_.File("truncated.json");
  testing::WriteFile(path, full.substr(0, full.size() / 2));
  const auto truncated = LoadBpeTokenizer(path, "");
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find(path), std::string::npos) << truncated.status();
  testing::WriteFile(path, std::string("\x00\xff garbage", 10));
  EXPECT_FALSE(LoadBpeTokenizer(path, "").ok());
  EXPECT_FALSE(LoadBpeTokenizer(dir_.File("absent.json"), "").ok());
}

}  // namespace
}  // namespace signround
