#include "src/export/gguf_file.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/export/gguf_check.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF is written as little-endian");

namespace signround {
namespace {

constexpr size_t kMaxTensorName = 63;  // llama.cpp's GGML_MAX_NAME is 64, NUL included
constexpr int kMaxDims = 4;
constexpr size_t kBufferBytes = 4 << 20;

uint64_t PadTo(uint64_t n, uint64_t align) { return (n + align - 1) / align * align; }

void AppendU32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
void AppendU64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
void AppendString(std::string& out, absl::string_view s) {
  AppendU64(out, s.size());
  out.append(s.data(), s.size());
}

// AtomicFileWriter behind a buffer, counting the bytes written. Commit() runs
// the reader-side check (gguf_check.h) over the temporary file before it is
// published.
class BufferedFile {
 public:
  explicit BufferedFile(const std::string& path) : path_(path), file_(path) {}
  absl::Status Open() { return file_.Open(); }

  absl::Status Write(absl::string_view data) {
    written_ += data.size();
    if (buffer_.size() + data.size() > kBufferBytes) {
      SR_RETURN_IF_ERROR(Flush());
      if (data.size() >= kBufferBytes) return file_.Write(data);
    }
    buffer_.append(data.data(), data.size());
    return absl::OkStatus();
  }

  absl::Status Pad(uint64_t align) {
    static const char kZeros[64] = {};
    return Write(absl::string_view(kZeros, PadTo(written_, align) - written_));
  }

  absl::Status Commit() {
    SR_RETURN_IF_ERROR(Flush());
    return file_.Commit([this](const std::string& tmp_path) -> absl::Status {
      absl::StatusOr<GgufLayout> check = CheckGgufFile(tmp_path);
      if (check.ok()) return absl::OkStatus();
      return absl::InternalError(absl::StrCat(path_, ": the GGUF file written fails the ",
                                              "reader-side check: ", check.status().message()));
    });
  }

  uint64_t written() const { return written_; }

 private:
  absl::Status Flush() {
    absl::Status s = file_.Write(buffer_);
    buffer_.clear();
    return s;
  }

  const std::string path_;
  AtomicFileWriter file_;
  std::string buffer_;
  uint64_t written_ = 0;
};

}  // namespace

absl::string_view GgmlTypeName(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
      return "F32";
    case GgmlType::kF16:
      return "F16";
    case GgmlType::kQ4_0:
      return "Q4_0";
    case GgmlType::kQ4_1:
      return "Q4_1";
    case GgmlType::kQ8_0:
      return "Q8_0";
    case GgmlType::kQ2_K:
      return "Q2_K";
    case GgmlType::kQ3_K:
      return "Q3_K";
    case GgmlType::kQ4_K:
      return "Q4_K";
    case GgmlType::kQ5_K:
      return "Q5_K";
    case GgmlType::kQ6_K:
      return "Q6_K";
  }
  return "?";
}

int64_t GgmlBlockElements(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
      return 1;
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ8_0:
      return 32;
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
      return 256;
  }
  return 1;
}

int64_t GgmlBlockBytes(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
      return 4;
    case GgmlType::kF16:
      return 2;
    case GgmlType::kQ4_0:
      return 18;
    case GgmlType::kQ4_1:
      return 20;
    case GgmlType::kQ8_0:
      return 34;
    case GgmlType::kQ2_K:
      return 84;
    case GgmlType::kQ3_K:
      return 110;
    case GgmlType::kQ4_K:
      return 144;
    case GgmlType::kQ5_K:
      return 176;
    case GgmlType::kQ6_K:
      return 210;
  }
  return 0;
}

void GgufMetadata::AddKey(absl::string_view key, GgufValueType type) {
  if (status_.ok() && key.empty()) {
    status_ = absl::InvalidArgumentError("GGUF metadata: empty key");
  } else if (status_.ok() && !keys_.emplace(key).second) {
    status_ = absl::InvalidArgumentError(absl::StrCat("GGUF metadata: duplicate key '", key, "'"));
  }
  ++count_;
  AppendString(key);
  AppendU32(static_cast<uint32_t>(type));
}

