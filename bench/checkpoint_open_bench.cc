// Opening a large checkpoint is lazy: prints the time to open (median of
// several opens) and the resident memory before and after reading one tensor,
// next to the checkpoint size.
//
//   build/bin/bench_checkpoint_open [--size-gb 2.2] [--dir /var/tmp] [--model DIR]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "CLI/CLI.hpp"
#include "src/common/proc_stats.h"
#include "src/model/checkpoint.h"
#include "src/model/random_checkpoint.h"
#include "src/tensor/torch_tensor.h"

namespace {

using signround::Checkpoint;

double MiB(uint64_t bytes) { return bytes / 1048576.0; }

// Resident bytes of all the checkpoint's file mappings.
uint64_t MappedResident(const Checkpoint& ckpt) {
  uint64_t total = 0;
  for (const auto& f : ckpt.files()) total += signround::MappingResidentBytes(f->mapping()->data());
  return total;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// A Llama-shaped bf16 checkpoint of about `gb` GB (hidden 2048, 16 heads).
signround::RandomCheckpointOptions OptionsForSize(double gb) {
  signround::RandomCheckpointOptions o;
  o.hidden_size = 2048;
  o.intermediate_size = 5632;
  o.num_heads = 16;
  o.num_kv_heads = 16;
  o.vocab_size = 32000;
  o.dtype = signround::DType::kBF16;
  double per_layer = 2.0 * (4.0 * 2048 * 2048 + 3.0 * 2048 * 5632);
  double embeddings = 2.0 * 2 * 32000 * 2048;
  o.num_layers =
      std::max<int64_t>(1, static_cast<int64_t>((gb * 1e9 - embeddings) / per_layer) + 1);
  o.shards = 2;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Checkpoint open/read benchmark"};
  double size_gb = 2.2;
  std::string dir = std::filesystem::temp_directory_path().string();
  std::string model;
  int opens = 5;
  app.add_option("--size-gb", size_gb, "Size of the generated checkpoint")->capture_default_str();
  app.add_option("--dir", dir, "Where to generate it")->capture_default_str();
  app.add_option("--model", model, "Use this checkpoint instead of generating one");
  app.add_option("--opens", opens, "Number of timed opens")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::string generated;
  if (model.empty()) {
    generated = dir + "/signround-bench-open-" + std::to_string(::getpid());
    auto t0 = std::chrono::steady_clock::now();
    absl::Status s = signround::WriteRandomCheckpoint(generated, OptionsForSize(size_gb));
    if (!s.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    std::printf("generated %s in %.1f s\n", generated.c_str(), Seconds(t0));
    model = generated;
  }

  signround::ProcessMemory before = signround::ReadProcessMemory();
  std::vector<double> times;
  absl::StatusOr<Checkpoint> ckpt;
  for (int i = 0; i < opens; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    ckpt = Checkpoint::Open(model);
    times.push_back(Seconds(t0));
    if (!ckpt.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(ckpt.status().message()).c_str());
      return 1;
    }
  }
  std::sort(times.begin(), times.end());
  signround::ProcessMemory opened = signround::ReadProcessMemory();
  uint64_t mapped_opened = MappedResident(*ckpt);
  uint64_t bytes = 0;
  for (const auto& f : ckpt->files()) bytes += f->file_size();

  auto w = ckpt->Find("model.layers.0.self_attn.q_proj.weight");
  at::Tensor t = *signround::LoadTensor(w->file, *w->entry);
  double checksum = t.to(at::kFloat).abs().sum().item<double>();
  signround::ProcessMemory read = signround::ReadProcessMemory();
  uint64_t mapped_read = MappedResident(*ckpt);

  std::printf("checkpoint:               %.2f GB in %zu files, %zu tensors\n", bytes / 1e9,
              ckpt->files().size(), ckpt->tensors().size());
  std::printf("open (median of %d):      %.1f ms (min %.1f, max %.1f)\n", opens,
              times[times.size() / 2] * 1e3, times.front() * 1e3, times.back() * 1e3);
  std::printf("process rss:              %.1f MiB before open, %.1f after open, %.1f after read\n",
              MiB(before.rss_bytes), MiB(opened.rss_bytes), MiB(read.rss_bytes));
  std::printf("read one tensor:          %s, %.1f MiB (checksum %.3f)\n",
              signround::DescribeTensor(*w->entry).c_str(), MiB(w->entry->nbytes()), checksum);
  std::printf("checkpoint pages resident: %.2f MiB after open, %.2f MiB after read\n",
              MiB(mapped_opened), MiB(mapped_read));
  std::printf("resident / checkpoint:    %.4f\n", static_cast<double>(mapped_read) / bytes);
  if (!generated.empty()) std::filesystem::remove_all(generated);
  return 0;
}
