// The GGUF file writer (src/export/gguf_file.h), read back by the independent reader
// (tests/testing/gguf_reader.h): every metadata type, alignment and offsets, and bad input that
// leaves no file.
#include "src/export/gguf_file.h"

#include <sys/stat.h>

#include <dirent.h>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/gguf_reader.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

using namespace ::signround::testing::gguf;  // NOLINT: the reader's types
using ::signround::testing::TempDir;
using ::testing::HasSubstr;

TEST(GgufFileTest, EveryMetadataTypeAndAlignment) {
  TempDir tmp;
  GgufMetadata m;
  m.AddU8("a.u8", 200);
  m.AddI8("a.i8", -100);
  m.AddU16("a.u16", 60000);
  m.AddI16("a.i16", -30000);
  m.AddU32("a.u32", 4000000000u);
  m.AddI32("a.i32", -2000000000);
  m.AddF32("a.f32", 1.5f);
  m.AddBool("a.bool", true);
  m.AddString("a.str", std::string("h\0i", 3));
  m.AddU64("a.u64", 1ull << 60);
  m.AddI64("a.i64", -(1ll << 60));
  m.AddF64("a.f64", 0.1);
  m.AddArray("a.arr_i32", std::vector<int32_t>{1, -2, 3});
  m.AddArray("a.arr_f32", std::vector<float>{0.5f});
  m.AddArray("a.arr_bool", std::vector<bool>{true, false});
  m.AddArray("a.arr_u8", std::vector<uint8_t>{});
  m.AddStringArray("a.arr_str", {"x", "", "yz"});
  std::vector<GgufTensorInfo> tensors = {{"t0", {3}, GgmlType::kF32},
                                         {"t1", {2, 32}, GgmlType::kQ4_1},
                                         {"t2", {1, 5}, GgmlType::kF16}};
  const std::string path = tmp.File("x.gguf");
  ASSERT_TRUE(WriteGgufFile(path, m, tensors,
                            [&](size_t i, const GgufTensorInfo& info, const GgufWriteFn& write) {
                              absl::StatusOr<uint64_t> n = GgufTensorBytes(info);
                              std::string bytes(*n, static_cast<char>('a' + i));
                              // In two pieces.
                              absl::Status s = write(absl::string_view(bytes).substr(0, 1));
                              return s.ok() ? write(absl::string_view(bytes).substr(1)) : s;
                            })
                  .ok());
  GgufContents g = ReadGguf(path);
  ASSERT_EQ(g.kv.size(), 17u);
  EXPECT_EQ(g.kv["a.u8"].type, kU8);
  EXPECT_EQ(g.kv["a.u8"].u, 200u);
  EXPECT_EQ(g.kv["a.i8"].type, kI8);
  EXPECT_EQ(g.kv["a.i8"].i, -100);
  EXPECT_EQ(g.kv["a.u16"].type, kU16);
  EXPECT_EQ(g.kv["a.u16"].u, 60000u);
  EXPECT_EQ(g.kv["a.i16"].type, kI16);
  EXPECT_EQ(g.kv["a.i16"].i, -30000);
  EXPECT_EQ(g.kv["a.u32"].type, kU32);
  EXPECT_EQ(g.kv["a.u32"].u, 4000000000u);
  EXPECT_EQ(g.kv["a.i32"].type, kI32);
  EXPECT_EQ(g.kv["a.i32"].i, -2000000000);
  EXPECT_EQ(g.kv["a.f32"].type, kF32);
  EXPECT_EQ(g.kv["a.f32"].f, 1.5);
  EXPECT_EQ(g.kv["a.bool"].type, kBool);
  EXPECT_EQ(g.kv["a.bool"].u, 1u);
  EXPECT_EQ(g.kv["a.str"].type, kStr);
  EXPECT_EQ(g.kv["a.str"].s, std::string("h\0i", 3));
  EXPECT_EQ(g.kv["a.u64"].type, kU64);
  EXPECT_EQ(g.kv["a.u64"].u, 1ull << 60);
  EXPECT_EQ(g.kv["a.i64"].type, kI64);
  EXPECT_EQ(g.kv["a.i64"].i, -(1ll << 60));
  EXPECT_EQ(g.kv["a.f64"].type, kF64);
  EXPECT_EQ(g.kv["a.f64"].f, 0.1);
  EXPECT_EQ(g.kv["a.arr_i32"].elem_type, kI32);
  ASSERT_EQ(g.kv["a.arr_i32"].items.size(), 3u);
  EXPECT_EQ(g.kv["a.arr_i32"].items[1].i, -2);
  EXPECT_EQ(g.kv["a.arr_f32"].items[0].f, 0.5);
  EXPECT_EQ(g.kv["a.arr_bool"].elem_type, kBool);
  EXPECT_EQ(g.kv["a.arr_bool"].items[0].u, 1u);
  EXPECT_EQ(g.kv["a.arr_bool"].items[1].u, 0u);
  EXPECT_EQ(g.kv["a.arr_u8"].elem_type, kU8);
  EXPECT_TRUE(g.kv["a.arr_u8"].items.empty());
  EXPECT_EQ(g.kv["a.arr_str"].elem_type, kStr);
  ASSERT_EQ(g.kv["a.arr_str"].items.size(), 3u);
  EXPECT_EQ(g.kv["a.arr_str"].items[2].s, "yz");
  ASSERT_EQ(g.tensors.size(), 3u);
  EXPECT_EQ(g.tensors[0].ne, std::vector<uint64_t>{3});
  EXPECT_EQ(g.tensors[1].ne, (std::vector<uint64_t>{32, 2}));
  EXPECT_EQ(g.tensors[1].type, kTQ4_1);
  EXPECT_EQ(g.tensors[2].ne, (std::vector<uint64_t>{5, 1}));
  EXPECT_EQ(g.data_start % 32, 0u);
  EXPECT_EQ(g.tensors[0].offset, 0u);
  EXPECT_EQ(g.tensors[1].offset, 32u);  // 12 bytes padded
  EXPECT_EQ(g.tensors[2].offset, 96u);  // 40 bytes padded
  EXPECT_EQ(g.Data(g.tensors[1], 40), std::string(40, 'b'));
  EXPECT_EQ(g.bytes.size(), g.data_start + 128);  // the last tensor is padded too
}

