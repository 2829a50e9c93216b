// Job request validation and the effective settings resolved from it.
#include "src/jobs/job_validation.h"

#include <gtest/gtest.h>

#include <cmath>

#include "absl/strings/match.h"
#include "src/store/job_json.h"
#include "tests/unit/jobs/valid_spec.h"

namespace signround::jobs {
namespace {

const std::vector<std::string> kCpu = {"cpu"};

// The error names `field` first.
void ExpectInvalid(const JobSpec& spec, const std::string& field,
                   const std::vector<std::string>& devices = kCpu) {
  absl::Status s = ValidateJobSpec(spec, devices);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
  EXPECT_TRUE(absl::StartsWith(s.message(), field + ": ")) << s.message();
}

TEST(JobValidation, AcceptsAValidSpecAndResolvesDefaults) {
  JobSpec spec = ValidSpec();
  ASSERT_TRUE(ValidateJobSpec(spec, kCpu).ok());
  absl::StatusOr<EffectiveSettings> s = ResolveSettings(spec);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->recipe, "default");
  EXPECT_EQ(s->formats, std::vector<std::string>{"auto_round"});
  EXPECT_EQ(s->bits, 4);
  EXPECT_EQ(s->group_size, 128);
  EXPECT_TRUE(s->sym);
  EXPECT_EQ(s->iters, 200);
  EXPECT_EQ(s->nsamples, 128);
  EXPECT_EQ(s->seed, 42u);
  EXPECT_EQ(s->packed_dtype, "float16");
  EXPECT_FALSE(s->allow_split_fused);
  EXPECT_FALSE(s->allow_gguf_without_vocab);
  const nlohmann::json recorded = s->ToJson();
  EXPECT_EQ(recorded.at("packed_dtype"), "float16");
  // The waivers are not settings: the spec records them.
  EXPECT_FALSE(recorded.contains("allow_split_fused"));
  EXPECT_FALSE(recorded.contains("allow_gguf_without_vocab"));
}

TEST(JobValidation, PackedDtypeIsCaseInsensitiveAndWaiversPassThrough) {
  JobSpec spec = ValidSpec();
  spec.packed_dtype = "BFloat16";
  spec.allow_split_fused = true;
  spec.allow_gguf_without_vocab = true;
  ASSERT_TRUE(ValidateJobSpec(spec, kCpu).ok()) << ValidateJobSpec(spec, kCpu);
  EffectiveSettings s = *ResolveSettings(spec);
  EXPECT_EQ(s.packed_dtype, "bfloat16");
  EXPECT_EQ(s.ToJson().at("packed_dtype"), "bfloat16");
  EXPECT_TRUE(s.allow_split_fused);
  EXPECT_TRUE(s.allow_gguf_without_vocab);
  spec.packed_dtype = "FLOAT16";
  EXPECT_EQ(ResolveSettings(spec)->packed_dtype, "float16");

  for (const char* bad : {"float32", "fp16", "bf16", " float16", "half"}) {
    spec.packed_dtype = bad;
    absl::Status st = ValidateJobSpec(spec, kCpu);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StartsWith(st.message(), "spec.packed_dtype: '")) << st;
    EXPECT_TRUE(absl::StrContains(st.message(), "is not float16 or bfloat16")) << st;
  }
}

TEST(JobJson, NewFieldsRoundTripAndOldRowsLoadWithDefaults) {
  JobSpec spec = ValidSpec();
  spec.allow_split_fused = true;
  spec.allow_gguf_without_vocab = true;
  spec.packed_dtype = "bfloat16";
  absl::StatusOr<JobSpec> back = JobSpecFromJson(JobSpecToJson(spec), "jobs.spec");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->allow_split_fused);
  EXPECT_TRUE(back->allow_gguf_without_vocab);
  EXPECT_EQ(back->packed_dtype, "bfloat16");
  EXPECT_EQ(JobSpecToJson(*back), JobSpecToJson(spec));

  // A row stored before the keys existed.
  nlohmann::json old = JobSpecToJson(ValidSpec());
  old.erase("allow_split_fused");
  old.erase("allow_gguf_without_vocab");
  old.erase("packed_dtype");
  back = JobSpecFromJson(old, "jobs.spec");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->allow_split_fused);
  EXPECT_FALSE(back->allow_gguf_without_vocab);
  EXPECT_EQ(back->packed_dtype, "");
  EXPECT_EQ(ResolveSettings(*back)->packed_dtype, "float16");

  nlohmann::json wrong = JobSpecToJson(ValidSpec());
  wrong["allow_split_fused"] = "yes";
  EXPECT_EQ(JobSpecFromJson(wrong, "jobs.spec").status().code(), absl::StatusCode::kDataLoss);
}

