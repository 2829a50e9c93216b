// The forward pieces of the model families (src/model/block_ops.h,
// src/model/blocks/, src/model/model_ends.h) against plain float64 references
// written here, independently of block_ops, from transformers' eager modules:
// Qwen3MoeSparseMoeBlock / MixtralSparseMoeBlock (softmax over all experts in
// fp32, top-k, renormalised when norm_topk_prob, weighted sum of each selected
// expert's gated MLP), Gemma3RMSNorm (x * rsqrt(mean(x^2) + eps) * (1 + w)),
// Gemma3DecoderLayer (four norms, q/k norms, query_pre_attn_scalar^-0.5,
// GELU-tanh, the local RoPE base and the window on sliding layers,
// Gemma3TextScaledWordEmbedding), Qwen3Attention (q/k RMSNorm over each head
// before RoPE) and Phi3Attention / Phi3MLP (qkv_proj rows [q | k | v],
// gate_up_proj rows [gate | up]). The references loop over tokens and heads.
//
// Tolerances: the engine runs in float32 on values of order 1 with dot
// products of at most 40 terms; its error against float64 is ~1e-6, so 2e-5
// (absolute, as the Llama block's reference test in block_ops_test.cc) leaves
// a wide margin while a wrong scale, norm, RoPE base or mask is off by >1e-2.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "src/model/block_ops.h"
#include "src/model/blocks/blocks.h"
#include "src/model/config.h"
#include "src/model/model_ends.h"
#include "tests/unit/model/block_fixtures.h"
#include "tests/unit/model/reference_ops.h"

