#include "src/eval/perplexity.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/model/model_ends.h"
#include "src/model/random_checkpoint.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

using ::testing::ElementsAre;

// ---- Reference perplexities on the shared models ----
//
// The expected values come from an independent implementation (per the issue
// that asked for this engine; see shared/models/*/SOURCE.md for the pure-Python
// reference forward those models were checked against), not from this code.
// They are exp(mean NLL) over all 255 next-token predictions of every
// 256-token chunk of the eval file.

void ExpectReferencePerplexity(const std::string& model, const std::string& data, double want,
                               int64_t want_rows) {
  std::string shared = testing::SharedDir();
  if (shared.empty()) GTEST_SKIP() << "no ../shared directory";
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(shared + "/models/" + model);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  absl::StatusOr<std::vector<TokenRow>> rows = LoadTokenRows(shared + "/data/" + data);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(static_cast<int64_t>(rows->size()), want_rows);
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<PerplexityResult> r = EvaluatePerplexity(*ckpt, *rows);
  ASSERT_TRUE(r.ok()) << r.status();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r->predictions, want_rows * 255);
  EXPECT_NEAR(r->perplexity, want, want * 1e-3);
  std::printf("%s on %s: perplexity %.6f (mean NLL %.7f) in %.2f s\n", model.c_str(), data.c_str(),
              r->perplexity, r->mean_nll, seconds);
}

TEST(PerplexityReference, Stories260k) {
  ExpectReferencePerplexity("stories260k", "stories260k-eval-256.jsonl", 4.2983, 142);
}

TEST(PerplexityReference, BabyLlama105) {
  ExpectReferencePerplexity("babyllama-105", "babyllama-105-eval-256.jsonl", 2.2523, 289);
}

// ---- Behaviour on a small random checkpoint ----

class PerplexityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RandomCheckpointOptions o;
    o.hidden_size = 32;
    o.intermediate_size = 64;
    o.num_layers = 2;
    o.num_heads = 4;
    o.num_kv_heads = 2;
    o.vocab_size = 64;
    o.max_position_embeddings = 64;
    o.dtype = DType::kF32;
    o.seed = 3;
    ASSERT_TRUE(WriteRandomCheckpoint(dir_.File("m"), o).ok());
    absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir_.File("m"));
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    ckpt_ = std::make_unique<Checkpoint>(*std::move(ckpt));
  }

  static std::vector<TokenRow> Rows(const std::vector<int>& lengths, int seed) {
    std::vector<TokenRow> rows;
    for (int len : lengths) {
      TokenRow row;
      for (int i = 0; i < len; ++i) row.push_back((seed * 31 + i * 17 + len * 7) % 64);
      rows.push_back(row);
      ++seed;
    }
    return rows;
  }

  PerplexityResult Eval(const std::vector<TokenRow>& rows, const PerplexityOptions& o = {}) {
    absl::StatusOr<PerplexityResult> r = EvaluatePerplexity(*ckpt_, rows, o);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(PerplexityResult{});
  }

  testing::TempDir dir_;
  std::unique_ptr<Checkpoint> ckpt_;
};

TEST_F(PerplexityTest, BatchSizeDoesNotChangeTheResult) {
  std::vector<TokenRow> rows = Rows({12, 12, 12, 12, 12}, 1);
  PerplexityOptions one;
  one.batch_size = 1;
  PerplexityResult a = Eval(rows, one);
  PerplexityResult b = Eval(rows);
  EXPECT_EQ(a.predictions, 55);
  EXPECT_EQ(a.rows, 5);
  EXPECT_NEAR(a.mean_nll, b.mean_nll, 1e-5);
  EXPECT_NEAR(a.perplexity, std::exp(a.mean_nll), 1e-9 * a.perplexity);
}

TEST_F(PerplexityTest, UnequalRowsCountEachRealPredictionOnce) {
  std::vector<TokenRow> rows = Rows({10, 4, 7, 1, 10}, 5);
  PerplexityOptions o;
  o.batch_size = 2;
  PerplexityResult all = Eval(rows, o);
  double sum = 0;
  int64_t count = 0;
  for (const TokenRow& row : rows) {
    if (row.size() < 2) continue;
    PerplexityResult one = Eval({row});
    sum += one.mean_nll * static_cast<double>(one.predictions);
    count += one.predictions;
  }
  EXPECT_EQ(all.predictions, 27);
  EXPECT_EQ(count, 27);
  EXPECT_NEAR(all.mean_nll, sum / static_cast<double>(count), 1e-5);
}

