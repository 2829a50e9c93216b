// Hostile safetensors files: every malformation gets INVALID_ARGUMENT and a
// one-line message naming the file, the tensor, and what is wrong.
#include <gtest/gtest.h>

#include <string>

#include "src/tensor/safetensors_file.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

using testing::SafetensorsBytes;
using testing::TempDir;
using testing::WithHeaderLength;

class SafetensorsHeaderTest : public ::testing::Test {
 protected:
  // Writes `bytes` to a file, opens it and returns the error message.
  std::string OpenError(const std::string& bytes) {
    std::string path = dir_.File("bad.safetensors");
    testing::WriteFile(path, bytes);
    auto file = SafetensorsFile::Open(path);
    EXPECT_FALSE(file.ok());
    if (file.ok()) return "";
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << file.status();
    std::string msg(file.status().message());
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << "message must start with the path: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message must be one line: " << msg;
    return msg.substr(path.size() + 2);
  }

  std::string OpenErrorWithHeader(const std::string& header, const std::string& data) {
    return OpenError(SafetensorsBytes(header, data));
  }

  TempDir dir_;
};

TEST_F(SafetensorsHeaderTest, ValidFileParses) {
  std::string path = dir_.File("ok.safetensors");
  testing::WriteFile(path,
                     SafetensorsBytes(R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},)"
                                      R"("a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                      R"("__metadata__":{"format":"pt"}}   )",
                                      std::string(12, 'x')));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const SafetensorsHeader& h = (*file)->header();
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "a");  // sorted by name
  EXPECT_EQ(h.metadata.at("format"), "pt");
  const TensorEntry* b = h.Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::kF32);
  EXPECT_EQ(b->numel, 2u);
  EXPECT_EQ((*file)->Bytes(*b).size(), 8u);
  EXPECT_EQ(h.Find("c"), nullptr);
  EXPECT_EQ((*file)->Find("c").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SafetensorsHeaderTest, EmptyTensorListIsValid) {
  std::string path = dir_.File("empty.safetensors");
  testing::WriteFile(path, SafetensorsBytes("{}", ""));
  EXPECT_TRUE(SafetensorsFile::Open(path).ok());
}

TEST_F(SafetensorsHeaderTest, FileShorterThanEightBytes) {
  EXPECT_EQ(OpenError(""), "file is 0 bytes, too short for the 8-byte header length");
  EXPECT_EQ(OpenError("1234567"), "file is 7 bytes, too short for the 8-byte header length");
}

TEST_F(SafetensorsHeaderTest, HeaderLengthPastEndOfFile) {
  EXPECT_EQ(OpenError(WithHeaderLength(100, "{}")),
            "header length 100 runs past the end of the file (10 bytes)");
}

TEST_F(SafetensorsHeaderTest, HeaderLengthOverLimit) {
  EXPECT_EQ(OpenError(WithHeaderLength(100'000'001, "{}")),
            "header length 100000001 exceeds the limit of 100000000 bytes");
  EXPECT_EQ(OpenError(WithHeaderLength(~uint64_t{0}, "{}")),
            "header length 18446744073709551615 exceeds the limit of 100000000 bytes");
}

TEST_F(SafetensorsHeaderTest, HeaderNotJson) {
  EXPECT_NE(OpenErrorWithHeader("{not json}", "").find("header: not valid JSON: parse error"),
            std::string::npos);
  EXPECT_NE(OpenErrorWithHeader(R"({"a": 1} trailing)", "").find("not valid JSON"),
            std::string::npos);
}

TEST_F(SafetensorsHeaderTest, HeaderNotAnObject) {
  EXPECT_EQ(OpenErrorWithHeader("[1,2,3]", ""),
            "header is not a JSON object (it must start with '{')");
  EXPECT_EQ(OpenErrorWithHeader("", ""), "header is not a JSON object (it must start with '{')");
  EXPECT_EQ(OpenErrorWithHeader(R"({"a": 5})", ""),
            "tensor 'a': entry must be an object, got number");
}

TEST_F(SafetensorsHeaderTest, UnknownDType) {
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})", "x"),
            "tensor 'a': unknown dtype 'Q4'");
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"shape":[1],"data_offsets":[0,1]}})", "x"),
            "tensor 'a': 'dtype' is missing or not a string");
}

TEST_F(SafetensorsHeaderTest, NegativeOrOverflowingShape) {
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,0]}})", ""),
            "tensor 'a': shape [-1,4] has a dimension that is not a non-negative integer");
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,0]}})", ""),
            "tensor 'a': shape [1.5] has a dimension that is not a non-negative integer");
  EXPECT_EQ(
      OpenErrorWithHeader(
          R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""),
      "tensor 'a': shape [4294967296,4294967296] overflows");
  // Fits in u64 elements but not in bytes.
  EXPECT_EQ(OpenErrorWithHeader(
                R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})", ""),
            "tensor 'a': shape [4611686018427387904] overflows");
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"F32","shape":5,"data_offsets":[0,4]}})", "x"),
            "tensor 'a': 'shape' is missing or not a list");
}

