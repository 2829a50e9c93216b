// Drives the real `signround-worker quantize` binary: reference perplexities on
// the shared checkpoints, determinism, resume after kill -9, bad input,
// per-layer overrides, the packed exports read back by `eval`, and RTN without
// calibration data. The worker is started with fork + execv (no shell), so a
// SIGKILL reaches the worker itself.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "src/tensor/safetensors_file.h"
#include "tests/testing/gguf_reader.h"
#include "tests/testing/test_files.h"
#include "tests/testing/worker_process.h"

namespace signround {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::ExpectOneLineError;
using testing::ReadAll;
using testing::Result;
using testing::RunWorker;
using testing::Worker;

// The JSON events of a `--progress json` run's stdout.
std::vector<json> Events(const std::string& out) {
  std::vector<json> events;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    if (nl == std::string::npos) nl = out.size();
    std::string line = out.substr(pos, nl - pos);
    if (!line.empty()) events.push_back(json::parse(line));
    pos = nl + 1;
  }
  return events;
}

std::vector<json> BlockEvents(const std::string& out) {
  std::vector<json> blocks;
  for (const json& e : Events(out)) {
    if (e["event"] == "block") blocks.push_back(e);
  }
  return blocks;
}

// report.json without the fields that measure time or memory.
json ReportWithoutTimings(const std::string& out_dir) {
  json r = json::parse(ReadAll(out_dir + "/report.json"));
  r.erase("seconds_total");
  r.erase("peak_rss_bytes");
  for (json& b : r["blocks"]) b.erase("seconds");
  if (r.contains("auto_scheme")) r["auto_scheme"].erase("seconds");
  return r;
}

// --- a small random checkpoint ------------------------------------------------

constexpr int kVocab = 128;
constexpr int kLayers = 5;

// Hidden 64, intermediate 128: every Linear is a multiple of 32, so all are
// quantized by default. `more`: e.g. another --model-type and its experts.
std::string MakeSmallModel(const testing::TempDir& dir, const std::vector<std::string>& more = {}) {
  std::string model = dir.File("model");
  std::vector<std::string> args = {"make-test-model",
                                   "--out",
                                   model,
                                   "--hidden",
                                   "64",
                                   "--intermediate",
                                   "128",
                                   "--layers",
                                   std::to_string(kLayers),
                                   "--heads",
                                   "4",
                                   "--kv-heads",
                                   "2",
                                   "--vocab",
                                   std::to_string(kVocab),
                                   "--dtype",
                                   "f32",
                                   "--seed",
                                   "3"};
  args.insert(args.end(), more.begin(), more.end());
  Result r = RunWorker(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return model;
}

// A Mixtral-style model: 4 experts per layer, each token routed to 2.
const std::vector<std::string> kSmallMoe = {"--model-type",        "mixtral", "--experts", "4",
                                            "--experts-per-token", "2"};

// `rows` rows of `len` deterministic token ids below `vocab`.
std::string CalibJsonl(int rows, int len, int vocab) {
  std::string out;
  uint64_t x = 12345;
  for (int r = 0; r < rows; ++r) {
    json ids = json::array();
    for (int p = 0; p < len; ++p) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      ids.push_back(static_cast<int>((x >> 33) % static_cast<uint64_t>(vocab)));
    }
    out += json{{"input_ids", ids}}.dump() + "\n";
  }
  return out;
}

std::string WriteSmallCalib(const testing::TempDir& dir) {
  std::string path = dir.File("calib.jsonl");
  testing::WriteFile(path, CalibJsonl(16, 64, kVocab));
  return path;
}

std::vector<std::string> SmallQuantizeArgs(const std::string& model, const std::string& calib,
                                           const std::string& out, int iters) {
  return {"quantize",
          "--model",
          model,
          "--calib",
          calib,
          "--out",
          out,
          "--bits",
          "2",
          "--group-size",
          "32",
          "--nsamples",
          "16",
          "--seqlen",
          "64",
          "--batch-size",
          "4",
          "--iters",
          std::to_string(iters),
          "--format",
          "fake,auto_round,auto_gptq",
          "--progress",
          "json"};
}

std::vector<std::string> With(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// `args` with the value of `flag` replaced (CLI11 refuses a repeated option).
std::vector<std::string> Set(std::vector<std::string> args, const std::string& flag,
                             const std::string& value) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == flag) {
      args[i + 1] = value;
      return args;
    }
  }
  args.push_back(flag);
  args.push_back(value);
  return args;
}

void ExpectSameFile(const std::string& a, const std::string& b) {
  ASSERT_TRUE(fs::exists(a)) << a;
  ASSERT_TRUE(fs::exists(b)) << b;
  std::string x = ReadAll(a), y = ReadAll(b);
  EXPECT_EQ(x.size(), y.size()) << a << " vs " << b;
  EXPECT_TRUE(x == y) << a << " and " << b << " differ";
}

// Both runs' artifacts are byte-identical and their reports equal without timings.
void ExpectSameOutputs(const std::string& out1, const std::string& out2) {
  for (const char* file :
       {"/fake/model.safetensors", "/auto_round/model.safetensors", "/auto_round/config.json",
        "/auto_gptq/model.safetensors", "/auto_gptq/quantization_config.json"}) {
    ExpectSameFile(out1 + file, out2 + file);
  }
  EXPECT_EQ(ReportWithoutTimings(out1), ReportWithoutTimings(out2));
}

std::string BlockFile(const std::string& out, int index) {
  char name[64];
  std::snprintf(name, sizeof(name), "/.signround-work/block-%05d.safetensors", index);
  return out + name;
}

// Starts the quantize run and SIGKILLs the worker as soon as the "block"
// event for `kill_after` arrives (the next block is then being tuned).
void RunAndKillAfterBlock(const std::vector<std::string>& args, int kill_after) {
  testing::TempDir tmp;
  Worker w(args, tmp.File("err"));
  std::string line;
  bool killed = false;
  while (w.ReadLine(line)) {
    json e = json::parse(line);
    if (e["event"] == "block" && e["index"] == kill_after) {
      ASSERT_EQ(::kill(w.pid(), SIGKILL), 0);
      killed = true;
      break;
    }
  }
  int status = w.Wait();
  ASSERT_TRUE(killed) << "the worker ended before block " << kill_after << ": "
                      << ReadAll(tmp.File("err"));
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

// --- reference perplexities on the shared checkpoints ---------------------------

void ExpectPackedPerplexityMatches(const std::string& out, const std::string& format,
                                   const std::string& data);

json QuantizeShared(const std::string& model, const std::vector<std::string>& settings,
                    const testing::TempDir& dir) {
  const std::string shared = testing::SharedDir();
  std::vector<std::string> args = {
      "quantize",
      "--model",
      shared + "/models/" + model,
      "--calib",
      shared + "/data/" + model + "-calib-128x256.jsonl",
      "--eval",
      shared + "/data/" + model + "-eval-256.jsonl",
      "--out",
      dir.File("out"),
      "--seqlen",
      "256",
      "--nsamples",
      "128",
  };
  args.insert(args.end(), settings.begin(), settings.end());
  Result r = RunWorker(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return json();
  return json::parse(ReadAll(dir.File("out") + "/report.json"));
}

// Reference values are the issue's acceptance numbers, measured with an
// independent implementation of the same RTN: stories260k W2G32 sym gives
// perplexity 13.07 (original 4.2983); babyllama-105 W4G32 sym gives 2.365
// (original 2.252). Tolerance: 1% on the quantized perplexity (fp16 scale
// rounding and accumulation order differ between implementations), 0.1% on the
// original one (no quantization involved).
TEST(QuantizeCliShared, RtnPerplexityStories260kW2G32) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "../shared is absent";
  testing::TempDir dir;
  json report =
      QuantizeShared("stories260k", {"--bits", "2", "--group-size", "32", "--recipe", "rtn"}, dir);
  ASSERT_TRUE(report.contains("perplexity")) << report.dump();
  EXPECT_NEAR(report["perplexity"]["quantized"].get<double>(), 13.07, 13.07 * 0.01);
  EXPECT_NEAR(report["perplexity"]["original"].get<double>(), 4.2983, 4.2983 * 0.001);
  EXPECT_EQ(report["config"]["iters"], 0);
  for (const json& b : report["blocks"]) {
    EXPECT_EQ(b["best_iter"], 0);
    EXPECT_EQ(b["loss_best"], b["loss_iter0"]);
  }
}

TEST(QuantizeCliShared, RtnPerplexityBabyllama105W4G32) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "../shared is absent";
  testing::TempDir dir;
  json report = QuantizeShared("babyllama-105",
                               {"--bits", "4", "--group-size", "32", "--sym", "--recipe", "rtn",
                                "--format", "auto_round,auto_gptq,gguf:q4_0"},
                               dir);
  ASSERT_TRUE(report.contains("perplexity")) << report.dump();
  EXPECT_NEAR(report["perplexity"]["quantized"].get<double>(), 2.365, 2.365 * 0.01);
  EXPECT_NEAR(report["perplexity"]["original"].get<double>(), 2.252, 2.252 * 0.001);
  // The packed checkpoints evaluate to the same perplexity (relative 1e-4).
  const std::string eval = testing::SharedDir() + "/data/babyllama-105-eval-256.jsonl";
  ExpectPackedPerplexityMatches(dir.File("out"), "auto_round", eval);
  ExpectPackedPerplexityMatches(dir.File("out"), "auto_gptq", eval);
  EXPECT_TRUE(fs::exists(dir.File("out") + "/auto_round/tokenizer.model"));
}

// SignRound acceptance (the issue's bars): with the default recipe (200
// iterations, 128 samples, batch 8) every block's best loss is no worse than
// its RTN loss, and perplexity improves well past RTN (13.07 and 2.365 above).
TEST(QuantizeCliShared, SignRoundStories260kW2G32BeatsRtn) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "../shared is absent";
  testing::TempDir dir;
  json report = QuantizeShared(
      "stories260k", {"--bits", "2", "--group-size", "32", "--sym", "--batch-size", "8"}, dir);
  ASSERT_TRUE(report.contains("perplexity")) << report.dump();
  EXPECT_EQ(report["config"]["iters"], 200);
  ASSERT_EQ(report["blocks"].size(), 5u);
  for (const json& b : report["blocks"]) {
    EXPECT_LE(b["loss_best"].get<double>(), b["loss_iter0"].get<double>()) << b.dump();
    EXPECT_GE(b["best_iter"].get<int>(), 0) << b.dump();
    EXPECT_LT(b["best_iter"].get<int>(), 200) << b.dump();
  }
  EXPECT_LT(report["perplexity"]["quantized"].get<double>(), 6.0);
}

