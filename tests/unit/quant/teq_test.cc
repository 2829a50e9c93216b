// TEQ (src/quant/teq.h) on a random block of every family: which norm feeds
// which matrices, the folded block computing what the original does, the
// rounding of the stored norms compensated, and the quantized block improved.
#include "src/quant/teq.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/match.h"
#include "src/model/block_registry.h"
#include "src/model/checkpoint.h"
#include "src/model/family.h"
#include "src/model/random_checkpoint.h"
#include "src/quant/qdq.h"
#include "tests/testing/test_files.h"
#include "tests/unit/model/model_fixtures.h"

namespace signround {
namespace {

constexpr int64_t kSamples = 32;
constexpr int64_t kTokens = 8;
// The samples from this one on judge the trained scales (TeqHeldOut: the last 8 of 32).
constexpr int64_t kFirstJudged = 24;

TEST(TeqHeldOut, AQuarterFromFourSamplesOn) {
  EXPECT_EQ(TeqHeldOut(kSamples), kSamples - kFirstJudged);
  EXPECT_EQ(TeqHeldOut(128), 32);
  EXPECT_EQ(TeqHeldOut(7), 1);
  EXPECT_EQ(TeqHeldOut(4), 1);
  EXPECT_EQ(TeqHeldOut(3), 0);  // too few to hold any out: all of them train and judge
  EXPECT_EQ(TeqHeldOut(1), 0);
}

TEST(TeqGroups, NormsAndWhatReadsThemPerFamily) {
  RandomCheckpointOptions o;
  o.hidden_size = 64;
  o.intermediate_size = 64;
  o.num_heads = 4;
  o.num_kv_heads = 2;
  auto groups_of = [&](const std::string& type) {
    o.model_type = type;
    absl::StatusOr<ModelConfig> c = RandomCheckpointConfig(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return TeqGroups(FindModelFamily(type)->block_layout(*c, 0));
  };
  std::vector<TeqGroup> llama = groups_of("llama");
  ASSERT_EQ(llama.size(), 4u);
  EXPECT_EQ(llama[0].norm, "input_layernorm");
  EXPECT_EQ(llama[0].linears,
            (std::vector<std::string>{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}));
  EXPECT_EQ(llama[1].norm, "post_attention_layernorm");
  EXPECT_EQ(llama[1].linears, (std::vector<std::string>{"mlp.gate_proj", "mlp.up_proj"}));
  EXPECT_TRUE(llama[1].params.empty());
  // The values o_proj reads: head_dim 16, each of the 2 KV heads read by 2 query heads.
  EXPECT_EQ(llama[2].rows_of, "self_attn.v_proj");
  EXPECT_EQ(llama[2].linears, std::vector<std::string>{"self_attn.o_proj"});
  EXPECT_EQ(llama[2].row_begin, 0);
  EXPECT_EQ(llama[2].channels, 32);
  EXPECT_EQ(llama[2].head_dim, 16);
  EXPECT_EQ(llama[2].repeat, 2);
  EXPECT_EQ(llama[3].rows_of, "mlp.up_proj");
  EXPECT_EQ(llama[3].linears, std::vector<std::string>{"mlp.down_proj"});
  EXPECT_EQ(llama[3].channels, 64);
  EXPECT_EQ(llama[3].head_dim, 64);
  EXPECT_EQ(llama[3].repeat, 1);
  EXPECT_EQ(llama[3].unit, "mlp.down_proj");
  // Gemma 3's post-attention norm scales the attention output; the MLP reads the
  // pre-feedforward norm's.
  std::vector<TeqGroup> gemma = groups_of("gemma3_text");
  ASSERT_EQ(gemma.size(), 4u);
  EXPECT_EQ(gemma[1].norm, "pre_feedforward_layernorm");
  // Phi-3's fused Linears: the values are the last rows of qkv_proj ([q 64 | k 32 | v 32]),
  // the up rows the second half of gate_up_proj.
  std::vector<TeqGroup> phi = groups_of("phi3");
  ASSERT_EQ(phi.size(), 4u);
  EXPECT_EQ(phi[0].linears, std::vector<std::string>{"self_attn.qkv_proj"});
  EXPECT_EQ(phi[1].linears, std::vector<std::string>{"mlp.gate_up_proj"});
  EXPECT_EQ(phi[2].rows_of, "self_attn.qkv_proj");
  EXPECT_EQ(phi[2].row_begin, 96);
  EXPECT_EQ(phi[2].channels, 32);
  EXPECT_EQ(phi[3].rows_of, "mlp.gate_up_proj");
  EXPECT_EQ(phi[3].row_begin, 64);
  EXPECT_EQ(phi[3].linears, std::vector<std::string>{"mlp.down_proj"});
  // MoE: the router and every expert's gate and up.
  o.num_experts = 3;
  o.experts_per_token = 2;
  std::vector<TeqGroup> mixtral = groups_of("mixtral");
  ASSERT_EQ(mixtral.size(), 6u);
  EXPECT_EQ(mixtral[1].params, std::vector<std::string>{"block_sparse_moe.gate"});
  EXPECT_EQ(mixtral[1].linears.size(), 6u);
  EXPECT_NE(std::find(mixtral[1].linears.begin(), mixtral[1].linears.end(),
                      "block_sparse_moe.experts.2.w3"),
            mixtral[1].linears.end());
  // Each expert's up rows for its own down, one unit for all of them.
  EXPECT_EQ(mixtral[5].rows_of, "block_sparse_moe.experts.2.w3");
  EXPECT_EQ(mixtral[5].linears, std::vector<std::string>{"block_sparse_moe.experts.2.w2"});
  EXPECT_EQ(mixtral[3].unit, "experts");
  EXPECT_EQ(mixtral[5].unit, "experts");
}

class TeqFamilyTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    // Two groups of 32 per row at hidden 64; fp32, so the fold is checked to fp32 precision.
    RandomCheckpointOptions o = Small(GetParam());
    o.hidden_size = 64;
    o.num_layers = 1;
    o.dtype = DType::kF32;
    o.seed = 5;
    if (std::string(GetParam()) == "mixtral" || std::string(GetParam()) == "qwen3_moe") {
      o.num_experts = 3;
      o.experts_per_token = 2;
    }
    ASSERT_TRUE(WriteRandomCheckpoint(dir_.File("m"), o).ok());
    absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir_.File("m"));
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    config_ = ckpt->config();
    absl::StatusOr<const BlockImpl*> impl = FindBlockImpl(config_.model_type);
    ASSERT_TRUE(impl.ok());
    forward_ = (*impl)->forward;
    absl::StatusOr<BlockWeights> w = (*impl)->load(*ckpt, 0, at::kFloat, at::kCPU);
    ASSERT_TRUE(w.ok()) << w.status();
    original_ = *std::move(w);
    // Norms away from 1 (random checkpoints have unit norms), so that a wrong fold shows.
    at::manual_seed(3);
    for (auto& [name, t] : original_.params) {
      if (absl::EndsWith(name, "norm")) t = t + at::randn(t.sizes()) * 0.3;
    }
    groups_ = TeqGroups(FindModelFamily(config_.model_type)->block_layout(config_, 0));
    // Every Linear at W2G32.
    for (const auto& [name, l] : original_.linears) layers_.push_back({name, {2, 32, true}});
    rope_ = MakeRopeTables(config_, kTokens, at::kCPU);
    // Inputs with a few large channels, as real hidden states have.
    at::Tensor channel = at::ones({config_.hidden_size});
    channel.narrow(0, 0, 4).fill_(8.0);
    q_in_ = at::randn({kSamples, kTokens, config_.hidden_size}) * channel;
    fp_out_ = Forward(original_);
  }

