// Export format lists as src/export/export_format.h takes them (contract::ParseExportFormats).
#include "src/export/export_format.h"

#include <gtest/gtest.h>

namespace signround {
namespace {

TEST(ExportFormats, ParsesListsAndRefusesUnknownOrRepeated) {
  auto f = ParseExportFormats("auto_round, gguf:q4_0,fake");
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->size(), 3u);
  EXPECT_EQ((*f)[1].kind, FormatKind::kGguf);
  EXPECT_EQ((*f)[1].dir_name, "gguf-q4_0");
  EXPECT_EQ((*f)[2].kind, FormatKind::kFake);
  EXPECT_EQ(ParseExportFormats("auto_awq").status().message(),
            "format 'auto_awq' is not one of fake, auto_round, auto_gptq, gguf:q4_0, gguf:q4_1, "
            "gguf:q8_0");
  EXPECT_EQ(ParseExportFormats("auto_gptq,auto_gptq").status().message(),
            "format 'auto_gptq' is listed twice");
}

}  // namespace
}  // namespace signround
