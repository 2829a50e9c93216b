// Loading block and head weights from a checkpoint, the block registry, and
// the model ends.
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/model/block_registry.h"
#include "src/model/family.h"
#include "src/model/llama_block.h"
#include "src/model/model_ends.h"
#include "src/model/random_checkpoint.h"
#include "src/tensor/torch_tensor.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

using ::testing::HasSubstr;

RandomCheckpointOptions Small(absl::string_view model_type) {
  RandomCheckpointOptions o;
  o.model_type = std::string(model_type);
  o.hidden_size = 32;
  o.intermediate_size = 64;
  o.num_layers = 2;
  o.num_heads = 4;
  o.num_kv_heads = 2;
  o.vocab_size = 48;
  o.max_position_embeddings = 64;
  o.dtype = DType::kBF16;
  o.seed = 9;
  return o;
}

at::Tensor Raw(const Checkpoint& ckpt, const std::string& name) {
  Checkpoint::Tensor t = *ckpt.Find(name);
  return *LoadTensor(t.file, *t.entry);
}

TEST(LoadBlockWeights, LoadsConvertedOwnedCopiesWithBiasesWhereTheFamilyHasThem) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteRandomCheckpoint(dir.File("m"), Small("qwen2")).ok());
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir.File("m"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  absl::StatusOr<BlockWeights> w = LoadBlockWeights(*ckpt, 1, at::kFloat, at::kCPU);
  ASSERT_TRUE(w.ok()) << w.status();
  at::Tensor raw = Raw(*ckpt, "model.layers.1.mlp.down_proj.weight");
  EXPECT_EQ(w->down_proj.weight.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(w->down_proj.weight, raw.to(at::kFloat)));
  EXPECT_NE(w->down_proj.weight.data_ptr(), raw.data_ptr());
  EXPECT_TRUE(
      at::equal(w->input_norm, Raw(*ckpt, "model.layers.1.input_layernorm.weight").to(at::kFloat)));
  // Qwen2: q/k/v have biases, o_proj and the MLP do not.
  EXPECT_TRUE(w->q_proj.bias.defined());
  EXPECT_TRUE(w->v_proj.bias.defined());
  EXPECT_FALSE(w->o_proj.bias.defined());
  EXPECT_FALSE(w->gate_proj.bias.defined());
  w->q_proj.weight.mul_(2);  // owned: writable
}

TEST(LoadBlockWeights, RejectsLayersOutOfRange) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteRandomCheckpoint(dir.File("m"), Small("llama")).ok());
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir.File("m"));
  ASSERT_TRUE(ckpt.ok());
  for (int64_t layer : {-1, 2}) {
    absl::StatusOr<BlockWeights> w = LoadBlockWeights(*ckpt, layer, at::kFloat, at::kCPU);
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(w.status().message()),
                HasSubstr("is out of range (the model has 2 layers)"));
  }
}

TEST(BlockRegistry, EveryConfigFamilyHasABlock) {
  for (absl::string_view type : absl::StrSplit(SupportedModelTypes(), ", ")) {
    absl::StatusOr<BlockForwardFn> fn = FindBlockForward(type);
    ASSERT_TRUE(fn.ok()) << type;
    EXPECT_EQ(*fn, &BlockForward) << type;
    EXPECT_EQ((*FindBlockImpl(type))->load, &LoadBlockWeights) << type;
  }
  absl::StatusOr<BlockForwardFn> none = FindBlockForward("gpt2");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(none.status().message(),
            "model_type 'gpt2' has no block implementation (supported: llama, mistral, qwen2)");
}

TEST(ModelEnds, EmbedPicksRowsAndTiedHeadUsesTheEmbedding) {
  testing::TempDir dir;
  RandomCheckpointOptions o = Small("llama");
  o.tie_word_embeddings = true;
  ASSERT_TRUE(WriteRandomCheckpoint(dir.File("m"), o).ok());
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir.File("m"));
  ASSERT_TRUE(ckpt.ok());
  absl::StatusOr<at::Tensor> embed = LoadEmbedding(*ckpt, at::kFloat, at::kCPU);
  ASSERT_TRUE(embed.ok());
  at::Tensor ids = at::tensor({3, 0, 47, 3}, at::kLong).view({2, 2});
  at::Tensor e = Embed(*embed, ids);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{2, 2, 32}));
  EXPECT_TRUE(at::equal(e[1][0], (*embed)[47]));
  EXPECT_TRUE(at::equal(e[0][0], e[1][1]));
  absl::StatusOr<HeadWeights> head = LoadHeadWeights(*ckpt, at::kFloat, at::kCPU);
  ASSERT_TRUE(head.ok());
  EXPECT_TRUE(at::equal(head->lm_head, *embed));
  at::Tensor logits = HeadForward(ckpt->config(), *head, e);
  ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{2, 2, 48}));
  at::Tensor normed = RmsNorm(e[0][1], head->norm, ckpt->config().rms_norm_eps);
  EXPECT_TRUE(at::allclose(logits[0][1], at::matmul(*embed, normed), 1e-5, 1e-5));
}

}  // namespace
}  // namespace signround
