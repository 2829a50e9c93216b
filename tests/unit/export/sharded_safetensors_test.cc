// Sharded safetensors (src/export/sharded_safetensors.h): shards split at the limit and read
// back, natural tensor order, byte sizes.
#include "src/export/sharded_safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "src/common/file_util.h"
#include "src/model/checkpoint.h"
#include "src/model/random_checkpoint.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

namespace fs = std::filesystem;

TEST(ShardedSafetensors, SplitsAtTheLimitAndReadsBack) {
  testing::TempDir dir;
  RandomCheckpointOptions o;
  o.hidden_size = 64;
  o.intermediate_size = 96;
  o.num_layers = 3;
  o.vocab_size = 128;
  o.dtype = DType::kF32;
  ASSERT_TRUE(WriteRandomCheckpoint(dir.File("model"), o).ok());
  auto ckpt = Checkpoint::Open(dir.File("model"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  std::vector<TensorSpec> specs;
  uint64_t total = 0;
  for (const auto& [name, t] : ckpt->tensors()) {
    specs.push_back({name, t.entry->dtype, t.entry->shape});
    total += t.entry->nbytes();
  }
  auto bytes = [&](const TensorSpec& s) -> absl::StatusOr<absl::string_view> {
    Checkpoint::Tensor t = *ckpt->Find(s.name);
    return t.file->Bytes(*t.entry);
  };
  // 40 KB shards: the 32 KB embedding fills one; layers spread over several.
  const std::string out = dir.File("out");
  ASSERT_TRUE(MakeDirectories(out).ok());
  ASSERT_TRUE(WriteShardedSafetensors(out, specs, bytes, 40'000).ok());
  ASSERT_TRUE(fs::exists(out + "/config.json") == false);
  fs::copy_file(dir.File("model") + "/config.json", out + "/config.json");
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
  auto index =
      nlohmann::json::parse(*ReadFileToString(out + "/model.safetensors.index.json", 1 << 20));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  auto shards = Checkpoint::Open(out);
  ASSERT_TRUE(shards.ok()) << shards.status();
  ASSERT_GT(shards->files().size(), 2u);
  for (const auto& file : shards->files()) {
    uint64_t data = 0;
    for (const TensorEntry& e : file->header().tensors) data += e.nbytes();
    // A shard exceeds the limit only when it holds one tensor that alone does.
    EXPECT_TRUE(data <= 40'000 || file->header().tensors.size() == 1) << file->path();
    EXPECT_NE(file->path().find("-of-"), std::string::npos);
  }
  for (const auto& [name, t] : ckpt->tensors()) {
    Checkpoint::Tensor s = *shards->Find(name);
    EXPECT_EQ(s.file->Bytes(*s.entry), t.file->Bytes(*t.entry)) << name;
  }
  // Under the limit: one model.safetensors, no index.
  const std::string single = dir.File("single");
  ASSERT_TRUE(MakeDirectories(single).ok());
  ASSERT_TRUE(WriteShardedSafetensors(single, specs, bytes, total).ok());
  EXPECT_TRUE(fs::exists(single + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(single + "/model.safetensors.index.json"));
}

TEST(ShardedSafetensors, NaturalOrderAndByteSizes) {
  EXPECT_TRUE(NaturalLess("model.layers.2.mlp", "model.layers.10.mlp"));
  EXPECT_FALSE(NaturalLess("model.layers.10.mlp", "model.layers.2.mlp"));
  EXPECT_TRUE(NaturalLess("a", "b"));
  EXPECT_TRUE(NaturalLess("layer", "layer.1"));
  EXPECT_EQ(*ParseByteSize("5GB"), 5'000'000'000u);
  EXPECT_EQ(*ParseByteSize("2GiB"), 2ull << 30);
  EXPECT_EQ(*ParseByteSize("500mb"), 500'000'000u);
  EXPECT_EQ(*ParseByteSize("1000"), 1000u);
  for (const char* bad : {"", "0", "GB", "-1GB", "1.5GB", "5XB", "99999999999999999999"}) {
    auto s = ParseByteSize(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().message(), std::string("size '") + bad +
                                        "' is not a positive byte count like 5GB, 500MB, 2GiB "
                                        "or 1000000");
  }
}

}  // namespace
}  // namespace signround
