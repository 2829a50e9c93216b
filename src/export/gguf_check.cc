#include "src/export/gguf_check.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/export/gguf_file.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF is read as little-endian");

namespace signround {
namespace {

constexpr size_t kWindowBytes = 64 << 10;  // >= kGgufMaxKeyBytes: a key is read in one piece
constexpr uint32_t kMagic = 0x46554747;    // "GGUF" read as a little-endian u32
constexpr int kMaxDims = 4;                // llama.cpp's GGML_MAX_DIMS
constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();
// The fewest bytes a key/value pair (a 1-byte key and a u8) and a tensor info
// (a 1-byte name, one dim) can take: what bounds the counts.
constexpr uint64_t kMinPairBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;
constexpr size_t kNumValueTypes = 13;

// The encoded size of a fixed-size value type (0: a string or an array).
uint64_t ScalarBytes(uint32_t type) {
  static constexpr uint64_t kBytes[kNumValueTypes] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  return type < kNumValueTypes ? kBytes[type] : 0;
}

const char* ValueTypeName(uint32_t type) {
  static constexpr const char* kNames[kNumValueTypes] = {"u8",  "i8",  "u16",  "i16",    "u32",
                                                         "i32", "f32", "bool", "string", "array",
                                                         "u64", "i64", "f64"};
  return type < kNumValueTypes ? kNames[type] : "?";
}

bool KnownGgmlType(uint32_t type) {
  for (GgmlType t :
       {GgmlType::kF32, GgmlType::kF16, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0,
        GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K}) {
    if (type == static_cast<uint32_t>(t)) return true;
  }
  return false;
}

// Where the bytes come from. Read() answers exactly [offset, offset + n),
// n <= kWindowBytes and offset + n <= the file size (the Checker makes sure);
// the view lives until the next call.
class Source {
 public:
  virtual ~Source() = default;
  virtual absl::StatusOr<absl::string_view> Read(uint64_t offset, size_t n) = 0;
};

// The first bytes of a file, in memory.
class HeadSource : public Source {
 public:
  HeadSource(absl::string_view head, uint64_t file_size, absl::string_view label)
      : head_(head), file_size_(file_size), label_(label) {}
  absl::StatusOr<absl::string_view> Read(uint64_t offset, size_t n) override {
    if (offset > head_.size() || n > head_.size() - offset) {
      return absl::InvalidArgumentError(absl::StrCat(
          label_, ": byte ", offset, ": the check needs bytes up to ", offset + n,
          " but was given only the first ", head_.size(), " of the file's ", file_size_));
    }
    return head_.substr(offset, n);
  }

