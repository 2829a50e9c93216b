// The reader-side GGUF check (src/export/gguf_check.h): files our writer makes
// pass (whole, head only, and from disk), and hand-built broken files fail
// with DATA_LOSS or INVALID_ARGUMENT naming what is wrong and at which byte.
#include "src/export/gguf_check.h"

#include <dirent.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/export/gguf_file.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

using ::signround::testing::TempDir;
using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A GGUF file built byte by byte, so that it can be wrong in every way.
class HandGguf {
 public:
  HandGguf& Key(absl::string_view key, uint32_t type) {
    ++n_kv_;
    Str(&kv_, key);
    U32(&kv_, type);
    return *this;
  }
  HandGguf& KvU32(absl::string_view key, uint32_t v) {
    Key(key, 4);
    U32(&kv_, v);
    return *this;
  }
  HandGguf& KvStr(absl::string_view key, absl::string_view v) {
    Key(key, 8);
    Str(&kv_, v);
    return *this;
  }
  // Raw bytes appended to the metadata section (a value, or an array body).
  HandGguf& KvRaw(absl::string_view bytes) {
    kv_.append(bytes.data(), bytes.size());
    return *this;
  }
  HandGguf& Tensor(absl::string_view name, const std::vector<uint64_t>& ne, uint32_t type,
                   uint64_t offset) {
    ++n_tensors_;
    Str(&infos_, name);
    U32(&infos_, static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) U64(&infos_, d);
    U32(&infos_, type);
    U64(&infos_, offset);
    return *this;
  }
  HandGguf& Counts(uint64_t n_tensors, uint64_t n_kv) {
    n_tensors_ = n_tensors;
    n_kv_ = n_kv;
    return *this;
  }
  HandGguf& DataBytes(uint64_t n) {
    data_bytes_ = n;
    return *this;
  }

  // Header, metadata, infos, zero padding to 32 bytes, then zero data.
  std::string Bytes() const {
    std::string b = "GGUF";
    U32(&b, 3);
    U64(&b, n_tensors_);
    U64(&b, n_kv_);
    b += kv_ + infos_;
    b.append((32 - b.size() % 32) % 32, '\0');
    b.append(data_bytes_, '\0');
    return b;
  }

  static void U32(std::string* out, uint32_t v) { out->append(reinterpret_cast<char*>(&v), 4); }
  static void U64(std::string* out, uint64_t v) { out->append(reinterpret_cast<char*>(&v), 8); }
  static void Str(std::string* out, absl::string_view s) {
    U64(out, s.size());
    out->append(s.data(), s.size());
  }
  static std::string U32s(uint32_t v) {
    std::string s;
    U32(&s, v);
    return s;
  }
  static std::string U64s(uint64_t v) {
    std::string s;
    U64(&s, v);
    return s;
  }

 private:
  std::string kv_, infos_;
  uint64_t n_kv_ = 0, n_tensors_ = 0, data_bytes_ = 0;
};

absl::Status Check(const std::string& bytes) {
  return CheckGgufBytes(bytes, bytes.size()).status();
}

// A small file of every metadata type and ggml type, written by our writer.
std::string WriteSample(const std::string& path) {
  GgufMetadata m;
  m.AddString("general.architecture", "llama");
  m.AddU8("a.u8", 200);
  m.AddI8("a.i8", -100);
  m.AddU16("a.u16", 60000);
  m.AddI16("a.i16", -30000);
  m.AddU32("a.u32", 4000000000u);
  m.AddI32("a.i32", -2000000000);
  m.AddF32("a.f32", 1.5f);
  m.AddBool("a.bool", true);
  m.AddU64("a.u64", 1ull << 60);
  m.AddI64("a.i64", -(1ll << 60));
  m.AddF64("a.f64", 0.1);
  m.AddArray("a.arr_i32", std::vector<int32_t>{1, -2, 3});
  m.AddArray("a.arr_bool", std::vector<bool>{true, false});
  m.AddArray("a.arr_u8", std::vector<uint8_t>{});
  m.AddStringArray("a.arr_str", {"x", "", "yz"});
  // The last tensor's data ends on the alignment, so the file has no trailing padding.
  const std::vector<GgufTensorInfo> tensors = {{"t.f32", {3}, GgmlType::kF32},
                                               {"t.q4_0", {2, 32}, GgmlType::kQ4_0},
                                               {"t.q4_1", {1, 64}, GgmlType::kQ4_1},
                                               {"t.q8_0", {3, 32}, GgmlType::kQ8_0},
                                               {"t.f16", {16}, GgmlType::kF16}};
  absl::Status s = WriteGgufFile(path, m, tensors,
                                 [](size_t i, const GgufTensorInfo& info, const GgufWriteFn& w) {
                                   return w(std::string(*GgufTensorBytes(info), 'a' + i));
                                 });
  EXPECT_TRUE(s.ok()) << s;
  return ReadAll(path);
}

