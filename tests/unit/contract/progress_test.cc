#include "src/contract/progress.h"

#include <gtest/gtest.h>

#include <cmath>

namespace signround::contract {
namespace {

TEST(Progress, BlockEventRoundTripsAndNaNIsNull) {
  ProgressEvent e{"block", {{3, 7, 0.5, std::nan(""), 12, 1.25}, 8, true}, {{"calibrated", true}}};
  const std::string line = ProgressEventLine(e);
  EXPECT_EQ(line, R"({"best_iter":12,"block_count":8,"calibrated":true,"event":"block","index":3,)"
                  R"("layers_quantized":7,"loss_best":null,"loss_iter0":0.5,"resumed":true,)"
                  R"("seconds":1.25})");
  absl::StatusOr<ProgressEvent> back = ParseProgressEventLine(line);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->kind, "block");
  EXPECT_EQ(back->block.stats.index, 3);
  EXPECT_EQ(back->block.stats.layers_quantized, 7);
  EXPECT_EQ(back->block.stats.loss_iter0, 0.5);
  EXPECT_TRUE(std::isnan(back->block.stats.loss_best));
  EXPECT_EQ(back->block.stats.best_iter, 12);
  EXPECT_EQ(back->block.block_count, 8);
  EXPECT_TRUE(back->block.resumed);
  EXPECT_EQ(back->detail, (nlohmann::json{{"calibrated", true}}));
}

TEST(Progress, OtherEventsCarryDetail) {
  ProgressEvent e{"export", {{}, 4, false}, {{"format", "fake"}, {"dir", "fake"}}};
  const std::string line = ProgressEventLine(e);
  EXPECT_EQ(line, R"({"block_count":4,"detail":{"dir":"fake","format":"fake"},"event":"export"})");
  absl::StatusOr<ProgressEvent> back = ParseProgressEventLine(line);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->kind, "export");
  EXPECT_EQ(back->block.block_count, 4);
  EXPECT_EQ(back->detail["format"], "fake");
}

TEST(Progress, RejectsGarbage) {
  EXPECT_FALSE(ParseProgressEventLine("").ok());
  EXPECT_FALSE(ParseProgressEventLine("[1]").ok());
  EXPECT_FALSE(ParseProgressEventLine(R"({"event":3})").ok());
  EXPECT_FALSE(ParseProgressEventLine(R"({"event":"block","index":1})").ok());
  EXPECT_FALSE(ParseProgressEventLine(R"({"event":"block","block_count":2,"index":"x",)"
                                      R"("layers_quantized":1,"loss_iter0":0,"loss_best":0,)"
                                      R"("best_iter":0,"seconds":0})")
                   .ok());
}

TEST(Progress, BlockStatsJsonIsTheStoredShape) {
  BlockStats s{2, 7, 0.25, 0.125, 3, 0.5};
  nlohmann::json j = BlockStatsToJson(s);
  EXPECT_EQ(j.size(), 6u);
  absl::StatusOr<BlockStats> back = BlockStatsFromJson(j, "b");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->loss_best, 0.125);
  EXPECT_EQ(back->best_iter, 3);
  EXPECT_FALSE(back->teq);
  // A TEQ block's losses come back; a malformed "teq" is an error.
  s.teq = BlockStats::Teq{0.5, 0.375, true, {"input_layernorm", "experts"}, {}};
  j = BlockStatsToJson(s);
  EXPECT_EQ(j["teq"], nlohmann::json::parse(R"({"loss_rtn": 0.5, "loss": 0.375, "kept": true,
                                                "units": ["input_layernorm", "experts"]})"));
  back = BlockStatsFromJson(j, "b");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(back->teq);
  EXPECT_EQ(back->teq->loss, 0.375);
  EXPECT_TRUE(back->teq->kept);
  EXPECT_EQ(back->teq->units, (std::vector<std::string>{"input_layernorm", "experts"}));
  EXPECT_FALSE(back->teq->tuned);
  // TEQ + SignRound's two tuned losses come back; one without the other is an error.
  s.teq->tuned = BlockStats::Teq::Tuned{0.25, 0.1875};
  j = BlockStatsToJson(s);
  EXPECT_EQ(j["teq"]["tuned_loss_without"], 0.25);
  EXPECT_EQ(j["teq"]["tuned_loss"], 0.1875);
  back = BlockStatsFromJson(j, "b");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(back->teq->tuned);
  EXPECT_EQ(back->teq->tuned->loss_without, 0.25);
  EXPECT_EQ(back->teq->tuned->loss, 0.1875);
  j["teq"].erase("tuned_loss_without");
  EXPECT_FALSE(BlockStatsFromJson(j, "b").ok());
  j["teq"]["tuned_loss_without"] = "low";
  EXPECT_FALSE(BlockStatsFromJson(j, "b").ok());
  j["teq"].erase("tuned_loss_without");
  j["teq"].erase("tuned_loss");
  // What an earlier version wrote, without "units", still reads.
  j["teq"].erase("units");
  back = BlockStatsFromJson(j, "b");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->teq->units.empty());
  j["teq"]["units"] = {1, 2};
  EXPECT_FALSE(BlockStatsFromJson(j, "b").ok());
  j["teq"]["units"] = "input_layernorm";
  EXPECT_FALSE(BlockStatsFromJson(j, "b").ok());
  j["teq"] = {{"loss_rtn", 1}, {"loss", 1}};
  EXPECT_FALSE(BlockStatsFromJson(j, "b").ok());
  j["teq"] = 3;
  EXPECT_FALSE(BlockStatsFromJson(j, "b").ok());
  j.erase("teq");
  j.erase("best_iter");
  EXPECT_FALSE(BlockStatsFromJson(j, "b").ok());
}

}  // namespace
}  // namespace signround::contract