namespace signround {
namespace {

using nlohmann::json;

constexpr double kTol = 2e-5;

// hidden 24, 4 query heads of 8 (q_dim 32 != hidden on purpose) over 2 kv
// heads, ffn 40; the family's own keys in `extra`.
ModelConfig Config(const std::string& model_type, const json& extra = json::object()) {
  json j = {{"model_type", model_type},
            {"hidden_size", 24},
            {"intermediate_size", 40},
            {"num_hidden_layers", 2},
            {"num_attention_heads", 4},
            {"num_key_value_heads", 2},
            {"head_dim", 8},
            {"vocab_size", 32},
            {"rms_norm_eps", 1e-5}};
  j.update(extra);
  absl::StatusOr<ModelConfig> c = ParseModelConfig(j.dump(), "test config");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : ModelConfig{};
}

// ---- Plain float64 references ----

using reference::D;
using reference::RefRmsNorm;
using reference::RefRope;

// Rows [start, start + n) of a Linear (a head's, or a slice of a fused one).
LinearWeights Rows(const LinearWeights& l, int64_t start, int64_t n) {
  LinearWeights out;
  out.weight = l.weight.narrow(0, start, n).contiguous();
  if (l.bias.defined()) out.bias = l.bias.narrow(0, start, n).contiguous();
  return out;
}

// x [N, in] float64 -> x W^T + b.
at::Tensor RefLinear(const at::Tensor& x, const LinearWeights& l) {
  at::Tensor y = at::matmul(x, D(l.weight).t());
  return l.bias.defined() ? y + D(l.bias) : y;
}

double Silu(double v) { return v / (1.0 + std::exp(-v)); }
// gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
double GeluTanh(double v) {
  return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
}

// down(act(gate x) * up x) on x [N, hidden] float64.
at::Tensor RefGatedMlp(const at::Tensor& x, const LinearWeights& gate, const LinearWeights& up,
                       const LinearWeights& down, bool gelu) {
  at::Tensor g = RefLinear(x, gate), u = RefLinear(x, up);
  at::Tensor a = at::empty_like(g);
  auto ga = g.accessor<double, 2>();
  auto aa = a.accessor<double, 2>();
  for (int64_t n = 0; n < g.size(0); ++n) {
    for (int64_t f = 0; f < g.size(1); ++f) aa[n][f] = gelu ? GeluTanh(ga[n][f]) : Silu(ga[n][f]);
  }
  return RefLinear(a * u, down);
}

// What an attention layer does beside its weights, spelled out by each test.
struct RefAttn {
  double theta;        // the RoPE base of this layer
  double scale;        // multiplies q . k
  int64_t window = 0;  // > 0: query i sees keys i - window < j <= i
  bool qk_norm = false;
  bool gemma = false;  // norms are x * (1 + w)
};

// Self-attention of x [T, hidden] float64 (already normed), head by head and
// query by query. Query head h reads kv head h / (heads / kv_heads).
at::Tensor RefAttention(const ModelConfig& c, const BlockWeights& w, const RefAttn& a,
                        const at::Tensor& x) {
  const int64_t t = x.size(0), d = c.head_dim;
  const int64_t n_rep = c.num_attention_heads / c.num_key_value_heads;
  const int64_t q_dim = c.num_attention_heads * d, kv_dim = c.num_key_value_heads * d;
  LinearWeights q, k, v;
  if (const LinearWeights* qkv = w.FindLinear("self_attn.qkv_proj"); qkv != nullptr) {
    q = Rows(*qkv, 0, q_dim);
    k = Rows(*qkv, q_dim, kv_dim);
    v = Rows(*qkv, q_dim + kv_dim, kv_dim);
  } else {
    q = Lin(w, "self_attn.q_proj");
    k = Lin(w, "self_attn.k_proj");
    v = Lin(w, "self_attn.v_proj");
  }
  std::vector<at::Tensor> heads;
  for (int64_t h = 0; h < c.num_attention_heads; ++h) {
    at::Tensor qh = RefLinear(x, Rows(q, h * d, d));
    at::Tensor kh = RefLinear(x, Rows(k, (h / n_rep) * d, d));
    at::Tensor vh = RefLinear(x, Rows(v, (h / n_rep) * d, d));
    if (a.qk_norm) {
      qh = RefRmsNorm(qh, w.param("self_attn.q_norm"), c.rms_norm_eps, a.gemma);
      kh = RefRmsNorm(kh, w.param("self_attn.k_norm"), c.rms_norm_eps, a.gemma);
    }
    qh = RefRope(qh, a.theta);
    kh = RefRope(kh, a.theta);
    at::Tensor out = at::zeros({t, d}, at::kDouble);
    for (int64_t i = 0; i < t; ++i) {
      std::vector<int64_t> keys;
      for (int64_t j = 0; j <= i; ++j) {
        if (a.window == 0 || j > i - a.window) keys.push_back(j);
      }
      std::vector<double> s;
      for (int64_t j : keys) s.push_back(at::dot(qh[i], kh[j]).item<double>() * a.scale);
      const double mx = *std::max_element(s.begin(), s.end());
      double z = 0;
      for (double& e : s) z += (e = std::exp(e - mx));
      for (size_t n = 0; n < keys.size(); ++n) out[i] += s[n] / z * vh[keys[n]];
    }
    heads.push_back(out);
  }
  return RefLinear(at::cat(heads, 1), Lin(w, "self_attn.o_proj"));
}

// The pre-norm block with a dense MLP (Llama, Qwen3, Phi-3), fused Linears sliced.
at::Tensor RefDenseBlock(const ModelConfig& c, const BlockWeights& w, const RefAttn& a,
                         const at::Tensor& x) {
  const double eps = c.rms_norm_eps;
  at::Tensor h = x + RefAttention(c, w, a, RefRmsNorm(x, w.param("input_layernorm"), eps, false));
  at::Tensor hn = RefRmsNorm(h, w.param("post_attention_layernorm"), eps, false);
  if (const LinearWeights* gu = w.FindLinear("mlp.gate_up_proj"); gu != nullptr) {
    const int64_t ff = gu->weight.size(0) / 2;
    return h + RefGatedMlp(hn, Rows(*gu, 0, ff), Rows(*gu, ff, ff), Lin(w, "mlp.down_proj"), false);
  }
  return h + RefGatedMlp(hn, Lin(w, "mlp.gate_proj"), Lin(w, "mlp.up_proj"),
                         Lin(w, "mlp.down_proj"), false);
}

struct RefMoeOut {
  at::Tensor out;               // [N, hidden]
  std::vector<int64_t> counts;  // tokens per expert
};

// The sparse MoE MLP token by token: p = softmax(router x) over all experts,
// the k largest, divided by their sum when norm_topk_prob, times each chosen
// expert's SiLU-gated MLP of x, summed.
RefMoeOut RefSparseMoe(const MoeConfig& m, const BlockWeights& w, const std::string& router,
                       const std::string& prefix, const std::string& gate, const std::string& up,
                       const std::string& down, const at::Tensor& x) {
  const at::Tensor r = D(w.param(router));
  RefMoeOut res{at::zeros_like(x), std::vector<int64_t>(static_cast<size_t>(m.num_experts), 0)};
  for (int64_t n = 0; n < x.size(0); ++n) {
    std::vector<double> p(static_cast<size_t>(m.num_experts));
    for (int64_t e = 0; e < m.num_experts; ++e) p[e] = at::dot(r[e], x[n]).item<double>();
    const double mx = *std::max_element(p.begin(), p.end());
    double z = 0;
    for (double& v : p) z += (v = std::exp(v - mx));
    for (double& v : p) v /= z;
    std::vector<int64_t> order(p.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    order.resize(static_cast<size_t>(m.experts_per_token));
    double sum = 0;
    for (int64_t e : order) sum += p[e];
    for (int64_t e : order) {
      const std::string pre = prefix + std::to_string(e) + ".";
      const double weight = m.norm_topk_prob ? p[e] / sum : p[e];
      at::Tensor y = RefGatedMlp(x[n].unsqueeze(0), Lin(w, pre + gate), Lin(w, pre + up),
                                 Lin(w, pre + down), false);
      res.out[n] += weight * y[0];
      ++res.counts[static_cast<size_t>(e)];
    }
  }
  return res;
}

double MaxErr(const at::Tensor& got, const at::Tensor& want) {
  return (D(got) - want).abs().max().item<double>();
}

// ---- SparseMoe ----

const MoeNames kQwen3MoeNames = {"mlp.gate", "mlp.experts.", "gate_proj", "up_proj", "down_proj"};

struct MoeCase {
  bool norm_topk_prob;
  int64_t k;
};

class SparseMoeTest : public ::testing::TestWithParam<MoeCase> {};

TEST_P(SparseMoeTest, MatchesNaivePerTokenReferenceAndCountsItsSelections) {
  ModelConfig c = Config("qwen3_moe", {{"num_experts", 4},
                                       {"num_experts_per_tok", GetParam().k},
                                       {"moe_intermediate_size", 16},
                                       {"norm_topk_prob", GetParam().norm_topk_prob}});
  ASSERT_TRUE(c.moe.has_value());
  BlockWeights w = RandomBlock(c, 21);
  at::manual_seed(22);
  at::Tensor x = at::randn({2, 9, c.hidden_size});
  std::vector<int64_t> counts;
  at::Tensor got = SparseMoe(c, w, kQwen3MoeNames, x, &counts);
  ASSERT_EQ(got.sizes(), x.sizes());
  RefMoeOut want = RefSparseMoe(*c.moe, w, "mlp.gate", "mlp.experts.", "gate_proj", "up_proj",
                                "down_proj", D(x.reshape({-1, c.hidden_size})));
  EXPECT_LT(MaxErr(got.reshape({-1, c.hidden_size}), want.out), kTol);
  EXPECT_EQ(counts, want.counts);
  EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), int64_t{0}), 18 * GetParam().k);
  // The counts are added to what the vector holds (a block's batches accumulate).
  SparseMoe(c, w, kQwen3MoeNames, x, &counts);
  for (size_t e = 0; e < counts.size(); ++e) EXPECT_EQ(counts[e], 2 * want.counts[e]) << e;
}

