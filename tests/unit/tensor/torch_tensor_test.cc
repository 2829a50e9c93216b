#include "src/tensor/torch_tensor.h"

#include <gtest/gtest.h>

#include "src/tensor/half.h"
#include "src/tensor/safetensors_writer.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

TEST(TorchTensor, WriteTensorsRoundTripsEveryDTypeBitExactly) {
  testing::TempDir dir;
  std::string path = dir.File("t.safetensors");
  at::manual_seed(7);
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f32", at::randn({4, 6})},
      {"bf16", at::randn({3, 5}).to(at::kBFloat16)},
      {"f16", at::randn({2, 7}).to(at::kHalf)},
      {"f64", at::randn({3}, at::kDouble)},
      {"i32", at::randint(-1000, 1000, {5}, at::kInt)},
      {"i64", at::randint(-1000, 1000, {2, 2}, at::kLong)},
      {"i8", at::randint(-128, 127, {9}, at::kChar)},
      {"u8", at::randint(0, 255, {9}, at::kByte)},
      {"bool", at::randint(0, 2, {4}).to(at::kBool)},
      {"strided", at::randn({6, 4}).t()},  // non-contiguous input
  };
  ASSERT_TRUE(WriteTensors(path, tensors).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  for (const auto& [name, want] : tensors) {
    auto got = LoadTensor(*file, name);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->scalar_type(), want.scalar_type()) << name;
    EXPECT_EQ(got->sizes(), want.sizes()) << name;
    EXPECT_TRUE(at::equal(*got, want)) << name;
  }
  // Writing what was read gives the same bytes again.
  std::vector<std::pair<std::string, at::Tensor>> again;
  for (const auto& [name, t] : tensors) again.emplace_back(name, *LoadTensor(*file, name));
  ASSERT_TRUE(WriteTensors(dir.File("u.safetensors"), again).ok());
  auto file2 = SafetensorsFile::Open(dir.File("u.safetensors"));
  ASSERT_TRUE(file2.ok());
  EXPECT_EQ((*file)->file_size(), (*file2)->file_size());
  for (const TensorEntry& e : (*file)->header().tensors) {
    EXPECT_EQ((*file)->Bytes(e), (*file2)->Bytes(*(*file2)->header().Find(e.name)));
  }
}

TEST(TorchTensor, AlignedTensorsAliasTheMappingAndKeepItAlive) {
  testing::TempDir dir;
  std::string path = dir.File("t.safetensors");
  at::Tensor want = at::arange(12, at::kFloat).reshape({3, 4});
  ASSERT_TRUE(WriteTensors(path, {{"w", want}}).ok());
  at::Tensor got;
  const void* mapped = nullptr;
  {
    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok());
    got = *LoadTensor(*file, "w");
    mapped = (*file)->Bytes(*(*file)->header().Find("w")).data();
  }  // the file object is gone; the tensor still holds the mapping
  EXPECT_EQ(got.data_ptr(), mapped) << "aligned data must not be copied";
  EXPECT_TRUE(at::equal(got, want));
  // An in-place write lands in this process's private copy, not in the file.
  got.add_(1);
  auto reopened = SafetensorsFile::Open(path);
  EXPECT_TRUE(at::equal(*LoadTensor(*reopened, "w"), want));
}

TEST(TorchTensor, MisalignedDataIsCopied) {
  testing::TempDir dir;
  std::string path = dir.File("t.safetensors");
  // A 1-byte tensor first puts the F32 tensor at an odd address.
  float values[2] = {1.5f, -2.25f};
  std::string data = "x" + std::string(reinterpret_cast<const char*>(values), 8);
  std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  header.append((8 - (8 + header.size()) % 8) % 8, ' ');
  testing::WriteFile(path, testing::SafetensorsBytes(header, data));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto b = LoadTensor(*file, "b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data_ptr()) % 4, 0u);
  EXPECT_FLOAT_EQ(b->index({0}).item<float>(), 1.5f);
  EXPECT_FLOAT_EQ(b->index({1}).item<float>(), -2.25f);
}

TEST(TorchTensor, MissingNameAndUnsupportedDType) {
  testing::TempDir dir;
  std::string path = dir.File("t.safetensors");
  testing::WriteFile(path,
                     testing::SafetensorsBytes(
                         R"({"u":{"dtype":"U32","shape":[1],"data_offsets":[0,4]}}    )", "abcd"));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(LoadTensor(*file, "nope").status().message(), path + ": no tensor named 'nope'");
  auto u = LoadTensor(*file, "u");
  EXPECT_EQ(u.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(u.status().message(),
            path + ": tensor 'u': dtype U32 has no LibTorch equivalent in this build");
}

TEST(TorchTensor, HalfConversionsMatchLibTorch) {
  at::Tensor x = at::randn({4096}) * 100;
  at::Tensor bf = x.to(at::kBFloat16);
  at::Tensor hf = x.to(at::kHalf);
  const float* xs = x.data_ptr<float>();
  const uint16_t* bfs = reinterpret_cast<const uint16_t*>(bf.data_ptr());
  const uint16_t* hfs = reinterpret_cast<const uint16_t*>(hf.data_ptr());
  for (int64_t i = 0; i < x.numel(); ++i) {
    ASSERT_EQ(FloatToBF16(xs[i]), bfs[i]) << xs[i];
    ASSERT_EQ(FloatToF16(xs[i]), hfs[i]) << xs[i];
  }
}

}  // namespace
}  // namespace signround
