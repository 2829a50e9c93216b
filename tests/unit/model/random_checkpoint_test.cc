#include "src/model/random_checkpoint.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "src/model/checkpoint.h"
#include "src/model/layout.h"
#include "src/tensor/safetensors_file.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

RandomCheckpointOptions SmallOptions() {
  RandomCheckpointOptions o;
  o.hidden_size = 64;
  o.intermediate_size = 128;
  o.num_layers = 2;
  o.num_heads = 4;
  o.num_kv_heads = 2;
  o.vocab_size = 64;
  o.max_position_embeddings = 128;
  o.seed = 42;
  return o;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Names of the entries of `dir`, sorted.
std::set<std::string> ListDir(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// The dtype of every tensor in a safetensors file.
std::set<DType> DTypesIn(const std::string& path) {
  std::set<DType> out;
  auto file = SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return out;
  for (const TensorEntry& e : (*file)->header().tensors) out.insert(e.dtype);
  return out;
}

TEST(WriteRandomCheckpointTest, SameSeedGivesIdenticalBytes) {
  testing::TempDir tmp;
  for (int shards : {1, 3}) {
    RandomCheckpointOptions o = SmallOptions();
    o.shards = shards;
    std::string a = tmp.File("a" + std::to_string(shards));
    std::string b = tmp.File("b" + std::to_string(shards));
    ASSERT_TRUE(WriteRandomCheckpoint(a, o).ok());
    ASSERT_TRUE(WriteRandomCheckpoint(b, o).ok());
    std::set<std::string> files = ListDir(a);
    ASSERT_EQ(files, ListDir(b));
    EXPECT_EQ(files.size(), shards == 1 ? 2u : 1u + 3u + 1u);
    for (const std::string& name : files) {
      std::string bytes_a = ReadAll(a + "/" + name);
      EXPECT_FALSE(bytes_a.empty()) << name;
      EXPECT_TRUE(bytes_a == ReadAll(b + "/" + name)) << name << " differs";
    }
  }
}

TEST(WriteRandomCheckpointTest, DifferentSeedGivesDifferentWeights) {
  testing::TempDir tmp;
  RandomCheckpointOptions o = SmallOptions();
  ASSERT_TRUE(WriteRandomCheckpoint(tmp.File("a"), o).ok());
  o.seed = 43;
  ASSERT_TRUE(WriteRandomCheckpoint(tmp.File("b"), o).ok());
  std::string a = ReadAll(tmp.File("a") + "/model.safetensors");
  std::string b = ReadAll(tmp.File("b") + "/model.safetensors");
  EXPECT_EQ(a.size(), b.size());
  EXPECT_TRUE(a != b);
  // The seed is not part of the config.
  EXPECT_EQ(ReadAll(tmp.File("a") + "/config.json"), ReadAll(tmp.File("b") + "/config.json"));
}

TEST(WriteRandomCheckpointTest, ConfigMatchesOptions) {
  testing::TempDir tmp;
  RandomCheckpointOptions o = SmallOptions();
  o.tie_word_embeddings = true;
  ASSERT_TRUE(WriteRandomCheckpoint(tmp.File("m"), o).ok());
  absl::StatusOr<ModelConfig> c = LoadModelConfig(tmp.File("m") + "/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_type, "llama");
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->intermediate_size, 128);
  EXPECT_EQ(c->num_hidden_layers, 2);
  EXPECT_EQ(c->num_attention_heads, 4);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->vocab_size, 64);
  EXPECT_EQ(c->max_position_embeddings, 128);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->torch_dtype, "bfloat16");
}

