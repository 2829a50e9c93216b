// splitmix64: a tiny, fast, seedable generator whose output depends only on
// the seed (not on the LibTorch build), for reproducible test data and sampling.
#pragma once

#include <cstdint>

namespace signround {

// Advances `state` and returns the next 64 random bits.
inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace signround
