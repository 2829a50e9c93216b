// Tokenizer metadata for GGUF: SentencePiece tokenizer.model (hand-parsed
// protobuf, hostile bytes included) and Hugging Face BPE tokenizer.json.
#include "src/export/gguf_tokenizer.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/common/file_util.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

using ::signround::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// --- a protobuf builder -----------------------------------------------------

std::string Varint(uint64_t v) {
  std::string out;
  do {
    out.push_back(static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
    v >>= 7;
  } while (v != 0);
  return out;
}
std::string Tag(int field, int wire) { return Varint(static_cast<uint64_t>(field) << 3 | wire); }
std::string Len(int field, const std::string& body) {
  return Tag(field, 2) + Varint(body.size()) + body;
}
std::string Float(int field, float f) {
  std::string out = Tag(field, 5);
  out.append(reinterpret_cast<const char*>(&f), 4);
  return out;
}
std::string Int(int field, int64_t v) { return Tag(field, 0) + Varint(static_cast<uint64_t>(v)); }

std::string Piece(const std::string& text, float score, int type = 0) {
  std::string body = Len(1, text) + Float(2, score);
  if (type != 0) body += Int(3, type);
  return Len(1, body);
}

// <unk> <s> </s> a b, with a trainer spec.
std::string SmallModel(const std::string& trainer = Int(40, 0) + Int(41, 1) + Int(42, 2)) {
  return Piece("<unk>", 0, 2) + Piece("<s>", 0, 3) + Piece("</s>", 0, 3) + Piece("a", -1.5f) +
         Piece("b", -2.5f, 6) + Len(2, Int(3, 2) + trainer) + Len(3, "normalizer");
}

// A trainer spec with bos and eos disabled (unk stays 0).
const std::string kNoSpecials = Len(2, Int(41, -1) + Int(42, -1));

ModelConfig Config(int64_t vocab_size) {
  ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = vocab_size;
  return c;
}

absl::Status SpmError(const std::string& bytes, int64_t vocab_size = 100) {
  return ParseSentencePieceModel(bytes, "m/tokenizer.model", vocab_size).status();
}

// --- SentencePiece ------------------------------------------------------------

TEST(SentencePieceTest, SmallModel) {
  absl::StatusOr<GgufVocab> v = ParseSentencePieceModel(SmallModel(), "x", 5);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->model, "llama");
  EXPECT_EQ(v->pre, "default");  // as llama.cpp's converter writes for SentencePiece
  EXPECT_THAT(v->tokens, ElementsAre("<unk>", "<s>", "</s>", "a", "b"));
  EXPECT_THAT(v->scores, ElementsAre(0, 0, 0, -1.5f, -2.5f));
  EXPECT_THAT(v->token_types, ElementsAre(2, 3, 3, 1, 6));
  EXPECT_EQ(v->unk_id, 0u);
  EXPECT_EQ(v->bos_id, 1u);
  EXPECT_EQ(v->eos_id, 2u);
  EXPECT_EQ(v->pad_id, std::nullopt);
  EXPECT_TRUE(v->merges.empty());
}

TEST(SentencePieceTest, TrainerSpecIdsAndDefaults) {
  // Negative ids (-1: disabled) are 10-byte varints; pad 4 is set.
  absl::StatusOr<GgufVocab> v = ParseSentencePieceModel(
      SmallModel(Int(40, 3) + Int(41, -1) + Int(42, 4) + Int(43, 0)), "x", 5);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->unk_id, 3u);
  EXPECT_EQ(v->bos_id, std::nullopt);
  EXPECT_EQ(v->eos_id, 4u);
  EXPECT_EQ(v->pad_id, 0u);
  // No trainer spec: unk 0, bos 1, eos 2, no pad.
  v = ParseSentencePieceModel(Piece("<unk>", 0, 2) + Piece("<s>", 0) + Piece("</s>", 0), "x", 3);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->unk_id, 0u);
  EXPECT_EQ(v->bos_id, 1u);
  EXPECT_EQ(v->eos_id, 2u);
  EXPECT_EQ(v->pad_id, std::nullopt);
}

