#include "src/tensor/torch_tensor.h"

#include <torch/version.h>

#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"
#include "src/tensor/safetensors_writer.h"

namespace signround {
namespace {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define SIGNROUND_HAVE_FLOAT8 1
#endif

struct Pair {
  DType dtype;
  at::ScalarType type;
};

constexpr Pair kPairs[] = {
    {DType::kBool, at::kBool},
    {DType::kU8, at::kByte},
    {DType::kI8, at::kChar},
    {DType::kI16, at::kShort},
    {DType::kF16, at::kHalf},
    {DType::kBF16, at::kBFloat16},
    {DType::kI32, at::kInt},
    {DType::kF32, at::kFloat},
    {DType::kF64, at::kDouble},
    {DType::kI64, at::kLong},
#ifdef SIGNROUND_HAVE_FLOAT8
    {DType::kF8E4M3, at::ScalarType::Float8_e4m3fn},
    {DType::kF8E5M2, at::ScalarType::Float8_e5m2},
#endif
};

}  // namespace

std::optional<at::ScalarType> ToScalarType(DType dtype) {
  for (const Pair& p : kPairs) {
    if (p.dtype == dtype) return p.type;
  }
  return std::nullopt;
}

std::optional<DType> FromScalarType(at::ScalarType type) {
  for (const Pair& p : kPairs) {
    if (p.type == type) return p.dtype;
  }
  return std::nullopt;
}

absl::StatusOr<at::Tensor> LoadTensor(const std::shared_ptr<const SafetensorsFile>& file,
                                      const TensorEntry& entry) {
  std::optional<at::ScalarType> type = ToScalarType(entry.dtype);
  if (!type) {
    return absl::UnimplementedError(absl::StrCat(file->path(), ": tensor '", entry.name,
                                                 "': dtype ", DTypeName(entry.dtype),
                                                 " has no LibTorch equivalent in this build"));
  }
  absl::string_view bytes = file->Bytes(entry);
  auto options = at::TensorOptions().dtype(*type).device(at::kCPU);
  const size_t elem = DTypeSize(entry.dtype);
  if (reinterpret_cast<uintptr_t>(bytes.data()) % elem == 0) {
    std::shared_ptr<MappedFile> keep_alive = file->mapping();
    void* data = const_cast<char*>(bytes.data());
    return at::from_blob(
        data, entry.shape, [keep_alive](void*) mutable { keep_alive.reset(); }, options);
  }
  at::Tensor out = at::empty(entry.shape, options);
  if (!bytes.empty()) std::memcpy(out.data_ptr(), bytes.data(), bytes.size());
  return out;
}

absl::StatusOr<at::Tensor> LoadTensor(const std::shared_ptr<const SafetensorsFile>& file,
                                      const std::string& name) {
  SR_ASSIGN_OR_RETURN(const TensorEntry* entry, file->Find(name));
  return LoadTensor(file, *entry);
}

absl::Status WriteTensors(const std::string& path,
                          const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                          const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  std::map<std::string, const at::Tensor*> by_name;
  for (const auto& [name, t] : tensors) {
    std::optional<DType> dtype = FromScalarType(t.scalar_type());
    if (!dtype) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "' has dtype ",
                                                     c10::toString(t.scalar_type()),
                                                     ", which safetensors cannot store"));
    }
    specs.push_back({name, *dtype, t.sizes().vec()});
    by_name[name] = &t;
  }
  at::Tensor current;  // keeps the bytes handed out alive until the next call
  auto bytes = [&](const TensorSpec& spec) -> absl::StatusOr<absl::string_view> {
    current = by_name.at(spec.name)->to(at::kCPU).contiguous();
    return absl::string_view(static_cast<const char*>(current.data_ptr()), spec.nbytes());
  };
  return WriteSafetensors(path, std::move(specs), bytes, metadata);
}

}  // namespace signround