TEST(GgufCheckTest, OurWritersFilePasses) {
  TempDir tmp;
  const std::string path = tmp.File("x.gguf");
  const std::string bytes = WriteSample(path);
  absl::StatusOr<GgufLayout> layout = CheckGgufFile(path);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->version, 3u);
  EXPECT_EQ(layout->kv_count, 16u);
  EXPECT_EQ(layout->tensor_count, 5u);
  EXPECT_EQ(layout->alignment, 32u);
  EXPECT_EQ(layout->data_start % 32, 0u);
  EXPECT_LE(layout->infos_end, layout->data_start);
  // 12 bytes at 0, 36 at 32, 40 at 96, 102 at 160, 32 at 288.
  EXPECT_EQ(layout->data_end, layout->data_start + 320);
  EXPECT_EQ(layout->data_end, bytes.size());
  // The same from memory, and from the head alone (up to the end of the infos).
  absl::StatusOr<GgufLayout> again = CheckGgufBytes(bytes, bytes.size(), "mem");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->data_end, layout->data_end);
  EXPECT_TRUE(
      CheckGgufBytes(absl::string_view(bytes).substr(0, layout->infos_end), bytes.size()).ok());
  absl::Status short_head =
      CheckGgufBytes(absl::string_view(bytes).substr(0, layout->infos_end - 1), bytes.size())
          .status();
  EXPECT_EQ(short_head.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(short_head.message(), HasSubstr("was given only the first"));
}

TEST(GgufCheckTest, TheWriterChecksItsFileBeforePublishingIt) {
  // GgufMetadata takes any non-empty key; the check refuses control characters.
  TempDir tmp;
  const std::string path = tmp.File("x.gguf");
  GgufMetadata m;
  m.AddU32("bad\nkey", 1);
  absl::Status s = WriteGgufFile(path, m, {}, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr(path +
                                     ": the GGUF file written fails the reader-side "
                                     "check: " +
                                     path + ".tmp-"));
  EXPECT_THAT(s.message(),
              HasSubstr(": byte 35: metadata key #0 has byte 0x0a (keys are printable ASCII)"));
  // Neither the file nor its temporary is left behind.
  DIR* dir = ::opendir(tmp.path().c_str());
  ASSERT_NE(dir, nullptr);
  int entries = 0;
  for (dirent* e; (e = ::readdir(dir)) != nullptr;) entries += e->d_name[0] != '.';
  ::closedir(dir);
  EXPECT_EQ(entries, 0);
}

