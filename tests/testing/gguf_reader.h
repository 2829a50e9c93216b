// An independent GGUF reader for tests: it shares no code with the writer in
// src/export. It parses the header, metadata (every value type), tensor infos,
// checks alignment, padding and offsets, and dequantizes F32 / F16 / Q4_0 /
// Q4_1 / Q8_0 tensors from FORMATS.md's block layouts. Errors throw
// std::runtime_error (a test that reads a broken file fails loudly).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace signround::testing::gguf {

enum : uint32_t { kU8, kI8, kU16, kI16, kU32, kI32, kF32, kBool, kStr, kArr, kU64, kI64, kF64 };
enum : uint32_t { kTF32 = 0, kTF16 = 1, kTQ4_0 = 2, kTQ4_1 = 3, kTQ8_0 = 8 };

struct Value {
  uint32_t type = 0;
  uint64_t u = 0;  // unsigned and bool
  int64_t i = 0;   // signed
  double f = 0;    // f32 / f64
  uint32_t f32_bits = 0;
  std::string s;
  uint32_t elem_type = 0;  // arrays
  std::vector<Value> items;
};

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};

struct GgufContents {
  uint32_t version = 0;
  std::map<std::string, Value> kv;
  std::vector<TensorInfo> tensors;
  uint64_t data_start = 0;
  std::string bytes;  // the whole file

  const TensorInfo& Tensor(const std::string& name) const {
    for (const TensorInfo& t : tensors) {
      if (t.name == name) return t;
    }
    throw std::runtime_error("no tensor " + name);
  }
  absl::string_view Data(const TensorInfo& t, uint64_t size) const {
    return absl::string_view(bytes).substr(data_start + t.offset, size);
  }
};

class Cursor {
 public:
  explicit Cursor(const std::string& b) : b_(b) {}
  template <typename T>
  T Get() {
    if (b_.size() - pos_ < sizeof(T)) throw std::runtime_error("read past the end");
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string Str() {
    const uint64_t n = Get<uint64_t>();
    if (b_.size() - pos_ < n) throw std::runtime_error("string past the end");
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  size_t pos() const { return pos_; }

 private:
  const std::string& b_;
  size_t pos_ = 0;
};

inline Value ReadValue(Cursor& c, uint32_t type, bool in_array = false) {
  Value v;
  v.type = type;
  switch (type) {
    case kU8:
      v.u = c.Get<uint8_t>();
      break;
    case kI8:
      v.i = c.Get<int8_t>();
      break;
    case kU16:
      v.u = c.Get<uint16_t>();
      break;
    case kI16:
      v.i = c.Get<int16_t>();
      break;
    case kU32:
      v.u = c.Get<uint32_t>();
      break;
    case kI32:
      v.i = c.Get<int32_t>();
      break;
    case kF32: {
      v.f32_bits = c.Get<uint32_t>();
      float f;
      std::memcpy(&f, &v.f32_bits, 4);
      v.f = f;
      break;
    }
    case kBool: {
      v.u = c.Get<uint8_t>();
      if (v.u > 1) throw std::runtime_error("bool is not 0 or 1");
      break;
    }
    case kStr:
      v.s = c.Str();
      break;
    case kU64:
      v.u = c.Get<uint64_t>();
      break;
    case kI64:
      v.i = c.Get<int64_t>();
      break;
    case kF64:
      v.f = c.Get<double>();
      break;
    case kArr: {
      if (in_array) throw std::runtime_error("nested array");
      v.elem_type = c.Get<uint32_t>();
      const uint64_t n = c.Get<uint64_t>();
      for (uint64_t k = 0; k < n; ++k) v.items.push_back(ReadValue(c, v.elem_type, true));
      break;
    }
    default:
      throw std::runtime_error("bad value type " + std::to_string(type));
  }
  return v;
}

inline uint64_t BlockElems(uint32_t type) { return type == kTF32 || type == kTF16 ? 1 : 32; }
inline uint64_t BlockBytes(uint32_t type) {
  switch (type) {
    case kTF32:
      return 4;
    case kTF16:
      return 2;
    case kTQ4_0:
      return 18;
    case kTQ4_1:
      return 20;
    case kTQ8_0:
      return 34;
  }
  throw std::runtime_error("unknown ggml type " + std::to_string(type));
}
inline uint64_t TensorBytes(const TensorInfo& t) {
  uint64_t n = 1;
  for (uint64_t d : t.ne) n *= d;
  if (t.ne[0] % BlockElems(t.type) != 0) throw std::runtime_error("row not whole blocks");
  return n / BlockElems(t.type) * BlockBytes(t.type);
}

// Parses a whole GGUF file and checks its layout: alignment of the data
// section and of every offset, no overlaps, the data section's exact size.
inline GgufContents ReadGguf(const std::string& path) {
  GgufContents g;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("cannot open " + path);
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) g.bytes.append(buf, n);
  std::fclose(f);
  Cursor c(g.bytes);
  if (c.Get<uint32_t>() != 0x46554747u) throw std::runtime_error("bad magic");  // "GGUF"
  g.version = c.Get<uint32_t>();
  const uint64_t n_tensors = c.Get<uint64_t>();
  const uint64_t n_kv = c.Get<uint64_t>();
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.Str();
    const uint32_t type = c.Get<uint32_t>();
    if (!g.kv.emplace(key, ReadValue(c, type)).second) throw std::runtime_error("dup " + key);
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t;
    t.name = c.Str();
    const uint32_t n_dims = c.Get<uint32_t>();
    if (n_dims < 1 || n_dims > 4) throw std::runtime_error("bad n_dims");
    for (uint32_t d = 0; d < n_dims; ++d) t.ne.push_back(c.Get<uint64_t>());
    t.type = c.Get<uint32_t>();
    t.offset = c.Get<uint64_t>();
    g.tensors.push_back(t);
  }
  uint64_t alignment = 32;
  if (g.kv.count("general.alignment")) alignment = g.kv["general.alignment"].u;
  g.data_start = (c.pos() + alignment - 1) / alignment * alignment;
  for (size_t p = c.pos(); p < g.data_start; ++p) {
    if (g.bytes[p] != 0) throw std::runtime_error("non-zero padding after the infos");
  }
  uint64_t expected_offset = 0;
  for (const TensorInfo& t : g.tensors) {
    if (t.offset % alignment != 0) throw std::runtime_error(t.name + ": unaligned offset");
    if (t.offset != expected_offset) throw std::runtime_error(t.name + ": not packed");
    expected_offset = (t.offset + TensorBytes(t) + alignment - 1) / alignment * alignment;
  }
  if (g.bytes.size() != g.data_start + expected_offset) {
    throw std::runtime_error("data section is " + std::to_string(g.bytes.size() - g.data_start) +
                             " bytes, expected " + std::to_string(expected_offset));
  }
  return g;
}