TEST(JobValidation, RecipeThenExplicitSettings) {
  JobSpec spec = ValidSpec();
  spec.recipe = "light";
  spec.nsamples = 64;
  spec.iters = 0;
  spec.sym = false;
  spec.formats = {"GGUF:Q4_1", "Fake"};
  spec.group_size = 32;
  ASSERT_TRUE(ValidateJobSpec(spec, kCpu).ok()) << ValidateJobSpec(spec, kCpu);
  EffectiveSettings s = *ResolveSettings(spec);
  EXPECT_EQ(s.iters, 0);         // explicit 0 wins over light's 50
  EXPECT_DOUBLE_EQ(s.lr, 5e-3);  // from the recipe
  EXPECT_EQ(s.nsamples, 64);
  EXPECT_FALSE(s.sym);
  EXPECT_EQ(s.formats, (std::vector<std::string>{"gguf:q4_1", "fake"}));
}

// GGUF's Q4_1 layers carry a real-valued minimum that packed formats cannot hold.
TEST(JobValidation, GgufQ4_1AndPackedFormatsAreSeparateJobs) {
  JobSpec spec = ValidSpec();
  spec.sym = false;
  spec.group_size = 32;
  spec.formats = {"gguf:q4_1", "fake", "auto_gptq"};
  absl::Status s = ValidateJobSpec(spec, kCpu);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(s.message(),
                               "spec.formats[2]: auto_gptq cannot be written with "
                               "gguf:q4_1 in one job"))
      << s;
  spec.formats = {"gguf:q4_1", "fake"};
  EXPECT_TRUE(ValidateJobSpec(spec, kCpu).ok());
  spec.sym = true;  // a symmetric job's GGUF (Q4_0) and packed formats share their codes
  spec.formats = {"gguf:q4_0", "auto_round"};
  EXPECT_TRUE(ValidateJobSpec(spec, kCpu).ok());
}

// A k-quant mix sets the scheme the request leaves unset, refuses another, and is
// written alone (with fake), without layer overrides.
TEST(JobValidation, KQuantMixes) {
  JobSpec spec = ValidSpec();
  spec.formats = {"gguf:q4_k_m", "fake"};
  ASSERT_TRUE(ValidateJobSpec(spec, kCpu).ok()) << ValidateJobSpec(spec, kCpu);
  EffectiveSettings s = *ResolveSettings(spec);
  EXPECT_EQ(s.bits, 4);
  EXPECT_EQ(s.group_size, 32);
  EXPECT_FALSE(s.sym);
  spec.group_size = 128;
  absl::Status st = ValidateJobSpec(spec, kCpu);
  EXPECT_TRUE(absl::StartsWith(st.message(), "spec.formats[0]: gguf:q4_k_m stores Q4_K")) << st;
  spec.group_size = 0;
  spec.formats = {"gguf:q4_k_m", "auto_round"};
  st = ValidateJobSpec(spec, kCpu);
  EXPECT_TRUE(absl::StartsWith(st.message(),
                               "spec.formats[1]: auto_round cannot be written with gguf:q4_k_m"))
      << st;
  spec.formats = {"gguf:q2_k"};
  spec.layer_overrides = {{"mlp", 4, {}, {}}};
  st = ValidateJobSpec(spec, kCpu);
  EXPECT_TRUE(absl::StartsWith(st.message(),
                               "spec.layer_overrides: are not supported with "
                               "gguf:q2_k"))
      << st;
}