INSTANTIATE_TEST_SUITE_P(NormAndTopK, SparseMoeTest,
                         ::testing::Values(MoeCase{true, 1}, MoeCase{true, 2}, MoeCase{false, 1},
                                           MoeCase{false, 2}),
                         [](const ::testing::TestParamInfo<MoeCase>& i) {
                           return std::string(i.param.norm_topk_prob ? "Norm" : "NoNorm") + "Top" +
                                  std::to_string(i.param.k);
                         });

TEST(SparseMoe, NormTopkProbChangesTheOutput) {
  // Guards the reference tests above against norm_topk_prob being ignored:
  // the two settings differ for k = 2, and for k = 1 too (weight 1 against p).
  for (int64_t k : {1, 2}) {
    ModelConfig on = Config("qwen3_moe", {{"num_experts", 4},
                                          {"num_experts_per_tok", k},
                                          {"moe_intermediate_size", 16},
                                          {"norm_topk_prob", true}});
    ModelConfig off = on;
    off.moe->norm_topk_prob = false;
    BlockWeights w = RandomBlock(on, 23);
    at::Tensor x = at::randn({1, 5, on.hidden_size});
    EXPECT_FALSE(at::allclose(SparseMoe(on, w, kQwen3MoeNames, x, nullptr),
                              SparseMoe(off, w, kQwen3MoeNames, x, nullptr)))
        << "k = " << k;
  }
}

