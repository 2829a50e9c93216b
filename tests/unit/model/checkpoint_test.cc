#include "src/model/checkpoint.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "src/model/layout.h"
#include "src/model/random_checkpoint.h"
#include "src/tensor/safetensors_writer.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

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
  o.seed = 7;
  return o;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

uint64_t Product(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

// The message of opening `dir`, which must fail with `code`.
std::string OpenError(const std::string& dir,
                      absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  absl::StatusOr<Checkpoint> c = Checkpoint::Open(dir);
  EXPECT_FALSE(c.ok()) << dir;
  if (c.ok()) return "";
  EXPECT_EQ(c.status().code(), code) << c.status();
  return std::string(c.status().message());
}

// Writes a single-file checkpoint into `dir` with the config of `options` and
// the given tensors, all zero.
void WriteCustomCheckpoint(const std::string& dir, const RandomCheckpointOptions& options,
                           const std::vector<TensorSpec>& specs) {
  absl::StatusOr<ModelConfig> config = RandomCheckpointConfig(options);
  ASSERT_TRUE(config.ok()) << config.status();
  testing::WriteFile(dir + "/config.json", ModelConfigToJson(*config).dump(2));
  std::string buffer;
  absl::Status s =
      WriteSafetensors(dir + "/" + kSingleFileName, specs,
                       [&](const TensorSpec& spec) -> absl::StatusOr<absl::string_view> {
                         buffer.assign(spec.nbytes(), '\0');
                         return absl::string_view(buffer);
                       });
  ASSERT_TRUE(s.ok()) << s;
}

// The specs of every tensor the config of `options` implies, in `dtype`.
std::vector<TensorSpec> ExpectedSpecs(const RandomCheckpointOptions& options, DType dtype) {
  absl::StatusOr<ModelConfig> config = RandomCheckpointConfig(options);
  EXPECT_TRUE(config.ok()) << config.status();
  std::vector<TensorSpec> specs;
  if (!config.ok()) return specs;
  for (const ExpectedTensor& t : ExpectedTensors(*config)) {
    specs.push_back({t.name, dtype, t.shape});
  }
  return specs;
}

class CheckpointTest : public ::testing::Test {
 protected:
  // Writes a random checkpoint into <tmp>/ckpt and returns that path.
  std::string Write(const RandomCheckpointOptions& options) {
    std::string dir = tmp_.File("ckpt");
    absl::Status s = WriteRandomCheckpoint(dir, options);
    EXPECT_TRUE(s.ok()) << s;
    return dir;
  }

  testing::TempDir tmp_;
};

TEST_F(CheckpointTest, OpensSingleFile) {
  std::string dir = Write(SmallOptions());
  absl::StatusOr<Checkpoint> c = Checkpoint::Open(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->dir(), dir);
  EXPECT_EQ(c->config().hidden_size, 64);
  EXPECT_EQ(c->config().intermediate_size, 128);
  EXPECT_EQ(c->config().num_hidden_layers, 2);
  EXPECT_EQ(c->config().num_attention_heads, 4);
  EXPECT_EQ(c->config().num_key_value_heads, 2);
  EXPECT_EQ(c->config().head_dim, 16);
  EXPECT_EQ(c->config().vocab_size, 64);
  ASSERT_EQ(c->files().size(), 1u);
  EXPECT_EQ(c->files()[0]->path(), dir + "/" + kSingleFileName);

  std::vector<ExpectedTensor> expected = ExpectedTensors(c->config());
  EXPECT_EQ(c->tensors().size(), expected.size());
  uint64_t params = 0;
  for (const ExpectedTensor& t : expected) {
    params += Product(t.shape);
    absl::StatusOr<Checkpoint::Tensor> found = c->Find(t.name);
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_EQ(found->entry->shape, t.shape) << t.name;
    EXPECT_EQ(found->entry->dtype, DType::kBF16) << t.name;
  }
  EXPECT_EQ(c->parameter_count(), params);
  EXPECT_TRUE(c->Find("lm_head.weight").ok());
}

TEST_F(CheckpointTest, OpensShardedCheckpoint) {
  RandomCheckpointOptions o = SmallOptions();
  o.shards = 3;
  std::string dir = Write(o);
  absl::StatusOr<Checkpoint> c = Checkpoint::Open(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->files().size(), 3u);
  EXPECT_EQ(c->files()[0]->path(), dir + "/model-00001-of-00003.safetensors");
  EXPECT_EQ(c->files()[1]->path(), dir + "/model-00002-of-00003.safetensors");
  EXPECT_EQ(c->files()[2]->path(), dir + "/model-00003-of-00003.safetensors");

  std::vector<ExpectedTensor> expected = ExpectedTensors(c->config());
  EXPECT_EQ(c->tensors().size(), expected.size());
  uint64_t params = 0;
  for (const ExpectedTensor& t : expected) params += Product(t.shape);
  EXPECT_EQ(c->parameter_count(), params);

  // Every tensor points into the shard that holds it.
  for (const auto& [name, t] : c->tensors()) {
    EXPECT_EQ(t.file->header().Find(name), t.entry) << name;
  }
}

TEST_F(CheckpointTest, FindUnknownTensorIsNotFound) {
  absl::StatusOr<Checkpoint> c = Checkpoint::Open(Write(SmallOptions()));
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<Checkpoint::Tensor> t = c->Find("model.nonexistent.weight");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("model.nonexistent.weight"));
}