TEST(WriteRandomCheckpointTest, Qwen2HasBiases) {
  testing::TempDir tmp;
  RandomCheckpointOptions o = SmallOptions();
  o.model_type = "qwen2";
  ASSERT_TRUE(WriteRandomCheckpoint(tmp.File("m"), o).ok());
  absl::StatusOr<Checkpoint> c = Checkpoint::Open(tmp.File("m"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->Find("model.layers.0.self_attn.q_proj.bias").ok());
  EXPECT_FALSE(c->Find("model.layers.0.self_attn.o_proj.bias").ok());
}

TEST(WriteRandomCheckpointTest, F32ValuesHaveTheDocumentedDistribution) {
  testing::TempDir tmp;
  RandomCheckpointOptions o = SmallOptions();
  o.dtype = DType::kF32;
  ASSERT_TRUE(WriteRandomCheckpoint(tmp.File("m"), o).ok());
  auto file = SafetensorsFile::Open(tmp.File("m") + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  auto values = [&](absl::string_view name) {
    absl::StatusOr<const TensorEntry*> e = (*file)->Find(name);
    EXPECT_TRUE(e.ok()) << e.status();
    std::vector<float> out;
    if (!e.ok()) return out;
    absl::string_view bytes = (*file)->Bytes(**e);
    out.resize(bytes.size() / 4);
    std::memcpy(out.data(), bytes.data(), out.size() * 4);
    return out;
  };
  for (const char* norm : {"model.norm.weight", "model.layers.1.input_layernorm.weight"}) {
    std::vector<float> v = values(norm);
    ASSERT_EQ(v.size(), 64u);
    for (float x : v) EXPECT_EQ(x, 1.0f) << norm;
  }
  std::vector<float> w = values("model.layers.0.self_attn.q_proj.weight");
  ASSERT_EQ(w.size(), 64u * 64u);
  double sum = 0, sum_sq = 0;
  for (float x : w) {
    EXPECT_LE(std::fabs(x), 0.0347f);
    sum += x;
    sum_sq += static_cast<double>(x) * x;
  }
  double mean = sum / w.size();
  double stddev = std::sqrt(sum_sq / w.size() - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_NEAR(stddev, 0.02, 0.002);
  // Different tensors get different streams.
  EXPECT_NE(w, values("model.layers.0.self_attn.k_proj.weight"));
}

TEST(WriteRandomCheckpointTest, ShardedWritesIndexWithTotalSize) {
  testing::TempDir tmp;
  RandomCheckpointOptions o = SmallOptions();
  o.shards = 2;
  std::string dir = tmp.File("m");
  ASSERT_TRUE(WriteRandomCheckpoint(dir, o).ok());
  EXPECT_EQ(ListDir(dir), (std::set<std::string>{"config.json", "model-00001-of-00002.safetensors",
                                                 "model-00002-of-00002.safetensors",
                                                 "model.safetensors.index.json"}));
  json index = json::parse(ReadAll(dir + "/model.safetensors.index.json"));

  absl::StatusOr<ModelConfig> config = RandomCheckpointConfig(o);
  ASSERT_TRUE(config.ok()) << config.status();
  uint64_t expected_bytes = 0;
  std::set<std::string> expected_names;
  for (const ExpectedTensor& t : ExpectedTensors(*config)) {
    uint64_t n = 2;  // bf16
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    expected_bytes += n;
    expected_names.insert(t.name);
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), expected_bytes);

  // The index maps every tensor to the shard that holds it, and the shards'
  // data sections add up to total_size.
  std::set<std::string> mapped;
  for (const auto& [name, shard] : index["weight_map"].items()) mapped.insert(name);
  EXPECT_EQ(mapped, expected_names);
  uint64_t data_bytes = 0;
  for (const char* shard :
       {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
    auto file = SafetensorsFile::Open(dir + "/" + shard);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_FALSE((*file)->header().tensors.empty()) << shard;
    data_bytes += (*file)->header().data_bytes;
    for (const TensorEntry& e : (*file)->header().tensors) {
      EXPECT_EQ(index["weight_map"][e.name], shard) << e.name;
    }
  }
  EXPECT_EQ(data_bytes, expected_bytes);
}

TEST(WriteRandomCheckpointTest, OneShardPerTensorIsAllowed) {
  testing::TempDir tmp;
  RandomCheckpointOptions o = SmallOptions();
  absl::StatusOr<ModelConfig> config = RandomCheckpointConfig(o);
  ASSERT_TRUE(config.ok()) << config.status();
  o.shards = static_cast<int>(ExpectedTensors(*config).size());
  ASSERT_TRUE(WriteRandomCheckpoint(tmp.File("m"), o).ok());
  absl::StatusOr<Checkpoint> c = Checkpoint::Open(tmp.File("m"));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->files().size(), static_cast<size_t>(o.shards));
  for (const auto& f : c->files()) EXPECT_EQ(f->header().tensors.size(), 1u) << f->path();
}

TEST(WriteRandomCheckpointTest, MoreShardsThanTensorsIsRejected) {
  testing::TempDir tmp;
  RandomCheckpointOptions o = SmallOptions();
  absl::StatusOr<ModelConfig> config = RandomCheckpointConfig(o);
  ASSERT_TRUE(config.ok()) << config.status();
  size_t tensors = ExpectedTensors(*config).size();
  for (int shards : {static_cast<int>(tensors) + 1, 0, -1}) {
    o.shards = shards;
    absl::Status s = WriteRandomCheckpoint(tmp.File("m"), o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()),
                HasSubstr("shards must be between 1 and the tensor count (" +
                          std::to_string(tensors) + "), got " + std::to_string(shards)));
  }
  EXPECT_TRUE(ListDir(tmp.path()).empty());
}

TEST(WriteRandomCheckpointTest, NonEmptyDirectoryIsLeftAlone) {
  testing::TempDir tmp;
  std::string dir = tmp.File("m");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  testing::WriteFile(dir + "/keep.txt", "precious");
  absl::Status s = WriteRandomCheckpoint(dir, SmallOptions());
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(dir));
  EXPECT_EQ(ListDir(dir), std::set<std::string>{"keep.txt"});
  EXPECT_EQ(ReadAll(dir + "/keep.txt"), "precious");
  EXPECT_EQ(ListDir(tmp.path()), std::set<std::string>{"m"});
}