TEST(GgufCheckTest, LargeMetadataIsReadThroughTheWindow) {
  // ~600 KB of metadata: strings, bools and keys straddle the 64 KiB read window.
  TempDir tmp;
  GgufMetadata m;
  std::vector<std::string> tokens;
  for (int i = 0; i < 40000; ++i) tokens.push_back(absl::StrCat("tok", i));
  m.AddStringArray("tokenizer.ggml.tokens", tokens);
  std::vector<bool> flags(70001);
  for (size_t i = 0; i < flags.size(); i += 3) flags[i] = true;
  m.AddArray("a.flags", flags);
  for (int i = 0; i < 30; ++i)
    m.AddString(absl::StrCat("k.", std::string(5000, 'a' + i % 26), i), "v");
  const std::string path = tmp.File("big.gguf");
  ASSERT_TRUE(WriteGgufFile(path, m, {{"t", {64}, GgmlType::kF32}},
                            [](size_t, const GgufTensorInfo&, const GgufWriteFn& write) {
                              return write(std::string(256, '\0'));
                            })
                  .ok());
  const std::string bytes = ReadAll(path);
  ASSERT_GT(bytes.size(), 500000u);
  absl::StatusOr<GgufLayout> from_file = CheckGgufFile(path);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  absl::StatusOr<GgufLayout> from_memory = CheckGgufBytes(bytes, bytes.size());
  ASSERT_TRUE(from_memory.ok()) << from_memory.status();
  EXPECT_EQ(from_file->infos_end, from_memory->infos_end);
  EXPECT_EQ(from_file->data_end, bytes.size());
  // A bad bool far into the file is found at its byte.
  std::string broken = bytes;
  const size_t flags_at = broken.find("a.flags") + 7 + 4 + 4 + 8;  // key, type, elem type, count
  broken[flags_at + 69999] = 7;
  const std::string broken_path = tmp.File("broken.gguf");
  testing::WriteFile(broken_path, broken);
  EXPECT_EQ(CheckGgufFile(broken_path).status(),
            absl::InvalidArgumentError(absl::StrCat(broken_path, ": byte ", flags_at + 69999,
                                                    ": metadata 'a.flags'[69999] is a bool of "
                                                    "value 7 (0 or 1)")));
}

TEST(GgufCheckTest, EveryTruncationFails) {
  TempDir tmp;
  const std::string bytes = WriteSample(tmp.File("x.gguf"));
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::Status s = CheckGgufBytes(absl::string_view(bytes).substr(0, n), n).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << n << ": " << s;
  }
  absl::Status s = Check(bytes.substr(0, 2));
  EXPECT_EQ(s.message(), "GGUF: byte 0: the magic needs 4 bytes but the file ends at byte 2");
  s = Check(bytes.substr(0, bytes.size() - 1));
  EXPECT_THAT(s.message(), HasSubstr("tensor 't.f16' ends at data offset 320 but the data "
                                     "section"));
  EXPECT_THAT(s.message(), HasSubstr("holds only 319 bytes"));
  // From disk too.
  const std::string cut = tmp.File("cut.gguf");
  testing::WriteFile(cut, bytes.substr(0, 100));
  s = CheckGgufFile(cut).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr(cut + ": byte "));
}

TEST(GgufCheckTest, BadMagicAndVersion) {
  std::string b = HandGguf().Bytes();
  EXPECT_TRUE(Check(b).ok()) << Check(b);
  b[3] = 'X';
  EXPECT_EQ(Check(b), absl::InvalidArgumentError(
                          "GGUF: byte 0: bad magic 0x58554747 (a GGUF file starts with \"GGUF\")"));
  b = HandGguf().Bytes();
  b[4] = 2;
  EXPECT_EQ(Check(b),
            absl::InvalidArgumentError("GGUF: byte 4: version 2 is not supported (only 3)"));
}

TEST(GgufCheckTest, HugeCountsAndLengthsFailWithoutAllocating) {
  absl::Status s = Check(HandGguf().Counts(0, uint64_t{1} << 62).Bytes());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("byte 8: 0 tensors and 4611686018427387904 metadata pairs "
                                     "cannot fit in the 8 bytes left in the file"));
  s = Check(HandGguf().Counts(~uint64_t{0}, 0).Bytes());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("18446744073709551615 tensors and 0 metadata pairs"));
  // A string value, a key and an array longer than the file.
  s = Check(HandGguf().Key("k", 8).KvRaw(HandGguf::U64s(~uint64_t{0})).Bytes());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("metadata 'k' needs 18446744073709551615 bytes"));
  std::string b = HandGguf().KvU32("key", 1).Bytes();
  std::memset(&b[24], 0xff, 8);  // the key's length
  EXPECT_EQ(Check(b), absl::InvalidArgumentError(
                          "GGUF: byte 24: metadata key #0 is 18446744073709551615 bytes (1 to "
                          "65535 allowed)"));
  s = Check(HandGguf()
                .Key("arr", 9)
                .KvRaw(HandGguf::U32s(6) + HandGguf::U64s(uint64_t{1} << 61))
                .Bytes());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("metadata 'arr': 2305843009213693952 f32 values (at least 4 "
                                     "bytes each) cannot fit"));
  s = Check(HandGguf()
                .Key("arr", 9)
                .KvRaw(HandGguf::U32s(8) + HandGguf::U64s(uint64_t{1} << 40))
                .Bytes());
  EXPECT_THAT(s.message(), HasSubstr("1099511627776 string values (at least 8 bytes each)"));
}