TEST(SentencePieceTest, PadsToVocabSize) {
  absl::StatusOr<GgufVocab> v = ParseSentencePieceModel(SmallModel(), "x", 8);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(v->tokens,
              ElementsAre("<unk>", "<s>", "</s>", "a", "b", "[PAD5]", "[PAD6]", "[PAD7]"));
  EXPECT_THAT(v->scores, ElementsAre(0, 0, 0, -1.5f, -2.5f, 0, 0, 0));
  EXPECT_THAT(v->token_types, ElementsAre(2, 3, 3, 1, 6, 5, 5, 5));
}

TEST(SentencePieceTest, NonUtf8PiecesAreBytes) {
  absl::StatusOr<GgufVocab> v =
      ParseSentencePieceModel(Piece(std::string("\xff\x00\xc3", 3), 1.0f) + kNoSpecials, "x", 1);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->tokens[0], std::string("\xff\x00\xc3", 3));
}

TEST(SentencePieceTest, HostileBytesAreInvalidArgumentWithOffsets) {
  struct Case {
    std::string bytes;
    int64_t vocab_size;
    std::string message;
  };
  const std::string piece_a = Piece("a", 0);  // 10 bytes: 0a 08 0a 01 61 15 00 00 00 00
  const std::vector<Case> cases = {
      {"\x0a", 100, "m/tokenizer.model: byte 1: truncated varint"},
      {"\x0a\xff", 100, "m/tokenizer.model: byte 1: truncated varint"},
      {"\x0a" + std::string(9, '\xff') + "\x02", 100,
       "m/tokenizer.model: byte 1: varint overflows 64 bits"},
      {"\x0a" + std::string(12, '\xff'), 100,
       "m/tokenizer.model: byte 1: varint overflows 64 bits"},
      {"\x0a\x05"
       "ab",
       100, "m/tokenizer.model: byte 1: length 5 runs past the end (2 bytes left)"},
      {"\x0a\x03\x0a\x05"
       "a",
       100, "m/tokenizer.model: byte 3: length 5 runs past the end (1 bytes left)"},
      {piece_a + std::string("\x0a\x04\x15\x00\x00\x00", 6), 100,
       "m/tokenizer.model: byte 13: truncated fixed32"},
      {"\x0b", 100, "m/tokenizer.model: byte 0: field 1 has unsupported wire type 3"},
      {"\x08\x01", 100, "m/tokenizer.model: byte 0: field 1 has wire type 0, expected 2"},
      {std::string(1, '\0'), 100, "m/tokenizer.model: byte 0: field number 0"},
      {Len(1, Int(2, 5)), 100, "m/tokenizer.model: byte 2: field 2 has wire type 0, expected 5"},
      {piece_a + Len(1, Len(1, "b") + Int(3, 9)), 100,
       "m/tokenizer.model: byte 15: piece 1 has type 9, not a SentencePiece type (1 to 6)"},
      {piece_a + Len(2, Int(41, 1) + Tag(42, 0)), 100,
       "m/tokenizer.model: byte 17: truncated varint"},
      {piece_a + piece_a + piece_a, 2,
       "m/tokenizer.model: byte 20: more pieces than the config's vocab_size (2)"},
      {"", 100, "m/tokenizer.model: no pieces"},
      {Len(2, ""), 100, "m/tokenizer.model: no pieces"},
      {piece_a + Len(2, Int(41, 7)), 100,
       "m/tokenizer.model: bos_id 7 is not a token id (1 tokens)"},
      {piece_a + Tag(9, 1) + "1234567", 100, "m/tokenizer.model: byte 11: truncated fixed64"},
  };
  for (const Case& c : cases) {
    absl::Status s = SpmError(c.bytes, c.vocab_size);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_EQ(s.message(), c.message);
  }
}

TEST(SentencePieceTest, UnknownFieldsOfEveryWireTypeAreSkipped) {
  const std::string extra =
      Tag(7, 1) + "12345678" + Tag(8, 5) + "1234" + Int(9, 300) + Len(10, "zz");
  absl::StatusOr<GgufVocab> v =
      ParseSentencePieceModel(extra + Len(1, extra + Len(1, "q") + extra) + kNoSpecials, "x", 1);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(v->tokens, ElementsAre("q"));
}

