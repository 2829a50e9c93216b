// Drives the real signround-worker binary: exit codes, one-line errors on
// stderr (never a trace), and inspect's report on the shared checkpoints.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "nlohmann/json.hpp"
#include "tests/testing/test_files.h"
#include "tests/testing/worker_process.h"

namespace signround {
namespace {

using testing::ExpectOneLineError;
using testing::Result;
using testing::RunWorker;

TEST(WorkerCli, MakeTestModelThenInspectJson) {
  testing::TempDir dir;
  std::string model = dir.File("m");
  Result made = RunWorker("make-test-model --out " + model +
                          " --hidden 96 --intermediate 200 --layers 3 --heads 6 --kv-heads 2"
                          " --vocab 128 --dtype f16 --shards 2 --seed 5");
  ASSERT_EQ(made.exit_code, 0) << made.err;
  Result r = RunWorker("inspect --model " + model + " --bits 2 --group-size 32 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["config"]["hidden_size"], 96);
  EXPECT_EQ(j["config"]["head_dim"], 16);
  EXPECT_EQ(j["files"].size(), 2u);
  EXPECT_EQ(j["dtypes"]["F16"], j["tensor_count"]);
  ASSERT_EQ(j["linears"].size(), 21u);
  // q/k/v/o are 96- or 32-wide: quantized; gate/up/down touch 200: kept 16-bit.
  EXPECT_EQ(j["summary"]["quantized"], 12);
  EXPECT_EQ(j["summary"]["kept_16bit"], 9);
  EXPECT_EQ(j["linears"][1]["name"], "model.layers.0.self_attn.k_proj");
  EXPECT_EQ(j["linears"][1]["out"], 32);
  EXPECT_EQ(j["linears"][1]["bits"], 2);
  EXPECT_EQ(j["linears"][4]["quantized"], false);
  EXPECT_EQ(j["linears"][4]["reason"], "out 200 is not a multiple of 32");
}

TEST(WorkerCli, InspectTextListsEveryLinear) {
  testing::TempDir dir;
  ASSERT_EQ(RunWorker("make-test-model --out " + dir.File("m")).exit_code, 0);
  Result r = RunWorker("inspect --model " + dir.File("m"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("architecture: llama (LlamaForCausalLM)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("14 of 14 decoder Linears quantized"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model.layers.1.mlp.down_proj"), std::string::npos) << r.out;
}

TEST(WorkerCli, BadInputGetsOneLineErrorAndExitTwo) {
  testing::TempDir dir;
  ExpectOneLineError(RunWorker("inspect --model " + dir.File("missing")),
                     dir.File("missing") + ": No such file or directory");
  ExpectOneLineError(RunWorker("inspect --model " + dir.path()),
                     dir.File("config.json") + ": No such file or directory");
  ASSERT_EQ(RunWorker("make-test-model --out " + dir.File("m")).exit_code, 0);
  ExpectOneLineError(RunWorker("inspect --model " + dir.File("m") + " --bits 5"),
                     "bits must be 2, 3, 4 or 8, got 5");
  // Corrupt the safetensors header length.
  std::string st = dir.File("m") + "/model.safetensors";
  std::filesystem::resize_file(st, 7);
  ExpectOneLineError(RunWorker("inspect --model " + dir.File("m")),
                     st + ": file is 7 bytes, too short for the 8-byte header length");
  ExpectOneLineError(RunWorker("make-test-model --out " + dir.File("m")),
                     "exists and is not an empty directory");
  ExpectOneLineError(
      RunWorker("make-test-model --out " + dir.File("n") + " --heads 3 --kv-heads 2"),
      "num_attention_heads (3) is not a multiple of num_key_value_heads (2)");
  EXPECT_FALSE(std::filesystem::exists(dir.File("n")));
}

TEST(WorkerCli, UsageErrorsAreNotCrashes) {
  Result r = RunWorker("inspect");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--model is required"), std::string::npos) << r.err;
  EXPECT_NE(RunWorker("no-such-command").exit_code, 0);
}

// quantize --settings: the job service's settings file. A file from another version, a
// bad value or an unknown key is refused before anything is read or written; the
// setting flags cannot be given with it; a valid file runs the job.
TEST(WorkerCli, QuantizeSettingsFile) {
  testing::TempDir dir;
  ASSERT_EQ(RunWorker("make-test-model --out " + dir.File("m")).exit_code, 0);
  const std::string good =
      R"({"version": 3, "recipe": "rtn", "formats": ["fake"], "bits": 4, "group_size": 32,)"
      R"( "sym": true, "iters": 0, "lr": 0, "minmax_lr": 0, "nsamples": 128, "seqlen": 2048,)"
      R"( "batch_size": 8, "seed": 42, "scale_search": false, "loss_filter": false,)"
      R"( "target_bits": 0, "scheme_candidates": [], "teq_iters": 0,)"
      R"( "packed_dtype": "float16",)"
      R"( "layer_overrides": [{"pattern": "mlp", "bits": 16}],)"
      R"( "allow_split_fused": false, "allow_gguf_without_vocab": false})";
  const std::string quantize =
      "quantize --model " + dir.File("m") + " --settings " + dir.File("s.json") + " --out ";
  testing::WriteFile(dir.File("s.json"), R"({"version": 1})");
  ExpectOneLineError(RunWorker(quantize + dir.File("o1")),
                     dir.File("s.json") + ": key 'version' 1 is not 3");
  std::string bad = good;
  bad.replace(bad.find("\"bits\": 4"), 9, "\"bits\": 5");
  testing::WriteFile(dir.File("s.json"), bad);
  ExpectOneLineError(RunWorker(quantize + dir.File("o1")), "bits must be 2, 3, 4 or 8, got 5");
  testing::WriteFile(dir.File("s.json"), good.substr(0, good.size() - 1) + R"(, "bitz": 4})");
  ExpectOneLineError(RunWorker(quantize + dir.File("o1")), "key 'bitz' is not a setting");
  EXPECT_FALSE(std::filesystem::exists(dir.File("o1")));

  testing::WriteFile(dir.File("s.json"), good);
  Result both = RunWorker(quantize + dir.File("o2") + " --bits 4");
  EXPECT_NE(both.exit_code, 0);
  EXPECT_NE(both.err.find("--settings excludes --bits"), std::string::npos) << both.err;

  Result r = RunWorker(quantize + dir.File("o3") + " --progress json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto report = nlohmann::json::parse(testing::ReadFileOrEmpty(dir.File("o3") + "/report.json"));
  EXPECT_EQ(report["config"]["recipe"], "rtn");
  EXPECT_EQ(report["config"]["group_size"], 32);
  EXPECT_EQ(report["config"]["layer_config"][0]["bits"], 16);
  for (const auto& l : report["layers"]) {
    const bool mlp = l["name"].get<std::string>().find(".mlp.") != std::string::npos;
    EXPECT_EQ(l["bits"], mlp ? 16 : 4) << l.dump();
  }
}

struct SharedModel {
  const char* name;
  int hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, quantized;
  uint64_t parameters;
};

// Names the parameter in test listings instead of dumping its bytes.
void PrintTo(const SharedModel& m, std::ostream* os) { *os << m.name; }

class WorkerCliShared : public ::testing::TestWithParam<SharedModel> {};

// Expected values are the configs documented in ../shared/models/*/SOURCE.md;
// parameter counts are the sums of the tensor shapes they imply (tied lm_head).
TEST_P(WorkerCliShared, InspectReportsConfigAndLayerShapes) {
  std::string shared = testing::SharedDir();
  if (shared.empty()) GTEST_SKIP() << "../shared is absent";
  const SharedModel& m = GetParam();
  Result r =
      RunWorker("inspect --model " + shared + "/models/" + m.name + " --group-size 32 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  const auto& c = j["config"];
  EXPECT_EQ(c["model_type"], "llama");
  EXPECT_EQ(c["hidden_size"], m.hidden);
  EXPECT_EQ(c["intermediate_size"], m.intermediate);
  EXPECT_EQ(c["num_hidden_layers"], m.layers);
  EXPECT_EQ(c["num_attention_heads"], m.heads);
  EXPECT_EQ(c["num_key_value_heads"], m.kv_heads);
  EXPECT_EQ(c["head_dim"], m.head_dim);
  EXPECT_EQ(c["vocab_size"], m.vocab);
  EXPECT_EQ(c["tie_word_embeddings"], true);
  EXPECT_EQ(j["parameters"], m.parameters);
  EXPECT_EQ(j["dtypes"]["F32"], j["tensor_count"]);
  ASSERT_EQ(j["linears"].size(), static_cast<size_t>(7 * m.layers));
  EXPECT_EQ(j["summary"]["quantized"], m.quantized);
  const int kv = m.kv_heads * m.head_dim;
  // [out, in] of each projection, from the Llama architecture.
  const std::map<std::string, std::pair<int, int>> shapes = {
      {"self_attn.q_proj", {m.hidden, m.hidden}},    {"self_attn.k_proj", {kv, m.hidden}},
      {"self_attn.v_proj", {kv, m.hidden}},          {"self_attn.o_proj", {m.hidden, m.hidden}},
      {"mlp.gate_proj", {m.intermediate, m.hidden}}, {"mlp.up_proj", {m.intermediate, m.hidden}},
      {"mlp.down_proj", {m.hidden, m.intermediate}}};
  for (const auto& l : j["linears"]) {
    std::string name = l["name"];
    int out = l["out"], in = l["in"];
    std::string suffix = name.substr(name.find('.', std::string("model.layers.").size()) + 1);
    ASSERT_EQ(shapes.count(suffix), 1u) << name;
    EXPECT_EQ(std::make_pair(out, in), shapes.at(suffix)) << name;
    EXPECT_EQ(l["quantized"], in % 32 == 0 && out % 32 == 0) << name;
  }
}

// stories260k: 512*64 + 5*(2*64 + 64*64*2 + 32*64*2 + 3*64*172) + 64 = 260032.
// babyllama-105: 105*128 + 5*(2*128 + 128*128*2 + 64*128*2 + 3*128*352) + 128 = 936448.
INSTANTIATE_TEST_SUITE_P(
    Models, WorkerCliShared,
    ::testing::Values(SharedModel{"stories260k", 64, 172, 5, 8, 4, 8, 512, 20, 260032},
                      SharedModel{"babyllama-105", 128, 352, 5, 8, 4, 16, 105, 35, 936448}),
    [](const auto& info) {
      std::string n = info.param.name;
      std::replace(n.begin(), n.end(), '-', '_');
      return n;
    });

}  // namespace
}  // namespace signround
