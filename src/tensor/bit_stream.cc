#include "src/tensor/bit_stream.h"

namespace signround {

void PackBitStream(const uint8_t* values, int64_t value_stride, int64_t count, int bits,
                   int32_t* words, int64_t word_stride) {
  uint64_t acc = 0;  // pending bits, LSB first
  int pending = 0;
  int64_t w = 0;
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  for (int64_t j = 0; j < count; ++j) {
    acc |= (values[j * value_stride] & mask) << pending;
    pending += bits;
    if (pending >= 32) {
      words[w++ * word_stride] = static_cast<int32_t>(static_cast<uint32_t>(acc));
      acc >>= 32;
      pending -= 32;
    }
  }
  if (pending > 0) words[w * word_stride] = static_cast<int32_t>(static_cast<uint32_t>(acc));
}

uint32_t UnpackBitStreamValue(const int32_t* words, int64_t word_stride, int bits, int64_t j) {
  const int64_t bit = j * bits;
  const int64_t w = bit / 32;
  const int shift = static_cast<int>(bit % 32);
  uint64_t v = static_cast<uint32_t>(words[w * word_stride]) >> shift;
  if (shift + bits > 32) {
    v |= static_cast<uint64_t>(static_cast<uint32_t>(words[(w + 1) * word_stride])) << (32 - shift);
  }
  return static_cast<uint32_t>(v & ((uint64_t{1} << bits) - 1));
}

}  // namespace signround