// Every prefix and thousands of random mutations of a real model: OK or
// INVALID_ARGUMENT, never a crash.
void Fuzz(const std::string& bytes, int64_t vocab_size) {
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::StatusOr<GgufVocab> v = ParseSentencePieceModel(bytes.substr(0, n), "f", vocab_size);
    if (!v.ok()) {
      EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  std::mt19937 rng(1);
  for (int i = 0; i < 3000; ++i) {
    std::string m = bytes;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) {
      m[rng() % m.size()] = static_cast<char>(rng() & 0xff);
    }
    absl::StatusOr<GgufVocab> v = ParseSentencePieceModel(m, "f", vocab_size);
    if (!v.ok()) {
      EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

TEST(SentencePieceTest, FuzzSmallModel) { Fuzz(SmallModel(), 50); }

std::string SharedFile(const std::string& rel) {
  const std::string shared = testing::SharedDir();
  if (shared.empty()) return "";
  absl::StatusOr<std::string> bytes = ReadFileToString(shared + "/" + rel, 1 << 20);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : "";
}

TEST(SentencePieceTest, BabyLlama105) {
  const std::string bytes = SharedFile("models/babyllama-105/tokenizer.model");
  if (bytes.empty()) GTEST_SKIP() << "no ../shared";
  absl::StatusOr<GgufVocab> v = ParseSentencePieceModel(bytes, "t", 105);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->tokens.size(), 105u);
  EXPECT_EQ(v->tokens[0], "<unk>");
  EXPECT_EQ(v->tokens[1], "<s>");
  EXPECT_EQ(v->tokens[2], "</s>");
  EXPECT_EQ(v->tokens[3], "\xe2\x96\x81");  // "▁"
  EXPECT_EQ(v->tokens[4], "e");
  EXPECT_EQ(v->scores[4], -1.0f);
  EXPECT_EQ(v->scores[5], -2.0f);
  EXPECT_THAT(std::vector<int32_t>(v->token_types.begin(), v->token_types.begin() + 4),
              ElementsAre(2, 3, 3, 1));
  for (size_t i = 3; i < 105; ++i) EXPECT_EQ(v->token_types[i], 1) << i;
  EXPECT_EQ(v->unk_id, 0u);
  EXPECT_EQ(v->bos_id, 1u);
  EXPECT_EQ(v->eos_id, 2u);
  EXPECT_EQ(v->pad_id, std::nullopt);
  // More pieces than the config's vocab_size.
  absl::Status s = ParseSentencePieceModel(bytes, "t", 104).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("more pieces than the config's vocab_size (104)"));
  Fuzz(bytes, 105);
}

TEST(SentencePieceTest, Llama2Tokenizer) {
  const std::string bytes = SharedFile("testdata/tokenizers/llama-spm/tokenizer.model");
  if (bytes.empty()) GTEST_SKIP() << "no ../shared";
  absl::StatusOr<GgufVocab> v = ParseSentencePieceModel(bytes, "t", 32000);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->tokens.size(), 32000u);
  EXPECT_EQ(v->token_types[0], kTokenUnknown);
  EXPECT_EQ(v->token_types[1], kTokenControl);
  EXPECT_EQ(v->tokens[3], "<0x00>");
  EXPECT_EQ(v->token_types[3], kTokenByte);
  EXPECT_EQ(v->tokens[258], "<0xFF>");
  EXPECT_EQ(v->token_types[258], kTokenByte);
  EXPECT_EQ(v->tokens[29871], "\xe2\x96\x81");
  EXPECT_EQ(v->tokens[15043], "\xe2\x96\x81Hello");
  EXPECT_EQ(v->token_types[15043], kTokenNormal);
  EXPECT_EQ(v->bos_id, 1u);
  EXPECT_EQ(v->eos_id, 2u);
  EXPECT_EQ(v->unk_id, 0u);
  EXPECT_EQ(v->pad_id, std::nullopt);
}

// --- tokenizer.json -----------------------------------------------------------