void GgufMetadata::AppendString(absl::string_view s) {
  AppendU64(s.size());
  bytes_.append(s.data(), s.size());
}

void GgufMetadata::AddString(absl::string_view key, absl::string_view v) {
  AddKey(key, GgufValueType::kString);
  AppendString(v);
}

void GgufMetadata::AddStringArray(absl::string_view key, const std::vector<std::string>& values) {
  AddKey(key, GgufValueType::kArray);
  AppendU32(static_cast<uint32_t>(GgufValueType::kString));
  AppendU64(values.size());
  for (const std::string& v : values) AppendString(v);
}

absl::StatusOr<uint64_t> GgufTensorBytes(const GgufTensorInfo& info) {
  auto error = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF tensor '", info.name, "' [",
                                                   absl::StrJoin(info.shape, ", "), "] ",
                                                   GgmlTypeName(info.type), ": ", what));
  };
  if (info.shape.empty() || info.shape.size() > kMaxDims) return error("needs 1 to 4 dims");
  uint64_t numel = 1;
  for (int64_t d : info.shape) {
    if (d <= 0 || d > (int64_t{1} << 40)) return error("a dim is out of range");
    numel *= static_cast<uint64_t>(d);
    if (numel > (uint64_t{1} << 40)) return error("too many elements");
  }
  const int64_t block = GgmlBlockElements(info.type);
  if (info.shape.back() % block != 0) {
    return error(absl::StrCat("the row length is not a multiple of the block size ", block));
  }
  return numel / block * GgmlBlockBytes(info.type);
}

absl::Status WriteGgufFile(const std::string& path, const GgufMetadata& metadata,
                           const std::vector<GgufTensorInfo>& tensors,
                           const GgufTensorDataFn& data) {
  SR_RETURN_IF_ERROR(metadata.status());
  // Header, metadata and tensor infos, with each tensor's offset.
  std::string head = "GGUF";
  AppendU32(head, kGgufVersion);
  AppendU64(head, tensors.size());
  AppendU64(head, metadata.count());
  head += metadata.bytes();
  std::vector<uint64_t> sizes;
  std::set<absl::string_view> names;
  uint64_t offset = 0;
  for (const GgufTensorInfo& t : tensors) {
    if (t.name.empty() || t.name.size() > kMaxTensorName) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": GGUF tensor name '", t.name,
                                                     "' must be 1 to ", kMaxTensorName, " bytes"));
    }
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": duplicate GGUF tensor '", t.name, "'"));
    }
    SR_ASSIGN_OR_RETURN(uint64_t size, GgufTensorBytes(t));
    sizes.push_back(size);
    AppendString(head, t.name);
    AppendU32(head, static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) AppendU64(head, *it);
    AppendU32(head, static_cast<uint32_t>(t.type));
    AppendU64(head, offset);
    offset = PadTo(offset + size, kGgufAlignment);
  }

  BufferedFile out(path);
  SR_RETURN_IF_ERROR(out.Open());
  SR_RETURN_IF_ERROR(out.Write(head));
  SR_RETURN_IF_ERROR(out.Pad(kGgufAlignment));
  const uint64_t data_start = out.written();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t begin = out.written();
    uint64_t left = sizes[i];
    auto write = [&](absl::string_view piece) -> absl::Status {
      if (piece.size() > left) {
        return absl::InternalError(absl::StrCat(path, ": GGUF tensor '", tensors[i].name,
                                                "' got more than its ", sizes[i], " bytes"));
      }
      left -= piece.size();
      return out.Write(piece);
    };
    SR_RETURN_IF_ERROR(data(i, tensors[i], write));
    if (left != 0) {
      return absl::InternalError(absl::StrCat(path, ": GGUF tensor '", tensors[i].name, "' got ",
                                              out.written() - begin, " of its ", sizes[i],
                                              " bytes"));
    }
    SR_RETURN_IF_ERROR(out.Pad(kGgufAlignment));
  }
  if (out.written() - data_start != offset) {
    return absl::InternalError(absl::StrCat(path, ": GGUF data section size mismatch"));
  }
  return out.Commit();
}

}  // namespace signround