TEST(GgufCheckTest, MisalignedOffsetsFail) {
  absl::Status s =
      Check(HandGguf().Tensor("a", {4}, 0, 0).Tensor("b", {4}, 0, 16).DataBytes(64).Bytes());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              HasSubstr("tensor 'b' has offset 16, not a multiple of the alignment 32"));
  // general.alignment 16 allows it; it must be a u32 power of two.
  EXPECT_TRUE(Check(HandGguf()
                        .KvU32("general.alignment", 16)
                        .Tensor("a", {4}, 0, 0)
                        .Tensor("b", {4}, 0, 16)
                        .DataBytes(64)
                        .Bytes())
                  .ok());
  s = Check(HandGguf().KvU32("general.alignment", 24).Bytes());
  EXPECT_THAT(s.message(), HasSubstr("metadata 'general.alignment' is 24, not a power of two"));
  s = Check(HandGguf().KvU32("general.alignment", 0).Bytes());
  EXPECT_THAT(s.message(), HasSubstr("is 0, not a power of two"));
  s = Check(HandGguf().Key("general.alignment", 10).KvRaw(HandGguf::U64s(32)).Bytes());
  EXPECT_THAT(s.message(), HasSubstr("'general.alignment' must be a u32, not u64 (type 10)"));
}

TEST(GgufCheckTest, OverlappingOrUnorderedTensorsFail) {
  // 16 floats are 64 bytes: b at 32 overlaps a.
  absl::Status s =
      Check(HandGguf().Tensor("a", {16}, 0, 0).Tensor("b", {16}, 0, 32).DataBytes(96).Bytes());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("tensor 'b' has offset 32, before the end of the previous "
                                     "tensor's data (64)"));
  s = Check(HandGguf().Tensor("a", {8}, 0, 32).Tensor("b", {8}, 0, 0).DataBytes(64).Bytes());
  EXPECT_THAT(s.message(), HasSubstr("tensor 'b' has offset 0, before the end"));
  // Gaps are fine; running past the end of the file is not.
  EXPECT_TRUE(
      Check(HandGguf().Tensor("a", {8}, 0, 0).Tensor("b", {8}, 0, 64).DataBytes(96).Bytes()).ok());
  s = Check(HandGguf().Tensor("a", {8}, 0, 0).Tensor("b", {8}, 0, 64).DataBytes(95).Bytes());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("tensor 'b' ends at data offset 96"));
  s = Check(HandGguf().Tensor("a", {8}, 0, ~uint64_t{0} - 31).DataBytes(32).Bytes());
  EXPECT_THAT(s.message(), HasSubstr("overflows"));
}

TEST(GgufCheckTest, DuplicateKeysAndTensorNamesFail) {
  absl::Status s = Check(HandGguf().KvU32("a.b", 1).KvStr("a.b", "x").Bytes());
  EXPECT_EQ(s, absl::InvalidArgumentError("GGUF: byte 43: duplicate metadata key 'a.b'"));
  s = Check(HandGguf().Tensor("t", {8}, 0, 0).Tensor("t", {8}, 0, 32).DataBytes(64).Bytes());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("duplicate tensor name 't'"));
}