TEST(WriteRandomCheckpointTest, ExistingRegularFileIsLeftAlone) {
  testing::TempDir tmp;
  std::string path = tmp.File("m");
  testing::WriteFile(path, "precious");
  absl::Status s = WriteRandomCheckpoint(path, SmallOptions());
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_EQ(ReadAll(path), "precious");
  EXPECT_EQ(ListDir(tmp.path()), std::set<std::string>{"m"});
}

TEST(WriteRandomCheckpointTest, EmptyDirectoryIsFilled) {
  testing::TempDir tmp;
  std::string dir = tmp.File("m");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  absl::Status s = WriteRandomCheckpoint(dir, SmallOptions());
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(ListDir(dir), (std::set<std::string>{"config.json", "model.safetensors"}));
  EXPECT_EQ(ListDir(tmp.path()), std::set<std::string>{"m"});
}

TEST(WriteRandomCheckpointTest, CreatesMissingParentDirectories) {
  testing::TempDir tmp;
  std::string dir = tmp.File("a/b/m");
  absl::Status s = WriteRandomCheckpoint(dir, SmallOptions());
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(ListDir(tmp.File("a/b")), std::set<std::string>{"m"});
  EXPECT_TRUE(Checkpoint::Open(dir).ok());
}

TEST(WriteRandomCheckpointTest, InvalidOptionsLeaveNothingBehind) {
  testing::TempDir tmp;
  RandomCheckpointOptions o = SmallOptions();
  o.num_heads = 3;
  o.num_kv_heads = 2;
  absl::Status s = WriteRandomCheckpoint(tmp.File("m"), o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("num_attention_heads (3) is not a multiple of num_key_value_heads (2)"));
  EXPECT_TRUE(ListDir(tmp.path()).empty());

  o = SmallOptions();
  o.hidden_size = 0;
  s = WriteRandomCheckpoint(tmp.File("m"), o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("key 'hidden_size' must be between 1 and"));

  o = SmallOptions();
  o.model_type = "gpt2";
  s = WriteRandomCheckpoint(tmp.File("m"), o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("'gpt2' is not supported"));
  EXPECT_TRUE(ListDir(tmp.path()).empty());
}

TEST(WriteRandomCheckpointTest, UnsupportedDTypeIsRejected) {
  testing::TempDir tmp;
  RandomCheckpointOptions o = SmallOptions();
  o.dtype = DType::kI32;
  absl::Status s = WriteRandomCheckpoint(tmp.File("m"), o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("dtype must be f32, f16 or bf16"));
  EXPECT_TRUE(ListDir(tmp.path()).empty());
}

TEST(WriteRandomCheckpointTest, DTypeIsWrittenInHeader) {
  struct Case {
    DType dtype;
    const char* torch_dtype;
  };
  for (const Case& c : {Case{DType::kF32, "float32"}, Case{DType::kF16, "float16"},
                        Case{DType::kBF16, "bfloat16"}}) {
    testing::TempDir tmp;
    RandomCheckpointOptions o = SmallOptions();
    o.dtype = c.dtype;
    ASSERT_TRUE(WriteRandomCheckpoint(tmp.File("m"), o).ok());
    EXPECT_EQ(DTypesIn(tmp.File("m") + "/model.safetensors"), std::set<DType>{c.dtype})
        << DTypeName(c.dtype);
    absl::StatusOr<ModelConfig> config = LoadModelConfig(tmp.File("m") + "/config.json");
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->torch_dtype, c.torch_dtype);
    absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(tmp.File("m"));
    EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  }
}

}  // namespace
}  // namespace signround
