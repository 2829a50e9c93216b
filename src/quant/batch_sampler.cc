#include "src/quant/batch_sampler.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "src/common/splitmix64.h"

namespace signround {

BatchSampler::BatchSampler(int64_t n, int64_t batch, uint64_t seed)
    : batch_(std::max<int64_t>(1, std::min(batch, n))), state_(seed), order_(n) {
  std::iota(order_.begin(), order_.end(), 0);
  Shuffle();
}

void BatchSampler::Shuffle() {
  for (size_t i = order_.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(SplitMix64(state_) % i);
    std::swap(order_[i - 1], order_[j]);
  }
  pos_ = 0;
}

std::vector<int64_t> BatchSampler::Next() {
  if (pos_ + static_cast<size_t>(batch_) > order_.size()) Shuffle();
  std::vector<int64_t> out(order_.begin() + pos_, order_.begin() + pos_ + batch_);
  pos_ += static_cast<size_t>(batch_);
  return out;
}

}  // namespace signround