// opt_rtn (the importance-weighted scale search, no tuning) beats plain RTN on the same
// calibration at W2G32 and W3G32 (measured: 13.0732 -> 10.4742 and 4.9952 -> 4.7776; the
// bar is only "lower", the issue's acceptance). Also with the flags instead of the recipe.
TEST(QuantizeCliShared, OptRtnBeatsRtnStories260k) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "../shared is absent";
  for (const char* bits : {"2", "3"}) {
    SCOPED_TRACE(bits);
    testing::TempDir dir;
    const std::vector<std::string> scheme = {"--bits", bits, "--group-size", "32", "--sym"};
    json rtn = QuantizeShared("stories260k", With(scheme, {"--recipe", "rtn"}), dir);
    testing::TempDir dir2;
    json opt = QuantizeShared("stories260k", With(scheme, {"--recipe", "opt_rtn"}), dir2);
    ASSERT_TRUE(rtn.contains("perplexity") && opt.contains("perplexity"));
    EXPECT_LT(opt["perplexity"]["quantized"].get<double>(),
              rtn["perplexity"]["quantized"].get<double>());
    EXPECT_EQ(opt["config"]["recipe"], "opt_rtn");
    EXPECT_EQ(opt["config"]["iters"], 0);
    EXPECT_EQ(opt["config"]["scale_search"], true);
    EXPECT_EQ(rtn["config"]["scale_search"], false);
    if (std::string(bits) == "2") {
      testing::TempDir dir3;
      json flag =
          QuantizeShared("stories260k", With(scheme, {"--recipe", "rtn", "--scale-search"}), dir3);
      ASSERT_TRUE(flag.contains("perplexity"));
      EXPECT_EQ(flag["perplexity"]["quantized"], opt["perplexity"]["quantized"]);
    }
  }
}

// Mixed bits, on RTN so that the allocation alone makes the difference: at 2.5 and 3.5
// average bits (candidates W2..W8 G32 and W16) perplexity is lower than uniform W2 and W3
// (13.0732 and 4.9952; measured 8.89 at 2.5), the achieved average is within 0.05 bits
// below the target, and the packed checkpoints, with their per-layer bits, evaluate to the
// reported perplexity (relative 1e-4).
TEST(QuantizeCliShared, AutoSchemeBeatsUniformBitsStories260k) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "../shared is absent";
  const std::string eval = testing::SharedDir() + "/data/stories260k-eval-256.jsonl";
  for (const auto& [target, uniform] : {std::pair{"2.5", 13.0732}, std::pair{"3.5", 4.9952}}) {
    SCOPED_TRACE(target);
    testing::TempDir dir;
    json report = QuantizeShared("stories260k",
                                 {"--bits", "2", "--group-size", "32", "--sym", "--recipe", "rtn",
                                  "--target-bits", target, "--format", "fake,auto_round,auto_gptq"},
                                 dir);
    ASSERT_TRUE(report.contains("auto_scheme")) << report.dump();
    const double want = std::stod(target);
    const double average = report["auto_scheme"]["average_bits"].get<double>();
    EXPECT_LE(average, want);
    EXPECT_GT(average, want - 0.05);
    EXPECT_LT(report["perplexity"]["quantized"].get<double>(), uniform * 0.999);
    // Recomputed from the report's groups: the same average.
    double bits = 0, weights = 0;
    for (const json& g : report["auto_scheme"]["groups"]) {
      const std::string scheme = g["scheme"];
      const size_t gpos = scheme.find('G');
      bits += g["weights"].get<double>() * std::stoi(scheme.substr(1, gpos - 1));
      weights += g["weights"].get<double>();
    }
    EXPECT_NEAR(bits / weights, average, 1e-12);
    ExpectPackedPerplexityMatches(dir.File("out"), "auto_round", eval);
    ExpectPackedPerplexityMatches(dir.File("out"), "auto_gptq", eval);
  }
}

// TEQ on RTN (50 Adam steps per block) beats plain RTN at W3G32 (4.9952) and W4 per output
// channel; the fake-quantized model keeps the original's tensor names, dtypes and shapes,
// with the attention norms changed where the report says TEQ kept them and the embeddings
// untouched; it and the auto_round checkpoint evaluate to the reported perplexity
// (relative 1e-4).
TEST(QuantizeCliShared, TeqOnRtnBeatsRtnStories260k) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "../shared is absent";
  const std::string shared = testing::SharedDir();
  const std::string eval = shared + "/data/stories260k-eval-256.jsonl";
  for (const char* group : {"32", "-1"}) {
    SCOPED_TRACE(group);
    const std::vector<std::string> scheme = {"--bits",       std::string(group) == "32" ? "3" : "4",
                                             "--group-size", group,
                                             "--sym",        "--recipe",
                                             "rtn"};
    testing::TempDir dir, dir2;
    json rtn = QuantizeShared("stories260k", scheme, dir);
    json teq = QuantizeShared(
        "stories260k", With(scheme, {"--teq-iters", "50", "--format", "fake,auto_round"}), dir2);
    ASSERT_TRUE(rtn.contains("perplexity") && teq.contains("perplexity"));
    EXPECT_LT(teq["perplexity"]["quantized"].get<double>(),
              rtn["perplexity"]["quantized"].get<double>());
    EXPECT_EQ(teq["config"]["teq_iters"], 50);
    EXPECT_EQ(rtn["config"]["teq_iters"], 0);
    auto original = SafetensorsFile::Open(shared + "/models/stories260k/model.safetensors");
    auto fake = SafetensorsFile::Open(dir2.File("out") + "/fake/model.safetensors");
    ASSERT_TRUE(original.ok() && fake.ok());
    ASSERT_EQ((*original)->header().tensors.size(), (*fake)->header().tensors.size());
    int changed_norms = 0;
    for (const TensorEntry& e : (*original)->header().tensors) {
      SCOPED_TRACE(e.name);
      auto f = (*fake)->Find(e.name);
      ASSERT_TRUE(f.ok());
      EXPECT_EQ((*f)->dtype, e.dtype);
      EXPECT_EQ((*f)->shape, e.shape);
      const bool same = (*original)->Bytes(e) == (*fake)->Bytes(**f);
      if (e.name.find("input_layernorm") != std::string::npos) changed_norms += same ? 0 : 1;
      if (e.name.find("embed_tokens") != std::string::npos || e.name == "model.norm.weight") {
        EXPECT_TRUE(same);
      }
    }
    // The attention norm of every block whose report lists that unit as kept, and at least one.
    int kept_norms = 0;
    for (const json& b : teq["blocks"]) {
      const json units = b["teq"]["units"];
      kept_norms += std::count(units.begin(), units.end(), "input_layernorm") > 0 ? 1 : 0;
    }
    EXPECT_EQ(changed_norms, kept_norms);
    EXPECT_GE(kept_norms, 1);
    ExpectPackedPerplexityMatches(dir2.File("out"), "fake", eval);
    ExpectPackedPerplexityMatches(dir2.File("out"), "auto_round", eval);
  }
}

TEST(QuantizeCliShared, SignRoundBabyllama105W4G32BeatsRtn) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "../shared is absent";
  testing::TempDir dir;
  json report = QuantizeShared(
      "babyllama-105", {"--bits", "4", "--group-size", "32", "--sym", "--batch-size", "8"}, dir);
  ASSERT_TRUE(report.contains("perplexity")) << report.dump();
  for (const json& b : report["blocks"]) {
    EXPECT_LE(b["loss_best"].get<double>(), b["loss_iter0"].get<double>()) << b.dump();
  }
  EXPECT_LT(report["perplexity"]["quantized"].get<double>(), 2.31);
}

// --- determinism and resume ------------------------------------------------------

// TEQ + SignRound tunes each block with and without the scales TEQ kept and keeps them only
// where the tuned block's loss over all samples is lower (report: tuned_loss against
// tuned_loss_without); a block that drops them, or where TEQ kept none, is what SignRound
// alone makes of it: block 0, which both runs start from the same embeddings, is then
// byte-identical to the run without TEQ, and otherwise differs from it.
TEST(QuantizeCli, TeqWithSignRoundKeepsTheScalesOnlyWhereTheyTuneBetter) {
  testing::TempDir dir;
  const std::string model = MakeSmallModel(dir), calib = WriteSmallCalib(dir);
  const std::string plain = dir.File("plain"), teq = dir.File("teq");
  Result r1 = RunWorker(SmallQuantizeArgs(model, calib, plain, 30));
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  Result r2 = RunWorker(With(SmallQuantizeArgs(model, calib, teq, 30), {"--teq-iters", "30"}));
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  const json blocks = ReportWithoutTimings(teq)["blocks"];
  ASSERT_EQ(blocks.size(), static_cast<size_t>(kLayers));
  int compared = 0;
  for (const json& b : blocks) {
    SCOPED_TRACE(b.dump());
    const json& t = b.at("teq");
    const bool kept = t.at("kept").get<bool>();
    if (t.contains("tuned_loss")) {
      ++compared;
      EXPECT_EQ(kept, t["tuned_loss"].get<double>() < t["tuned_loss_without"].get<double>());
    } else {
      EXPECT_FALSE(kept);  // TEQ itself kept no unit: nothing to tune twice
    }
    if (!kept) {
      EXPECT_TRUE(t.at("units").empty());
    }
  }
  EXPECT_GE(compared, 1);
  auto a = SafetensorsFile::Open(plain + "/fake/model.safetensors");
  auto b = SafetensorsFile::Open(teq + "/fake/model.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  bool block0_same = true;
  for (const TensorEntry& e : (*a)->header().tensors) {
    if (e.name.rfind("model.layers.0.", 0) != 0) continue;
    auto f = (*b)->Find(e.name);
    ASSERT_TRUE(f.ok()) << e.name;
    block0_same = block0_same && (*a)->Bytes(e) == (*b)->Bytes(**f);
  }
  EXPECT_EQ(block0_same, !blocks[0]["teq"]["kept"].get<bool>());
}

TEST(QuantizeCli, TwoRunsAreByteIdentical) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  std::string out1 = dir.File("out1"), out2 = dir.File("out2");
  Result r1 = RunWorker(SmallQuantizeArgs(model, calib, out1, 10));
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  Result r2 = RunWorker(SmallQuantizeArgs(model, calib, out2, 10));
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  ExpectSameOutputs(out1, out2);
  // The report does not depend on the output directory: it never names it.
  std::string report = ReadAll(out1 + "/report.json");
  EXPECT_EQ(report.find(out1), std::string::npos);
  EXPECT_EQ(report.find("out1"), std::string::npos);
  // The block events carry the same losses as the report.
  std::vector<json> events = BlockEvents(r1.out);
  json blocks = ReportWithoutTimings(out1)["blocks"];
  ASSERT_EQ(events.size(), static_cast<size_t>(kLayers));
  for (int i = 0; i < kLayers; ++i) {
    EXPECT_EQ(events[i]["index"], i);
    EXPECT_EQ(events[i]["resumed"], false);
    EXPECT_EQ(events[i]["loss_iter0"], blocks[i]["loss_iter0"]);
    EXPECT_EQ(events[i]["loss_best"], blocks[i]["loss_best"]);
  }
  EXPECT_FALSE(fs::exists(out1 + "/.signround-work"));
}

