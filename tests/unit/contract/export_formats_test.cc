#include "src/contract/export_formats.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace signround::contract {
namespace {

TEST(ExportFormats, NamesKindsAndDirectories) {
  absl::StatusOr<ExportFormat> f = FindExportFormat("gguf:q4_1");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->kind, FormatKind::kGguf);
  EXPECT_EQ(f->dir_name, "gguf-q4_1");
  EXPECT_EQ(FindExportFormat("auto_gptq")->kind, FormatKind::kAutoGptq);
  EXPECT_EQ(FindExportFormat("awq").status().message(),
            "'awq' is not one of " + std::string(kExportFormatNames));
  // Every listed name is found.
  for (const char* name :
       {"fake", "auto_round", "auto_gptq", "gguf:q4_0", "gguf:q4_1", "gguf:q8_0"}) {
    EXPECT_TRUE(FindExportFormat(name).ok()) << name;
  }
}

TEST(ExportFormats, ParsesACommaList) {
  absl::StatusOr<std::vector<ExportFormat>> list = ParseExportFormats(" auto_round , gguf:q8_0");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].name, "gguf:q8_0");
  EXPECT_EQ(ParseExportFormats("fake,fake").status().message(), "format 'fake' is listed twice");
  EXPECT_EQ(ParseExportFormats("auto_round,").status().message(),
            "format '' is not one of " + std::string(kExportFormatNames));
}

// ggml's GGML_TYPE_* and llama.cpp's LLAMA_FTYPE_MOSTLY_* (ggml.h, llama.h).
TEST(ExportFormats, GgufTypesMatchLlamaCpp) {
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ4_0).ggml_type, 2u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ4_1).ggml_type, 3u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ8_0).ggml_type, 8u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ4_0).file_type, 2u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ4_1).file_type, 3u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ8_0).file_type, 7u);
  for (GgufFormat f : kGgufFormats) {
    EXPECT_EQ(ParseGgufFormat(GgufFormatOf(f).name), f);
    if (IsKQuantMix(f)) {
      EXPECT_EQ(GgufScheme(f).data_type, GgufFormatOf(f).kquant);
      EXPECT_EQ(GgufFormatForScheme(GgufScheme(f)), std::nullopt);  // no legacy type holds it
    } else {
      EXPECT_EQ(GgufFormatForScheme(GgufScheme(f)), f);
    }
    EXPECT_TRUE(FindExportFormat(GgufFormatOf(f).name).ok()) << GgufFormatOf(f).name;
  }
}

// llama.cpp's LLAMA_FTYPE_MOSTLY_* (include/llama.h) and ggml_type (ggml.h) numbers.
TEST(ExportFormats, KQuantMixesAreLlamaCppsPresets) {
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ2_K).file_type, 10u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ3_K_S).file_type, 11u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ3_K_M).file_type, 12u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ4_K_S).file_type, 14u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ4_K_M).file_type, 15u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ5_K_S).file_type, 16u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ5_K_M).file_type, 17u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ6_K).file_type, 18u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ4_K_M).ggml_type, 12u);
  EXPECT_EQ(GgufFormatOf(GgufFormat::kQ6_K).ggml_type, 14u);
  EXPECT_EQ(GgufScheme(GgufFormat::kQ4_K_M).bits, 4);
  EXPECT_EQ(GgufScheme(GgufFormat::kQ4_K_M).group_size, 32);
  EXPECT_FALSE(GgufScheme(GgufFormat::kQ4_K_M).sym);
  EXPECT_EQ(GgufScheme(GgufFormat::kQ3_K_S).group_size, 16);
  EXPECT_TRUE(GgufScheme(GgufFormat::kQ6_K).sym);
  EXPECT_EQ(KQuantMixOf({"fake", "gguf:q5_k_m"}), GgufFormat::kQ5_K_M);
  EXPECT_EQ(KQuantMixOf({"gguf:q4_0"}), std::nullopt);
  EXPECT_TRUE(CheckFormatScheme("gguf:q2_k", {2, 16, false}).ok());
  EXPECT_EQ(CheckFormatScheme("gguf:q4_k_m", {4, 128, true}).message(),
            "gguf:q4_k_m stores Q4_K (4-bit asymmetric, sub-blocks of 32) layers: leave bits, "
            "group_size and sym unset, or give bits 4, asym, group_size 32; the job has bits 4, "
            "sym, group_size 128");
}

TEST(ExportFormats, WhichSchemeEachGgufTypeHolds) {
  EXPECT_EQ(GgufFormatForScheme({4, 32, true}), GgufFormat::kQ4_0);
  EXPECT_EQ(GgufFormatForScheme({4, 32, false}), GgufFormat::kQ4_1);
  EXPECT_EQ(GgufFormatForScheme({4, 32, false, true}), GgufFormat::kQ4_1);
  EXPECT_EQ(GgufFormatForScheme({8, 32, true}), GgufFormat::kQ8_0);
  EXPECT_EQ(GgufFormatForScheme({8, 32, false}), std::nullopt);
  EXPECT_EQ(GgufFormatForScheme({4, 64, true}), std::nullopt);
  EXPECT_EQ(GgufFormatNeeds(GgufFormat::kQ4_1), "4-bit asymmetric group-size-32");
  EXPECT_TRUE(CheckFormatScheme("gguf:q4_0", {4, 32, true}).ok());
  EXPECT_TRUE(CheckFormatScheme("auto_round", {2, 128, false}).ok());
  EXPECT_EQ(CheckFormatScheme("gguf:q8_0", {4, 128, false}).message(),
            "gguf:q8_0 holds exactly bits 8, sym, group_size 32; the job has bits 4, asym, "
            "group_size 128");
}

TEST(ExportFormats, FloatMinOnlyForGgufQ4_1Layers) {
  const std::vector<ExportFormat> gguf = {*FindExportFormat("gguf:q4_0")};
  const std::vector<ExportFormat> packed = {*FindExportFormat("auto_round")};
  EXPECT_TRUE(UsesFloatMin(gguf, {4, 32, false}));  // a q4_1 layer of a GGUF job
  EXPECT_FALSE(UsesFloatMin(gguf, {4, 32, true}));
  EXPECT_FALSE(UsesFloatMin(gguf, {4, 64, false}));
  EXPECT_FALSE(UsesFloatMin(packed, {4, 32, false}));
  EXPECT_TRUE(HoldsOnlyIntegerZeros(FormatKind::kAutoGptq));
  EXPECT_FALSE(HoldsOnlyIntegerZeros(FormatKind::kGguf));
  EXPECT_FALSE(HoldsOnlyIntegerZeros(FormatKind::kFake));
}

TEST(ExportFormats, ParsesListsAndRefusesUnknownOrRepeated) {
  auto f = ParseExportFormats("auto_round, gguf:q4_0,fake");
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->size(), 3u);
  EXPECT_EQ((*f)[1].kind, FormatKind::kGguf);
  EXPECT_EQ((*f)[1].dir_name, "gguf-q4_0");
  EXPECT_EQ((*f)[2].kind, FormatKind::kFake);
  EXPECT_EQ(ParseExportFormats("auto_awq").status().message(),
            absl::StrCat("format 'auto_awq' is not one of ", kExportFormatNames));
  EXPECT_EQ(ParseExportFormats("auto_gptq,auto_gptq").status().message(),
            "format 'auto_gptq' is listed twice");
}

}  // namespace
}  // namespace signround::contract