TEST_F(CheckpointTest, TiedEmbeddingsHaveNoLmHead) {
  RandomCheckpointOptions o = SmallOptions();
  o.tie_word_embeddings = true;
  absl::StatusOr<Checkpoint> c = Checkpoint::Open(Write(o));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->config().tie_word_embeddings);
  EXPECT_EQ(c->tensors().count("lm_head.weight"), 0u);
  EXPECT_EQ(c->Find("lm_head.weight").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c->tensors().size(), ExpectedTensors(c->config()).size());
}

TEST_F(CheckpointTest, MissingDirectoryIsNotFound) {
  std::string msg = OpenError(tmp_.File("nope"), absl::StatusCode::kNotFound);
  EXPECT_THAT(msg, HasSubstr(tmp_.File("nope")));
}

TEST_F(CheckpointTest, RegularFileIsNotADirectory) {
  testing::WriteFile(tmp_.File("file"), "x");
  EXPECT_THAT(OpenError(tmp_.File("file")), HasSubstr("not a directory"));
}

TEST_F(CheckpointTest, MissingConfigIsNotFound) {
  std::string dir = Write(SmallOptions());
  ASSERT_EQ(std::remove((dir + "/config.json").c_str()), 0);
  EXPECT_THAT(OpenError(dir, absl::StatusCode::kNotFound), HasSubstr("config.json"));
}

TEST_F(CheckpointTest, NeitherSingleFileNorIndex) {
  std::string dir = Write(SmallOptions());
  ASSERT_EQ(std::remove((dir + "/" + kSingleFileName).c_str()), 0);
  std::string msg = OpenError(dir);
  EXPECT_THAT(msg, HasSubstr("has neither model.safetensors nor model.safetensors.index.json"));
}

TEST_F(CheckpointTest, IndexNamesMissingShard) {
  RandomCheckpointOptions o = SmallOptions();
  o.shards = 3;
  std::string dir = Write(o);
  ASSERT_EQ(std::remove((dir + "/model-00002-of-00003.safetensors").c_str()), 0);
  std::string msg = OpenError(dir);
  EXPECT_THAT(msg, HasSubstr("model-00002-of-00003.safetensors"));
  EXPECT_THAT(msg, HasSubstr("does not exist"));
}