enum class ResumeCase { kDense, kMoe, kDenseV2, kMoeTeq };

class QuantizeCliResume : public ::testing::TestWithParam<ResumeCase> {};

// Dense, MoE (every expert's layers in the block files, the expert token counts in the
// stored stats), dense with the scale search, the loss filter and mixed bits on, and MoE
// with TEQ (the changed norms and routers in the block files).
INSTANTIATE_TEST_SUITE_P(Cases, QuantizeCliResume,
                         ::testing::Values(ResumeCase::kDense, ResumeCase::kMoe,
                                           ResumeCase::kDenseV2, ResumeCase::kMoeTeq),
                         [](const auto& info) {
                           switch (info.param) {
                             case ResumeCase::kMoe:
                               return "Moe";
                             case ResumeCase::kDenseV2:
                               return "DenseScaleSearchLossFilterMixedBits";
                             case ResumeCase::kMoeTeq:
                               return "MoeTeq";
                             default:
                               return "Dense";
                           }
                         });

TEST_P(QuantizeCliResume, AfterKillNineWithIdenticalResults) {
  testing::TempDir dir;
  const bool moe = GetParam() == ResumeCase::kMoe || GetParam() == ResumeCase::kMoeTeq;
  std::string model = MakeSmallModel(dir, moe ? kSmallMoe : std::vector<std::string>());
  std::string calib = WriteSmallCalib(dir);
  const std::string killed = dir.File("killed"), clean = dir.File("clean");
  std::vector<std::string> v2;
  if (GetParam() == ResumeCase::kDenseV2) {
    v2 = {"--scale-search", "--loss-filter", "--target-bits", "3"};
  } else if (GetParam() == ResumeCase::kMoeTeq) {
    v2 = {"--teq-iters", "20"};
  }
  // 200 iterations: a block takes most of a second, so the kill lands while
  // block 3 is being tuned.
  std::vector<std::string> args = With(SmallQuantizeArgs(model, calib, killed, 200), v2);
  RunAndKillAfterBlock(args, 2);
  for (int i = 0; i <= 2; ++i) EXPECT_TRUE(fs::exists(BlockFile(killed, i))) << i;
  EXPECT_FALSE(fs::exists(BlockFile(killed, 4)));
  EXPECT_FALSE(fs::exists(killed + "/report.json"));
  EXPECT_FALSE(fs::exists(killed + "/auto_round"));

  Result resumed = RunWorker(args);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  std::vector<json> events = BlockEvents(resumed.out);
  ASSERT_EQ(events.size(), static_cast<size_t>(kLayers));
  for (int i = 0; i < kLayers; ++i) {
    EXPECT_EQ(events[i]["index"], i);
    // Block 3 may have been saved in the instant before the kill; 4 cannot have been.
    if (i <= 2) {
      EXPECT_EQ(events[i]["resumed"], true) << i;
    } else if (i == 4) {
      EXPECT_EQ(events[i]["resumed"], false) << i;
    }
  }
  EXPECT_FALSE(fs::exists(killed + "/.signround-work"));

  Result uninterrupted = RunWorker(With(SmallQuantizeArgs(model, calib, clean, 200), v2));
  ASSERT_EQ(uninterrupted.exit_code, 0) << uninterrupted.err;
  ExpectSameOutputs(killed, clean);
  if (GetParam() == ResumeCase::kMoeTeq) {
    EXPECT_EQ(ReportWithoutTimings(clean)["config"]["teq_iters"], 20);
  } else if (!v2.empty()) {
    const json config = ReportWithoutTimings(clean)["config"];
    EXPECT_EQ(config["scale_search"], true);
    EXPECT_EQ(config["loss_filter"], true);
    EXPECT_EQ(config["target_bits"], 3.0);
  }
}

// The bytes of tensor `name` in `file` (empty, with a failure, when absent).
std::string TensorBytes(const std::string& file, const std::string& name) {
  auto f = SafetensorsFile::Open(file);
  EXPECT_TRUE(f.ok()) << f.status();
  if (!f.ok()) return "";
  auto entry = (*f)->Find(name);
  EXPECT_TRUE(entry.ok()) << entry.status();
  return entry.ok() ? std::string((*f)->Bytes(**entry)) : "";
}

// An MoE expert that receives no calibration tokens gets no gradient: it is
// rounded to nearest (exactly the codes an RTN run gives it, finite scales)
// and named in the block's rounded_experts, while the attention is tuned. SignRound as
// ALGORITHM.md states it: the default recipe's scale search at 2 bits would start the
// experts that have a few tokens from their searched range instead of RTN's.
TEST(QuantizeCliMoe, ExpertsWithoutTokensAreRoundedToNearestAndNamed) {
  testing::TempDir dir;
  constexpr int kExperts = 16;
  // One calibration row of 8 tokens, each routed to 1 of 16 experts: at least
  // 8 experts of every block receive nothing.
  std::string model = MakeSmallModel(dir, {"--model-type", "mixtral", "--experts",
                                           std::to_string(kExperts), "--experts-per-token", "1"});
  std::string calib = dir.File("calib.jsonl");
  testing::WriteFile(calib, CalibJsonl(1, 8, kVocab));
  auto args = [&](const std::string& out, int iters) {
    return Set(Set(Set(Set(SmallQuantizeArgs(model, calib, out, iters), "--nsamples", "1"),
                       "--seqlen", "8"),
                   "--batch-size", "1"),
               "--format", "fake,auto_round");
  };
  Result tuned =
      RunWorker(With(args(dir.File("tuned"), 30), {"--no-scale-search", "--no-loss-filter"}));
  ASSERT_EQ(tuned.exit_code, 0) << tuned.err;
  Result rtn = RunWorker(args(dir.File("rtn"), 0));
  ASSERT_EQ(rtn.exit_code, 0) << rtn.err;

  json report = json::parse(ReadAll(dir.File("tuned") + "/report.json"));
  std::vector<json> events = BlockEvents(tuned.out);
  ASSERT_EQ(report["blocks"].size(), static_cast<size_t>(kLayers));
  ASSERT_EQ(events.size(), static_cast<size_t>(kLayers));
  const std::string tuned_fake = dir.File("tuned") + "/fake/model.safetensors";
  const std::string rtn_fake = dir.File("rtn") + "/fake/model.safetensors";
  bool attention_tuned = false;
  for (int i = 0; i < kLayers; ++i) {
    const json& b = report["blocks"][i];
    EXPECT_EQ(events[i]["expert_tokens"], b["expert_tokens"]) << i;
    EXPECT_EQ(events[i]["rounded_experts"], b["rounded_experts"]) << i;
    std::vector<int64_t> tokens = b["expert_tokens"].get<std::vector<int64_t>>();
    ASSERT_EQ(tokens.size(), static_cast<size_t>(kExperts)) << b.dump();
    EXPECT_EQ(std::accumulate(tokens.begin(), tokens.end(), int64_t{0}), 8) << b.dump();
    EXPECT_GE(std::count(tokens.begin(), tokens.end(), 0), 8) << b.dump();
    // Every expert here is under the threshold (8 tokens in all): each is named.
    std::vector<int64_t> all(kExperts);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(b["rounded_experts"].get<std::vector<int64_t>>(), all) << b.dump();
    const std::string p = absl::StrCat("model.layers.", i, ".block_sparse_moe.experts.");
    for (int e = 0; e < kExperts; ++e) {
      for (const char* w : {"w1", "w2", "w3"}) {
        const std::string name = absl::StrCat(p, e, ".", w);
        EXPECT_TRUE(TensorBytes(tuned_fake, name + ".weight") ==
                    TensorBytes(rtn_fake, name + ".weight"))
            << name << " is not its RTN weight";
        const std::string scales =
            TensorBytes(dir.File("tuned") + "/auto_round/model.safetensors", name + ".scales");
        ASSERT_FALSE(scales.empty()) << name;
        for (size_t k = 0; k + 1 < scales.size(); k += 2) {
          uint16_t h;
          std::memcpy(&h, scales.data() + k, 2);
          ASSERT_NE(h & 0x7c00, 0x7c00) << name << ": scale " << k / 2 << " is not finite";
        }
      }
    }
    const std::string q = absl::StrCat("model.layers.", i, ".self_attn.q_proj.weight");
    attention_tuned |= TensorBytes(tuned_fake, q) != TensorBytes(rtn_fake, q);
  }
  EXPECT_TRUE(attention_tuned) << "tuning changed no attention layer";
}