TEST(GgufCheckTest, BadKeysValuesAndTensorInfosFail) {
  auto message = [](const std::string& bytes) { return std::string(Check(bytes).message()); };
  EXPECT_THAT(message(HandGguf().KvU32("", 1).Bytes()),
              HasSubstr("metadata key #0 is 0 bytes (1 to 65535 allowed)"));
  EXPECT_THAT(message(HandGguf().KvU32("a\nb", 1).Bytes()),
              HasSubstr("byte 33: metadata key #0 has byte 0x0a (keys are printable ASCII)"));
  EXPECT_THAT(message(HandGguf().Key("k", 13).KvRaw(std::string(8, '\0')).Bytes()),
              HasSubstr("metadata 'k' has unknown value type 13"));
  EXPECT_THAT(message(HandGguf().Key("k", 7).KvRaw("\x02").Bytes()),
              HasSubstr("metadata 'k' is a bool of value 2 (0 or 1)"));
  EXPECT_THAT(
      message(HandGguf()
                  .Key("k", 9)
                  .KvRaw(HandGguf::U32s(7) + HandGguf::U64s(3) + std::string("\x01\x00\x05", 3))
                  .Bytes()),
      HasSubstr("metadata 'k'[2] is a bool of value 5"));
  EXPECT_THAT(message(HandGguf().Key("k", 9).KvRaw(HandGguf::U32s(20) + HandGguf::U64s(0)).Bytes()),
              HasSubstr("metadata 'k' is an array of unknown value type 20"));
  // Arrays of arrays: fine a few deep, refused past kGgufMaxArrayDepth.
  // An array holding one array (element type 9, count 1), kGgufMaxArrayDepth - 1 times.
  std::string nested;
  for (int i = 0; i + 1 < kGgufMaxArrayDepth; ++i) {
    nested += HandGguf::U32s(9) + HandGguf::U64s(1);
  }
  const std::string strings = HandGguf::U32s(8) + HandGguf::U64s(1) + HandGguf::U64s(2) + "hi";
  EXPECT_TRUE(Check(HandGguf().Key("ok", 9).KvRaw(nested + strings).Bytes()).ok());
  EXPECT_THAT(message(HandGguf()
                          .Key("deep", 9)
                          .KvRaw(nested + HandGguf::U32s(9) + HandGguf::U64s(1) + strings)
                          .Bytes()),
              HasSubstr("nests arrays more than 8 deep"));
  // Tensor infos.
  EXPECT_THAT(message(HandGguf().Tensor(std::string(64, 'n'), {8}, 0, 0).DataBytes(32).Bytes()),
              HasSubstr("tensor #0's name is 64 bytes (1 to 63 allowed)"));
  EXPECT_THAT(message(HandGguf().Tensor("t", {}, 0, 0).Bytes()),
              HasSubstr("tensor 't' has 0 dims (1 to 4)"));
  EXPECT_THAT(message(HandGguf().Tensor("t", {1, 1, 1, 1, 1}, 0, 0).DataBytes(32).Bytes()),
              HasSubstr("tensor 't' has 5 dims (1 to 4)"));
  EXPECT_THAT(message(HandGguf().Tensor("t", {8, 0}, 0, 0).Bytes()),
              HasSubstr("tensor 't' has dim 1 = 0"));
  EXPECT_THAT(message(HandGguf().Tensor("t", {1ull << 32, 1ull << 32}, 0, 0).Bytes()),
              HasSubstr("tensor 't' has more than 2^63 - 1 elements"));
  EXPECT_THAT(message(HandGguf().Tensor("t", {1ull << 62, 1}, 0, 0).Bytes()),
              HasSubstr("tensor 't''s data size overflows"));
  EXPECT_THAT(message(HandGguf().Tensor("t", {32}, 7, 0).DataBytes(64).Bytes()),
              HasSubstr("tensor 't' has unknown ggml type 7"));
  EXPECT_THAT(message(HandGguf().Tensor("t", {48, 2}, 8, 0).DataBytes(256).Bytes()),
              HasSubstr("tensor 't' (Q8_0) has rows of 48 values, not a multiple of the block "
                        "size 32"));
}

}  // namespace
}  // namespace signround
