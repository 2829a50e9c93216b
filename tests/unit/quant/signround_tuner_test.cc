// SignRound tuning of one decoder block (ALGORITHM.md section 3) on a tiny
// random Llama block.
#include "src/quant/signround_tuner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/ATen.h>

#include "src/model/blocks/blocks.h"
#include "src/quant/batch_sampler.h"
#include "src/quant/qdq.h"
#include "src/quant/sensitivity.h"
#include "tests/unit/model/block_fixtures.h"

namespace signround {
namespace {

constexpr int64_t kHidden = 64;
constexpr int64_t kIntermediate = 128;
constexpr int64_t kSamples = 16;
constexpr int64_t kTokens = 12;

ModelConfig TinyConfig() {
  ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = kHidden;
  c.intermediate_size = kIntermediate;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = kHidden / 4;
  c.max_position_embeddings = 128;
  c.vocab_size = 32;
  return c;
}

// A random block: weights ~ N(0, 0.05^2), norms near 1.
BlockWeights RandomBlock(const ModelConfig& c) {
  at::manual_seed(1234);
  auto w = [](int64_t out, int64_t in) { return at::randn({out, in}) * 0.05; };
  BlockWeights b;
  b.params.emplace_back("input_layernorm",
                        at::ones({c.hidden_size}) + at::randn({c.hidden_size}) * 0.05);
  b.params.emplace_back("post_attention_layernorm",
                        at::ones({c.hidden_size}) + at::randn({c.hidden_size}) * 0.05);
  b.linears.push_back({"self_attn.q_proj", {w(c.q_dim(), c.hidden_size), {}}});
  b.linears.push_back({"self_attn.k_proj", {w(c.kv_dim(), c.hidden_size), {}}});
  b.linears.push_back({"self_attn.v_proj", {w(c.kv_dim(), c.hidden_size), {}}});
  b.linears.push_back({"self_attn.o_proj", {w(c.hidden_size, c.q_dim()), {}}});
  b.linears.push_back({"mlp.gate_proj", {w(c.intermediate_size, c.hidden_size), {}}});
  b.linears.push_back({"mlp.up_proj", {w(c.intermediate_size, c.hidden_size), {}}});
  b.linears.push_back({"mlp.down_proj", {w(c.hidden_size, c.intermediate_size), {}}});
  return b;
}

std::vector<LayerToQuantize> AllLayers(QuantScheme scheme) {
  std::vector<LayerToQuantize> out;
  for (const char* name : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                           "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
    out.push_back({name, scheme});
  }
  return out;
}

class TuneBlockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = TinyConfig();
    original_ = RandomBlock(config_);
    rope_ = MakeRopeTables(config_, kTokens, at::kCPU);
    at::manual_seed(99);
    q_in_ = at::randn({kSamples, kTokens, kHidden});
    at::NoGradGuard no_grad;
    fp_out_ = blocks::DenseForward(config_, original_, rope_, q_in_, nullptr);
  }

  BlockTuneResult Tune(QuantScheme scheme, int iters, uint64_t seed, int64_t batch = 4,
                       TuneOptions o = {}) {
    o.iters = iters;
    o.batch_size = batch;
    auto r = TuneBlock(config_, &blocks::DenseForward, original_, rope_, AllLayers(scheme), q_in_,
                       fp_out_, o, seed);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : BlockTuneResult();
  }

  ModelConfig config_;
  BlockWeights original_;
  RopeTables rope_;
  at::Tensor q_in_, fp_out_;
};

TEST_F(TuneBlockTest, ZeroItersIsRtn) {
  const QuantScheme scheme{4, 32, true};
  BlockTuneResult r = Tune(scheme, 0, 7);
  ASSERT_EQ(r.layers.size(), 7u);
  EXPECT_EQ(r.loss_best, r.loss_iter0);
  EXPECT_EQ(r.best_iter, 0);
  EXPECT_GT(r.loss_iter0, 0);
  for (const QuantizedLinear& l : r.layers) {
    GroupedWeight g = GroupWeight(original_.FindLinear(l.name)->weight, scheme.group_size);
    QdqResult rtn = QuantDequant(g, scheme, InitialRoundingParams(g));
    // Exact: the same formula on the same inputs.
    EXPECT_TRUE(at::equal(l.dequant, rtn.dequant)) << l.name;
    IntegerWeight iw = ToIntegerWeight(g, scheme, rtn);
    EXPECT_TRUE(at::equal(l.integer.codes, iw.codes)) << l.name;
    EXPECT_TRUE(at::equal(l.integer.scales, iw.scales)) << l.name;
    EXPECT_TRUE(at::equal(l.integer.zeros, iw.zeros)) << l.name;
  }
  // loss_iter0 is the MSE of the RTN block on the first sampled batch.
  std::vector<int64_t> idx = BatchSampler(kSamples, 4, 7).Next();
  at::Tensor rows = at::tensor(idx, at::kLong);
  at::NoGradGuard no_grad;
  at::Tensor out =
      blocks::DenseForward(config_, WithQuantizedWeights(original_, r.layers, at::kFloat), rope_,
                           q_in_.index_select(0, rows), nullptr);
  double mse = at::mse_loss(out, fp_out_.index_select(0, rows)).item<double>();
  // Tolerance 1e-6 relative: the same fp32 ops in the same order, so in practice exact.
  EXPECT_NEAR(r.loss_iter0, mse, 1e-6 * mse);
}