TEST(QuantizeCli, ChangedSettingsDiscardStaleBlocks) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  const std::string out = dir.File("out"), clean = dir.File("clean");
  RunAndKillAfterBlock(SmallQuantizeArgs(model, calib, out, 200), 2);
  ASSERT_TRUE(fs::exists(BlockFile(out, 0)));

  Result rerun = RunWorker(SmallQuantizeArgs(model, calib, out, 30));
  ASSERT_EQ(rerun.exit_code, 0) << rerun.err;
  std::vector<json> events = BlockEvents(rerun.out);
  ASSERT_EQ(events.size(), static_cast<size_t>(kLayers));
  for (const json& e : events) EXPECT_EQ(e["resumed"], false) << e.dump();
  EXPECT_EQ(json::parse(ReadAll(out + "/report.json"))["config"]["iters"], 30);

  // Nothing of the 200-iteration run leaked in: same result as a fresh 30-iteration run.
  Result fresh = RunWorker(SmallQuantizeArgs(model, calib, clean, 30));
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  ExpectSameOutputs(out, clean);
}

// --- RTN without calibration -------------------------------------------------------

// `args` without `flag` and its value.
std::vector<std::string> Without(std::vector<std::string> args, const std::string& flag) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == flag) {
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
                 args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
      return args;
    }
  }
  ADD_FAILURE() << flag << " is not among the arguments";
  return args;
}

// The small quantize run as plain RTN without calibration data: recipe rtn, no
// --calib, no --iters (the recipe's 0 applies).
std::vector<std::string> UncalibratedArgs(const std::string& model, const std::string& out) {
  return With(Without(Without(SmallQuantizeArgs(model, "", out, 0), "--calib"), "--iters"),
              {"--recipe", "rtn"});
}

// The "block" events of `out` are one per block, in order, none resumed or all resumed.
void ExpectBlockEventsInOrder(const std::string& out, bool resumed, bool calibrated) {
  std::vector<json> events = BlockEvents(out);
  ASSERT_EQ(events.size(), static_cast<size_t>(kLayers)) << out;
  for (int i = 0; i < kLayers; ++i) {
    EXPECT_EQ(events[i]["index"], i) << events[i].dump();
    EXPECT_EQ(events[i]["block_count"], kLayers) << events[i].dump();
    EXPECT_EQ(events[i]["resumed"], resumed) << events[i].dump();
    EXPECT_EQ(events[i]["calibrated"], calibrated) << events[i].dump();
  }
}

// The reference for RTN without data is RTN with data (--iters 0): the same
// quantizer on the same weights, which the data never reaches. The packed and
// fake-quantized weights must agree byte for byte, and so must the perplexity
// of the quantized model (exact: the same W^, the same deterministic CPU eval).
TEST(QuantizeCliRtn, NoCalibrationMatchesCalibratedRtn) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  const std::vector<std::vector<std::string>> schemes = {
      {"--bits", "2", "--group-size", "32", "--sym"},
      {"--bits", "3", "--group-size", "64", "--asym"}};
  for (size_t s = 0; s < schemes.size(); ++s) {
    const std::string with_data = dir.File(absl::StrCat("calibrated", s));
    const std::string without = dir.File(absl::StrCat("uncalibrated", s));
    auto scheme = [&](std::vector<std::string> args) {
      args = Set(Set(args, "--bits", schemes[s][1]), "--group-size", schemes[s][3]);
      return With(args, {schemes[s][4], "--eval", calib});
    };
    SCOPED_TRACE(absl::StrJoin(schemes[s], " "));
    Result reference = RunWorker(scheme(SmallQuantizeArgs(model, calib, with_data, 0)));
    ASSERT_EQ(reference.exit_code, 0) << reference.err;
    Result r = RunWorker(scheme(UncalibratedArgs(model, without)));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* file : {"/auto_round/model.safetensors", "/auto_gptq/model.safetensors",
                             "/fake/model.safetensors"}) {
      ExpectSameFile(with_data + file, without + file);
    }
    ExpectBlockEventsInOrder(reference.out, false, true);
    ExpectBlockEventsInOrder(r.out, false, false);
    std::vector<json> events = Events(r.out);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.front()["event"], "start");
    EXPECT_EQ(events.front()["detail"]["calib"], nullptr);
    EXPECT_EQ(events.back()["event"], "done");

    json want = json::parse(ReadAll(with_data + "/report.json"));
    json got = json::parse(ReadAll(without + "/report.json"));
    EXPECT_EQ(got["perplexity"], want["perplexity"]);
    EXPECT_EQ(got["layers"], want["layers"]);
    EXPECT_EQ(got["calibration"], nullptr);
    EXPECT_EQ(want["calibration"]["nsamples"], 16);
    EXPECT_EQ(got["config"]["calib"], nullptr);
    EXPECT_EQ(got["config"]["calibrated"], false);
    EXPECT_EQ(want["config"]["calibrated"], true);
    EXPECT_EQ(got["config"]["iters"], 0);
    ASSERT_EQ(got["blocks"].size(), static_cast<size_t>(kLayers));
    for (int i = 0; i < kLayers; ++i) {
      const json& b = got["blocks"][i];
      EXPECT_EQ(b["layers_quantized"], want["blocks"][i]["layers_quantized"]) << b.dump();
      // Nothing is measured without data: the losses are reported as 0.
      EXPECT_EQ(b["loss_iter0"], 0) << b.dump();
      EXPECT_EQ(b["loss_best"], 0) << b.dump();
      EXPECT_EQ(b["best_iter"], 0) << b.dump();
    }
    // The packed config records no calibration settings for a run that had none.
    json qc = json::parse(ReadAll(without + "/auto_round/quantization_config.json"));
    EXPECT_EQ(qc["iters"], 0) << qc.dump();
    EXPECT_FALSE(qc.contains("nsamples")) << qc.dump();
    EXPECT_FALSE(fs::exists(without + "/.signround-work"));
  }
}

TEST(QuantizeCliRtn, TuningWithoutCalibrationIsRefused) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  const std::string out = dir.File("out");
  const std::vector<std::string> base = UncalibratedArgs(model, out);
  const std::vector<std::vector<std::string>> cases = {
      With(base, {"--iters", "50"}),     // explicit iterations
      Set(base, "--recipe", "default"),  // the recipe's 200
      Set(base, "--recipe", "light"),    // the recipe's 50
      Without(base, "--recipe"),         // no recipe: default
      With(base, {"--iters", "1"}),      // rtn, but iters given
  };
  for (const std::vector<std::string>& args : cases) {
    SCOPED_TRACE(absl::StrJoin(args, " "));
    ExpectOneLineError(RunWorker(args), "--calib: required unless --iters 0 (recipe rtn)");
    EXPECT_FALSE(fs::exists(out)) << "nothing is written before the check";
  }
  ExpectOneLineError(RunWorker(With(base, {"--calib", ""})), "--calib: the path is empty");
  // The scale search weighs each layer's inputs: opt_rtn, or the flag, needs them.
  for (const std::vector<std::string>& args :
       {Set(base, "--recipe", "opt_rtn"), With(base, {"--scale-search"})}) {
    SCOPED_TRACE(absl::StrJoin(args, " "));
    ExpectOneLineError(RunWorker(args),
                       "--calib: required by the scale search (--scale-search, recipe opt_rtn)");
    EXPECT_FALSE(fs::exists(out));
  }
  ExpectOneLineError(RunWorker(With(base, {"--teq-iters", "5"})),
                     "--calib: required by TEQ (--teq-iters)");
  EXPECT_FALSE(fs::exists(out));
}

// A failed export without calibration: the exports (which copy the tokenizer files last)
// fail when the model directory holds a directory where a tokenizer file belongs. A
// model-free run rounds each layer as the exports ask for it and keeps no work directory
// (there is nothing worth resuming), so every block is still reported, nothing is left
// behind, and a calibrated run's finished blocks in the same output directory are neither
// used nor removed. After the fix a rerun gives what a clean run gives.
TEST(QuantizeCliRtn, NoCalibrationKeepsNoWorkDirectory) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  const std::string out = dir.File("out"), clean = dir.File("clean");
  const std::string blocker = model + "/added_tokens.json";
  ASSERT_FALSE(fs::exists(blocker));
  ASSERT_TRUE(fs::create_directory(blocker));
  auto expect_export_failure = [&](const std::vector<std::string>& args, bool calibrated) {
    Result r = RunWorker(args);
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_NE(r.err.find("added_tokens.json"), std::string::npos) << r.err;
    ExpectBlockEventsInOrder(r.out, false, calibrated);
    json report = json::parse(ReadAll(out + "/report.json"));
    EXPECT_EQ(report["outputs"], json::object());
    EXPECT_EQ(report["failed_outputs"].size(), 3u) << report.dump();
    EXPECT_EQ(report["blocks"].size(), static_cast<size_t>(kLayers)) << report.dump();
  };
  const std::vector<std::string> args = UncalibratedArgs(model, out);
  expect_export_failure(args, false);
  EXPECT_FALSE(fs::exists(out + "/.signround-work"));
  expect_export_failure(SmallQuantizeArgs(model, calib, out, 0), true);
  for (int i = 0; i < kLayers; ++i) EXPECT_TRUE(fs::exists(BlockFile(out, i))) << i;
  expect_export_failure(args, false);
  for (int i = 0; i < kLayers; ++i) EXPECT_TRUE(fs::exists(BlockFile(out, i))) << i;

  fs::remove(blocker);
  fs::remove_all(out + "/.signround-work");
  Result rerun = RunWorker(args);
  ASSERT_EQ(rerun.exit_code, 0) << rerun.err;
  ExpectBlockEventsInOrder(rerun.out, false, false);
  EXPECT_FALSE(fs::exists(out + "/.signround-work"));
  Result fresh = RunWorker(UncalibratedArgs(model, clean));
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  ExpectBlockEventsInOrder(fresh.out, false, false);
  ExpectSameOutputs(out, clean);
}

// --- mixed bits (AutoScheme) --------------------------------------------------------

