// Opening a checkpoint maps its files (src/tensor/mapped_file.h) without reading them: the
// mapping's resident pages grow only by the tensors that are actually touched, and Evict releases
// them. Measured per mapping from /proc/self/smaps, so library code paged in by LibTorch does not
// blur the figure.
#include <gtest/gtest.h>

#include "src/common/proc_stats.h"
#include "src/model/checkpoint.h"
#include "src/model/random_checkpoint.h"
#include "src/tensor/torch_tensor.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

constexpr uint64_t kMiB = 1 << 20;

TEST(LazyMapping, OpeningAndReadingOneTensorLeavesTheRestUnmapped) {
  testing::TempDir dir;
  RandomCheckpointOptions o;
  o.hidden_size = 512;
  o.intermediate_size = 1408;
  o.num_layers = 4;
  o.num_heads = 8;
  o.num_kv_heads = 8;
  o.vocab_size = 4096;
  o.dtype = DType::kF32;
  std::string model = dir.File("model");
  ASSERT_TRUE(WriteRandomCheckpoint(model, o).ok());

  auto ckpt = Checkpoint::Open(model);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const SafetensorsFile& file = *ckpt->files()[0];
  ASSERT_GT(file.file_size(), 60 * kMiB);
  const void* mapping = file.mapping()->data();
  uint64_t opened = MappingResidentBytes(mapping);
  EXPECT_GT(opened, 0u) << "the header pages were read";
  EXPECT_LT(opened, 1 * kMiB) << "opening must not read tensor data";

  // One 1 MiB tensor, every element touched.
  auto w = ckpt->Find("model.layers.2.self_attn.q_proj.weight");
  ASSERT_TRUE(w.ok());
  at::Tensor t = *LoadTensor(w->file, *w->entry);
  EXPECT_GT(t.abs().sum().item<double>(), 0.0);
  uint64_t read = MappingResidentBytes(mapping);
  EXPECT_GE(read - opened, w->entry->nbytes()) << "the tensor's pages are resident";
  EXPECT_LT(read - opened, w->entry->nbytes() + 1 * kMiB) << "and little else";
  EXPECT_LT(read, file.file_size() / 20);

  // Evicting the tensor releases its pages; reading again faults them back in
  // with the same values.
  at::Tensor copy = t.clone();
  file.Evict(*w->entry);
  // Only boundary pages and fault-around neighbours may stay.
  EXPECT_LT(MappingResidentBytes(mapping), opened + w->entry->nbytes() / 4)
      << "the tensor's pages are gone";
  EXPECT_TRUE(at::equal(*LoadTensor(w->file, *w->entry), copy));
}

}  // namespace
}  // namespace signround