TEST(SparseMoe, AnExpertNoTokenSelectsGetsNoGradient) {
  ModelConfig c = Config("qwen3_moe", {{"num_experts", 4},
                                       {"num_experts_per_tok", 2},
                                       {"moe_intermediate_size", 16},
                                       {"norm_topk_prob", true}});
  BlockWeights w = RandomBlock(c, 24);
  // Positive inputs; router rows 0-2 positive and row 3 negative: expert 3 has
  // the lowest logit for every token, so top-2 of 4 never picks it.
  at::manual_seed(25);
  at::Tensor x = at::rand({2, 6, c.hidden_size}) + 0.1;
  at::Tensor router = at::rand({4, c.hidden_size}) + 0.1;
  router[3] = -router[3];
  w.param("mlp.gate") = router.requires_grad_(true);
  for (auto& [name, l] : w.linears) l.weight.requires_grad_(true);
  std::vector<int64_t> counts;
  at::Tensor out = SparseMoe(c, w, kQwen3MoeNames, x, &counts);
  RefMoeOut want = RefSparseMoe(*c.moe, w, "mlp.gate", "mlp.experts.", "gate_proj", "up_proj",
                                "down_proj", D(x.reshape({-1, c.hidden_size})));
  ASSERT_EQ(counts, want.counts);
  ASSERT_EQ(counts[3], 0);
  out.pow(2).sum().backward();
  for (int64_t e = 0; e < 4; ++e) {
    for (const char* p : {"gate_proj", "up_proj", "down_proj"}) {
      const std::string name = "mlp.experts." + std::to_string(e) + "." + p;
      const at::Tensor g = Lin(w, name).weight.grad();
      if (counts[e] == 0) {
        EXPECT_TRUE(!g.defined() || g.abs().max().item<double>() == 0.0) << name;
      } else {
        ASSERT_TRUE(g.defined()) << name;
        EXPECT_GT(g.abs().sum().item<double>(), 0.0) << name;
      }
    }
  }
  // The router learns through the routing weights.
  ASSERT_TRUE(w.param("mlp.gate").grad().defined());
  EXPECT_GT(w.param("mlp.gate").grad().abs().sum().item<double>(), 0.0);
}

// ---- MoE blocks ----