TEST_F(PerplexityTest, SubstitutedBlocksAreUsedInOrder) {
  std::vector<int64_t> asked;
  PerplexityOptions o;
  // Zero o_proj and down_proj: every block becomes the identity, so the model
  // is lm_head(norm(embed(ids))).
  o.block_weights = [&](int64_t layer) -> absl::StatusOr<BlockWeights> {
    asked.push_back(layer);
    absl::StatusOr<BlockWeights> w = LoadBlockWeights(*ckpt_, layer, at::kFloat, at::kCPU);
    if (w.ok()) {
      w->FindLinear("self_attn.o_proj")->weight.zero_();
      w->FindLinear("mlp.down_proj")->weight.zero_();
    }
    return w;
  };
  std::vector<TokenRow> rows = Rows({6, 6, 6}, 2);
  PerplexityResult got = Eval(rows, o);
  EXPECT_THAT(asked, ElementsAre(0, 1));

  const ModelConfig& c = ckpt_->config();
  at::Tensor embed = *LoadEmbedding(*ckpt_, at::kDouble, at::kCPU);
  HeadWeights head = *LoadHeadWeights(*ckpt_, at::kDouble, at::kCPU);
  double sum = 0;
  for (const TokenRow& row : rows) {
    for (size_t p = 0; p + 1 < row.size(); ++p) {
      at::Tensor h = embed[row[p]];
      at::Tensor normed =
          h / std::sqrt(h.pow(2).mean().item<double>() + c.rms_norm_eps) * head.norm;
      at::Tensor logits = at::matmul(head.lm_head, normed);
      double lse = logits.exp().sum().log().item<double>();
      sum += lse - logits[row[p + 1]].item<double>();
    }
  }
  EXPECT_NEAR(got.mean_nll, sum / 15.0, 1e-5);
}

TEST_F(PerplexityTest, SubstituteErrorsPropagate) {
  PerplexityOptions o;
  o.block_weights = [&](int64_t layer) -> absl::StatusOr<BlockWeights> {
    if (layer == 1) return absl::DataLossError("layer 1 is gone");
    return LoadBlockWeights(*ckpt_, layer, at::kFloat, at::kCPU);
  };
  absl::StatusOr<PerplexityResult> r = EvaluatePerplexity(*ckpt_, Rows({5}, 0), o);
  EXPECT_EQ(r.status(), absl::DataLossError("layer 1 is gone"));
  // Weights of the wrong shape are an error, not a crash.
  o.block_weights = [&](int64_t layer) -> absl::StatusOr<BlockWeights> {
    absl::StatusOr<BlockWeights> w = LoadBlockWeights(*ckpt_, layer, at::kFloat, at::kCPU);
    if (w.ok())
      w->FindLinear("self_attn.q_proj")->weight =
          w->FindLinear("self_attn.q_proj")->weight.narrow(0, 0, 8);
    return w;
  };
  EXPECT_EQ(EvaluatePerplexity(*ckpt_, Rows({5}, 0), o).status().code(),
            absl::StatusCode::kInternal);
}

TEST_F(PerplexityTest, RejectsBadInput) {
  absl::StatusOr<PerplexityResult> r = EvaluatePerplexity(*ckpt_, {{1, 2}, {3, 64}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "perplexity: row 2, position 2: token id 64 is not below vocab_size 64");
  r = EvaluatePerplexity(*ckpt_, {{1}, {}});
  EXPECT_EQ(r.status().message(),
            "perplexity: nothing to predict: 2 rows and none has at least 2 tokens");
  PerplexityOptions o;
  o.batch_size = 0;
  r = EvaluatePerplexity(*ckpt_, Rows({5}, 0), o);
  EXPECT_EQ(r.status().message(), "perplexity: batch size must be positive, got 0");
}

}  // namespace
}  // namespace signround