TEST_F(TuneBlockTest, TuningNeverEndsWorseThanRtn) {
  for (int bits : {2, 4}) {
    BlockTuneResult r = Tune({bits, 32, true}, 40, 7);
    EXPECT_LE(r.loss_best, r.loss_iter0) << bits;
    EXPECT_GE(r.best_iter, 0) << bits;
    EXPECT_LT(r.best_iter, 40) << bits;
    if (bits == 2) {
      // 2-bit RTN is coarse enough that 40 signed steps find a better rounding.
      EXPECT_LT(r.loss_best, r.loss_iter0);
      EXPECT_GT(r.best_iter, 0);
    }
  }
}

TEST_F(TuneBlockTest, SameSeedSameResultOtherSeedOtherLoss) {
  const QuantScheme scheme{2, 32, true};
  BlockTuneResult a = Tune(scheme, 20, 11);
  BlockTuneResult b = Tune(scheme, 20, 11);
  EXPECT_EQ(a.loss_iter0, b.loss_iter0);
  EXPECT_EQ(a.loss_best, b.loss_best);
  EXPECT_EQ(a.best_iter, b.best_iter);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t k = 0; k < a.layers.size(); ++k) {
    EXPECT_TRUE(at::equal(a.layers[k].dequant, b.layers[k].dequant)) << a.layers[k].name;
    EXPECT_TRUE(at::equal(a.layers[k].integer.codes, b.layers[k].integer.codes));
    EXPECT_TRUE(at::equal(a.layers[k].integer.scales, b.layers[k].integer.scales));
    EXPECT_TRUE(at::equal(a.layers[k].integer.zeros, b.layers[k].integer.zeros));
  }
  // Another seed draws other batches, so the losses differ.
  BlockTuneResult c = Tune(scheme, 20, 12);
  EXPECT_NE(a.loss_iter0, c.loss_iter0);
  EXPECT_NE(a.loss_best, c.loss_best);
}

TEST_F(TuneBlockTest, CodesInRangeAndDequantIsScaleTimesCodeMinusZero) {
  for (bool sym : {true, false}) {
    for (int bits : {2, 3, 4, 8}) {
      for (int group_size : {32, -1}) {
        const QuantScheme scheme{bits, group_size, sym};
        BlockTuneResult r = Tune(scheme, 8, 3);
        for (const QuantizedLinear& l : r.layers) {
          SCOPED_TRACE(::testing::Message() << l.name << " bits " << bits << " group " << group_size
                                            << (sym ? " sym" : " asym"));
          const at::Tensor& w = original_.FindLinear(l.name)->weight;
          const int64_t out = w.size(0), in = w.size(1);
          const int64_t g = group_size > 0 ? group_size : in;
          const int64_t groups = in / g;
          const at::Tensor& codes = l.integer.codes;
          ASSERT_FALSE(at::isFloatingType(codes.scalar_type()));
          ASSERT_FALSE(at::isFloatingType(l.integer.zeros.scalar_type()));
          ASSERT_EQ(codes.sizes(), w.sizes());
          ASSERT_EQ(l.integer.scales.scalar_type(), at::kHalf);
          ASSERT_EQ(l.integer.scales.sizes(), at::IntArrayRef({out, groups}));
          ASSERT_EQ(l.integer.zeros.sizes(), at::IntArrayRef({out, groups}));
          EXPECT_GE(codes.min().item<int64_t>(), 0);
          EXPECT_LE(codes.max().item<int64_t>(), (1 << bits) - 1);
          if (sym) {
            EXPECT_TRUE(at::all(l.integer.zeros == (1 << (bits - 1))).item<bool>());
          } else {
            EXPECT_GE(l.integer.zeros.min().item<int64_t>(), 0);
            EXPECT_LE(l.integer.zeros.max().item<int64_t>(), (1 << bits) - 1);
          }
          // Exact: an fp16 scale times an integer below 2^9 is representable in fp32.
          at::Tensor grouped = codes.reshape({out, groups, g}).to(at::kFloat);
          at::Tensor rebuilt = l.integer.scales.to(at::kFloat).unsqueeze(-1) *
                               (grouped - l.integer.zeros.to(at::kFloat).unsqueeze(-1));
          EXPECT_TRUE(at::equal(rebuilt.reshape({out, in}), l.dequant));
        }
      }
    }
  }
}