// Found by tests/fuzz/safetensors_header_fuzz: the message dumped the whole
// shape, recursing once per nesting level (a stack overflow at ~100k levels).
TEST_F(SafetensorsHeaderTest, HostileShapesAreShownShortWithoutRecursing) {
  const int depth = 1000000;
  const std::string nested = std::string(depth, '[') + std::string(depth, ']');
  EXPECT_EQ(OpenErrorWithHeader(
                R"({"a":{"dtype":"F32","shape":)" + nested + R"(,"data_offsets":[0,0]}})", ""),
            "tensor 'a': shape [<array>] has a dimension that is not a non-negative integer");
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,)" + nested +
                                    R"(],"data_offsets":[0,0]}})",
                                ""),
            "tensor 'a': shape [4294967296,4294967296,<array>] overflows");
  std::string many = "[1";
  for (int i = 0; i < 20; ++i) many += ",1";
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"F32","shape":)" + many + R"(,{},")" +
                                    std::string(40, 's') + R"("],"data_offsets":[0,0]}})",
                                ""),
            "tensor 'a': shape [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,... 23 dims] has a dimension that "
            "is not a non-negative integer");
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"F32","shape":[2,{"x":1},")" +
                                    std::string(33, 's') + R"(","short"],"data_offsets":[0,0]}})",
                                ""),
            "tensor 'a': shape [2,<object>,<string>,\"short\"] has a dimension that is not a "
            "non-negative integer");
}

TEST_F(SafetensorsHeaderTest, BadOffsets) {
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,2]}})", "xxxx"),
            "tensor 'a': data_offsets [4, 2] end before they begin");
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", "x"),
            "tensor 'a': 'data_offsets' must be a list of two non-negative integers");
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", "x"),
            "tensor 'a': 'data_offsets' must be a list of two non-negative integers");
}

TEST_F(SafetensorsHeaderTest, ByteSizeNotMatchingShape) {
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})",
                                std::string(12, 'x')),
            "tensor 'a': data_offsets [0, 12] hold 12 bytes but F32 [2, 2] needs 16");
}

TEST_F(SafetensorsHeaderTest, OffsetsOverlap) {
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                                std::string(6, 'x')),
            "tensor 'b': data_offsets [2, 6] overlap tensor 'a' (ends at 4)");
}

TEST_F(SafetensorsHeaderTest, OffsetsLeaveHole) {
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                                R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
                                std::string(6, 'x')),
            "tensor 'b': data_offsets [4, 6] leave a hole: bytes [2, 4) belong to no tensor");
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                                std::string(4, 'x')),
            "tensor 'a': data_offsets [2, 4] leave a hole: bytes [0, 2) belong to no tensor");
}

TEST_F(SafetensorsHeaderTest, OffsetsOutOfFileOrder) {
  // Entries listed out of offset order are fine as long as they tile the buffer ...
  std::string path = dir_.File("order.safetensors");
  testing::WriteFile(path,
                     SafetensorsBytes(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},)"
                                      R"("b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})",
                                      "xxxx"));
  EXPECT_TRUE(SafetensorsFile::Open(path).ok());
  // ... but two tensors claiming the same bytes are not.
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                                R"("b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})",
                                "xx"),
            "tensor 'b': data_offsets [0, 2] overlap tensor 'a' (ends at 2)");
}

TEST_F(SafetensorsHeaderTest, OffsetsPastEnd) {
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", "xxxx"),
            "tensor 'a': data_offsets [0, 8] run past the end of the data buffer (4 bytes)");
  EXPECT_EQ(
      OpenErrorWithHeader(
          R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}})",
          ""),
      "tensor 'a': data_offsets [18446744073709551615, 18446744073709551615] run past the "
      "end of the data buffer (0 bytes)");
}

TEST_F(SafetensorsHeaderTest, TrailingBytes) {
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "xxxx"),
            "data buffer has 2 trailing bytes after the last tensor (offset 2)");
}

TEST_F(SafetensorsHeaderTest, DuplicateNames) {
  EXPECT_EQ(OpenErrorWithHeader(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                                "xx"),
            "header: duplicate key 'a'");
}

TEST_F(SafetensorsHeaderTest, BadMetadata) {
  EXPECT_EQ(OpenErrorWithHeader(R"({"__metadata__":{"format":1}})", ""),
            "'__metadata__' value of 'format' must be a string");
  EXPECT_EQ(OpenErrorWithHeader(R"({"__metadata__":[]})", ""),
            "'__metadata__' must be an object of strings");
}

TEST_F(SafetensorsHeaderTest, NotARegularFile) {
  auto file = SafetensorsFile::Open(dir_.path());
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().message(), dir_.path() + ": not a regular file");
  auto missing = SafetensorsFile::Open(dir_.File("nope.safetensors"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace signround