TEST_F(CheckpointTest, IndexMapsTensorToWrongShard) {
  RandomCheckpointOptions o = SmallOptions();
  o.shards = 3;
  std::string dir = Write(o);
  std::string index_path = dir + "/" + kIndexFileName;
  json index = json::parse(ReadAll(index_path));
  json& weight_map = index["weight_map"];
  ASSERT_EQ(weight_map["model.embed_tokens.weight"], "model-00001-of-00003.safetensors");
  weight_map["model.embed_tokens.weight"] = "model-00003-of-00003.safetensors";
  testing::WriteFile(index_path, index.dump(2));
  std::string msg = OpenError(dir);
  EXPECT_THAT(msg, HasSubstr("'model.embed_tokens.weight' is mapped to "
                             "'model-00003-of-00003.safetensors', which has no such tensor"));
}

TEST_F(CheckpointTest, ShardTensorNotListedInIndex) {
  RandomCheckpointOptions o = SmallOptions();
  o.shards = 3;
  std::string dir = Write(o);
  std::string index_path = dir + "/" + kIndexFileName;
  json index = json::parse(ReadAll(index_path));
  ASSERT_EQ(index["weight_map"].erase("model.norm.weight"), 1u);
  testing::WriteFile(index_path, index.dump(2));
  std::string msg = OpenError(dir);
  EXPECT_THAT(msg, HasSubstr("'model.norm.weight' is not listed in model.safetensors.index.json"));
}

TEST_F(CheckpointTest, IndexShardPathMustBePlainFileName) {
  RandomCheckpointOptions o = SmallOptions();
  o.shards = 3;
  std::string dir = Write(o);
  std::string index_path = dir + "/" + kIndexFileName;
  json index = json::parse(ReadAll(index_path));
  for (const json& bad :
       {json("../x.safetensors"), json("sub/x.safetensors"), json(".."), json(""), json(3)}) {
    json changed = index;
    changed["weight_map"]["model.norm.weight"] = bad;
    testing::WriteFile(index_path, changed.dump(2));
    std::string msg = OpenError(dir);
    EXPECT_THAT(msg, HasSubstr("'model.norm.weight' must be a plain file name")) << bad.dump();
  }
}

TEST_F(CheckpointTest, IndexWithoutWeightMap) {
  RandomCheckpointOptions o = SmallOptions();
  o.shards = 3;
  std::string dir = Write(o);
  std::string index_path = dir + "/" + kIndexFileName;
  testing::WriteFile(index_path, R"({"metadata": {}})");
  EXPECT_THAT(OpenError(dir), HasSubstr("key 'weight_map' is missing or not an object"));
  testing::WriteFile(index_path, R"({"weight_map": {}})");
  EXPECT_THAT(OpenError(dir), HasSubstr("weight_map is empty"));
  testing::WriteFile(index_path, R"({"weight_map": {"a": "b", "a": "c"}})");
  EXPECT_THAT(OpenError(dir), HasSubstr("duplicate key 'a'"));
}