TEST(HfBpeTest, SmallTokenizerWithPairMergesAndAddedTokens) {
  ModelConfig c = Config(8);
  c.bos_token_id = 5;
  c.eos_token_ids = {6, 7};
  const std::string json = R"({
    "added_tokens": [{"id": 5, "content": "<s>", "special": true},
                     {"id": 6, "content": "</s>", "special": true},
                     {"id": 7, "content": "<tool>", "special": false}],
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
      {"type": "ByteLevel", "use_regex": false}]},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 4},
              "merges": [["a", "b"], "Ġ a"]}})";
  absl::StatusOr<GgufVocab> v = ParseHfBpeTokenizer(json, "tokenizer.json", c);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->model, "gpt2");
  EXPECT_EQ(v->pre, "llama-bpe");
  EXPECT_THAT(v->tokens, ElementsAre("a", "b", "ab", "[PAD3]", "Ġ", "<s>", "</s>", "<tool>"));
  EXPECT_THAT(v->token_types, ElementsAre(1, 1, 1, 5, 1, 3, 3, 4));
  EXPECT_THAT(v->merges, ElementsAre("a b", "Ġ a"));
  EXPECT_TRUE(v->scores.empty());
  EXPECT_EQ(v->bos_id, 5u);
  EXPECT_EQ(v->eos_id, 6u);
  EXPECT_EQ(v->unk_id, std::nullopt);
}