// Attention (with q/k norms for Qwen3-MoE) then the MoE MLP, or the dense MLP
// on a Qwen3-MoE mlp_only_layers layer.
TEST(MoeBlocks, Qwen3MoeAndMixtralBlocksMatchTheReference) {
  struct Case {
    std::string type;
    json extra;
    int64_t layer;
    bool moe;
  };
  const std::vector<Case> cases = {
      {"qwen3_moe",
       {{"num_experts", 4},
        {"num_experts_per_tok", 2},
        {"moe_intermediate_size", 16},
        {"norm_topk_prob", false},
        {"mlp_only_layers", {0}},
        {"rope_theta", 5000.0}},
       1,
       true},
      {"qwen3_moe",
       {{"num_experts", 4},
        {"num_experts_per_tok", 2},
        {"moe_intermediate_size", 16},
        {"mlp_only_layers", {0}},
        {"rope_theta", 5000.0}},
       0,
       false},
      {"mixtral",
       {{"num_local_experts", 3}, {"num_experts_per_tok", 2}, {"rope_theta", 5000.0}},
       0,
       true},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.type + " layer " + std::to_string(k.layer));
    ModelConfig c = Config(k.type, k.extra);
    ASSERT_EQ(c.IsMoeLayer(k.layer), k.moe);
    BlockWeights w = RandomBlock(c, 26, k.layer);
    at::manual_seed(27);
    at::Tensor x = at::randn({2, 6, c.hidden_size});
    std::vector<int64_t> counts;
    auto forward = k.type == "mixtral" ? &blocks::MixtralForward : &blocks::Qwen3MoeForward;
    at::Tensor got = forward(c, w, MakeRopeTables(c, 6, at::kCPU), x, &counts);
    const bool qwen = k.type == "qwen3_moe";
    const RefAttn a{5000.0, 1.0 / std::sqrt(8.0), 0, /*qk_norm=*/qwen, false};
    std::vector<int64_t> want_counts(static_cast<size_t>(c.moe->num_experts), 0);
    for (int64_t b = 0; b < 2; ++b) {
      const at::Tensor xb = D(x[b]);
      const double eps = c.rms_norm_eps;
      at::Tensor h =
          xb + RefAttention(c, w, a, RefRmsNorm(xb, w.param("input_layernorm"), eps, false));
      at::Tensor hn = RefRmsNorm(h, w.param("post_attention_layernorm"), eps, false);
      at::Tensor want;
      if (!k.moe) {
        want = h + RefGatedMlp(hn, Lin(w, "mlp.gate_proj"), Lin(w, "mlp.up_proj"),
                               Lin(w, "mlp.down_proj"), false);
      } else {
        RefMoeOut m = qwen ? RefSparseMoe(*c.moe, w, "mlp.gate", "mlp.experts.", "gate_proj",
                                          "up_proj", "down_proj", hn)
                           : RefSparseMoe(*c.moe, w, "block_sparse_moe.gate",
                                          "block_sparse_moe.experts.", "w1", "w3", "w2", hn);
        want = h + m.out;
        for (size_t e = 0; e < m.counts.size(); ++e) want_counts[e] += m.counts[e];
      }
      EXPECT_LT(MaxErr(got[b], want), kTol) << "batch row " << b;
    }
    if (k.moe) {
      EXPECT_EQ(counts, want_counts);
    } else {
      EXPECT_TRUE(counts.empty());  // a dense layer counts nothing
    }
  }
}

// ---- Gemma 3 ----

