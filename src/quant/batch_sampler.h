// Seeded sampling of calibration batches: a permutation of the sample
// indices, reshuffled when exhausted (ALGORITHM.md section 3). Its own
// splitmix64 Fisher-Yates, so the order does not depend on the LibTorch build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace signround {

class BatchSampler {
 public:
  // `batch` is clamped to `n`.
  BatchSampler(int64_t n, int64_t batch, uint64_t seed);

  // The next `batch` distinct indices in [0, n).
  std::vector<int64_t> Next();

 private:
  void Shuffle();

  int64_t batch_;
  uint64_t state_;
  std::vector<int64_t> order_;
  size_t pos_ = 0;
};

}  // namespace signround