TEST_F(TuneBlockTest, UnknownLayerIsAnError) {
  TuneOptions o;
  o.iters = 1;
  auto r = TuneBlock(config_, &blocks::DenseForward, original_, rope_,
                     {{"mlp.nope", {4, 32, true}}}, q_in_, fp_out_, o, 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("mlp.nope"), absl::string_view::npos);
}

// opt_rtn: with iters 0 the scale search alone lowers the block loss below RTN's (same
// batch), for sym and asym 2-bit, and changes nothing else about the result's shape.
TEST_F(TuneBlockTest, ScaleSearchLowersTheRtnLoss) {
  TuneOptions searched;
  searched.scale_search = true;
  for (bool sym : {true, false}) {
    const QuantScheme scheme{2, 32, sym};
    BlockTuneResult rtn = Tune(scheme, 0, 3);
    BlockTuneResult opt = Tune(scheme, 0, 3, 4, searched);
    EXPECT_LT(opt.loss_iter0, rtn.loss_iter0) << sym;
    EXPECT_EQ(opt.loss_best, opt.loss_iter0);
    ASSERT_EQ(opt.layers.size(), rtn.layers.size());
    for (size_t k = 0; k < opt.layers.size(); ++k) {
      EXPECT_FALSE(at::equal(opt.layers[k].integer.scales, rtn.layers[k].integer.scales))
          << opt.layers[k].name;
    }
  }
}

// Tuning from the searched range may open a group's scale past the searched one
// (WidenSearchedRange: alpha and beta start at 0.5 of twice the searched extremes); within the
// searched extremes alone it could only shrink them. Iteration 0 is the search's result, and
// every symmetric scale keeps the sign the search gave it (IntSearchRange).
TEST_F(TuneBlockTest, TuningFromTheSearchMayWidenTheSearchedScale) {
  TuneOptions searched;
  searched.scale_search = true;
  const QuantScheme scheme{2, 32, true};
  BlockTuneResult start = Tune(scheme, 0, 3, 4, searched);
  BlockTuneResult tuned = Tune(scheme, 60, 3, 4, searched);
  EXPECT_EQ(tuned.loss_iter0, start.loss_iter0);
  EXPECT_LT(tuned.loss_best, tuned.loss_iter0);
  ASSERT_EQ(start.layers.size(), tuned.layers.size());
  int64_t wider = 0, narrower = 0;
  for (size_t k = 0; k < tuned.layers.size(); ++k) {
    const at::Tensor sa = start.layers[k].integer.scales.to(at::kFloat);
    const at::Tensor sb = tuned.layers[k].integer.scales.to(at::kFloat);
    EXPECT_TRUE(at::equal(at::sign(sa), at::sign(sb))) << tuned.layers[k].name;
    const at::Tensor a = sa.abs(), b = sb.abs();
    wider += (b > a).sum().item<int64_t>();
    narrower += (b < a).sum().item<int64_t>();
  }
  EXPECT_GT(wider, 0);
  EXPECT_GT(narrower, 0);
}

