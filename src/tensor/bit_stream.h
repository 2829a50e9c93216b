// LSB-first bit streams of small integers packed into 32-bit words, as GPTQ
// and auto_round checkpoints store their codes and zero points (FORMATS.md).
#pragma once

#include <cstdint>

namespace signround {

// Writes `count` `bits`-wide values into `words` (zeroed by the caller) as one
// LSB-first bit stream: value j occupies stream bits [bits*j, bits*(j+1)),
// crossing word boundaries when 32 is not a multiple of `bits`. Stream word w
// goes to words[w * word_stride]; value j is read from values[j * value_stride].
void PackBitStream(const uint8_t* values, int64_t value_stride, int64_t count, int bits,
                   int32_t* words, int64_t word_stride);

// Value j of such a stream.
uint32_t UnpackBitStreamValue(const int32_t* words, int64_t word_stride, int bits, int64_t j);

}  // namespace signround