  at::Tensor Forward(const BlockWeights& w) {
    at::NoGradGuard no_grad;
    return forward_(config_, w, rope_, q_in_, nullptr);
  }

  // The block loss over the samples from `first` on with each quantized Linear rounded to
  // nearest.
  double RtnLoss(const BlockWeights& w, int64_t first = 0) {
    at::NoGradGuard no_grad;
    BlockWeights q = w;
    for (const LayerToQuantize& l : layers_) {
      LinearWeights* lw = q.FindLinear(l.name);
      const GroupedWeight g = GroupWeight(lw->weight, l.scheme.group_size);
      lw->weight = QuantDequant(g, l.scheme, InitialRoundingParams(g)).dequant;
    }
    return at::mse_loss(Forward(q).narrow(0, first, kSamples - first),
                        fp_out_.narrow(0, first, kSamples - first))
        .item<double>();
  }

  // An equivalent block whose q/k/v hold an outlier input channel (column 0 times 4, the
  // norm's weight divided by 4), with only the norms' readers quantized at W2G32 (o and
  // down stay fp32, so the block loss is theirs).
  void PutOutlierChannel() {
    const TeqGroup& attention = groups_[0];
    layers_.clear();
    for (const TeqGroup& g : groups_) {
      if (g.norm.empty()) continue;
      for (const std::string& name : g.linears) layers_.push_back({name, {2, 32, true}});
    }
    at::NoGradGuard no_grad;
    const double shift = config_.gemma_norms ? 1.0 : 0.0;
    at::Tensor& norm = original_.param(attention.norm);
    norm = (norm + shift) / 4.0 - shift;
    for (const std::string& name : attention.linears) {
      at::Tensor& w = original_.FindLinear(name)->weight;
      w = w.clone();
      w.narrow(1, 0, 1).mul_(4.0);
    }
  }

