// Our GGUF files in llama.cpp itself: node-llama-cpp's prebuilt CPU build of
// llama.cpp (installed by tests/llama_cpp/install.sh) loads each file the real
// `signround-worker quantize` writes for stories260k, generates text from a prompt,
// and scores the eval rows (tests/llama_cpp/llama_score.mjs: perplexity defined as
// `signround-worker eval` defines it). Its perplexity must agree with our own eval of
// the same job's fake-quantized model, and Q4_1's real-valued minimum must show.
//
// Skipped without ../shared, without node, or without tests/llama_cpp/node_modules
// (node < 20, or install.sh not run).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "src/common/file_util.h"
#include "src/tensor/float_bytes.h"
#include "src/tensor/safetensors_file.h"
#include "tests/testing/llama_gguf_py.h"
#include "tests/testing/s3_server.h"
#include "tests/testing/test_files.h"
#include "tests/testing/worker_process.h"

namespace signround {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::ProcessResult;
using testing::Result;
using testing::RunProcess;
using testing::RunWorker;

constexpr char kModel[] = "stories260k";
constexpr char kPrompt[] = "Once upon a time";

// Why these tests cannot run here, or "".
std::string SkipReason() {
  if (testing::SharedDir().empty()) return "../shared is absent";
  if (RunProcess({"node", "--version"}).exit_code != 0) return "node is not on PATH";
  const fs::path modules = fs::path(LLAMA_SCORE_SCRIPT).parent_path() / "node_modules";
  if (!fs::exists(modules / "node-llama-cpp" / "package.json")) {
    return absl::StrCat(modules.string(),
                        " is absent: run tests/llama_cpp/install.sh (needs node >= 20)");
  }
  return "";
}

#define SKIP_WITHOUT_LLAMA_CPP()                 \
  do {                                           \
    const std::string reason = SkipReason();     \
    if (!reason.empty()) GTEST_SKIP() << reason; \
  } while (0)

std::string ModelDir(const std::string& model = kModel) {
  return testing::SharedDir() + "/models/" + model;
}
std::string CalibFile() {
  return testing::SharedDir() + "/data/" + kModel + "-calib-128x256.jsonl";
}
std::string EvalFile() { return testing::SharedDir() + "/data/" + kModel + "-eval-256.jsonl"; }

// The file `quantize --format <format>` writes: gguf:q4_1 -> OUT/gguf-q4_1/stories260k-Q4_1.gguf.
std::string GgufPath(const std::string& out, const std::string& format,
                     const std::string& model = kModel) {
  std::string dir = format, type = format.substr(5);
  dir[4] = '-';
  for (char& c : type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return absl::StrCat(out, "/", dir, "/", model, "-", type, ".gguf");
}

// Runs `quantize` on `model` (stories260k) with `settings`; false (with a failure) when it fails.
bool Quantize(const std::string& out, const std::vector<std::string>& settings,
              const std::string& model = kModel) {
  std::vector<std::string> args = {"quantize", "--model", ModelDir(model), "--out", out};
  args.insert(args.end(), settings.begin(), settings.end());
  const auto start = std::chrono::steady_clock::now();
  Result r = RunWorker(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::printf("  quantize %s: %.1f s\n", out.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return r.exit_code == 0;
}

// `signround-worker eval --json` of a checkpoint directory on the eval rows.
json OurEval(const std::string& model_dir) {
  Result r = RunWorker({"eval", "--model", model_dir, "--data", EvalFile(), "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return json();
  return json::parse(r.out);
}

// llama_score.mjs on a GGUF file: the eval rows' perplexity, and `generate` greedy
// tokens from kPrompt when `generate` > 0.
json LlamaScore(const std::string& gguf, int generate = 0) {
  std::vector<std::string> argv = {"node", LLAMA_SCORE_SCRIPT, "--model",
                                   gguf,   "--rows",           EvalFile()};
  if (generate > 0) {
    argv.insert(argv.end(), {"--generate", std::to_string(generate), "--prompt", kPrompt});
  }
  const auto start = std::chrono::steady_clock::now();
  ProcessResult r = RunProcess(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return json();
  std::printf("  llama.cpp on %s: %.1f s\n", fs::path(gguf).filename().c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(j.is_object()) << "llama_score.mjs printed: " << r.out;
  return j.is_object() ? j : json();
}

double Perplexity(const json& j) {
  return j.is_object() && j.contains("perplexity") && j["perplexity"].is_number()
             ? j["perplexity"].get<double>()
             : NAN;
}

// --- each GGUF type: llama.cpp loads it, generates, and agrees with our eval ---------

struct TypeCase {
  const char* format;
  std::vector<std::string> scheme;
};

// The name ctest shows after "GetParam() =".
std::ostream& operator<<(std::ostream& os, const TypeCase& c) { return os << c.format; }

class LlamaCppGgufTest : public ::testing::TestWithParam<TypeCase> {};

// One short SignRound job per type writes the GGUF file and the fake-quantized model
// (the same W^); llama.cpp's perplexity on the GGUF must be within 0.5% of ours on the
// fake model (llama.cpp keeps the KV cache in F16 and quantizes the activations that
// meet Q8_0 / Q4 weights to Q8, so the figures are close, not equal).
TEST_P(LlamaCppGgufTest, LoadsGeneratesAndMatchesOurPerplexity) {
  SKIP_WITHOUT_LLAMA_CPP();
  const TypeCase& c = GetParam();
  testing::TempDir dir;
  const std::string out = dir.File("out");
  std::vector<std::string> settings = {"--calib",    CalibFile(), "--group-size",
                                       "32",         "--iters",   "20",
                                       "--nsamples", "32",        "--seqlen",
                                       "256",        "--format",  absl::StrCat(c.format, ",fake")};
  settings.insert(settings.end(), c.scheme.begin(), c.scheme.end());
  ASSERT_TRUE(Quantize(out, settings));
  const std::string gguf = GgufPath(out, c.format);
  ASSERT_TRUE(fs::exists(gguf)) << gguf;

  const json ours = OurEval(out + "/fake");
  const json llama = LlamaScore(gguf, /*generate=*/16);
  ASSERT_TRUE(ours.is_object() && llama.is_object());

  const std::string text = llama.value("generated_text", "");
  const size_t generated = llama.value("generated_tokens", json::array()).size();
  std::printf("  %s: llama.cpp generated %zu tokens: \"%s%s\"\n", c.format, generated, kPrompt,
              text.c_str());
  EXPECT_GE(generated, 8u);
  EXPECT_FALSE(text.empty());

  const double ppl_ours = Perplexity(ours), ppl_llama = Perplexity(llama);
  std::printf("  %s: perplexity ours %.6f (fake model), llama.cpp %.6f (GGUF), relative %.2e\n",
              c.format, ppl_ours, ppl_llama, std::abs(ppl_llama - ppl_ours) / ppl_ours);
  EXPECT_EQ(llama["predictions"], ours["predictions"]);
  EXPECT_EQ(llama["rows"], ours["rows"]);
  EXPECT_NEAR(ppl_llama, ppl_ours, 0.005 * ppl_ours);
}

INSTANTIATE_TEST_SUITE_P(Types, LlamaCppGgufTest,
                         ::testing::Values(TypeCase{"gguf:q4_0", {"--bits", "4", "--sym"}},
                                           TypeCase{"gguf:q4_1", {"--bits", "4", "--asym"}},
                                           TypeCase{"gguf:q8_0", {"--bits", "8", "--sym"}}),
                         [](const ::testing::TestParamInfo<TypeCase>& info) {
                           std::string name = std::string(info.param.format).substr(5);  // q4_0
                           for (char& ch : name)
                             ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                           return name;
                         });

// --- every model family: its GGUF architecture in llama.cpp ----------------------------

struct FamilyCase {
  const char* model;  // a tiny trained model of ../shared/models (ZOO.md)
  const char* format;
  std::vector<std::string> scheme;
};

std::ostream& operator<<(std::ostream& os, const FamilyCase& c) {
  return os << c.model << " " << c.format;
}

class LlamaCppFamilyTest : public ::testing::TestWithParam<FamilyCase> {};

// One RTN job per family and type (no calibration) writes the GGUF file and the
// fake-quantized model, and evaluates the latter (report.json's perplexity.quantized):
// llama.cpp loads the file under the family's architecture (qwen3, qwen3moe, llama with
// experts, gemma3, phi3), generates, and its perplexity on the same rows is within 0.5%.
// The TEQ cases are calibrated (TEQ trains on the block loss).
TEST_P(LlamaCppFamilyTest, LoadsGeneratesAndMatchesOurPerplexity) {
  SKIP_WITHOUT_LLAMA_CPP();
  const FamilyCase& c = GetParam();
  if (!fs::exists(ModelDir(c.model) + "/config.json")) GTEST_SKIP() << c.model << " is absent";
  testing::TempDir dir;
  const std::string out = dir.File("out");
  std::vector<std::string> settings = {"--iters",  "0",        "--eval",
                                       EvalFile(), "--format", absl::StrCat(c.format, ",fake")};
  settings.insert(settings.end(), c.scheme.begin(), c.scheme.end());
  ASSERT_TRUE(Quantize(out, settings, c.model));
  const std::string gguf = GgufPath(out, c.format, c.model);
  ASSERT_TRUE(fs::exists(gguf)) << gguf;
  absl::StatusOr<std::string> report_text = ReadFileToString(out + "/report.json", 16 << 20);
  ASSERT_TRUE(report_text.ok()) << report_text.status();
  const json report = json::parse(*report_text);
  const double ppl_ours = report["perplexity"].value("quantized", NAN);
  if (std::find(c.scheme.begin(), c.scheme.end(), "--teq-iters") != c.scheme.end()) {
    // Scales were kept somewhere, or the case would check nothing of TEQ.
    std::string units;
    for (const json& b : report["blocks"]) units += b["teq"]["units"].dump();
    std::printf("  %s: TEQ units kept per block: %s\n", c.model, units.c_str());
    EXPECT_NE(units.find("\""), std::string::npos);
  }

  const json llama = LlamaScore(gguf, /*generate=*/16);
  ASSERT_TRUE(llama.is_object());
  const std::string text = llama.value("generated_text", "");
  const size_t generated = llama.value("generated_tokens", json::array()).size();
  std::printf("  %s %s: llama.cpp generated %zu tokens: \"%s%s\"\n", c.model, c.format, generated,
              kPrompt, text.c_str());
  EXPECT_GE(generated, 8u);
  EXPECT_FALSE(text.empty());

  const double ppl_llama = Perplexity(llama);
  std::printf("  %s %s: perplexity ours %.6f (fake model), llama.cpp %.6f (GGUF), relative %.2e\n",
              c.model, c.format, ppl_ours, ppl_llama, std::abs(ppl_llama - ppl_ours) / ppl_ours);
  EXPECT_EQ(llama["rows"], 142);  // stories260k-eval-256.jsonl: 142 rows of 256 ids
  EXPECT_EQ(llama["predictions"], 142 * 255);
  EXPECT_NEAR(ppl_llama, ppl_ours, 0.005 * ppl_ours);
}

std::vector<FamilyCase> FamilyCases() {
  std::vector<FamilyCase> out;
  for (const char* model :
       {"qwen3-tiny", "qwen3moe-tiny", "mixtral-tiny", "gemma3-tiny", "phi3-tiny"}) {
    out.push_back({model, "gguf:q4_0", {"--bits", "4", "--sym", "--group-size", "32"}});
    out.push_back({model, "gguf:q8_0", {"--bits", "8", "--sym", "--group-size", "32"}});
    // The k-quant mix's types by llama.cpp's rules; these models' rows (64 to 384) are
    // mostly not multiples of 256, so most Linears fall back to Q4_1 / Q8_0.
    out.push_back({model, "gguf:q4_k_m", {}});
  }
  // TEQ's changed norms (Gemma's 1 + w shifted again by the converter's +1) and MoE router,
  // and its scaled values and hidden units (Phi-3: rows of the fused qkv_proj and
  // gate_up_proj), as llama.cpp reads them.
  for (const char* model : {"gemma3-tiny", "qwen3moe-tiny", "phi3-tiny"}) {
    out.push_back({model,
                   "gguf:q4_0",
                   {"--bits", "4", "--sym", "--group-size", "32", "--teq-iters", "20", "--calib",
                    CalibFile(), "--seqlen", "256", "--nsamples", "32"}});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Families, LlamaCppFamilyTest, ::testing::ValuesIn(FamilyCases()),
                         [](const ::testing::TestParamInfo<FamilyCase>& info) {
                           // qwen3moe-tiny gguf:q4_0 -> qwen3moe_Q4_0
                           std::string name = info.param.model;
                           name = name.substr(0, name.find('-')) + "_" +
                                  std::string(info.param.format).substr(5);
                           for (size_t i = name.find('_') + 1; i < name.size(); ++i) {
                             name[i] = static_cast<char>(
                                 std::toupper(static_cast<unsigned char>(name[i])));
                           }
                           const std::vector<std::string>& s = info.param.scheme;
                           if (std::find(s.begin(), s.end(), "--teq-iters") != s.end()) {
                             name += "_TEQ";
                           }
                           return name;
                         });

// --- Q4_1 against Q4_0, scored by llama.cpp ------------------------------------------

// Q4_1 stores a real-valued minimum per group of 32 (x = q * d + m) where Q4_0 has only a
// scale, so with round-to-nearest alone the asymmetric file should already score better.
TEST(LlamaCppQ4Test, RtnQ4_1BeatsQ4_0) {
  SKIP_WITHOUT_LLAMA_CPP();
  testing::TempDir dir;
  double ppl[2];
  const char* formats[] = {"gguf:q4_0", "gguf:q4_1"};
  const char* sym[] = {"--sym", "--asym"};
  for (int i = 0; i < 2; ++i) {
    const std::string out = dir.File(absl::StrCat("out", i));
    ASSERT_TRUE(Quantize(out, {"--recipe", "rtn", "--bits", "4", "--group-size", "32", sym[i],
                               "--format", formats[i]}));
    ppl[i] = Perplexity(LlamaScore(GgufPath(out, formats[i])));
  }
  std::printf("  RTN W4 G32 through llama.cpp: Q4_0 %.6f, Q4_1 %.6f\n", ppl[0], ppl[1]);
  EXPECT_LT(ppl[1], ppl[0]);
}

// SignRound's default recipe (200 iterations, 128 samples of 256 tokens) to Q4_1.
// 4.3684 is llama.cpp's perplexity of this job's GGUF when Q4_1 stored m = -zp * d with
// an integer zero point; the real-valued minimum must do at least as well.
TEST(LlamaCppQ4Test, SignRoundQ4_1DefaultRecipe) {
  SKIP_WITHOUT_LLAMA_CPP();
  testing::TempDir dir;
  const std::string out = dir.File("out");
  ASSERT_TRUE(Quantize(out, {"--calib", CalibFile(), "--bits", "4", "--group-size", "32", "--asym",
                             "--nsamples", "128", "--seqlen", "256", "--format", "gguf:q4_1"}));
  const double ppl = Perplexity(LlamaScore(GgufPath(out, "gguf:q4_1")));
  std::printf("  SignRound (200 iters, 128 x 256) W4 G32 asym, Q4_1 through llama.cpp: %.6f\n",
              ppl);
  EXPECT_LT(ppl, 4.3684);
}

// --- GGUF k-quant mixes on llama-k256 (every Linear row a multiple of 256) -------------

constexpr char kK256[] = "llama-k256";
constexpr double kK256Params = 2033408;  // ../shared/models/llama-k256/SOURCE.md

json ReadReport(const std::string& out) {
  absl::StatusOr<std::string> text = ReadFileToString(out + "/report.json", 16 << 20);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? json::parse(*text) : json();
}

// The Hugging Face tensor of a llama GGUF tensor name, and the heads whose rows
// llama.cpp's converter permutes (attn_q: 4, attn_k: 2 for llama-k256), or "".
std::string HfName(const std::string& gguf, int64_t* heads) {
  *heads = 0;
  if (gguf == "token_embd.weight") return "model.embed_tokens.weight";
  if (gguf == "output.weight") return "lm_head.weight";
  if (gguf == "output_norm.weight") return "model.norm.weight";
  int layer = -1;
  char rest[64] = {0};
  if (std::sscanf(gguf.c_str(), "blk.%d.%63s", &layer, rest) != 2) return "";
  const std::string r = rest;
  const std::string p = absl::StrCat("model.layers.", layer, ".");
  if (r == "attn_q.weight") *heads = 4;
  if (r == "attn_k.weight") *heads = 2;
  static const std::map<std::string, std::string> kNames = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"}};
  auto it = kNames.find(r);
  return it == kNames.end() ? "" : p + it->second;
}

// The GGUF type the job's report gives a layer: "Q4_K" for data_type "q4_k".
std::string ReportedType(const json& layer) {
  std::string t = layer.value("data_type", "");
  for (char& ch : t) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return t;
}

class LlamaCppKQuantTest : public ::testing::TestWithParam<const char*> {};

// RTN (no calibration) to each mix writes the GGUF file and the fake model (W^): llama.cpp
// loads the file, generates, and scores the eval rows within 0.5% of our eval of the fake
// model (the token embedding and output are in the mix's types in both); llama.cpp's own
// dequantizer (gguf-py, from the pinned package's llama.cpp) gives back every tensor of the
// file bit for bit equal to the fake model's, each in the type the report names.
TEST_P(LlamaCppKQuantTest, LoadsMatchesOurEvalAndDequantizesToOurWeights) {
  SKIP_WITHOUT_LLAMA_CPP();
  if (!fs::exists(ModelDir(kK256) + "/config.json")) GTEST_SKIP() << kK256 << " is absent";
  const std::string format = GetParam();
  testing::TempDir dir;
  const std::string out = dir.File("out");
  ASSERT_TRUE(Quantize(
      out, {"--iters", "0", "--eval", EvalFile(), "--format", absl::StrCat(format, ",fake")},
      kK256));
  const std::string gguf = GgufPath(out, format, kK256);
  ASSERT_TRUE(fs::exists(gguf)) << gguf;
  const json report = ReadReport(out);
  ASSERT_TRUE(report.is_object());
  EXPECT_FALSE(report.contains("gguf_fallbacks")) << report["gguf_fallbacks"].dump();
  const double ppl_ours = report["perplexity"].value("quantized", NAN);
  const json llama = LlamaScore(gguf, /*generate=*/16);
  ASSERT_TRUE(llama.is_object());
  EXPECT_GE(llama.value("generated_tokens", json::array()).size(), 8u);
  const double ppl_llama = Perplexity(llama);
  const double bpw = 8.0 * static_cast<double>(fs::file_size(gguf)) / kK256Params;
  std::printf("  %s: %.2f bits/weight (file); perplexity ours %.6f, llama.cpp %.6f, rel %.2e\n",
              format.c_str(), bpw, ppl_ours, ppl_llama, std::abs(ppl_llama - ppl_ours) / ppl_ours);
  EXPECT_NEAR(ppl_llama, ppl_ours, 0.005 * ppl_ours);

  std::map<std::string, std::string> types;  // HF weight name -> reported type
  for (const char* key : {"layers", "ends"}) {
    for (const json& l : report.value(key, json::array())) {
      types[l["name"].get<std::string>() + ".weight"] = ReportedType(l);
    }
  }
  const std::string why = testing::LlamaGgufPyUnavailable();
  if (!why.empty()) GTEST_SKIP() << "llama.cpp's gguf-py: " << why;
  absl::StatusOr<std::vector<testing::LlamaGgufTensor>> tensors =
      testing::DequantizeWithLlamaGgufPy(gguf, dir.File("dequant"));
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  absl::StatusOr<std::shared_ptr<const SafetensorsFile>> fake =
      SafetensorsFile::Open(out + "/fake/model.safetensors");
  ASSERT_TRUE(fake.ok()) << fake.status();
  int compared = 0;
  for (const testing::LlamaGgufTensor& t : *tensors) {
    int64_t heads = 0;
    const std::string hf = HfName(t.name, &heads);
    ASSERT_FALSE(hf.empty()) << t.name;
    if (types.count(hf) != 0) EXPECT_EQ(t.type, types[hf]) << t.name;
    absl::StatusOr<const TensorEntry*> e = (*fake)->Find(hf);
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_EQ((*e)->shape, t.shape) << t.name;
    const std::vector<float> want = FloatsFromBytes((*fake)->Bytes(**e), (*e)->dtype);
    absl::StatusOr<std::vector<float>> got = testing::ReadF32File(t.values_path);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), want.size()) << t.name;
    const int64_t rows = t.shape[0], cols = static_cast<int64_t>(want.size()) / rows;
    const int64_t half = heads > 0 ? rows / heads / 2 : 0;
    int64_t mismatches = 0;
    for (int64_t r = 0; r < rows; ++r) {
      // GGUF row (h * half + i) * 2 + j holds HF row (h * 2 + j) * half + i.
      int64_t src = r;
      if (heads > 0) {
        const int64_t h = r / (2 * half), i = (r % (2 * half)) / 2, j = r % 2;
        src = (h * 2 + j) * half + i;
      }
      mismatches += std::memcmp(&(*got)[r * cols], &want[src * cols], cols * sizeof(float)) != 0;
    }
    EXPECT_EQ(mismatches, 0) << t.name << " (" << t.type << "): rows differing from " << hf;
    ++compared;
  }
  EXPECT_EQ(compared, 3 * 9 + 3);  // 3 blocks of 2 norms + 7 Linears, embedding, norm, output
}

INSTANTIATE_TEST_SUITE_P(Mixes, LlamaCppKQuantTest,
                         ::testing::Values("gguf:q2_k", "gguf:q3_k_s", "gguf:q3_k_m", "gguf:q4_k_s",
                                           "gguf:q4_k_m", "gguf:q5_k_s", "gguf:q5_k_m",
                                           "gguf:q6_k"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = std::string(info.param).substr(5);
                           for (char& ch : name)
                             ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                           return name;
                         });

// SignRound (the default recipe: 200 iterations, 128 calibration samples of 256 tokens)
// against RTN of the same mix, both scored by llama.cpp on the eval rows: SignRound must
// be better for Q4_K_M, Q3_K_M and Q2_K. The README's k-quant table is this output.
TEST(LlamaCppKQuantQuality, SignRoundBeatsRtnOfTheSameMix) {
  SKIP_WITHOUT_LLAMA_CPP();
  if (!fs::exists(ModelDir(kK256) + "/config.json")) GTEST_SKIP() << kK256 << " is absent";
  testing::TempDir dir;
  std::printf("  | type | bits/weight | RTN | SignRound |  (llama.cpp perplexity; fp 7.0088)\n");
  for (const char* format : {"gguf:q4_k_m", "gguf:q3_k_m", "gguf:q2_k"}) {
    const std::string rtn = dir.File(absl::StrCat(format + 5, "-rtn"));
    const std::string sr = dir.File(absl::StrCat(format + 5, "-sr"));
    ASSERT_TRUE(Quantize(rtn, {"--iters", "0", "--format", format}, kK256));
    ASSERT_TRUE(Quantize(
        sr, {"--calib", CalibFile(), "--nsamples", "128", "--seqlen", "256", "--format", format},
        kK256));
    const double ppl_rtn = Perplexity(LlamaScore(GgufPath(rtn, format, kK256)));
    const double ppl_sr = Perplexity(LlamaScore(GgufPath(sr, format, kK256)));
    const double bpw =
        8.0 * static_cast<double>(fs::file_size(GgufPath(sr, format, kK256))) / kK256Params;
    std::printf("  | %s | %.2f | %.4f | %.4f |\n", format, bpw, ppl_rtn, ppl_sr);
    EXPECT_LT(ppl_sr, ppl_rtn) << format;
  }
}

}  // namespace
}  // namespace signround