TEST(GemmaRmsNorm, IsXTimesRsqrtMeanSquarePlusEpsTimesOnePlusW) {
  at::Tensor x = at::tensor({3.0, 4.0}, at::kFloat).unsqueeze(0);
  at::Tensor w = at::tensor({0.0, -0.5}, at::kFloat);
  at::Tensor y = GemmaRmsNorm(x, w, 0.5);  // rsqrt((9 + 16) / 2 + 0.5) = 1 / sqrt(13)
  EXPECT_NEAR(y[0][0].item<double>(), 3 * 1.0 / std::sqrt(13.0), 1e-6);
  EXPECT_NEAR(y[0][1].item<double>(), 4 * 0.5 / std::sqrt(13.0), 1e-6);

  at::manual_seed(31);
  at::Tensor xs = at::randn({5, 24});
  at::Tensor ws = 0.3 * at::randn({24});
  EXPECT_LT(MaxErr(GemmaRmsNorm(xs, ws, 1e-6), RefRmsNorm(D(xs), ws, 1e-6, true)), 1e-6);
  // A zero weight is the identity scale (Llama's norm would give zeros).
  EXPECT_LT(MaxErr(GemmaRmsNorm(xs, at::zeros({24}), 1e-6),
                   RefRmsNorm(D(xs), at::ones({24}), 1e-6, false)),
            1e-6);
  // bf16 in, bf16 out: computed in fp32 (weight included) and rounded once.
  at::Tensor xb = xs.to(at::kBFloat16), wb = ws.to(at::kBFloat16);
  at::Tensor yb = GemmaRmsNorm(xb, wb, 1e-6);
  EXPECT_EQ(yb.scalar_type(), at::kBFloat16);
  at::Tensor xf = xb.to(at::kFloat);
  at::Tensor want =
      (xf * at::rsqrt(xf.pow(2).mean(-1, true) + 1e-6) * (1 + wb.to(at::kFloat))).to(at::kBFloat16);
  EXPECT_TRUE(at::equal(yb, want));
}

// Gemma 3 with a sliding layer (window 3) and a global one; the scale
// (query_pre_attn_scalar 24, not head_dim 8) and the two RoPE bases differ
// from the defaults so that each is visible.
ModelConfig Gemma3Config() {
  return Config("gemma3_text", {{"query_pre_attn_scalar", 24},
                                {"sliding_window", 3},
                                {"layer_types", {"sliding_attention", "full_attention"}},
                                {"rope_theta", 1e6},
                                {"rope_local_base_freq", 100.0}});
}

// Gemma3DecoderLayer on x [T, hidden] float64.
at::Tensor RefGemma3Block(const ModelConfig& c, const BlockWeights& w, bool sliding,
                          const at::Tensor& x) {
  const double eps = c.rms_norm_eps;
  const RefAttn a{sliding ? 100.0 : 1e6, 1.0 / std::sqrt(24.0), sliding ? 3 : 0, true, true};
  at::Tensor attn = RefAttention(c, w, a, RefRmsNorm(x, w.param("input_layernorm"), eps, true));
  at::Tensor h = x + RefRmsNorm(attn, w.param("post_attention_layernorm"), eps, true);
  at::Tensor mlp =
      RefGatedMlp(RefRmsNorm(h, w.param("pre_feedforward_layernorm"), eps, true),
                  Lin(w, "mlp.gate_proj"), Lin(w, "mlp.up_proj"), Lin(w, "mlp.down_proj"), true);
  return h + RefRmsNorm(mlp, w.param("post_feedforward_layernorm"), eps, true);
}

TEST(Gemma3Block, SlidingAndGlobalLayersMatchTheReference) {
  ModelConfig c = Gemma3Config();
  ASSERT_TRUE(c.IsSlidingLayer(0));
  ASSERT_FALSE(c.IsSlidingLayer(1));
  at::manual_seed(32);
  at::Tensor x = at::randn({2, 7, c.hidden_size});
  RopeTables rope = MakeRopeTables(c, 7, at::kCPU);
  for (int64_t layer : {0, 1}) {
    BlockWeights w = RandomBlock(c, 33 + layer, layer);
    at::Tensor got = blocks::Gemma3Forward(c, w, rope, x, nullptr);
    ASSERT_EQ(got.sizes(), x.sizes());
    for (int64_t b = 0; b < 2; ++b) {
      EXPECT_LT(MaxErr(got[b], RefGemma3Block(c, w, layer == 0, D(x[b]))), kTol)
          << "layer " << layer << " batch row " << b;
    }
    // The reference tells the layers apart: the other layer's attention is off.
    EXPECT_GT(MaxErr(got[0], RefGemma3Block(c, w, layer != 0, D(x[0]))), 1e-3) << layer;
  }
}