  absl::StatusOr<TeqResult> Train(at::ScalarType stored, bool hold_out = true) {
    TeqOptions t;
    t.hold_out = hold_out;
    t.iters = 60;
    t.batch_size = 4;
    t.norm_shift = config_.gemma_norms ? 1.0 : 0.0;
    t.stored_dtype = [stored](const std::string&) { return stored; };
    return TrainTeq(config_, forward_, original_, rope_, groups_, layers_, q_in_, fp_out_, t, 7);
  }

  testing::TempDir dir_;
  ModelConfig config_;
  BlockForwardFn forward_ = nullptr;
  BlockWeights original_;
  std::vector<TeqGroup> groups_;
  std::vector<LayerToQuantize> layers_;
  RopeTables rope_;
  at::Tensor q_in_, fp_out_;
};

INSTANTIATE_TEST_SUITE_P(Families, TeqFamilyTest,
                         ::testing::Values("llama", "qwen3", "qwen3_moe", "mixtral", "gemma3_text",
                                           "phi3"));

// Unquantized, the folded block is the original function (fp32 arithmetic, relative 1e-5
// of the output's scale); the losses reported are those of the block rounded to nearest
// before and after on the held-out samples (relative 1e-5), and the scales stand only when
// they lowered it.
TEST_P(TeqFamilyTest, FoldedBlockComputesTheSameAndReportsItsLoss) {
  absl::StatusOr<TeqResult> r = Train(at::kFloat);
  ASSERT_TRUE(r.ok()) << r.status();
  const double scale = fp_out_.abs().max().item<double>();
  EXPECT_LT((Forward(r->weights) - fp_out_).abs().max().item<double>(), 1e-5 * scale);
  EXPECT_NEAR(RtnLoss(original_, kFirstJudged), r->loss_iter0, 1e-5 * r->loss_iter0);
  EXPECT_NEAR(RtnLoss(r->weights, kFirstJudged), r->loss_best, 1e-5 * r->loss_best);
  if (r->kept) {
    EXPECT_LT(r->loss_best, r->loss_iter0);
  } else {  // the block as it was: nothing changed
    EXPECT_EQ(r->loss_best, r->loss_iter0);
    EXPECT_TRUE(r->changed.empty());
    EXPECT_TRUE(r->kept_units.empty());
    for (const auto& [name, l] : original_.linears) {
      EXPECT_TRUE(at::equal(l.weight, r->weights.linear(name).weight)) << name;
    }
    return;
  }
  // What the export writes instead of the checkpoint's: the kept units' norms and any router
  // (the quantized Linears are quantized from their scaled weights).
  std::vector<std::string> changed;
  for (const auto& [name, t] : r->changed) changed.push_back(name);
  std::vector<std::string> want;
  for (const TeqGroup& g : groups_) {
    if (g.norm.empty() ||
        std::find(r->kept_units.begin(), r->kept_units.end(), g.unit) == r->kept_units.end()) {
      continue;
    }
    want.push_back(g.norm + ".weight");
    for (const std::string& p : g.params) want.push_back(p + ".weight");
  }
  EXPECT_EQ(changed, want);
}

// The block with the outlier channel (PutOutlierChannel) rounds badly: the scales learn to
// take it back (s of that channel below 0.8), and the block rounded to nearest loses at least
// 2% less.
TEST_P(TeqFamilyTest, LearnsToUndoAnOutlierChannel) {
  const TeqGroup& attention = groups_[0];
  PutOutlierChannel();
  absl::StatusOr<TeqResult> r = Train(at::kFloat);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->kept);
  EXPECT_LT(RtnLoss(r->weights), 0.98 * RtnLoss(original_));
  // s of channel 0 below 0.8: its norm weight (plus Gemma's 1) grew by more than 1.25.
  const double shift = config_.gemma_norms ? 1.0 : 0.0;
  const double grown = (r->weights.param(attention.norm)[0].item<double>() + shift) /
                       (original_.param(attention.norm)[0].item<double>() + shift);
  EXPECT_GT(grown, 1.25);
}