// The allocation on a small model: every allocated layer has one of the candidates' bits,
// the fused groups (q/k/v, gate/up) share theirs, the average meets the target, the report's
// layers and the packed config follow the allocation, a layer override keeps its layer out
// of it, and two runs give the same bytes.
TEST(QuantizeCliAutoScheme, AllocationBecomesLayerSchemes) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  testing::WriteFile(dir.File("layers.json"),
                     R"({"layers\\.0\\.self_attn\\.o_proj": {"bits": 8}})");
  auto args = [&](const std::string& out) {
    return With(SmallQuantizeArgs(model, calib, out, 0),
                {"--target-bits", "3", "--scheme-candidates", "w2g32,W4G32", "--layer-config",
                 dir.File("layers.json")});
  };
  Result r = RunWorker(args(dir.File("a")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json report = ReportWithoutTimings(dir.File("a"));
  const json& a = report["auto_scheme"];
  EXPECT_EQ(a["candidates"], json({"W2G32", "W4G32"}));
  EXPECT_LE(a["average_bits"].get<double>(), 3.0);
  EXPECT_GT(a["average_bits"].get<double>(), 2.5);
  std::map<std::string, int> bits;
  for (const json& l : report["layers"]) bits[l["name"]] = l["bits"];
  std::set<int> used;
  for (const json& g : a["groups"]) {
    const int want = g["scheme"] == "W4G32" ? 4 : 2;
    used.insert(want);
    for (const json& name : g["layers"]) {
      EXPECT_EQ(bits[name], want) << name;
      EXPECT_NE(name, "model.layers.0.self_attn.o_proj");
    }
  }
  EXPECT_EQ(used, (std::set<int>{2, 4}));
  EXPECT_EQ(bits["model.layers.0.self_attn.o_proj"], 8);
  for (int i = 0; i < kLayers; ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    EXPECT_EQ(bits[p + ".self_attn.q_proj"], bits[p + ".self_attn.k_proj"]) << i;
    EXPECT_EQ(bits[p + ".self_attn.q_proj"], bits[p + ".self_attn.v_proj"]) << i;
    EXPECT_EQ(bits[p + ".mlp.gate_proj"], bits[p + ".mlp.up_proj"]) << i;
  }
  // The packed config holds the per-layer bits (auto_round's extra_config).
  const json config = json::parse(ReadAll(dir.File("a") + "/auto_round/config.json"));
  EXPECT_EQ(
      config["quantization_config"]["extra_config"]["model.layers.0.self_attn.o_proj"]["bits"], 8);
  Result again = RunWorker(args(dir.File("b")));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  ExpectSameOutputs(dir.File("a"), dir.File("b"));
}

TEST(QuantizeCliAutoScheme, BadTargetsAreRefusedBeforeTuning) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  const std::string out = dir.File("out");
  const std::vector<std::string> base = SmallQuantizeArgs(model, calib, out, 0);
  ExpectOneLineError(RunWorker(With(base, {"--target-bits", "1.5"})),
                     "target_bits: 1.5 is outside the candidates' 2..16 bits");
  ExpectOneLineError(RunWorker(With(base, {"--target-bits", "3", "--scheme-candidates", "W3G32"})),
                     "scheme_candidates: needs 2 to 8, got 1");
  ExpectOneLineError(
      RunWorker(With(base, {"--target-bits", "3", "--scheme-candidates", "W2G32,W9G32"})),
      "scheme_candidates[1]: 'W9G32': bits must be 2, 3, 4, 8 or 16");
  ExpectOneLineError(RunWorker(With(base, {"--scheme-candidates", "W2G32,W4G32"})),
                     "scheme_candidates: given without target_bits");
  // Every layer overridden: nothing to allocate.
  testing::WriteFile(dir.File("all.json"), R"({".": {"bits": 4}})");
  ExpectOneLineError(
      RunWorker(With(base, {"--target-bits", "3", "--layer-config", dir.File("all.json")})),
      "target_bits: no layer is left to allocate");
  EXPECT_FALSE(fs::exists(out + "/report.json"));
  ExpectOneLineError(RunWorker(With(Without(base, "--calib"), {"--target-bits", "3"})),
                     "--calib: required by mixed bits (--target-bits)");
}

// --- bad input ---------------------------------------------------------------------

class QuantizeCliBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = MakeSmallModel(dir_);
    calib_ = WriteSmallCalib(dir_);
    out_ = dir_.File("out");
  }

  // Runs quantize with `args` replacing/adding to the small defaults and
  // expects a one-line bad-input error containing `fragment`, and no artifacts.
  void ExpectBadInput(const std::vector<std::string>& args, const std::string& fragment,
                      const std::string& out) {
    Result r = RunWorker(args);
    ExpectOneLineError(r, fragment);
    EXPECT_FALSE(fs::exists(out + "/report.json"));
    EXPECT_FALSE(fs::exists(out + "/auto_round"));
  }

  std::vector<std::string> Args(const std::string& calib) const {
    return {"quantize",     "--model",    model_,    "--calib",  calib,
            "--out",        out_,         "--bits",  "2",        "--group-size",
            "32",           "--nsamples", "16",      "--seqlen", "64",
            "--batch-size", "4",          "--iters", "2"};
  }

  testing::TempDir dir_;
  std::string model_, calib_, out_;
};

TEST_F(QuantizeCliBadInput, CalibFileMissing) {
  std::string missing = dir_.File("missing.jsonl");
  ExpectBadInput(Args(missing), missing + ": No such file or directory", out_);
}

TEST_F(QuantizeCliBadInput, TooFewQualifyingRows) {
  // 16 rows, but only 10 of them long enough.
  std::string path = dir_.File("short.jsonl");
  testing::WriteFile(path, CalibJsonl(10, 64, kVocab) + CalibJsonl(6, 63, kVocab));
  ExpectBadInput(Args(path), "only 10 rows have at least 64 tokens, need 16", out_);
}

TEST_F(QuantizeCliBadInput, TokenIdOutsideVocab) {
  std::string path = dir_.File("big.jsonl");
  std::string text = CalibJsonl(2, 64, kVocab);
  json bad = json::parse(CalibJsonl(1, 64, kVocab));
  bad["input_ids"][5] = kVocab;
  testing::WriteFile(path, text + bad.dump() + "\n" + CalibJsonl(13, 64, kVocab));
  ExpectBadInput(Args(path), "row 3, position 6: token id 128 is not below vocab_size 128", out_);
}

TEST_F(QuantizeCliBadInput, UnknownRecipe) {
  ExpectBadInput(Set(Args(calib_), "--recipe", "fastest"),
                 "recipe 'fastest' is not one of default, best, light, rtn", out_);
}

TEST_F(QuantizeCliBadInput, UnsupportedBits) {
  ExpectBadInput(Set(Args(calib_), "--bits", "5"), "bits must be 2, 3, 4 or 8, got 5", out_);
}

TEST_F(QuantizeCliBadInput, LayerConfigInvalidRegex) {
  std::string cfg = dir_.File("layers.json");
  testing::WriteFile(cfg, R"({"mlp[": {"bits": 8}})");
  ExpectBadInput(With(Args(calib_), {"--layer-config", cfg}), cfg + ": 'mlp[': not a valid regex",
                 out_);
}

TEST_F(QuantizeCliBadInput, LayerConfigBits7) {
  std::string cfg = dir_.File("layers.json");
  testing::WriteFile(cfg, R"({"mlp\\.down_proj": {"bits": 7}})");
  ExpectBadInput(With(Args(calib_), {"--layer-config", cfg}),
                 cfg + ": 'mlp\\.down_proj': key 'bits' must be 2, 3, 4, 8 or 16, got 7", out_);
}

TEST_F(QuantizeCliBadInput, OutEqualsModel) {
  std::string model_bytes = ReadAll(model_ + "/model.safetensors");
  ExpectBadInput(Set(Args(calib_), "--out", model_),
                 "the output directory must differ from the model directory", model_);
  // The model directory is untouched.
  EXPECT_FALSE(fs::exists(model_ + "/.signround-work"));
  EXPECT_TRUE(ReadAll(model_ + "/model.safetensors") == model_bytes);
  // The same directory spelled differently is caught too.
  ExpectBadInput(Set(Args(calib_), "--out", model_ + "/./"),
                 "the output directory must differ from the model directory", model_);
}

// --- per-layer overrides -------------------------------------------------------------

// The values of integer tensor `name` of a safetensors file (codes and zero
// points are stored as U8 or I32).
std::vector<int64_t> Integers(const SafetensorsFile& file, const std::string& name) {
  auto entry = file.Find(name);
  EXPECT_TRUE(entry.ok()) << entry.status();
  if (!entry.ok()) return {};
  absl::string_view bytes = file.Bytes(**entry);
  std::vector<int64_t> out;
  if ((*entry)->dtype == DType::kU8) {
    for (char c : bytes) out.push_back(static_cast<uint8_t>(c));
  } else if ((*entry)->dtype == DType::kI32) {
    std::vector<int32_t> v(bytes.size() / 4);
    std::memcpy(v.data(), bytes.data(), v.size() * 4);
    out.assign(v.begin(), v.end());
  } else {
    ADD_FAILURE() << name << ": unexpected dtype " << DescribeTensor(**entry);
  }
  return out;
}

TEST(QuantizeCli, LayerConfigKeepsMlpSixteenBit) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  std::string cfg = dir.File("layers.json");
  testing::WriteFile(cfg, R"({"mlp\\.": {"bits": 16}})");
  std::string out = dir.File("out");
  Result r = RunWorker(With(SmallQuantizeArgs(model, calib, out, 5), {"--layer-config", cfg}));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  json report = json::parse(ReadAll(out + "/report.json"));
  ASSERT_EQ(report["layers"].size(), static_cast<size_t>(7 * kLayers));
  for (const json& l : report["layers"]) {
    std::string name = l["name"];
    bool mlp = name.find(".mlp.") != std::string::npos;
    EXPECT_EQ(l["bits"], mlp ? 16 : 2) << name;
    if (mlp) {
      EXPECT_EQ(l["reason"], "kept 16-bit by the layer config") << name;
    }
  }
  for (const json& b : report["blocks"]) EXPECT_EQ(b["layers_quantized"], 4) << b.dump();

  // auto_round: the MLP keeps its weights (listed 16-bit in extra_config), attention is packed.
  auto original = SafetensorsFile::Open(model + "/model.safetensors");
  auto packed = SafetensorsFile::Open(out + "/auto_round/model.safetensors");
  ASSERT_TRUE(original.ok()) << original.status();
  ASSERT_TRUE(packed.ok()) << packed.status();
  json qc = json::parse(ReadAll(out + "/auto_round/quantization_config.json"));
  EXPECT_EQ(json::parse(ReadAll(out + "/auto_round/config.json"))["quantization_config"], qc);
  ASSERT_EQ(qc["extra_config"].size(), static_cast<size_t>(3 * kLayers)) << qc.dump();
  for (const json& l : report["layers"]) {
    const std::string name = l["name"];
    if (name.find(".mlp.") != std::string::npos) {
      EXPECT_EQ(qc["extra_config"][name], json({{"bits", 16}, {"data_type", "fp"}})) << name;
      auto w = (*packed)->Find(name + ".weight");
      ASSERT_TRUE(w.ok()) << w.status();
      EXPECT_TRUE((*packed)->Bytes(**w) ==
                  (*original)->Bytes(**(*original)->Find(name + ".weight")));
      EXPECT_FALSE((*packed)->Find(name + ".qweight").ok()) << name;
    } else {
      EXPECT_TRUE((*packed)->Find(name + ".qweight").ok()) << name;
      EXPECT_FALSE((*packed)->Find(name + ".weight").ok()) << name;
    }
  }

  auto fake = SafetensorsFile::Open(out + "/fake/model.safetensors");
  ASSERT_TRUE(fake.ok()) << fake.status();
  ASSERT_EQ((*original)->header().tensors.size(), (*fake)->header().tensors.size());
  int mlp_checked = 0, attn_changed = 0;
  for (const TensorEntry& t : (*original)->header().tensors) {
    auto f = (*fake)->Find(t.name);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ((*f)->dtype, t.dtype) << t.name;
    EXPECT_EQ((*f)->shape, t.shape) << t.name;
    bool same = (*original)->Bytes(t) == (*fake)->Bytes(**f);
    if (t.name.find(".mlp.") != std::string::npos) {
      EXPECT_TRUE(same) << t.name;
      ++mlp_checked;
    } else if (t.name.find(".self_attn.") != std::string::npos) {
      attn_changed += same ? 0 : 1;
    }
  }
  EXPECT_EQ(mlp_checked, 3 * kLayers);
  EXPECT_EQ(attn_changed, 4 * kLayers);  // 2-bit W^ differs from a random fp32 weight
}

