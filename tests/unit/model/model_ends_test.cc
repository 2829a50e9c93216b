// The model ends (src/model/model_ends.h): the embedding and the head loaded from a checkpoint,
// a tied head using the embedding.
#include "src/model/model_ends.h"

#include <vector>

#include "gtest/gtest.h"
#include "src/model/block_ops.h"
#include "src/model/random_checkpoint.h"
#include "tests/testing/test_files.h"
#include "tests/unit/model/model_fixtures.h"

namespace signround {
namespace {

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
  at::Tensor e = Embed(ckpt->config(), *embed, ids);
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