TEST_F(CheckpointTest, ShapeDisagreesWithConfig) {
  std::string dir = Write(SmallOptions());
  RandomCheckpointOptions other = SmallOptions();
  other.intermediate_size = 96;
  absl::StatusOr<ModelConfig> config = RandomCheckpointConfig(other);
  ASSERT_TRUE(config.ok()) << config.status();
  testing::WriteFile(dir + "/config.json", ModelConfigToJson(*config).dump(2));
  std::string msg = OpenError(dir);
  EXPECT_THAT(msg, HasSubstr("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_THAT(msg, HasSubstr("has shape [128, 64] but config.json implies [96, 64]"));
}

TEST_F(CheckpointTest, RequiredTensorMissing) {
  RandomCheckpointOptions o = SmallOptions();
  std::vector<TensorSpec> specs;
  for (TensorSpec& s : ExpectedSpecs(o, DType::kF32)) {
    if (s.name != "model.norm.weight") specs.push_back(s);
  }
  std::string dir = tmp_.File("custom");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  WriteCustomCheckpoint(dir, o, specs);
  std::string msg = OpenError(dir);
  EXPECT_THAT(msg, HasSubstr("tensor 'model.norm.weight' is missing"));
  EXPECT_THAT(msg, HasSubstr("config.json implies shape [64]"));
}

TEST_F(CheckpointTest, CustomCheckpointWithAllTensorsOpens) {
  // The control for the custom-file cases: the same construction, complete, opens.
  RandomCheckpointOptions o = SmallOptions();
  std::string dir = tmp_.File("custom");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  WriteCustomCheckpoint(dir, o, ExpectedSpecs(o, DType::kF32));
  absl::StatusOr<Checkpoint> c = Checkpoint::Open(dir);
  EXPECT_TRUE(c.ok()) << c.status();
}

TEST_F(CheckpointTest, WeightWithIntegerDTypeIsRejected) {
  RandomCheckpointOptions o = SmallOptions();
  std::vector<TensorSpec> specs = ExpectedSpecs(o, DType::kF32);
  bool changed = false;
  for (TensorSpec& s : specs) {
    if (s.name == "model.layers.1.self_attn.k_proj.weight") {
      s.dtype = DType::kI32;
      changed = true;
    }
  }
  ASSERT_TRUE(changed);
  std::string dir = tmp_.File("custom");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  WriteCustomCheckpoint(dir, o, specs);
  std::string msg = OpenError(dir);
  EXPECT_THAT(msg, HasSubstr("'model.layers.1.self_attn.k_proj.weight' has dtype I32"));
  EXPECT_THAT(msg, HasSubstr("expected F32"));
}

TEST_F(CheckpointTest, CorruptSafetensorsIsRejected) {
  std::string dir = Write(SmallOptions());
  testing::WriteFile(dir + "/" + kSingleFileName, testing::WithHeaderLength(1000, "{}"));
  std::string msg = OpenError(dir);
  EXPECT_THAT(msg, HasSubstr(kSingleFileName));
}

TEST(SharedCheckpointTest, Stories260k) {
  std::string shared = testing::SharedDir();
  if (shared.empty()) GTEST_SKIP() << "../shared is absent";
  absl::StatusOr<Checkpoint> c = Checkpoint::Open(shared + "/models/stories260k");
  ASSERT_TRUE(c.ok()) << c.status();
  const ModelConfig& cfg = c->config();
  EXPECT_EQ(cfg.hidden_size, 64);
  EXPECT_EQ(cfg.intermediate_size, 172);
  EXPECT_EQ(cfg.num_hidden_layers, 5);
  EXPECT_EQ(cfg.num_attention_heads, 8);
  EXPECT_EQ(cfg.num_key_value_heads, 4);
  EXPECT_EQ(cfg.head_dim, 8);
  EXPECT_EQ(cfg.vocab_size, 512);
  EXPECT_TRUE(cfg.tie_word_embeddings);
  EXPECT_EQ(c->tensors().size(), 47u);
  EXPECT_EQ(c->parameter_count(), 260032u);
  EXPECT_EQ(c->tensors().count("lm_head.weight"), 0u);
}

TEST(SharedCheckpointTest, BabyLlama105) {
  std::string shared = testing::SharedDir();
  if (shared.empty()) GTEST_SKIP() << "../shared is absent";
  absl::StatusOr<Checkpoint> c = Checkpoint::Open(shared + "/models/babyllama-105");
  ASSERT_TRUE(c.ok()) << c.status();
  const ModelConfig& cfg = c->config();
  EXPECT_EQ(cfg.hidden_size, 128);
  EXPECT_EQ(cfg.intermediate_size, 352);
  EXPECT_EQ(cfg.num_hidden_layers, 5);
  EXPECT_EQ(cfg.num_attention_heads, 8);
  EXPECT_EQ(cfg.num_key_value_heads, 4);
  EXPECT_EQ(cfg.head_dim, 16);
  EXPECT_EQ(cfg.vocab_size, 105);
  EXPECT_TRUE(cfg.tie_word_embeddings);
  EXPECT_EQ(c->tensors().size(), ExpectedTensors(cfg).size());
}

}  // namespace
}  // namespace signround