TEST(Gemma3Block, SlidingLayerSeesOnlyTheLastWindowKeysAndGlobalSeesAll) {
  ModelConfig c = Gemma3Config();  // window 3 on layer 0
  const int64_t t = 9, i = 7;
  RopeTables rope = MakeRopeTables(c, t, at::kCPU);
  at::manual_seed(34);
  at::Tensor x = at::randn({1, t, c.hidden_size});
  for (int64_t layer : {0, 1}) {
    BlockWeights w = RandomBlock(c, 35, layer);
    at::Tensor out = blocks::Gemma3Forward(c, w, rope, x, nullptr);
    for (int64_t j = 0; j < t; ++j) {
      at::Tensor x2 = x.clone();
      x2[0][j] += at::randn({c.hidden_size});
      at::Tensor out2 = blocks::Gemma3Forward(c, w, rope, x2, nullptr);
      const bool sees = j <= i && (layer == 1 || j > i - 3);
      if (sees) {
        EXPECT_FALSE(at::allclose(out[0][i], out2[0][i], 1e-4, 1e-5))
            << "layer " << layer << ": query " << i << " must see key " << j;
      } else {
        // A masked key has probability exactly 0: the output is bit-identical.
        EXPECT_TRUE(at::equal(out[0][i], out2[0][i]))
            << "layer " << layer << ": query " << i << " must not see key " << j;
      }
    }
  }
}

TEST(Gemma3Ends, EmbedScalesBySqrtHiddenInTheWeightDtype) {
  ModelConfig gemma = Gemma3Config();
  ModelConfig llama = Config("llama");
  at::manual_seed(36);
  at::Tensor wf = at::randn({32, 24});
  at::Tensor wb = wf.to(at::kBFloat16);
  at::Tensor ids = at::tensor({5, 0, 31, 5}, at::kLong).view({2, 2});
  // sqrt(24) = 4.898979...; in bf16 (steps of 1/32 in [4, 8)) it is 4.90625.
  const float scale_bf16 = at::scalar_tensor(std::sqrt(24.0)).to(at::kBFloat16).item<float>();
  ASSERT_EQ(scale_bf16, 4.90625f);
  at::Tensor rows = wb.index_select(0, ids.reshape({-1})).view({2, 2, 24});
  at::Tensor got = Embed(gemma, wb, ids);
  EXPECT_EQ(got.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(got, (rows.to(at::kFloat) * scale_bf16).to(at::kBFloat16)));
  // ...which is not the same as scaling by the unrounded sqrt(24).
  EXPECT_FALSE(at::equal(got, (rows.to(at::kFloat) * std::sqrt(24.0f)).to(at::kBFloat16)));
  at::Tensor rows_f = wf.index_select(0, ids.reshape({-1})).view({2, 2, 24});
  EXPECT_TRUE(at::equal(Embed(gemma, wf, ids), rows_f * static_cast<float>(std::sqrt(24.0))));
  EXPECT_TRUE(at::equal(Embed(llama, wf, ids), rows_f));  // other families: unscaled
}

TEST(Gemma3Ends, HeadNormsWithOnePlusW) {
  ModelConfig c = Gemma3Config();
  at::manual_seed(37);
  HeadWeights head{0.3 * at::randn({24}), at::randn({32, 24}) / std::sqrt(24.0)};
  at::Tensor h = at::randn({2, 3, 24});
  at::Tensor got = HeadForward(c, head, h);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{2, 3, 32}));
  at::Tensor hn = RefRmsNorm(D(h.reshape({-1, 24})), head.norm, c.rms_norm_eps, true);
  at::Tensor want = at::matmul(hn, D(head.lm_head).t());
  EXPECT_LT(MaxErr(got.reshape({-1, 32}), want), kTol);
}

// ---- Qwen3 and Phi-3 ----