TEST(GgufFileTest, RefusesBadInputAndLeavesNoFile) {
  TempDir tmp;
  const std::string path = tmp.File("x.gguf");
  auto zeros = [](size_t, const GgufTensorInfo& info, const GgufWriteFn& write) {
    return write(std::string(*GgufTensorBytes(info), '\0'));
  };
  GgufMetadata dup;
  dup.AddU32("k", 1);
  dup.AddString("k", "v");
  EXPECT_EQ(WriteGgufFile(path, dup, {}, zeros).message(), "GGUF metadata: duplicate key 'k'");
  GgufMetadata m;
  absl::Status s = WriteGgufFile(path, m, {{"t", {4, 48}, GgmlType::kQ8_0}}, zeros);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "GGUF tensor 't' [4, 48] Q8_0: the row length is not a multiple of the block size 32");
  s = WriteGgufFile(path, m, {{"t", {1}, GgmlType::kF32}, {"t", {1}, GgmlType::kF32}}, zeros);
  EXPECT_THAT(s.message(), HasSubstr("duplicate GGUF tensor 't'"));
  s = WriteGgufFile(path, m, {{std::string(64, 'n'), {1}, GgmlType::kF32}}, zeros);
  EXPECT_THAT(s.message(), HasSubstr("must be 1 to 63 bytes"));
  // A callback that writes too little, too much, or fails.
  std::vector<GgufTensorInfo> t = {{"a", {8}, GgmlType::kF32}, {"b", {8}, GgmlType::kF32}};
  s = WriteGgufFile(path, m, t, [](size_t i, const GgufTensorInfo&, const GgufWriteFn& write) {
    return write(std::string(i == 1 ? 31 : 32, '\0'));
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("tensor 'b' got 31 of its 32 bytes"));
  s = WriteGgufFile(path, m, t, [](size_t, const GgufTensorInfo&, const GgufWriteFn& write) {
    return write(std::string(33, '\0'));
  });
  EXPECT_THAT(s.message(), HasSubstr("tensor 'a' got more than its 32 bytes"));
  s = WriteGgufFile(path, m, t, [](size_t i, const GgufTensorInfo&, const GgufWriteFn& write) {
    return i == 1 ? absl::DataLossError("boom") : write(std::string(32, '\0'));
  });
  EXPECT_EQ(s, absl::DataLossError("boom"));
  struct stat st;
  EXPECT_NE(::stat(path.c_str(), &st), 0);
  DIR* d = ::opendir(tmp.path().c_str());
  int entries = 0;
  for (dirent* e; (e = ::readdir(d)) != nullptr;) entries += e->d_name[0] != '.';
  ::closedir(d);
  EXPECT_EQ(entries, 0);
}

}  // namespace
}  // namespace signround
