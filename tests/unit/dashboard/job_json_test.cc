// The dashboard API's JSON for jobs and events: proto field names, NaN as null, 64-bit
// seeds as strings, hostile strings kept as data and invalid UTF-8 replaced.
#include "src/dashboard/job_json.h"

#include <cmath>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace signround::dashboard {
namespace {

using nlohmann::json;

jobs::Job SampleJob() {
  jobs::Job job;
  job.id = "j-0123456789abcdef";
  job.tenant = "team-a";
  job.spec.model_uri = "s3://models/llama";
  job.spec.output_uri = "s3://out/llama-w4";
  job.spec.formats = {"auto_round", "gguf:q4_k_m"};
  job.spec.bits = 4;
  job.spec.seed = 18446744073709551615ull;
  job.spec.sym = false;
  job.spec.labels = {{"note", "<img src=x onerror=alert(1)>"}};
  job.state = jobs::JobState::kRunning;
  job.create_time_ms = 1700000000123;
  job.blocks_done = 3;
  job.block_count = 12;
  job.latest_loss = std::nan("");
  job.artifacts = {{"auto_round", "s3://out/llama-w4/model.safetensors", 1234, "ab12"}};
  job.last_sequence = 9;
  job.lease.owner = "host:data/nonce/1";
  return job;
}

TEST(JobJsonTest, HasTheProtoFieldNamesAndStateByName) {
  const json j = JobJson(SampleJob());
  EXPECT_EQ(j["id"], "j-0123456789abcdef");
  EXPECT_EQ(j["tenant"], "team-a");
  EXPECT_EQ(j["state"], "RUNNING");
  EXPECT_EQ(j["create_time_ms"], 1700000000123);
  EXPECT_EQ(j["blocks_done"], 3);
  EXPECT_EQ(j["block_count"], 12);
  EXPECT_EQ(j["last_sequence"], 9);
  EXPECT_EQ(j["spec"]["formats"], json({"auto_round", "gguf:q4_k_m"}));
  EXPECT_EQ(j["spec"]["sym"], false);
  EXPECT_TRUE(j["spec"]["iters"].is_null()) << "unset optional: null, not 0";
  EXPECT_EQ(j["artifacts"], json::parse(R"([{"format":"auto_round",
      "uri":"s3://out/llama-w4/model.safetensors","bytes":1234,"sha256":"ab12"}])"));
  EXPECT_FALSE(j.contains("lease")) << "lease owners are internal";
}

TEST(JobJsonTest, NanIsNullAndTheSeedIsADecimalString) {
  const json j = JobJson(SampleJob());
  EXPECT_TRUE(j["latest_loss"].is_null());
  EXPECT_EQ(j["spec"]["seed"], "18446744073709551615") << "beyond JavaScript's 2^53";
  const std::string text = DumpJson(j);
  EXPECT_EQ(text.find("NaN"), std::string::npos);
  EXPECT_EQ(json::parse(text), j) << "round trip";
}

TEST(JobJsonTest, HostileStringsStayDataAndInvalidUtf8IsReplaced) {
  jobs::Job job = SampleJob();
  job.error = std::string("bad \xff\xfe byte </script>\"");
  const std::string text = DumpJson(JobJson(job));
  const json back = json::parse(text);
  EXPECT_EQ(back["error"], "bad \xEF\xBF\xBD\xEF\xBF\xBD byte </script>\"");
  EXPECT_EQ(back["spec"]["labels"]["note"], "<img src=x onerror=alert(1)>");
}

TEST(JobEventJsonTest, EachKindAsTheProtoOneof) {
  jobs::JobEvent e;
  e.job_id = "j-0123456789abcdef";
  e.sequence = 4;
  e.time_ms = 1700000000999;
  e.attempt = 2;
  e.payload = jobs::StateChange{jobs::JobState::kQueued, jobs::JobState::kRunning, "claimed"};
  json j = JobEventJson(e);
  EXPECT_EQ(j["sequence"], 4);
  EXPECT_EQ(j["time_ms"], 1700000000999);
  EXPECT_EQ(j["attempt"], 2);
  EXPECT_EQ(j["state_change"],
            json({{"from", "QUEUED"}, {"to", "RUNNING"}, {"reason", "claimed"}}));

  jobs::BlockProgress block;
  block.stats.index = 5;
  block.stats.loss_iter0 = 0.25;
  block.stats.loss_best = std::numeric_limits<double>::infinity();
  block.stats.best_iter = 117;
  block.block_count = 12;
  block.resumed = true;
  e.payload = block;
  j = JobEventJson(e);
  EXPECT_FALSE(j.contains("state_change"));
  EXPECT_EQ(j["block_progress"]["block_index"], 5);
  EXPECT_EQ(j["block_progress"]["block_count"], 12);
  EXPECT_EQ(j["block_progress"]["loss_iter0"], 0.25);
  EXPECT_TRUE(j["block_progress"]["best_loss"].is_null());
  EXPECT_EQ(j["block_progress"]["best_iteration"], 117);
  EXPECT_EQ(j["block_progress"]["resumed"], true);

  e.payload = jobs::Artifact{"gguf", "file:///out/m.gguf", 99, "cd34"};
  EXPECT_EQ(JobEventJson(e)["artifact_uploaded"]["artifact"]["uri"], "file:///out/m.gguf");
  e.payload = jobs::JobError{"out of memory", true};
  EXPECT_EQ(JobEventJson(e)["error"], json({{"message", "out of memory"}, {"will_retry", true}}));
}

}  // namespace
}  // namespace signround::dashboard