// The held-out samples alone judge: with them all zero (every block maps a zero input to
// zero, at any scales, so their loss is 0 either way) the scales that undo the outlier
// channel above are not kept. Without holding out, every sample judges.
TEST_P(TeqFamilyTest, OnlyTheHeldOutSamplesJudge) {
  PutOutlierChannel();
  {
    at::NoGradGuard no_grad;
    q_in_.narrow(0, kFirstJudged, kSamples - kFirstJudged).zero_();
    fp_out_ = Forward(original_);
    ASSERT_EQ(fp_out_.narrow(0, kFirstJudged, kSamples - kFirstJudged).abs().max().item<double>(),
              0.0);
  }
  absl::StatusOr<TeqResult> r = Train(at::kFloat);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->loss_iter0, 0.0);
  EXPECT_FALSE(r->kept);
  EXPECT_TRUE(r->changed.empty());
  absl::StatusOr<TeqResult> all = Train(at::kFloat, /*hold_out=*/false);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_GT(all->loss_iter0, 0.0);
  EXPECT_NEAR(all->loss_iter0, RtnLoss(original_), 1e-5 * all->loss_iter0);
}

// Stored as bf16, the norms are rounded; the Linears take the scale the rounded norm applies,
// so the unquantized block still computes the original function to fp32 precision (without
// the compensation the error would be bf16's, about 4e-3 relative).
TEST_P(TeqFamilyTest, RoundedNormsAreCompensatedInTheLinears) {
  absl::StatusOr<TeqResult> r = Train(at::kBFloat16);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const auto& [name, t] : r->changed) EXPECT_EQ(t.scalar_type(), at::kBFloat16) << name;
  const double scale = fp_out_.abs().max().item<double>();
  // Routers are rounded too and not compensated: an MoE block's routing moves by bf16's step.
  const double tol = config_.moe ? 2e-2 : 1e-5;
  EXPECT_LT((Forward(r->weights) - fp_out_).abs().max().item<double>(), tol * scale);
  // The changed tensors put back reproduce the folded block's 16-bit tensors.
  absl::StatusOr<BlockWeights> back = WithChangedTensors(original_, r->changed);
  ASSERT_TRUE(back.ok()) << back.status();
  for (const TeqGroup& g : groups_) {
    if (g.norm.empty()) continue;
    EXPECT_TRUE(at::equal(back->param(g.norm), r->weights.param(g.norm))) << g.norm;
  }
}

// The same through the values: o_proj's columns that read value channel 0 (those of the
// query heads of KV head 0) times 4, and that channel's row of the values divided by 4. The
// scales of the values' unit learn it back (the row grows by more than 1.25 again), and the
// block rounded to nearest loses at least 2% less.
TEST_P(TeqFamilyTest, LearnsToUndoAnOutlierValueChannel) {
  const TeqGroup* values = nullptr;
  for (const TeqGroup& g : groups_) {
    if (g.unit == "self_attn.o_proj") values = &g;
  }
  ASSERT_NE(values, nullptr);
  {
    at::NoGradGuard no_grad;
    at::Tensor& v = original_.FindLinear(values->rows_of)->weight;
    v = v.clone();
    v.narrow(0, values->row_begin, 1).div_(4.0);
    at::Tensor& o = original_.FindLinear("self_attn.o_proj")->weight;
    o = o.clone();
    for (int64_t h = 0; h < values->repeat; ++h) o.narrow(1, h * values->head_dim, 1).mul_(4.0);
    fp_out_ = Forward(original_);
  }
  absl::StatusOr<TeqResult> r = Train(at::kFloat);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(std::find(r->kept_units.begin(), r->kept_units.end(), "self_attn.o_proj"),
            r->kept_units.end());
  EXPECT_LT(RtnLoss(r->weights), 0.98 * RtnLoss(original_));
  const at::Tensor before = original_.linear(values->rows_of).weight[values->row_begin];
  const at::Tensor after = r->weights.linear(values->rows_of).weight[values->row_begin];
  EXPECT_GT((after.norm() / before.norm()).item<double>(), 1.25);
  // The unquantized folded block is still the original function.
  const double scale = fp_out_.abs().max().item<double>();
  EXPECT_LT((Forward(r->weights) - fp_out_).abs().max().item<double>(), 1e-5 * scale);
}

TEST(WithChangedTensors, RefusesTensorsTheBlockDoesNotHave) {
  BlockWeights w;
  w.params.emplace_back("input_layernorm", at::ones({4}));
  EXPECT_EQ(
      WithChangedTensors(w, {{"post_attention_layernorm.weight", at::ones({4})}}).status().code(),
      absl::StatusCode::kInternal);
  EXPECT_EQ(WithChangedTensors(w, {{"input_layernorm.weight", at::ones({5})}}).status().code(),
            absl::StatusCode::kInternal);
  absl::StatusOr<BlockWeights> ok =
      WithChangedTensors(w, {{"input_layernorm.weight", at::full({4}, 2.0, at::kBFloat16)}});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->param("input_layernorm").scalar_type(), at::kFloat);
  EXPECT_EQ(ok->param("input_layernorm")[0].item<float>(), 2.0f);
}

}  // namespace
}  // namespace signround