TEST(QuantizeCli, LayerConfigSetsOprojTo8Bit) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  std::string cfg = dir.File("layers.json");
  testing::WriteFile(cfg, R"({"self_attn\\.o_proj": {"bits": 8}})");
  std::string out = dir.File("out");
  Result r = RunWorker(With(SmallQuantizeArgs(model, calib, out, 5), {"--layer-config", cfg}));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  json report = json::parse(ReadAll(out + "/report.json"));
  for (const json& l : report["layers"]) {
    std::string name = l["name"];
    bool o_proj = name.find(".self_attn.o_proj") != std::string::npos;
    EXPECT_EQ(l["bits"], o_proj ? 8 : 2) << name;
    EXPECT_EQ(l["group_size"], 32) << name;
  }
  ASSERT_EQ(report["config"]["layer_config"].size(), 1u);
  EXPECT_EQ(report["config"]["layer_config"][0]["bits"], 8);

  // In the packed output, o_proj's 8-bit codes use more than the 2-bit levels
  // and its symmetric v1 zero points are 128 - 1 in every byte; q_proj is 2-bit.
  auto packed = SafetensorsFile::Open(out + "/auto_round/model.safetensors");
  ASSERT_TRUE(packed.ok()) << packed.status();
  EXPECT_EQ(json::parse(ReadAll(out + "/auto_round/quantization_config.json"))["extra_config"],
            json::parse(R"({"model.layers.0.self_attn.o_proj": {"bits": 8},
                            "model.layers.1.self_attn.o_proj": {"bits": 8},
                            "model.layers.2.self_attn.o_proj": {"bits": 8},
                            "model.layers.3.self_attn.o_proj": {"bits": 8},
                            "model.layers.4.self_attn.o_proj": {"bits": 8}})"));
  for (int layer = 0; layer < kLayers; ++layer) {
    std::string p = absl::StrCat("model.layers.", layer, ".self_attn.");
    auto o = (*packed)->Find(p + "o_proj.qweight");
    auto q = (*packed)->Find(p + "q_proj.qweight");
    ASSERT_TRUE(o.ok() && q.ok());
    EXPECT_EQ((*o)->shape, std::vector<int64_t>({64 * 8 / 32, 64}));
    EXPECT_EQ((*q)->shape, std::vector<int64_t>({64 * 2 / 32, 64}));
    absl::string_view codes = (*packed)->Bytes(**o);  // 8-bit: one code per byte
    int lo = 255, hi = 0;
    for (char c : codes) {
      lo = std::min(lo, int{static_cast<uint8_t>(c)});
      hi = std::max(hi, int{static_cast<uint8_t>(c)});
    }
    EXPECT_GT(hi - lo, 3);
    for (int64_t z : Integers(**packed, p + "o_proj.qzeros")) EXPECT_EQ(z, 0x7F7F7F7F);
    for (int64_t z : Integers(**packed, p + "q_proj.qzeros")) EXPECT_EQ(z, 0x55555555);
  }
}

// --- packed exports read back -----------------------------------------------------

// The random test models have no tokenizer: their GGUF files are for reading back only.
constexpr char kNoVocabOk[] = "--allow-gguf-without-vocab";

