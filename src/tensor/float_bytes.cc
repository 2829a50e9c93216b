#include "src/tensor/float_bytes.h"

#include <cstring>

#include "src/tensor/half.h"

namespace signround {
namespace {

template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

std::vector<float> FloatsFromBytes(absl::string_view bytes, DType dtype) {
  const size_t size = DTypeSize(dtype);
  std::vector<float> out(bytes.size() / size);
  const char* p = bytes.data();
  for (size_t i = 0; i < out.size(); ++i, p += size) {
    switch (dtype) {
      case DType::kF16:
        out[i] = F16ToFloat(Load<uint16_t>(p));
        break;
      case DType::kBF16:
        out[i] = BF16ToFloat(Load<uint16_t>(p));
        break;
      case DType::kF64:
        out[i] = static_cast<float>(Load<double>(p));
        break;
      default:
        out[i] = Load<float>(p);
        break;
    }
  }
  return out;
}

std::string FloatsToBytes(const std::vector<float>& values, DType dtype) {
  std::string out(values.size() * DTypeSize(dtype), '\0');
  char* p = out.data();
  for (float v : values) {
    if (dtype == DType::kF32) {
      std::memcpy(p, &v, 4);
      p += 4;
      continue;
    }
    const uint16_t h = dtype == DType::kBF16 ? FloatToBF16(v) : FloatToF16(v);
    std::memcpy(p, &h, 2);
    p += 2;
  }
  return out;
}

}  // namespace signround
