// The worker's command line and settings file built from a job, and the reading
// of its progress lines.
#include "src/attempts/worker_command.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "src/contract/settings.h"
#include "src/jobs/job_validation.h"
#include "tests/unit/jobs/valid_spec.h"

namespace signround::jobs {
namespace {

// The settings as the worker reads them back from the file the service writes.
contract::QuantizeSettings ThroughTheFile(const JobSpec& spec) {
  absl::StatusOr<EffectiveSettings> s = ResolveSettings(spec);
  EXPECT_TRUE(s.ok()) << s.status();
  absl::StatusOr<contract::QuantizeSettings> back =
      contract::ParseSettingsFile(contract::SettingsFileText(*s), "settings.json");
  EXPECT_TRUE(back.ok()) << back.status();
  return *back;
}

TEST(WorkerCommand, ArgvNamesTheInputsAndTheSettingsFile) {
  WorkerInputs in;
  in.worker_bin = "/bin/signround-worker";
  in.settings_path = "/j/settings.json";
  in.model_dir = "/m";
  in.model_name = "s3://models/m/";
  in.calib_name = "s3://data/c.jsonl";  // no --calib: no --calib-name either
  in.out_dir = "/o";
  in.device = "cpu";
  std::vector<std::string> argv = WorkerArgv(in);
  auto value_of = [&argv](const std::string& flag) -> std::string {
    for (size_t i = 0; i + 1 < argv.size(); ++i) {
      if (argv[i] == flag) return argv[i + 1];
    }
    return "<absent>";
  };
  EXPECT_EQ(argv[0], "/bin/signround-worker");
  EXPECT_EQ(argv[1], "quantize");
  EXPECT_EQ(value_of("--settings"), "/j/settings.json");
  EXPECT_EQ(value_of("--calib"), "<absent>");
  EXPECT_EQ(value_of("--calib-name"), "<absent>");
  EXPECT_EQ(value_of("--model"), "/m");
  EXPECT_EQ(value_of("--model-name"), "s3://models/m/");
  EXPECT_EQ(value_of("--out"), "/o");
  EXPECT_EQ(value_of("--progress"), "json");
  EXPECT_EQ(value_of("--device"), "cpu");
  // Settings travel in the file only.
  EXPECT_EQ(value_of("--bits"), "<absent>");
  EXPECT_EQ(value_of("--threads"), "<absent>");

  in.calib_path = "/c.jsonl";
  in.threads = 1;
  argv = WorkerArgv(in);
  EXPECT_EQ(value_of("--calib"), "/c.jsonl");
  EXPECT_EQ(value_of("--calib-name"), "s3://data/c.jsonl");
  EXPECT_EQ(value_of("--threads"), "1");
}

TEST(WorkerCommand, SettingsFileCarriesTheEffectiveSettings) {
  JobSpec spec = ValidSpec();
  spec.recipe = "rtn";
  spec.calibration_uri = "";
  spec.bits = 2;
  spec.sym = false;
  spec.formats = {"AUTO_GPTQ", "fake"};
  contract::QuantizeSettings s = ThroughTheFile(spec);
  EXPECT_EQ(s.recipe, "rtn");
  EXPECT_EQ(s.iters, 0);
  EXPECT_EQ(s.bits, 2);
  EXPECT_FALSE(s.sym);
  EXPECT_EQ(s.group_size, 128);
  EXPECT_EQ(s.formats, (std::vector<std::string>{"auto_gptq", "fake"}));
  EXPECT_EQ(s.ToJson(), ResolveSettings(spec)->ToJson());
}

TEST(WorkerCommand, WaiversAndPackedDtypePassThrough) {
  JobSpec spec = ValidSpec();
  contract::QuantizeSettings plain = ThroughTheFile(spec);
  EXPECT_FALSE(plain.allow_split_fused);
  EXPECT_FALSE(plain.allow_gguf_without_vocab);
  EXPECT_EQ(plain.packed_dtype, "float16");
  spec.allow_split_fused = true;
  spec.packed_dtype = "BFLOAT16";
  contract::QuantizeSettings s = ThroughTheFile(spec);
  EXPECT_TRUE(s.allow_split_fused);
  EXPECT_FALSE(s.allow_gguf_without_vocab);
  EXPECT_EQ(s.packed_dtype, "bfloat16");
  spec.allow_split_fused = false;
  spec.allow_gguf_without_vocab = true;
  s = ThroughTheFile(spec);
  EXPECT_FALSE(s.allow_split_fused);
  EXPECT_TRUE(s.allow_gguf_without_vocab);
}

TEST(WorkerCommand, LayerOverridesKeepTheirOrder) {
  // Later overrides win in the engine, so order is meaning; a repeated pattern stays.
  JobSpec spec = ValidSpec();
  spec.layer_overrides = {{"mlp", 8, {}, {}}, {"self_attn", {}, 64, false}, {"mlp", 16, {}, {}}};
  contract::QuantizeSettings s = ThroughTheFile(spec);
  ASSERT_EQ(s.layer_overrides.size(), 3u);
  EXPECT_EQ(s.layer_overrides[0].pattern, "mlp");
  EXPECT_EQ(s.layer_overrides[0].bits, 8);
  EXPECT_EQ(s.layer_overrides[1].pattern, "self_attn");
  EXPECT_EQ(s.layer_overrides[1].bits, std::nullopt);
  EXPECT_EQ(s.layer_overrides[1].group_size, 64);
  EXPECT_EQ(s.layer_overrides[1].sym, false);
  EXPECT_EQ(s.layer_overrides[2].bits, 16);
}

TEST(WorkerCommand, ParsesBlockEventsAndRejectsGarbage) {
  absl::StatusOr<WorkerLine> l = ParseWorkerLine(
      R"({"event":"block","block_count":4,"index":2,"layers_quantized":7,"loss_iter0":0.5,)"
      R"("loss_best":null,"best_iter":9,"seconds":1.5,"resumed":true})");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->kind, WorkerLine::Kind::kBlock);
  EXPECT_EQ(l->block.stats.index, 2);
  EXPECT_EQ(l->block.block_count, 4);
  EXPECT_EQ(l->block.stats.best_iter, 9);
  EXPECT_TRUE(std::isnan(l->block.stats.loss_best));
  EXPECT_TRUE(l->block.resumed);
  EXPECT_EQ(ParseWorkerLine(R"({"event":"done"})")->kind, WorkerLine::Kind::kDone);
  EXPECT_EQ(ParseWorkerLine(R"({"event":"export","block_count":4})")->kind,
            WorkerLine::Kind::kOther);
  EXPECT_FALSE(ParseWorkerLine("not json").ok());
  EXPECT_FALSE(ParseWorkerLine(R"({"event":"block","index":"x"})").ok());
}

}  // namespace
}  // namespace signround::jobs