// IEEE half -> float, written independently of src/tensor/half.h.
inline double Half(uint16_t h) {
  const int sign = h >> 15 ? -1 : 1;
  const int exp = (h >> 10) & 31;
  const int mant = h & 1023;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(1024 + mant, exp - 25);
}
inline uint16_t U16(absl::string_view b, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[at]) |
                               (static_cast<uint8_t>(b[at + 1]) << 8));
}

// A tensor's values in GGUF order (row = ne[1] index, ne[0] values per row).
inline std::vector<double> Dequantize(const GgufContents& g, const TensorInfo& t) {
  const absl::string_view d = g.Data(t, TensorBytes(t));
  std::vector<double> out;
  const uint64_t blocks = d.size() / BlockBytes(t.type);
  for (uint64_t b = 0; b < blocks; ++b) {
    const size_t at = b * BlockBytes(t.type);
    switch (t.type) {
      case kTF32: {
        float f;
        std::memcpy(&f, d.data() + at, 4);
        out.push_back(f);
        break;
      }
      case kTF16:
        out.push_back(Half(U16(d, at)));
        break;
      case kTQ4_0:
      case kTQ4_1: {
        const bool q41 = t.type == kTQ4_1;
        const double scale = Half(U16(d, at));
        const double m = q41 ? Half(U16(d, at + 2)) : 0;
        const size_t qs = at + (q41 ? 4 : 2);
        double x[32];
        for (int j = 0; j < 16; ++j) {
          const int byte = static_cast<uint8_t>(d[qs + j]);
          x[j] = q41 ? (byte & 15) * scale + m : ((byte & 15) - 8) * scale;
          x[j + 16] = q41 ? (byte >> 4) * scale + m : ((byte >> 4) - 8) * scale;
        }
        out.insert(out.end(), x, x + 32);
        break;
      }
      case kTQ8_0: {
        const double scale = Half(U16(d, at));
        for (int j = 0; j < 32; ++j) out.push_back(static_cast<int8_t>(d[at + 2 + j]) * scale);
        break;
      }
    }
  }
  return out;
}

// The Hugging Face row held by GGUF row r of a permuted q/k tensor, by hand:
// GGUF rows are [n_head, half, 2] of HF rows [n_head, 2, half].
inline int64_t HfRow(int64_t r, int64_t rows, int64_t n_head) {
  const int64_t per_head = rows / n_head, half = per_head / 2;
  const int64_t h = r / per_head, i = (r % per_head) / 2, j = r % 2;
  return h * per_head + j * half + i;
}

}  // namespace signround::testing::gguf