// `eval --json` on `dir`: its perplexity.
double EvalPerplexity(const std::string& dir, const std::string& data) {
  Result r = RunWorker({"eval", "--model", dir, "--data", data, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return -1;
  return json::parse(r.out)["perplexity"].get<double>();
}

// The acceptance bar: eval on a packed output reproduces the perplexity the
// quantize run reported for the fake-quantized model, relative difference < 1e-4.
void ExpectPackedPerplexityMatches(const std::string& out, const std::string& format,
                                   const std::string& data) {
  const double reported =
      json::parse(ReadAll(out + "/report.json"))["perplexity"]["quantized"].get<double>();
  const double packed = EvalPerplexity(out + "/" + format, data);
  EXPECT_LT(std::abs(packed - reported) / reported, 1e-4)
      << format << ": " << packed << " vs reported " << reported;
}

TEST(QuantizeCliExport, PackedOutputsEvalToTheReportedPerplexity) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  const std::string out = dir.File("out");
  // 4-bit sym group 32 maps onto every format; 60 KB shards split the packed model.
  std::vector<std::string> args = Set(SmallQuantizeArgs(model, calib, out, 20), "--bits", "4");
  args = Set(args, "--format", "auto_round,auto_gptq,fake,gguf:q4_0");
  args = With(args, {"--eval", calib, "--max-shard-size", "60KB", kNoVocabOk});
  Result r = RunWorker(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json report = json::parse(ReadAll(out + "/report.json"));
  EXPECT_EQ(report["outputs"], json({{"auto_round", "auto_round"},
                                     {"auto_gptq", "auto_gptq"},
                                     {"fake", "fake"},
                                     {"gguf:q4_0", "gguf-q4_0"}}));
  std::vector<std::string> exported;
  for (const json& e : Events(r.out)) {
    if (e["event"] == "export") exported.push_back(e["detail"]["format"]);
  }
  EXPECT_EQ(exported, std::vector<std::string>({"auto_round", "auto_gptq", "fake", "gguf:q4_0"}));
  EXPECT_TRUE(fs::exists(out + "/auto_round/model.safetensors.index.json"));
  int shards = 0;
  for (const auto& entry : fs::directory_iterator(out + "/auto_round")) {
    shards += entry.path().filename().string().find("-of-") != std::string::npos;
  }
  EXPECT_GE(shards, 2);
  EXPECT_TRUE(fs::exists(out + "/gguf-q4_0/model-Q4_0.gguf"));
  for (const char* format : {"auto_round", "auto_gptq", "fake"}) {
    ExpectPackedPerplexityMatches(out, format, calib);
  }
  // inspect shows how a packed checkpoint stores each layer.
  Result inspect = RunWorker({"inspect", "--model", out + "/auto_gptq", "--json"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  json info = json::parse(inspect.out);
  EXPECT_EQ(info["quant_method"], "gptq");
  ASSERT_EQ(info["linears"].size(), static_cast<size_t>(7 * kLayers));
  for (const json& l : info["linears"]) {
    EXPECT_EQ(l["dtype"], "packed") << l.dump();
    EXPECT_EQ(l["bits"], 4) << l.dump();
    EXPECT_EQ(l["group_size"], 32) << l.dump();
  }
  // Nothing half-made is left beside the outputs.
  for (const auto& entry : fs::directory_iterator(out)) {
    EXPECT_EQ(entry.path().filename().string().find(".partial"), std::string::npos) << entry.path();
  }
}

TEST(QuantizeCliExport, Asymmetric3BitAutoRoundStoresV2ZeroPoints) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  const std::string out = dir.File("out");
  std::vector<std::string> args = Set(SmallQuantizeArgs(model, calib, out, 20), "--bits", "3");
  args = Set(Set(args, "--format", "auto_round"), "--group-size", "64");
  Result r = RunWorker(With(args, {"--asym", "--eval", calib}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json qc = json::parse(ReadAll(out + "/auto_round/quantization_config.json"));
  EXPECT_EQ(qc["packing_format"], "auto_round");
  EXPECT_EQ(qc["bits"], 3);
  EXPECT_EQ(qc["sym"], false);
  ExpectPackedPerplexityMatches(out, "auto_round", calib);
}

TEST(QuantizeCliExport, RefusesFormatsBeforeTuning) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  const std::string out = dir.File("out");
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {Set(SmallQuantizeArgs(model, calib, out, 5), "--format", "gguf:q4_0"), "gguf:q4_0 needs"},
      {Set(SmallQuantizeArgs(model, calib, out, 5), "--format", "auto_round,awq"),
       "format 'awq' is not one of fake, auto_round, auto_gptq, gguf:q4_0, gguf:q4_1, gguf:q8_0, "
       "gguf:q2_k, gguf:q3_k_s, gguf:q3_k_m, gguf:q4_k_s, gguf:q4_k_m, gguf:q5_k_s, gguf:q5_k_m, "
       "gguf:q6_k"},
      {With(SmallQuantizeArgs(model, calib, out, 5), {"--max-shard-size", "lots"}),
       "--max-shard-size: size 'lots' is not a positive byte count"},
  };
  for (const auto& [args, error] : cases) {
    Result r = RunWorker(args);
    ExpectOneLineError(r, error);
    EXPECT_FALSE(fs::exists(out + "/.signround-work")) << error;
    EXPECT_FALSE(fs::exists(out + "/report.json")) << error;
  }
}

// Formats that a loader would refuse are refused before tuning, unless waived; a waiver
// writes them with a warning in report.json.
TEST(QuantizeCliExport, LoaderRefusalsComeBeforeTuningUnlessWaived) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  const std::string out = dir.File("out");
  std::string cfg = dir.File("layers.json");
  testing::WriteFile(cfg, R"({"self_attn\\.k_proj": {"bits": 8}})");
  const std::vector<std::string> split =
      With(Set(SmallQuantizeArgs(model, calib, out, 2), "--format", "auto_round"),
           {"--layer-config", cfg});
  std::vector<std::string> gguf =
      Set(SmallQuantizeArgs(model, calib, out, 2), "--format", "gguf:q4_0");
  gguf = Set(gguf, "--bits", "4");
  struct Case {
    std::vector<std::string> args;
    std::string waiver, error;
  };
  const Case cases[] = {
      {split, "--allow-split-fused", "model.layers.0.self_attn."},
      {gguf, kNoVocabOk,
       "gguf:q4_0: " + model +
           " has no tokenizer.model or tokenizer.json, so the GGUF file would have no "
           "vocabulary: llama.cpp loads such a file but cannot tokenize any text"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.waiver);
    Result r = RunWorker(c.args);
    ExpectOneLineError(r, c.error);
    EXPECT_NE(r.err.find(c.waiver), std::string::npos) << "the error names the waiver: " << r.err;
    EXPECT_FALSE(fs::exists(out + "/.signround-work"));
    r = RunWorker(With(c.args, {c.waiver}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("signround-worker: warning: "), std::string::npos) << r.err;
    json report = json::parse(ReadAll(out + "/report.json"));
    ASSERT_EQ(report["warnings"].size(), 1u) << report.dump();
    EXPECT_NE(report["warnings"][0].get<std::string>().find(c.error), std::string::npos)
        << report["warnings"];
  }
  // GGUF Q4_1 keeps a real-valued minimum per group that packed formats cannot hold.
  std::vector<std::string> q4_1 =
      Set(SmallQuantizeArgs(model, calib, out, 2), "--format", "gguf:q4_1,auto_gptq");
  ExpectOneLineError(RunWorker(With(Set(q4_1, "--bits", "4"), {"--asym", kNoVocabOk})),
                     "auto_gptq: layer model.layers.0.self_attn.q_proj is stored in GGUF Q4_1 "
                     "with a real-valued minimum per group");
}

// Limits this process's (and so a child's) file size, with SIGXFSZ ignored: a write past
// the limit fails with EFBIG, as on a full disk. Restored on destruction.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  sighandler_t old_handler_ = SIG_DFL;
};

// A format that fails after tuning (here: a file larger than the worker may write, as
// on a full disk) costs only itself: the other formats and report.json are written,
// the exit code is 3, the tuned blocks stay, and a rerun writes the format from them.
TEST(QuantizeCliExport, AFailedFormatLeavesTheOthersAndTheReport) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  const std::string out = dir.File("out");
  const std::vector<std::string> args = SmallQuantizeArgs(model, calib, out, 3);
  Result r;
  {
    // The fp32 fake model (about 800 KB) passes the limit; block files and the 2-bit
    // packed checkpoints (about 200 KB each) do not.
    FileSizeLimit limit(400 << 10);
    r = RunWorker(args);
  }
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("signround-worker: error: format fake failed: "), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
  json report = json::parse(ReadAll(out + "/report.json"));
  EXPECT_EQ(report["outputs"], json({{"auto_round", "auto_round"}, {"auto_gptq", "auto_gptq"}}));
  ASSERT_TRUE(report["failed_outputs"].contains("fake")) << report.dump();
  EXPECT_TRUE(fs::exists(out + "/auto_round/model.safetensors"));
  EXPECT_TRUE(fs::exists(out + "/auto_gptq/model.safetensors"));
  EXPECT_FALSE(fs::exists(out + "/fake"));
  EXPECT_FALSE(fs::exists(out + "/.fake.partial"));
  std::vector<json> failed;
  for (const json& e : Events(r.out)) {
    if (e["event"] == "export" && e["detail"].contains("error")) failed.push_back(e);
  }
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["detail"]["format"], "fake");
  for (int i = 0; i < kLayers; ++i) EXPECT_TRUE(fs::exists(BlockFile(out, i))) << i;

  // Without the limit, the rerun resumes every block and writes all three formats.
  r = RunWorker(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const json& b : BlockEvents(r.out)) EXPECT_TRUE(b["resumed"].get<bool>()) << b.dump();
  report = json::parse(ReadAll(out + "/report.json"));
  EXPECT_FALSE(report.contains("failed_outputs"));
  EXPECT_TRUE(fs::exists(out + "/fake/model.safetensors"));
  EXPECT_FALSE(fs::exists(out + "/.signround-work"));
}

// The issue's acceptance: 2-bit asymmetric SignRound on the shared tiny Llamas, every format
// written (auto_gptq stores GPTQ v2 zero points, which hold the zero points of 0 that
// 2-bit asym tuning produces), and `eval` of each reproduces the reported perplexity (1e-4).
TEST(QuantizeCliShared, Asymmetric2BitWritesEveryFormat) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "../shared is absent";
  for (const char* model : {"stories260k", "babyllama-105"}) {
    SCOPED_TRACE(model);
    testing::TempDir dir;
    json report = QuantizeShared(
        model,
        {"--bits", "2", "--group-size", "32", "--asym", "--format", "auto_round,auto_gptq,fake"},
        dir);
    ASSERT_TRUE(report.contains("perplexity")) << report.dump();
    EXPECT_EQ(report["config"]["iters"], 200);
    EXPECT_EQ(report["outputs"].size(), 3u) << report.dump();
    EXPECT_FALSE(report.contains("failed_outputs")) << report.dump();
    const std::string out = dir.File("out");
    const std::string eval = testing::SharedDir() + "/data/" + model + "-eval-256.jsonl";
    for (const char* format : {"auto_round", "auto_gptq", "fake"}) {
      ExpectPackedPerplexityMatches(out, format, eval);
    }
    json qc = json::parse(ReadAll(out + "/auto_gptq/quantization_config.json"));
    EXPECT_EQ(qc["checkpoint_format"], "gptq_v2");
    for (const char* format : {"auto_round", "auto_gptq"}) {
      EXPECT_EQ(json::parse(ReadAll(out + "/" + format + "/config.json"))["torch_dtype"], "float16")
          << format;
    }
    std::printf("%s W2 G32 asym SignRound: perplexity %.4f (original %.4f)\n", model,
                report["perplexity"]["quantized"].get<double>(),
                report["perplexity"]["original"].get<double>());
  }
}