 private:
  absl::string_view head_;
  uint64_t file_size_;
  absl::string_view label_;
};

// A file read through a window of kWindowBytes.
class FileSource : public Source {
 public:
  FileSource(int fd, uint64_t file_size, std::string path)
      : fd_(fd), file_size_(file_size), path_(std::move(path)) {}
  ~FileSource() override { ::close(fd_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  absl::StatusOr<absl::string_view> Read(uint64_t offset, size_t n) override {
    if (offset < window_start_ || offset - window_start_ + n > window_.size()) {
      SR_RETURN_IF_ERROR(Fill(offset));
    }
    if (offset - window_start_ + n > window_.size()) {  // the file shrank under us
      return absl::DataLossError(
          absl::StrCat(path_, ": byte ", offset, ": the file ended early while being read"));
    }
    return absl::string_view(window_).substr(offset - window_start_, n);
  }

 private:
  absl::Status Fill(uint64_t offset) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kWindowBytes, file_size_ - offset));
    window_.resize(want);
    size_t got = 0;
    while (got < want) {
      const ssize_t r = ::pread(fd_, &window_[got], want - got, static_cast<off_t>(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return ErrnoStatus(errno, path_);
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    window_.resize(got);
    window_start_ = offset;
    return absl::OkStatus();
  }

  int fd_;
  uint64_t file_size_;
  std::string path_;
  std::string window_;
  uint64_t window_start_ = 0;
};

class Checker {
 public:
  Checker(Source* source, uint64_t file_size, absl::string_view label)
      : source_(source), size_(file_size), label_(label) {}

  absl::StatusOr<GgufLayout> Run() {
    GgufLayout layout;
    SR_ASSIGN_OR_RETURN(uint32_t magic, Get<uint32_t>("the magic"));
    if (magic != kMagic) {
      return Bad(0, absl::StrCat("bad magic 0x", absl::Hex(magic, absl::kZeroPad8),
                                 " (a GGUF file starts with \"GGUF\")"));
    }
    SR_ASSIGN_OR_RETURN(layout.version, Get<uint32_t>("the version"));
    if (layout.version != kGgufVersion) {
      return Bad(4, absl::StrCat("version ", layout.version, " is not supported (only ",
                                 kGgufVersion, ")"));
    }
    SR_ASSIGN_OR_RETURN(layout.tensor_count, Get<uint64_t>("the tensor count"));
    SR_ASSIGN_OR_RETURN(layout.kv_count, Get<uint64_t>("the metadata count"));
    // Every pair and info takes some bytes: counts that cannot fit are refused
    // before any loop runs on them.
    if (layout.kv_count > left() / kMinPairBytes ||
        layout.tensor_count > (left() - layout.kv_count * kMinPairBytes) / kMinInfoBytes) {
      return absl::DataLossError(
          absl::StrCat(label_, ": byte 8: ", layout.tensor_count, " tensors and ", layout.kv_count,
                       " metadata pairs cannot fit in the ", left(),
                       " bytes left in the file (a pair takes at least ", kMinPairBytes,
                       ", a tensor info ", kMinInfoBytes, ")"));
    }
    for (uint64_t i = 0; i < layout.kv_count; ++i) SR_RETURN_IF_ERROR(Pair(i));
    layout.alignment = alignment_;
    std::vector<std::pair<uint64_t, const std::string*>> ends;  // data end, name
    uint64_t previous_end = 0;
    for (uint64_t i = 0; i < layout.tensor_count; ++i) {
      SR_RETURN_IF_ERROR(Info(i, &previous_end, &ends));
    }
    layout.infos_end = pos_;
    const uint64_t pad = (alignment_ - pos_ % alignment_) % alignment_;
    if (pad > left()) {
      return Truncated(
          pos_, pad,
          absl::StrCat("the padding before the data section (alignment ", alignment_, ")"));
    }
    layout.data_start = pos_ + pad;
    const uint64_t data_bytes = size_ - layout.data_start;
    for (const auto& [end, name] : ends) {
      if (end > data_bytes) {
        return absl::DataLossError(absl::StrCat(
            label_, ": byte ", layout.data_start, ": tensor '", *name, "' ends at data offset ",
            end, " but the data section (from byte ", layout.data_start, ") holds only ",
            data_bytes, " bytes of the file's ", size_));
      }
    }
    layout.data_end = layout.data_start + previous_end;
    return layout;
  }

 private:
  uint64_t left() const { return size_ - pos_; }

  absl::Status Bad(uint64_t at, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(label_, ": byte ", at, ": ", what));
  }
  absl::Status Truncated(uint64_t at, uint64_t need, absl::string_view what) const {
    return absl::DataLossError(absl::StrCat(label_, ": byte ", at, ": ", what, " needs ", need,
                                            " bytes but the file ends at byte ", size_));
  }

  // Reads n <= kWindowBytes bytes at pos_ and advances.
  absl::StatusOr<absl::string_view> Bytes(uint64_t n, absl::string_view what) {
    if (n > left()) return Truncated(pos_, n, what);
    SR_ASSIGN_OR_RETURN(absl::string_view b, source_->Read(pos_, static_cast<size_t>(n)));
    pos_ += n;
    return b;
  }

  absl::Status Skip(uint64_t n, absl::string_view what) {
    if (n > left()) return Truncated(pos_, n, what);
    pos_ += n;
    return absl::OkStatus();
  }

  template <typename T>
  absl::StatusOr<T> Get(absl::string_view what) {
    SR_ASSIGN_OR_RETURN(absl::string_view b, Bytes(sizeof(T), what));
    T v;
    std::memcpy(&v, b.data(), sizeof(T));
    return v;
  }

  // A string of at most `max` bytes (<= kWindowBytes), read whole.
  absl::StatusOr<std::string> ShortString(uint64_t max, absl::string_view what) {
    const uint64_t at = pos_;
    SR_ASSIGN_OR_RETURN(uint64_t n, Get<uint64_t>(absl::StrCat(what, "'s length")));
    if (n == 0 || n > max) {
      return Bad(at, absl::StrCat(what, " is ", n, " bytes (1 to ", max, " allowed)"));
    }
    SR_ASSIGN_OR_RETURN(absl::string_view b, Bytes(n, what));
    return std::string(b);
  }

  absl::Status Pair(uint64_t index) {
    const uint64_t at = pos_;
    SR_ASSIGN_OR_RETURN(std::string key,
                        ShortString(kGgufMaxKeyBytes, absl::StrCat("metadata key #", index)));
    for (size_t i = 0; i < key.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(key[i]);
      if (c < 0x20 || c > 0x7e) {
        return Bad(at + 8 + i,
                   absl::StrCat("metadata key #", index, " has byte 0x",
                                absl::Hex(c, absl::kZeroPad2), " (keys are printable ASCII)"));
      }
    }
    if (!keys_.insert(key).second) {
      return Bad(at, absl::StrCat("duplicate metadata key '", key, "'"));
    }
    const std::string what = absl::StrCat("metadata '", key, "'");
    const uint64_t type_at = pos_;
    SR_ASSIGN_OR_RETURN(uint32_t type, Get<uint32_t>(absl::StrCat(what, "'s type")));
    if (key == "general.alignment") {
      if (type != static_cast<uint32_t>(GgufValueType::kU32)) {
        return Bad(type_at, absl::StrCat(what, " must be a u32, not ", ValueTypeName(type),
                                         " (type ", type, ")"));
      }
      const uint64_t value_at = pos_;
      SR_ASSIGN_OR_RETURN(uint32_t a, Get<uint32_t>(what));
      if (a == 0 || (a & (a - 1)) != 0) {
        return Bad(value_at, absl::StrCat(what, " is ", a, ", not a power of two"));
      }
      alignment_ = a;
      return absl::OkStatus();
    }
    return Value(type, type_at, 0, what);
  }

  // The value of `type` (read at type_at) at pos_; `depth` arrays enclose it.
  absl::Status Value(uint32_t type, uint64_t type_at, int depth, const std::string& what) {
    if (type >= kNumValueTypes) {
      return Bad(type_at, absl::StrCat(what, " has unknown value type ", type));
    }
    if (type == static_cast<uint32_t>(GgufValueType::kBool)) {
      const uint64_t at = pos_;
      SR_ASSIGN_OR_RETURN(uint8_t b, Get<uint8_t>(what));
      if (b > 1) {
        return Bad(at,
                   absl::StrCat(what, " is a bool of value ", static_cast<int>(b), " (0 or 1)"));
      }
      return absl::OkStatus();
    }
    if (type == static_cast<uint32_t>(GgufValueType::kString)) {
      SR_ASSIGN_OR_RETURN(uint64_t n, Get<uint64_t>(absl::StrCat(what, "'s length")));
      return Skip(n, what);
    }
    if (type != static_cast<uint32_t>(GgufValueType::kArray)) {
      return Skip(ScalarBytes(type), what);
    }
    if (depth >= kGgufMaxArrayDepth) {
      return Bad(type_at,
                 absl::StrCat(what, " nests arrays more than ", kGgufMaxArrayDepth, " deep"));
    }
    const uint64_t elem_at = pos_;
    SR_ASSIGN_OR_RETURN(uint32_t elem, Get<uint32_t>(absl::StrCat(what, "'s element type")));
    if (elem >= kNumValueTypes) {
      return Bad(elem_at, absl::StrCat(what, " is an array of unknown value type ", elem));
    }
    const uint64_t count_at = pos_;
    SR_ASSIGN_OR_RETURN(uint64_t count, Get<uint64_t>(absl::StrCat(what, "'s element count")));
    // The fewest bytes one element takes: a string its length, an array its type and count.
    uint64_t min_elem = ScalarBytes(elem);
    if (elem == static_cast<uint32_t>(GgufValueType::kString)) min_elem = 8;
    if (elem == static_cast<uint32_t>(GgufValueType::kArray)) min_elem = 12;
    if (count > left() / min_elem) {
      return absl::DataLossError(absl::StrCat(label_, ": byte ", count_at, ": ", what, ": ", count,
                                              " ", ValueTypeName(elem), " values (at least ",
                                              min_elem, " bytes each) cannot fit in the ", left(),
                                              " bytes left in the file"));
    }
    if (elem == static_cast<uint32_t>(GgufValueType::kBool)) {
      for (uint64_t done = 0; done < count;) {
        const uint64_t at = pos_;
        const uint64_t n = std::min<uint64_t>(count - done, kWindowBytes);
        SR_ASSIGN_OR_RETURN(absl::string_view b, Bytes(n, what));
        for (size_t i = 0; i < b.size(); ++i) {
          if (static_cast<uint8_t>(b[i]) > 1) {
            return Bad(at + i,
                       absl::StrCat(what, "[", done + i, "] is a bool of value ",
                                    static_cast<int>(static_cast<uint8_t>(b[i])), " (0 or 1)"));
          }
        }
        done += n;
      }
      return absl::OkStatus();
    }
    if (ScalarBytes(elem) != 0) return Skip(count * min_elem, what);
    if (elem == static_cast<uint32_t>(GgufValueType::kString)) {
      // Inline rather than through Value(): a vocabulary has 100k+ strings,
      // and an element's name is only built for a message.
      for (uint64_t i = 0; i < count; ++i) {
        if (left() < 8) return Truncated(pos_, 8, absl::StrCat(what, "[", i, "]'s length"));
        SR_ASSIGN_OR_RETURN(uint64_t n, Get<uint64_t>(what));
        if (n > left()) return Truncated(pos_, n, absl::StrCat(what, "[", i, "]"));
        pos_ += n;
      }
      return absl::OkStatus();
    }
    for (uint64_t i = 0; i < count; ++i) {
      SR_RETURN_IF_ERROR(Value(elem, elem_at, depth + 1, absl::StrCat(what, "[", i, "]")));
    }
    return absl::OkStatus();
  }

  absl::Status Info(uint64_t index, uint64_t* previous_end,
                    std::vector<std::pair<uint64_t, const std::string*>>* ends) {
    const uint64_t at = pos_;
    SR_ASSIGN_OR_RETURN(std::string name, ShortString(kGgufMaxTensorNameBytes,
                                                      absl::StrCat("tensor #", index, "'s name")));
    auto [it, inserted] = names_.insert(std::move(name));
    if (!inserted) return Bad(at, absl::StrCat("duplicate tensor name '", *it, "'"));
    const std::string what = absl::StrCat("tensor '", *it, "'");
    const uint64_t dims_at = pos_;
    SR_ASSIGN_OR_RETURN(uint32_t n_dims, Get<uint32_t>(absl::StrCat(what, "'s dim count")));
    if (n_dims < 1 || n_dims > kMaxDims) {
      return Bad(dims_at, absl::StrCat(what, " has ", n_dims, " dims (1 to ", kMaxDims, ")"));
    }
    uint64_t ne[kMaxDims] = {};
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim_at = pos_;
      SR_ASSIGN_OR_RETURN(ne[d], Get<uint64_t>(absl::StrCat(what, "'s dim ", d)));
      if (ne[d] == 0 || ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Bad(dim_at,
                   absl::StrCat(what, " has dim ", d, " = ", ne[d], " (1 to 2^63 - 1 allowed)"));
      }
      if (numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / ne[d]) {
        return Bad(dim_at, absl::StrCat(what, " has more than 2^63 - 1 elements"));
      }
      numel *= ne[d];
    }
    const uint64_t type_at = pos_;
    SR_ASSIGN_OR_RETURN(uint32_t type, Get<uint32_t>(absl::StrCat(what, "'s ggml type")));
    if (!KnownGgmlType(type)) {
      return Bad(type_at,
                 absl::StrCat(what, " has unknown ggml type ", type,
                              " (F32 0, F16 1, Q4_0 2, Q4_1 3, Q8_0 8, Q2_K 10 ... Q6_K 14)"));
    }
    const GgmlType t = static_cast<GgmlType>(type);
    const uint64_t block = static_cast<uint64_t>(GgmlBlockElements(t));
    const uint64_t block_bytes = static_cast<uint64_t>(GgmlBlockBytes(t));
    if (ne[0] % block != 0) {
      return Bad(dims_at, absl::StrCat(what, " (", GgmlTypeName(t), ") has rows of ", ne[0],
                                       " values, not a multiple of the block size ", block));
    }
    if (numel / block > kMaxU64 / block_bytes) {
      return Bad(dims_at, absl::StrCat(what, "'s data size overflows"));
    }
    const uint64_t bytes = numel / block * block_bytes;
    const uint64_t offset_at = pos_;
    SR_ASSIGN_OR_RETURN(uint64_t offset, Get<uint64_t>(absl::StrCat(what, "'s offset")));
    if (offset % alignment_ != 0) {
      return Bad(offset_at, absl::StrCat(what, " has offset ", offset,
                                         ", not a multiple of the alignment ", alignment_));
    }
    if (offset < *previous_end) {
      return Bad(offset_at, absl::StrCat(what, " has offset ", offset,
                                         ", before the end of the previous tensor's data (",
                                         *previous_end, "): tensors must not overlap and ",
                                         "must come in increasing offset order"));
    }
    if (offset > kMaxU64 - bytes) {
      return Bad(offset_at,
                 absl::StrCat(what, " at offset ", offset, " with ", bytes, " bytes overflows"));
    }
    *previous_end = offset + bytes;
    ends->emplace_back(*previous_end, &*it);
    return absl::OkStatus();
  }

  Source* source_;
  const uint64_t size_;
  const std::string label_;
  uint64_t pos_ = 0;
  uint64_t alignment_ = kGgufAlignment;
  std::set<std::string> keys_;
  std::set<std::string> names_;  // nodes are stable: `ends` points into them
};

}  // namespace

absl::StatusOr<GgufLayout> CheckGgufBytes(absl::string_view head, uint64_t file_size,
                                          absl::string_view label) {
  if (head.size() > file_size) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": the head is ", head.size(),
                                                   " bytes, more than the file's ", file_size));
  }
  HeadSource source(head, file_size, label);
  return Checker(&source, file_size, label).Run();
}

absl::StatusOr<GgufLayout> CheckGgufFile(const std::string& path) {
  uint64_t size = 0;
  SR_ASSIGN_OR_RETURN(int fd, OpenRegularFile(path, &size));
  FileSource source(fd, size, path);
  return Checker(&source, size, path).Run();
}

}  // namespace signround