TEST(Qwen3Block, QkNormsMatchTheReference) {
  ModelConfig c = Config("qwen3", {{"attention_bias", true}, {"rope_theta", 5000.0}});
  ASSERT_TRUE(c.qk_norm);
  BlockWeights w = RandomBlock(c, 41);
  ASSERT_TRUE(Lin(w, "self_attn.o_proj").bias.defined());
  at::manual_seed(42);
  at::Tensor x = at::randn({2, 7, c.hidden_size});
  at::Tensor got = blocks::DenseForward(c, w, MakeRopeTables(c, 7, at::kCPU), x, nullptr);
  const RefAttn a{5000.0, 1.0 / std::sqrt(8.0), 0, /*qk_norm=*/true, false};
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_LT(MaxErr(got[b], RefDenseBlock(c, w, a, D(x[b]))), kTol) << "batch row " << b;
  }
  // Without the q/k norms the reference is far off: they are applied.
  RefAttn plain = a;
  plain.qk_norm = false;
  EXPECT_GT(MaxErr(got[0], RefDenseBlock(c, w, plain, D(x[0]))), 1e-3);
}

// The Llama weights equivalent to Phi-3's fused ones: q/k/v and gate/up are
// row slices of qkv_proj and gate_up_proj.
BlockWeights Unfused(const ModelConfig& c, const BlockWeights& fused) {
  BlockWeights w;
  w.layer = fused.layer;
  w.params = fused.params;
  const LinearWeights& qkv = Lin(fused, "self_attn.qkv_proj");
  const LinearWeights& gu = Lin(fused, "mlp.gate_up_proj");
  const int64_t ff = c.intermediate_size;
  w.linears = {{"self_attn.q_proj", Rows(qkv, 0, c.q_dim())},
               {"self_attn.k_proj", Rows(qkv, c.q_dim(), c.kv_dim())},
               {"self_attn.v_proj", Rows(qkv, c.q_dim() + c.kv_dim(), c.kv_dim())},
               {"self_attn.o_proj", Lin(fused, "self_attn.o_proj")},
               {"mlp.gate_proj", Rows(gu, 0, ff)},
               {"mlp.up_proj", Rows(gu, ff, ff)},
               {"mlp.down_proj", Lin(fused, "mlp.down_proj")}};
  return w;
}

TEST(Phi3Block, FusedQkvAndGateUpEqualTheUnfusedLlamaBlockOnRowSlices) {
  for (bool window : {false, true}) {
    SCOPED_TRACE(window ? "sliding_window 3" : "no window");
    json extra = window ? json{{"sliding_window", 3}} : json::object();
    ModelConfig phi = Config("phi3", extra);
    ModelConfig llama = Config("llama");
    llama.sliding_layers = phi.sliding_layers;  // Phi-3's window on every layer
    llama.sliding_window = phi.sliding_window;
    BlockWeights fused = RandomBlock(phi, 43);
    ASSERT_EQ(fused.linears.size(), 4u);
    BlockWeights unfused = Unfused(phi, fused);
    at::manual_seed(44);
    at::Tensor x = at::randn({2, 7, phi.hidden_size});
    RopeTables rope = MakeRopeTables(phi, 7, at::kCPU);
    at::Tensor a = blocks::DenseForward(phi, fused, rope, x, nullptr);
    at::Tensor b = blocks::DenseForward(llama, unfused, rope, x, nullptr);
    // The same dot products, but a fused GEMM is wider, so the BLAS may sum in
    // another order: equal to a few float32 ulps of outputs of order 1 (seen:
    // 8e-7), where slicing [q | k | v] or [gate | up] wrongly is off by O(1).
    EXPECT_LT((a - b).abs().max().item<double>(), 5e-6);
    BlockWeights swapped = unfused;
    std::swap(Lin(swapped, "mlp.gate_proj"), Lin(swapped, "mlp.up_proj"));
    EXPECT_GT(
        (a - blocks::DenseForward(llama, swapped, rope, x, nullptr)).abs().max().item<double>(),
        1e-2);
    const RefAttn ref{10000.0, 1.0 / std::sqrt(8.0), window ? 3 : 0, false, false};
    for (int64_t r = 0; r < 2; ++r) {
      EXPECT_LT(MaxErr(a[r], RefDenseBlock(phi, fused, ref, D(x[r]))), kTol) << "batch row " << r;
    }
  }
}

}  // namespace
}  // namespace signround
