#include "src/model/block_ops.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/model/block_registry.h"
#include "src/model/blocks/blocks.h"
#include "src/model/layout.h"
#include "src/model/random_checkpoint.h"
#include "src/tensor/torch_tensor.h"
#include "tests/testing/test_files.h"
#include "tests/unit/model/block_fixtures.h"
#include "tests/unit/model/model_fixtures.h"
#include "tests/unit/model/reference_ops.h"

namespace signround {
namespace {

using ::testing::HasSubstr;

ModelConfig TinyConfig(int64_t heads, int64_t kv_heads) {
  ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = 24;
  c.intermediate_size = 40;
  c.num_hidden_layers = 1;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = 8;  // q_dim (heads * 8) differs from hidden_size on purpose
  c.vocab_size = 32;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  return c;
}

// ---- A plain float64 re-implementation of one block on one sequence. ----

using reference::D;
using reference::RefRmsNorm;
using reference::RefRope;

at::Tensor RefLinear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  at::Tensor y = at::matmul(x, D(w).t());
  return b.defined() ? y + D(b) : y;
}

at::Tensor RefCausalSoftmax(const at::Tensor& scores) {
  const int64_t t = scores.size(0);
  at::Tensor probs = at::zeros_like(scores);
  for (int64_t p = 0; p < t; ++p) {
    at::Tensor row = scores[p].narrow(0, 0, p + 1);
    at::Tensor e = (row - row.max()).exp();
    probs[p].narrow(0, 0, p + 1).copy_(e / e.sum());
  }
  return probs;
}

at::Tensor RefHeadRows(const LinearWeights& l, int64_t head, int64_t d, const at::Tensor& x) {
  at::Tensor b = l.bias.defined() ? l.bias.narrow(0, head * d, d) : at::Tensor();
  return RefLinear(x, l.weight.narrow(0, head * d, d), b);
}

// x: [T, hidden] float64. Query head h reads kv head h / n_rep.
at::Tensor ReferenceBlock(const ModelConfig& c, const BlockWeights& w, const at::Tensor& x) {
  const int64_t d = c.head_dim, n_rep = c.num_attention_heads / c.num_key_value_heads;
  at::Tensor xn = RefRmsNorm(x, w.param("input_layernorm"), c.rms_norm_eps);
  std::vector<at::Tensor> heads;
  for (int64_t h = 0; h < c.num_attention_heads; ++h) {
    at::Tensor q = RefRope(RefHeadRows(Lin(w, "self_attn.q_proj"), h, d, xn), c.rope_theta);
    at::Tensor k = RefRope(RefHeadRows(Lin(w, "self_attn.k_proj"), h / n_rep, d, xn), c.rope_theta);
    at::Tensor v = RefHeadRows(Lin(w, "self_attn.v_proj"), h / n_rep, d, xn);
    at::Tensor scores = at::matmul(q, k.t()) / std::sqrt(static_cast<double>(d));
    heads.push_back(at::matmul(RefCausalSoftmax(scores), v));
  }
  at::Tensor h1 = x + RefLinear(at::cat(heads, 1), Lin(w, "self_attn.o_proj").weight,
                                Lin(w, "self_attn.o_proj").bias);
  at::Tensor hn = RefRmsNorm(h1, w.param("post_attention_layernorm"), c.rms_norm_eps);
  at::Tensor gate = RefLinear(hn, Lin(w, "mlp.gate_proj").weight, Lin(w, "mlp.gate_proj").bias);
  at::Tensor up = RefLinear(hn, Lin(w, "mlp.up_proj").weight, Lin(w, "mlp.up_proj").bias);
  at::Tensor act = gate / (1 + (-gate).exp()) * up;
  return h1 + RefLinear(act, Lin(w, "mlp.down_proj").weight, Lin(w, "mlp.down_proj").bias);
}

void ExpectMatchesReference(const ModelConfig& c, const BlockWeights& w) {
  at::manual_seed(11);
  at::Tensor x = at::randn({2, 7, c.hidden_size});
  at::Tensor got = blocks::DenseForward(c, w, MakeRopeTables(c, 7, at::kCPU), x, nullptr);
  ASSERT_EQ(got.sizes(), x.sizes());
  for (int64_t b = 0; b < 2; ++b) {
    at::Tensor want = ReferenceBlock(c, w, D(x[b]));
    double err = (D(got[b]) - want).abs().max().item<double>();
    EXPECT_LT(err, 2e-5) << "batch row " << b;
  }
}

TEST(LlamaBlock, MultiHeadAttentionMatchesPlainReference) {
  ModelConfig c = TinyConfig(4, 4);
  ExpectMatchesReference(c, RandomBlock(c, 1));
}

TEST(LlamaBlock, GroupedQueryAttentionWithBiasesMatchesPlainReference) {
  ModelConfig c = TinyConfig(6, 2);  // n_rep = 3
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  ExpectMatchesReference(c, RandomBlock(c, 2));
}

TEST(LlamaBlock, GroupedQueryAttentionEqualsMultiHeadWithRepeatedKvHeads) {
  ModelConfig gqa = TinyConfig(4, 2);
  BlockWeights w = RandomBlock(gqa, 3);
  ModelConfig mha = TinyConfig(4, 4);
  BlockWeights wm = w;
  // kv head j serves query heads 2j and 2j+1 (HF repeat_kv).
  auto repeat = [&](const at::Tensor& t) {
    return t.view({2, gqa.head_dim, -1}).repeat_interleave(2, 0).reshape({4 * gqa.head_dim, -1});
  };
  Lin(wm, "self_attn.k_proj").weight = repeat(Lin(w, "self_attn.k_proj").weight);
  Lin(wm, "self_attn.v_proj").weight = repeat(Lin(w, "self_attn.v_proj").weight);
  at::Tensor x = at::randn({2, 5, gqa.hidden_size});
  at::Tensor a = blocks::DenseForward(gqa, w, MakeRopeTables(gqa, 5, at::kCPU), x, nullptr);
  at::Tensor b = blocks::DenseForward(mha, wm, MakeRopeTables(mha, 5, at::kCPU), x, nullptr);
  EXPECT_TRUE(at::allclose(a, b, 1e-5, 1e-6));
}

TEST(LlamaBlock, LaterTokensDoNotChangeEarlierOutputs) {
  ModelConfig c = TinyConfig(4, 2);
  BlockWeights w = RandomBlock(c, 4);
  RopeTables rope = MakeRopeTables(c, 8, at::kCPU);
  at::Tensor x = at::randn({1, 8, c.hidden_size});
  at::Tensor out = blocks::DenseForward(c, w, rope, x, nullptr);
  for (int64_t t : {0, 3, 6}) {
    at::Tensor x2 = x.clone();
    x2.narrow(1, t + 1, 7 - t).add_(at::randn({1, 7 - t, c.hidden_size}));
    at::Tensor out2 = blocks::DenseForward(c, w, rope, x2, nullptr);
    EXPECT_TRUE(at::allclose(out.narrow(1, 0, t + 1), out2.narrow(1, 0, t + 1), 1e-5, 1e-6))
        << "t = " << t;
    EXPECT_FALSE(at::allclose(out.narrow(1, t + 1, 7 - t), out2.narrow(1, t + 1, 7 - t)))
        << "t = " << t;
  }
}

TEST(LlamaBlock, GradientsReachSwappedAndOriginalWeights) {
  ModelConfig c = TinyConfig(4, 2);
  BlockWeights w = RandomBlock(c, 5);
  // What a tuner does: a leaf parameter, and W^ computed from it with autograd.
  at::Tensor v = at::zeros_like(Lin(w, "self_attn.q_proj").weight).requires_grad_(true);
  w.FindLinear("self_attn.q_proj")->weight = Lin(w, "self_attn.q_proj").weight + v;
  Lin(w, "mlp.down_proj").weight.requires_grad_(true);
  at::Tensor out =
      blocks::DenseForward(c, w, MakeRopeTables(c, 6, at::kCPU), at::randn({2, 6, 24}), nullptr);
  out.sum().backward();
  for (const at::Tensor& g : {v.grad(), Lin(w, "mlp.down_proj").weight.grad()}) {
    ASSERT_TRUE(g.defined());
    EXPECT_TRUE(at::isfinite(g).all().item<bool>());
    EXPECT_GT(g.abs().sum().item<double>(), 0.0);
  }
}

TEST(LlamaBlock, LinearNamesMatchTheCheckpointLayout) {
  ModelConfig c = TinyConfig(4, 2);
  std::vector<LinearLayer> layers = DecoderLinears(c);
  BlockWeights w = RandomBlock(c, 6);
  const std::vector<std::string> want = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                         "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                         "mlp.down_proj"};
  ASSERT_EQ(layers.size(), want.size());
  ASSERT_EQ(w.linears.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(layers[i].name, "model.layers.0." + want[i]);
    EXPECT_EQ(w.linears[i].first, want[i]);
    LinearWeights* l = w.FindLinear(want[i]);
    ASSERT_NE(l, nullptr) << want[i];
    EXPECT_EQ(l, &w.linears[i].second);
    EXPECT_EQ(l->weight.size(0), layers[i].out) << want[i];
    EXPECT_EQ(l->weight.size(1), layers[i].in) << want[i];
  }
  EXPECT_EQ(w.FindLinear("q_proj"), nullptr);
  EXPECT_THROW(w.linear("q_proj"), c10::Error);
  EXPECT_THROW(w.param("q_norm"), c10::Error);
}

// ---- Rotary embeddings ----

TEST(Rope, PositionZeroIsIdentityAndRotationsPreserveNorms) {
  ModelConfig c = TinyConfig(4, 2);
  RopeTables rope = MakeRopeTables(c, 16, at::kCPU);
  ASSERT_EQ(rope.cos.sizes(), (std::vector<int64_t>{16, 8}));
  at::Tensor x = at::randn({2, 3, 16, 8});
  at::Tensor y = ApplyRope(x, rope);
  EXPECT_TRUE(at::equal(y.select(2, 0), x.select(2, 0)));
  EXPECT_TRUE(at::allclose(y.norm(2, -1), x.norm(2, -1), 1e-5, 1e-6));
  EXPECT_FALSE(at::allclose(y.select(2, 5), x.select(2, 5)));
  // Spot values: cos[p][i] = cos[p][i + d/2] = cos(p * theta^(-2i/d)).
  EXPECT_NEAR(rope.cos[5][1].item<double>(), std::cos(5 * 0.1), 1e-6);
  EXPECT_NEAR(rope.sin[5][5].item<double>(), std::sin(5 * 0.1), 1e-6);
  EXPECT_NEAR(rope.sin[15][3].item<double>(), std::sin(15 * 0.001), 1e-7);
}

TEST(Rope, LinearScalingDividesEveryFrequency) {
  ModelConfig c = TinyConfig(4, 2);
  at::Tensor plain = RopeInvFreq(c);
  c.rope_scaling = RopeScaling{"linear", 4.0};
  EXPECT_TRUE(at::allclose(RopeInvFreq(c), plain / 4.0));
}

TEST(Rope, Llama3ScalingKeepsHighAndDividesLowFrequencies) {
  ModelConfig c = TinyConfig(4, 2);  // head_dim 8: inv_freq = 1, 0.1, 0.01, 0.001
  RopeScaling rs;
  rs.type = "llama3";
  rs.factor = 8;
  rs.low_freq_factor = 1;
  rs.high_freq_factor = 4;
  rs.original_max_position_embeddings = 1024;
  c.rope_scaling = rs;
  // Wavelengths 2*pi/f: 6.3, 62.8, 628.3, 6283.2; high_freq_wavelen = 1024/4 =
  // 256, low_freq_wavelen = 1024/1 = 1024. So 1 and 0.1 stay, 0.001 is divided
  // by 8, and 0.01 is in the middle band:
  // smooth = (1024 / 628.3185 - 1) / (4 - 1) = 0.2099163.
  const double smooth = (1024.0 / (2 * M_PI / 0.01) - 1.0) / 3.0;
  const std::vector<double> want = {1.0, 0.1, (1 - smooth) * 0.01 / 8 + smooth * 0.01, 0.001 / 8};
  EXPECT_NEAR(smooth, 0.2099163, 1e-6);
  at::Tensor got = RopeInvFreq(c);
  ASSERT_EQ(got.numel(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(got[i].item<double>(), want[i], want[i] * 1e-6) << i;
  }
}

TEST(RmsNorm, NormalisesInFloat32AndCastsBackBeforeTheWeight) {
  at::Tensor x = at::tensor({3.0, 4.0}, at::kFloat).unsqueeze(0);
  at::Tensor g = at::tensor({1.0, 2.0}, at::kFloat);
  at::Tensor y = RmsNorm(x, g, 0.0);  // rms = sqrt(12.5)
  EXPECT_NEAR(y[0][0].item<double>(), 3 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(y[0][1].item<double>(), 8 / std::sqrt(12.5), 1e-6);
  at::Tensor yb = RmsNorm(x.to(at::kBFloat16), g.to(at::kBFloat16), 0.0);
  EXPECT_EQ(yb.scalar_type(), at::kBFloat16);
}

// ---- Loading a block's weights from a checkpoint. ----

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
  EXPECT_EQ(Lin(*w, "mlp.down_proj").weight.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(Lin(*w, "mlp.down_proj").weight, raw.to(at::kFloat)));
  EXPECT_NE(Lin(*w, "mlp.down_proj").weight.data_ptr(), raw.data_ptr());
  EXPECT_TRUE(at::equal(w->param("input_layernorm"),
                        Raw(*ckpt, "model.layers.1.input_layernorm.weight").to(at::kFloat)));
  // Qwen2: q/k/v have biases, o_proj and the MLP do not.
  EXPECT_TRUE(Lin(*w, "self_attn.q_proj").bias.defined());
  EXPECT_TRUE(Lin(*w, "self_attn.v_proj").bias.defined());
  EXPECT_FALSE(Lin(*w, "self_attn.o_proj").bias.defined());
  EXPECT_FALSE(Lin(*w, "mlp.gate_proj").bias.defined());
  Lin(*w, "self_attn.q_proj").weight.mul_(2);  // owned: writable
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

}  // namespace
}  // namespace signround