TEST(JobValidation, NamesTheBadField) {
  JobSpec s = ValidSpec();
  s.model_uri = "";
  ExpectInvalid(s, "spec.model_uri");
  s = ValidSpec();
  s.output_uri = "file://host/x";
  ExpectInvalid(s, "spec.output_uri");
  s = ValidSpec();
  s.bits = 5;
  ExpectInvalid(s, "spec.bits");
  s = ValidSpec();
  s.group_size = 48;
  ExpectInvalid(s, "spec.group_size");
  s = ValidSpec();
  s.lr = std::nan("");
  ExpectInvalid(s, "spec.lr");
  s = ValidSpec();
  s.minmax_lr = -1;
  ExpectInvalid(s, "spec.minmax_lr");
  s = ValidSpec();
  s.iters = -1;
  ExpectInvalid(s, "spec.iters");
  s = ValidSpec();
  s.formats = {"auto_round", "auto_round"};
  ExpectInvalid(s, "spec.formats[1]");
  s = ValidSpec();
  s.formats = {"gguf:q4_0"};  // needs group_size 32
  ExpectInvalid(s, "spec.formats[0]");
  s = ValidSpec();
  s.calibration_uri = "";
  ExpectInvalid(s, "spec.calibration_uri");
  s.recipe = "rtn";  // RTN needs no calibration
  EXPECT_TRUE(ValidateJobSpec(s, kCpu).ok());
  s.scale_search = true;  // but the scale search weighs the layers' inputs
  ExpectInvalid(s, "spec.calibration_uri");
  s.scale_search = std::nullopt;
  s.recipe = "opt_rtn";
  ExpectInvalid(s, "spec.calibration_uri");
  s.scale_search = false;  // opt_rtn without its search is RTN
  EXPECT_TRUE(ValidateJobSpec(s, kCpu).ok());
  s.target_bits = 3;  // mixed bits measure each layer on the calibration data
  ExpectInvalid(s, "spec.calibration_uri");
  s.target_bits = 0;
  s.teq_iters = 10;  // TEQ trains on the block loss
  ExpectInvalid(s, "spec.calibration_uri");
  s = ValidSpec();
  s.teq_iters = -1;
  ExpectInvalid(s, "spec.teq_iters");
  s.teq_iters = 100001;
  ExpectInvalid(s, "spec.teq_iters");
  s.teq_iters = 100000;
  EXPECT_TRUE(ValidateJobSpec(s, kCpu).ok());
  s = ValidSpec();
  s.target_bits = 1;
  ExpectInvalid(s, "spec.target_bits");
  s.target_bits = std::nan("");
  ExpectInvalid(s, "spec.target_bits");
  s.target_bits = 3;
  s.scheme_candidates = {"W2G32", "W4G32", "banana"};
  ExpectInvalid(s, "spec.scheme_candidates[2]");
  s.scheme_candidates = std::vector<std::string>(9, "W2G32");
  ExpectInvalid(s, "spec.scheme_candidates");
  s.scheme_candidates = {"W2G32", "W4G32"};
  EXPECT_TRUE(ValidateJobSpec(s, kCpu).ok());
  s = ValidSpec();
  s.recipe = "fast";
  ExpectInvalid(s, "spec.recipe");
  s = ValidSpec();
  s.layer_overrides = {{"mlp", 4, {}, {}}, {"(unclosed", 4, {}, {}}};
  ExpectInvalid(s, "spec.layer_overrides[1].pattern");
  s = ValidSpec();
  s.layer_overrides = {{"mlp", 5, {}, {}}};
  ExpectInvalid(s, "spec.layer_overrides[0].bits");
  s = ValidSpec();
  s.device = "cuda:0";
  ExpectInvalid(s, "spec.device");  // only a cpu slot here
  EXPECT_TRUE(ValidateJobSpec(s, {"cpu", "cuda:0"}).ok());
  s = ValidSpec();
  s.labels = {{"Bad Key", "v"}};
  ExpectInvalid(s, "spec.labels['Bad Key']");
  s = ValidSpec();
  s.labels = {{"team", std::string("\xff\xfe")}};
  ExpectInvalid(s, "spec.labels['team']");
  s = ValidSpec();
  s.idempotency_key = std::string(129, 'k');
  ExpectInvalid(s, "spec.idempotency_key");
  s = ValidSpec();
  s.priority = 1001;
  ExpectInvalid(s, "spec.priority");
  s = ValidSpec();
  s.packed_dtype = "float32";
  ExpectInvalid(s, "spec.packed_dtype");
}

TEST(JobValidation, JobIds) {
  EXPECT_TRUE(ValidateJobId("j-0123456789abcdef").ok());
  for (const char* bad : {"", "j-", "j-0123456789ABCDEF", "x-0123456789abcdef",
                          "j-0123456789abcdef0", "../etc/passwd"}) {
    EXPECT_EQ(ValidateJobId(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(JobValidation, DevicePreferences) {
  EXPECT_TRUE(DeviceAccepts("cpu", ""));
  EXPECT_TRUE(DeviceAccepts("cuda:1", "any"));
  EXPECT_TRUE(DeviceAccepts("cuda:1", "cuda"));
  EXPECT_FALSE(DeviceAccepts("cpu", "cuda"));
  EXPECT_TRUE(DeviceAccepts("cuda:1", "cuda:1"));
  EXPECT_FALSE(DeviceAccepts("cuda:0", "cuda:1"));
}

}  // namespace
}  // namespace signround::jobs
