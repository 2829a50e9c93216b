#include "src/tensor/safetensors_writer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "src/common/file_util.h"
#include "src/tensor/safetensors_file.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

// Deterministic pseudo-random bytes for a tensor.
std::string PatternBytes(const TensorSpec& spec) {
  std::string out(spec.nbytes(), '\0');
  uint32_t x = 2166136261u;
  for (char c : spec.name) x = (x ^ static_cast<uint8_t>(c)) * 16777619u;
  for (char& c : out) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return out;
}

std::vector<TensorSpec> MixedSpecs() {
  return {{"z.weight", DType::kBF16, {3, 5}}, {"a.bias", DType::kF32, {7}},
          {"m.codes", DType::kI32, {2, 3}},   {"m.bytes", DType::kU8, {5}},
          {"m.signed", DType::kI8, {3}},      {"h", DType::kF16, {1, 1, 3}},
          {"scalar", DType::kF64, {}},        {"empty", DType::kF32, {0, 4}}};
}

absl::Status WritePattern(const std::string& path, std::vector<TensorSpec> specs,
                          const std::map<std::string, std::string>& metadata = {}) {
  std::string buffer;
  return WriteSafetensors(
      path, std::move(specs),
      [&](const TensorSpec& s) -> absl::StatusOr<absl::string_view> {
        buffer = PatternBytes(s);
        return absl::string_view(buffer);
      },
      metadata);
}

TEST(SafetensorsWriter, RoundTripsBitExactly) {
  testing::TempDir dir;
  std::string path = dir.File("t.safetensors");
  ASSERT_TRUE(WritePattern(path, MixedSpecs(), {{"note", "x"}}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const SafetensorsHeader& h = (*file)->header();
  EXPECT_EQ(h.data_start % 8, 0u) << "data buffer must start 8-byte aligned";
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(h.metadata.at("note"), "x");
  ASSERT_EQ(h.tensors.size(), MixedSpecs().size());
  for (const TensorSpec& spec : MixedSpecs()) {
    const TensorEntry* e = h.Find(spec.name);
    ASSERT_NE(e, nullptr) << spec.name;
    EXPECT_EQ(e->dtype, spec.dtype);
    EXPECT_EQ(e->shape, spec.shape);
    EXPECT_EQ(std::string((*file)->Bytes(*e)), PatternBytes(spec)) << spec.name;
  }
  // Data lies in name order.
  uint64_t previous = 0;
  for (const TensorEntry& e : h.tensors) {
    EXPECT_EQ(e.begin, previous);
    previous = e.end;
  }
}

TEST(SafetensorsWriter, OutputIsDeterministicWhateverTheInputOrder) {
  testing::TempDir dir;
  std::vector<TensorSpec> specs = MixedSpecs();
  ASSERT_TRUE(WritePattern(dir.File("a.safetensors"), specs).ok());
  std::reverse(specs.begin(), specs.end());
  ASSERT_TRUE(WritePattern(dir.File("b.safetensors"), specs).ok());
  auto a = ReadFileToString(dir.File("a.safetensors"), 1 << 20);
  auto b = ReadFileToString(dir.File("b.safetensors"), 1 << 20);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
}

TEST(SafetensorsWriter, FailedWriteLeavesNothingBehind) {
  testing::TempDir dir;
  std::string path = dir.File("t.safetensors");
  int calls = 0;
  std::string buffer;
  absl::Status s = WriteSafetensors(
      path, MixedSpecs(), [&](const TensorSpec& spec) -> absl::StatusOr<absl::string_view> {
        if (++calls == 3) return absl::InternalError("disk on fire");
        buffer = PatternBytes(spec);
        return absl::string_view(buffer);
      });
  EXPECT_EQ(s.message(), "disk on fire");
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "no file and no temporary file";
}

TEST(SafetensorsWriter, RejectsWrongByteCountDuplicatesAndBadNames) {
  testing::TempDir dir;
  std::string path = dir.File("t.safetensors");
  absl::Status s = WriteSafetensors(path, {{"a", DType::kF32, {2}}},
                                    [](const TensorSpec&) -> absl::StatusOr<absl::string_view> {
                                      return absl::string_view("abc");
                                    });
  EXPECT_EQ(s.message(), path + ": tensor 'a' has 3 bytes, expected 8");
  EXPECT_EQ(WritePattern(path, {{"a", DType::kU8, {1}}, {"a", DType::kU8, {1}}}).message(),
            path + ": duplicate tensor name 'a'");
  EXPECT_EQ(WritePattern(path, {{"__metadata__", DType::kU8, {1}}}).message(),
            path + ": invalid tensor name '__metadata__'");
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(SafetensorsWriter, ReplacesAnExistingFileAtomically) {
  testing::TempDir dir;
  std::string path = dir.File("t.safetensors");
  ASSERT_TRUE(WritePattern(path, {{"old", DType::kU8, {4}}}).ok());
  ASSERT_TRUE(WritePattern(path, {{"new", DType::kU8, {4}}}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_NE((*file)->header().Find("new"), nullptr);
  EXPECT_EQ((*file)->header().Find("old"), nullptr);
}

}  // namespace
}  // namespace signround
