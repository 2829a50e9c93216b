// The block registry (src/model/block_registry.h): every supported family has a block.
#include "src/model/block_registry.h"

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "src/model/blocks/blocks.h"
#include "src/model/family.h"

namespace signround {
namespace {

TEST(BlockRegistry, EveryConfigFamilyHasABlock) {
  for (absl::string_view type : absl::StrSplit(SupportedModelTypes(), ", ")) {
    absl::StatusOr<BlockForwardFn> fn = FindBlockForward(type);
    ASSERT_TRUE(fn.ok()) << type;
    EXPECT_EQ((*FindBlockImpl(type))->load, &LoadBlockWeights) << type;
  }
  absl::StatusOr<BlockForwardFn> none = FindBlockForward("gpt2");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(none.status().message(),
            "model_type 'gpt2' has no block implementation (supported: llama, mistral, qwen2, "
            "qwen3, qwen3_moe, mixtral, gemma3_text, phi3)");
}

}  // namespace
}  // namespace signround