// The loss filter leaves the largest 0.1% squared errors out of the mean: the loss is the
// mean of the others, and the dropped elements get no gradient. Below 1000 elements, or
// off, it is at::mse_loss.
TEST(BlockLoss, FilterDropsTheLargestErrors) {
  at::manual_seed(17);
  const at::Tensor target = at::randn({2, 1000});
  at::Tensor out = (target + at::randn({2, 1000}) * 0.1).requires_grad_(true);
  {
    at::NoGradGuard no_grad;
    out[0][10] += 50.0;
    out[1][999] -= 40.0;
  }
  EXPECT_TRUE(at::equal(BlockLoss(out, target, false), at::mse_loss(out, target)));
  at::Tensor loss = BlockLoss(out, target, true);
  // The reference: the 1998 other elements' mean, summed in double.
  at::Tensor keep = at::ones({2, 1000}, at::kBool);
  keep[0][10] = false;
  keep[1][999] = false;
  const double expected =
      (out.detach() - target).pow(2).masked_select(keep).to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6 * expected);  // fp32 sum order
  loss.backward();
  EXPECT_EQ(out.grad()[0][10].item<float>(), 0.0f);
  EXPECT_EQ(out.grad()[1][999].item<float>(), 0.0f);
  EXPECT_NE(out.grad()[0][11].item<float>(), 0.0f);
  const at::Tensor small = out.detach().narrow(1, 0, 499);
  EXPECT_TRUE(at::equal(BlockLoss(small, target.narrow(1, 0, 499), true),
                        at::mse_loss(small, target.narrow(1, 0, 499))));
}

// Tuning with the loss filter and the scale search stays deterministic and never ends worse
// than where it started.
TEST_F(TuneBlockTest, FilteredTuningFromTheSearchIsDeterministic) {
  TuneOptions v2;
  v2.scale_search = true;
  v2.loss_filter = true;
  // 16 x 12 x 64 = 12,288 outputs per batch of 16: 12 are left out.
  BlockTuneResult a = Tune({2, 32, true}, 30, 5, 16, v2);
  BlockTuneResult b = Tune({2, 32, true}, 30, 5, 16, v2);
  EXPECT_LE(a.loss_best, a.loss_iter0);
  EXPECT_EQ(a.loss_best, b.loss_best);
  for (size_t k = 0; k < a.layers.size(); ++k) {
    EXPECT_TRUE(at::equal(a.layers[k].integer.codes, b.layers[k].integer.codes));
  }
  BlockTuneResult unfiltered = Tune({2, 32, true}, 30, 5, 16, [] {
    TuneOptions o;
    o.scale_search = true;
    return o;
  }());
  EXPECT_LT(a.loss_iter0, unfiltered.loss_iter0);  // the same W^, 12 errors fewer
}

// DeltaLoss per layer and scheme (sensitivity.h): positive, larger for fewer bits (coarser
// W^ moves the loss more), the same twice, and an unknown layer is an error.
TEST_F(TuneBlockTest, SensitivityFallsWithMoreBits) {
  const std::vector<std::string> names = {"self_attn.q_proj", "self_attn.o_proj", "mlp.down_proj"};
  const std::vector<QuantScheme> schemes = {
      {2, 32, true}, {3, 32, true}, {4, 32, true}, {8, 32, true}};
  SensitivityOptions so;
  so.batch_size = 4;
  auto r = BlockSensitivity(config_, &blocks::DenseForward, original_, rope_, names, schemes, q_in_,
                            fp_out_, so);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), names.size());
  for (size_t l = 0; l < names.size(); ++l) {
    for (size_t s = 0; s + 1 < schemes.size(); ++s) {
      EXPECT_GT((*r)[l][s], (*r)[l][s + 1]) << names[l] << " " << schemes[s].bits;
    }
    EXPECT_GT((*r)[l].back(), 0.0) << names[l];
  }
  auto again = BlockSensitivity(config_, &blocks::DenseForward, original_, rope_, names, schemes,
                                q_in_, fp_out_, so);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *r);
  auto bad = BlockSensitivity(config_, &blocks::DenseForward, original_, rope_, {"mlp.nope"},
                              schemes, q_in_, fp_out_, so);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TuneBlockTest, WithQuantizedWeightsReplacesOnlyTheTunedLayers) {
  BlockTuneResult r = Tune({2, 32, true}, 0, 1);
  r.layers.erase(r.layers.begin() + 1, r.layers.end());  // keep q_proj only
  BlockWeights w = WithQuantizedWeights(original_, r.layers, at::kFloat);
  EXPECT_TRUE(at::equal(Lin(w, "self_attn.q_proj").weight, r.layers[0].dequant));
  EXPECT_FALSE(
      at::equal(Lin(w, "self_attn.q_proj").weight, Lin(original_, "self_attn.q_proj").weight));
  EXPECT_TRUE(
      at::equal(Lin(w, "self_attn.k_proj").weight, Lin(original_, "self_attn.k_proj").weight));
  EXPECT_TRUE(at::equal(Lin(w, "mlp.down_proj").weight, Lin(original_, "mlp.down_proj").weight));
}

}  // namespace
}  // namespace signround