TEST(HfBpeTest, HostileJson) {
  ModelConfig c = Config(4);
  struct Case {
    std::string json;
    std::string message;
  };
  const std::vector<Case> cases = {
      {R"({"model": {"type": "Unigram", "vocab": []}})",
       "t.json: model: type \"Unigram\" is not supported for GGUF (BPE tokenizer.json or "
       "tokenizer.model only)"},
      {R"({"x": 1})", "t.json: key 'model' must be an object"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}}})",
       "t.json: model: a BPE model needs a 'vocab' object and a 'merges' array"},
      {R"({"model": {"vocab": {"a": 4}, "merges": []}})",
       "t.json: model.vocab: token 'a' has id 4, not an integer in [0, 4) (config vocab_size)"},
      {R"({"model": {"vocab": {"a": -1}, "merges": []}})",
       "t.json: model.vocab: token 'a' has id -1, not an integer in [0, 4) (config vocab_size)"},
      {R"({"model": {"vocab": {"a": "0"}, "merges": []}})",
       "t.json: model.vocab: token 'a' has id \"0\", not an integer in [0, 4) (config vocab_size)"},
      {R"({"model": {"vocab": {"a": 1, "b": 1}, "merges": []}})",
       "t.json: model.vocab: tokens 'a' and 'b' share id 1"},
      {R"({"model": {"vocab": {"a": 1}, "merges": [["a"]]}})",
       "t.json: model.merges[0]: must be a string or a pair of strings"},
      {R"({"model": {"vocab": {"a": 1}, "merges": ["a b", 3]}})",
       "t.json: model.merges[1]: must be a string or a pair of strings"},
      {R"({"added_tokens": {}, "model": {"vocab": {}, "merges": []}})",
       "t.json: 'added_tokens' must be an array"},
      {R"({"added_tokens": [{"id": 9, "content": "x"}], "model": {"vocab": {}, "merges": []}})",
       "t.json: added_tokens[0]: token 'x' has id 9, not an integer in [0, 4) (config vocab_size)"},
      {R"({"added_tokens": [{"content": "x"}], "model": {"vocab": {}, "merges": []}})",
       "t.json: added_tokens[0]: must be an object with 'id' and string 'content'"},
  };
  for (const Case& k : cases) {
    absl::Status s = ParseHfBpeTokenizer(k.json, "t.json", c).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << k.message;
    EXPECT_EQ(s.message(), k.message);
  }
  c.bos_token_id = 4;
  absl::Status s =
      ParseHfBpeTokenizer(R"({"model": {"vocab": {}, "merges": []}})", "t.json", c).status();
  EXPECT_EQ(s.message(), "config.json: bos_token_id 4 is not a token id (4 tokens)");
  EXPECT_EQ(ParseHfBpeTokenizer("{", "t.json", c).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HfBpeTest, Gpt2CurrentAndLegacyFiles) {
  for (const char* file : {"tokenizer.json", "tokenizer.legacy.json"}) {
    SCOPED_TRACE(file);
    const std::string shared = testing::SharedDir();
    if (shared.empty()) GTEST_SKIP() << "no ../shared";
    absl::StatusOr<std::string> text =
        ReadFileToString(shared + "/testdata/tokenizers/gpt2/" + file, 16 << 20);
    ASSERT_TRUE(text.ok()) << text.status();
    ModelConfig c = Config(50257);
    c.bos_token_id = 50256;
    c.eos_token_ids = {50256};
    absl::StatusOr<GgufVocab> v = ParseHfBpeTokenizer(*text, file, c);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->model, "gpt2");
    EXPECT_EQ(v->pre, "gpt-2");
    ASSERT_EQ(v->tokens.size(), 50257u);
    EXPECT_EQ(v->tokens[15496], "Hello");
    EXPECT_EQ(v->tokens[995], "\xc4\xa0world");
    EXPECT_EQ(v->tokens[40559],
              "\xc4\xa0"
              "Claude");
    EXPECT_EQ(v->tokens[50256], "<|endoftext|>");
    EXPECT_EQ(v->token_types[50256], kTokenControl);
    EXPECT_EQ(v->token_types[15496], kTokenNormal);
    ASSERT_EQ(v->merges.size(), 50000u);
    EXPECT_EQ(v->merges[0], "\xc4\xa0 t");
    EXPECT_EQ(v->bos_id, 50256u);
    EXPECT_EQ(v->eos_id, 50256u);
    // A larger config vocab pads; a smaller one is an error.
    c.vocab_size = 50260;
    v = ParseHfBpeTokenizer(*text, file, c);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->tokens[50259], "[PAD50259]");
    EXPECT_EQ(v->token_types[50259], kTokenUnused);
    c.vocab_size = 50000;
    EXPECT_EQ(ParseHfBpeTokenizer(*text, file, c).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

// --- loading and metadata -----------------------------------------------------

TEST(LoadGgufVocabTest, PrefersTokenizerModelAndIsEmptyWithoutFiles) {
  TempDir dir;
  absl::StatusOr<std::optional<GgufVocab>> v = LoadGgufVocab(dir.path(), Config(5));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_FALSE(v->has_value());
  testing::WriteFile(dir.File("tokenizer.json"), R"({"model": {"vocab": {"x": 0}, "merges": []}})");
  v = LoadGgufVocab(dir.path(), Config(5));
  ASSERT_TRUE(v.ok() && v->has_value()) << v.status();
  EXPECT_EQ((*v)->model, "gpt2");
  EXPECT_EQ((*v)->pre, "");
  testing::WriteFile(dir.File("tokenizer.model"), SmallModel());
  v = LoadGgufVocab(dir.path(), Config(5));
  ASSERT_TRUE(v.ok() && v->has_value()) << v.status();
  EXPECT_EQ((*v)->model, "llama");
  testing::WriteFile(dir.File("tokenizer.model"), "\x0a\x09");
  absl::Status s = LoadGgufVocab(dir.path(), Config(5)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            dir.File("tokenizer.model") + ": byte 1: length 9 runs past the end (0 bytes left)");
}

TEST(AddVocabMetadataTest, KeysAndCount) {
  GgufVocab spm = *ParseSentencePieceModel(SmallModel(), "x", 5);
  GgufMetadata m;
  AddVocabMetadata(spm, &m);
  EXPECT_TRUE(m.status().ok());
  EXPECT_EQ(m.count(), 8u);  // model, pre, tokens, scores, token_type, bos, eos, unknown
  GgufVocab bpe;
  bpe.model = "gpt2";
  bpe.tokens = {"a"};
  bpe.token_types = {1};
  GgufMetadata m2;
  AddVocabMetadata(bpe, &m2);
  EXPECT_EQ(m2.count(), 4u);  // model, tokens, token_type, merges (empty but required)
}

}  // namespace
}  // namespace signround