// A packed checkpoint is hostile input to eval like any other.
TEST(QuantizeCliExport, EvalOfBrokenPackedCheckpointsFailsPrecisely) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  const std::string out = dir.File("out");
  Result r = RunWorker(Set(SmallQuantizeArgs(model, calib, out, 2), "--format", "auto_gptq"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string packed = out + "/auto_gptq";
  const std::string config_path = packed + "/config.json";
  const json config = json::parse(ReadAll(config_path));
  auto with = [&](const std::string& key, const json& value) {
    json c = config;
    c["quantization_config"][key] = value;
    testing::WriteFile(config_path, c.dump());
  };
  with("bits", 3);
  ExpectOneLineError(RunWorker({"eval", "--model", packed, "--data", calib}),
                     packed +
                         "/model.safetensors: tensor "
                         "'model.layers.0.self_attn.q_proj.qweight' is I32 [4, 64]; a 3-bit, "
                         "group-size-32 Linear [64, 64] needs I32 [6, 64]");
  with("quant_method", "awq");
  ExpectOneLineError(RunWorker({"eval", "--model", packed, "--data", calib}),
                     config_path +
                         ": quantization_config: quant_method 'awq' is not supported "
                         "(supported: auto-round, gptq)");
  // Without a quantization_config in config.json, quantization_config.json describes the
  // layers (vLLM reads that file); without either, the packed tensors are unexplained.
  json no_config = config;
  no_config.erase("quantization_config");
  testing::WriteFile(config_path, no_config.dump());
  EXPECT_EQ(RunWorker({"eval", "--model", packed, "--data", calib}).exit_code, 0);
  fs::remove(packed + "/quantization_config.json");
  ExpectOneLineError(RunWorker({"eval", "--model", packed, "--data", calib}),
                     "is packed, but config.json has no quantization_config describing it");
  // A quantized model is not quantized again.
  testing::WriteFile(config_path, config.dump());
  testing::WriteFile(packed + "/quantization_config.json", config["quantization_config"].dump());
  ExpectOneLineError(RunWorker(SmallQuantizeArgs(packed, calib, dir.File("again"), 2)),
                     packed +
                         ": is already quantized (quant_method 'gptq'); give the original "
                         "model");
}

// GGUF from a real run: every block Linear, read back with the test's own GGUF
// reader, dequantizes to the engine's W^ (the fake-quantized model) exactly: Q4_0
// and Q8_0 hold the fp16 scale as d, and a GGUF job tunes its Q4_1 layers with the
// real-valued minimum m that Q4_1 stores.
TEST(QuantizeCliExport, GgufBlocksDequantizeToTheEngineWeights) {
  namespace gguf = testing::gguf;
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  std::string calib = WriteSmallCalib(dir);
  struct Case {
    std::string format, bits, sym_flag;
    uint32_t type;
  };
  const Case cases[] = {{"gguf:q4_0", "4", "--sym", gguf::kTQ4_0},
                        {"gguf:q4_1", "4", "--asym", gguf::kTQ4_1},
                        {"gguf:q8_0", "8", "--sym", gguf::kTQ8_0}};
  const char* kGgufNames[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                              "ffn_gate", "ffn_up", "ffn_down"};
  const char* kHfNames[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                            "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                            "mlp.down_proj"};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.format);
    const std::string out = dir.File("out-" + c.bits + c.sym_flag);
    std::vector<std::string> args = Set(SmallQuantizeArgs(model, calib, out, 5), "--bits", c.bits);
    args = With(Set(args, "--format", "fake," + c.format), {c.sym_flag, kNoVocabOk});
    Result r = RunWorker(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string dir_name = c.format;
    dir_name[4] = '-';
    std::string suffix = c.format.substr(5);
    for (char& ch : suffix) ch = static_cast<char>(std::toupper(ch));
    const gguf::GgufContents g =
        gguf::ReadGguf(out + "/" + dir_name + "/model-" + suffix + ".gguf");
    auto fake = SafetensorsFile::Open(out + "/fake/model.safetensors");
    ASSERT_TRUE(fake.ok()) << fake.status();
    for (int layer = 0; layer < kLayers; ++layer) {
      for (int l = 0; l < 7; ++l) {
        const std::string name = absl::StrCat("blk.", layer, ".", kGgufNames[l], ".weight");
        SCOPED_TRACE(name);
        const gguf::TensorInfo& t = g.Tensor(name);
        ASSERT_EQ(t.type, c.type);
        auto entry =
            (*fake)->Find(absl::StrCat("model.layers.", layer, ".", kHfNames[l], ".weight"));
        ASSERT_TRUE(entry.ok());
        const int64_t rows = (*entry)->shape[0], cols = (*entry)->shape[1];
        ASSERT_EQ(t.ne, std::vector<uint64_t>(
                            {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)}));
        std::vector<float> want(rows * cols);
        std::memcpy(want.data(), (*fake)->Bytes(**entry).data(), want.size() * 4);
        const std::vector<double> got = gguf::Dequantize(g, t);
        const int64_t heads = l == 0 ? 4 : 2;  // q uses n_head, k n_kv_head
        int64_t bad = 0;
        for (int64_t row = 0; row < rows; ++row) {
          const int64_t hf = l <= 1 ? gguf::HfRow(row, rows, heads) : row;
          for (int64_t k = 0; k < cols; ++k) {
            bad += got[row * cols + k] != want[hf * cols + k];
          }
        }
        EXPECT_EQ(bad, 0);
      }
    }
    EXPECT_EQ(g.kv.at("general.architecture").s, "llama");
    EXPECT_EQ(g.kv.at("llama.block_count").u, static_cast<uint64_t>(kLayers));
  }
}

// --- calibration from text (tokenizer.model) -------------------------------------

// RTN (--iters 0) on babyllama-105 from the token ids of the shared
// calibration set, or from the stories' text with --calib-concat: the data's
// SOURCE.md builds those ids by the same rule ([BOS] + story, joined, cut into
// 256-token chunks), so every block's losses and every output byte are equal.
TEST(QuantizeCliText, CalibConcatSelectsTheSharedTokenIds) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "../shared is absent";
  testing::TempDir dir;
  const std::string shared = testing::SharedDir();
  auto args = [&](const std::string& calib, const std::string& out) {
    return std::vector<std::string>{"quantize",   "--model",  shared + "/models/babyllama-105",
                                    "--calib",    calib,      "--out",
                                    out,          "--iters",  "0",
                                    "--bits",     "4",        "--group-size",
                                    "32",         "--seqlen", "256",
                                    "--nsamples", "128",      "--progress",
                                    "json"};
  };
  Result ids = RunWorker(args(shared + "/data/babyllama-105-calib-128x256.jsonl", dir.File("ids")));
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  std::vector<std::string> text_args =
      args(shared + "/data/tinystories-calib-text.jsonl", dir.File("text"));
  text_args.push_back("--calib-concat");
  Result text = RunWorker(text_args);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  json want = json::parse(ReadAll(dir.File("ids") + "/report.json"));
  json got = json::parse(ReadAll(dir.File("text") + "/report.json"));
  ASSERT_EQ(got["blocks"].size(), want["blocks"].size());
  ASSERT_FALSE(want["blocks"].empty());
  for (size_t i = 0; i < want["blocks"].size(); ++i) {
    EXPECT_EQ(got["blocks"][i]["loss_iter0"], want["blocks"][i]["loss_iter0"]) << i;
    EXPECT_EQ(got["blocks"][i]["loss_best"], want["blocks"][i]["loss_best"]) << i;
    EXPECT_GT(want["blocks"][i]["loss_iter0"].get<double>(), 0.0) << i;
  }
  EXPECT_EQ(got["config"]["calib_concat"], true);
  EXPECT_EQ(want["config"]["calib_concat"], false);
  int compared = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir.File("ids"))) {
    if (!e.is_regular_file() || e.path().extension() != ".safetensors") continue;
    const std::string rel = fs::relative(e.path(), dir.File("ids")).string();
    ExpectSameFile(e.path().string(), dir.File("text") + "/" + rel);
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

// Without --calib-concat each story is one sample and stories are shorter than
// 256 tokens... so few qualify that the run is refused, naming the rule.
TEST(QuantizeCliText, PerTextRuleDropsShortStories) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "../shared is absent";
  testing::TempDir dir;
  const std::string shared = testing::SharedDir();
  Result r = RunWorker({"quantize", "--model", shared + "/models/babyllama-105", "--calib",
                        shared + "/data/tinystories-calib-text.jsonl", "--out", dir.File("o"),
                        "--iters", "0", "--seqlen", "4096", "--nsamples", "128"});
  ExpectOneLineError(r, "tokens, need 128");
}

TEST(QuantizeCliText, TokenizePrintsTheIdsOfACase) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "../shared is absent";
  const std::string spm = testing::SharedDir() + "/testdata/tokenizers/llama-spm";
  // cases.jsonl: "Hello world" -> [15043, 3186] without BOS; the command adds BOS (1).
  Result r = RunWorker({"tokenize", "--model", spm, "--text", "Hello world"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 15043 3186\n");
  testing::TempDir dir;
  testing::WriteFile(dir.File("in.txt"), "Hello world\n Hello\n");
  Result j = RunWorker({"tokenize", "--model", spm, "--file", dir.File("in.txt"), "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  EXPECT_EQ(j.out, "{\"ids\": [1, 15043, 3186]}\n{\"ids\": [1, 29871, 15043]}\n");
  testing::WriteFile(dir.File("bad.txt"), "Hello\nwor\xffld\n");
  // Lines are printed as they are read: line 1's ids, then the error naming line 2.
  Result bad = RunWorker({"tokenize", "--model", spm, "--file", dir.File("bad.txt")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.out, "1 15043\n");
  EXPECT_NE(bad.err.find("bad.txt:2: text is not valid UTF-8 at byte offset 3"), std::string::npos)
      << bad.err;
  ExpectOneLineError(RunWorker({"tokenize", "--model", dir.path(), "--text", "x"}),
                     "no tokenizer.json or tokenizer.model");
}

TEST(QuantizeCliText, InvalidUtf8AndEmptyTextFilesAreErrors) {
  testing::TempDir dir;
  std::string model = MakeSmallModel(dir);
  testing::WriteFile(dir.File("bad.txt"), "a fine line\nnot \xc3( fine\n");
  ExpectOneLineError(RunWorker(SmallQuantizeArgs(model, dir.File("bad.txt"), dir.File("o1"), 0)),
                     "bad.txt:2: not valid UTF-8 at byte offset 4");
  testing::WriteFile(dir.File("bad.jsonl"), "{\"text\": \"ok\"}\n{\"text\": \"\xff\"}\n");
  ExpectOneLineError(RunWorker(SmallQuantizeArgs(model, dir.File("bad.jsonl"), dir.File("o2"), 0)),
                     "bad.jsonl:2: not valid UTF-8");
  testing::WriteFile(dir.File("empty.txt"), "");
  ExpectOneLineError(RunWorker(SmallQuantizeArgs(model, dir.File("empty.txt"), dir.File("o3"), 0)),
                     "empty.txt: the file is empty");
  // Valid text, but the small model has no tokenizer files.
  testing::WriteFile(dir.File("ok.txt"), "hello\n");
  ExpectOneLineError(RunWorker(SmallQuantizeArgs(model, dir.File("ok.txt"), dir.File("o4"), 0)),
                     "ok.txt is text, and the model's tokenizer did not load");
}

// `eval` on text joins the tokenized stories and cuts context-length (256)
// chunks, the rule that built the shared token-id evaluation set. The ids are
// not all identical: one eval story has a double space ("jump.  His"), which
// tokenizer.model's normalizer (remove_extra_whitespaces, as SentencePiece and
// Hugging Face's slow tokenizer apply it) collapses and llama2.c's encoder (the
// data's SOURCE.md) keeps, so 74,152 tokens instead of 74,153 and the last ~44
// chunks shift by one token. Same row and prediction counts; mean NLL within
// 0.1% (measured: 7.6e-5 relative). The calibration stories have no double
// space, so CalibConcatSelectsTheSharedTokenIds is exact.
TEST(QuantizeCliText, EvalOnTextMatchesTheSharedTokenIds) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "../shared is absent";
  const std::string shared = testing::SharedDir();
  auto eval = [&](const std::string& data) {
    Result r = RunWorker({"eval", "--model", shared + "/models/babyllama-105", "--data", data,
                          "--json", "--threads", "2"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out) : json();
  };
  json ids = eval(shared + "/data/babyllama-105-eval-256.jsonl");
  json text = eval(shared + "/data/tinystories-eval-text.jsonl");
  EXPECT_EQ(text["rows"], 289);
  EXPECT_EQ(text["rows"], ids["rows"]);
  EXPECT_EQ(text["predictions"], ids["predictions"]);
  const double want = ids["mean_nll"], got = text["mean_nll"];
  EXPECT_NEAR(got, want, 1e-3 * want);
}

}  // namespace
}  // namespace signround
