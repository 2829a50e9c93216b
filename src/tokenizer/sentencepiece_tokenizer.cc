#include "src/tokenizer/sentencepiece_tokenizer.h"

#include <dlfcn.h>

#include <fstream>
#include <new>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"

// Debian's sentencepiece 0.1.97 header declares `namespace absl { using
// std::string_view; }`, which clashes with Abseil's own absl::string_view class
// (ABSL_OPTION_USE_STD_STRING_VIEW is 0 here). Its API is std::string_view, so
// the header is read with its `absl` renamed; the mangled names are unchanged.
#define absl signround_spm_absl
#include <sentencepiece_processor.h>
#undef absl

namespace signround {
namespace {

// Debian's libsentencepiece carries its own protobuf-lite and exports its
// symbols; linked normally, libprotobuf.so (loaded by LibTorch) binds to them
// at start-up and crashes. So the library is opened with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND): nothing else sees its symbols and it uses its own. Virtual
// methods need no symbols; the three non-virtual entry points used are looked
// up here (Itanium C++ ABI names).
using Processor = sentencepiece::SentencePieceProcessor;
using SpStatus = sentencepiece::util::Status;

struct SpmLibrary {
  void (*construct)(void*) = nullptr;                    // Processor::Processor()
  void (*destroy_status)(void*) = nullptr;               // util::Status::~Status()
  const char* (*status_message)(const void*) = nullptr;  // util::Status::error_message()
};

absl::StatusOr<SpmLibrary> OpenLibrary() {
  constexpr const char* kSoname = "libsentencepiece.so.0";
  void* h = dlopen(kSoname, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (h == nullptr) {
    const char* e = dlerror();
    return absl::FailedPreconditionError(absl::StrCat(
        kSoname, " could not be loaded (Debian package libsentencepiece0): ", e ? e : "?"));
  }
  SpmLibrary lib;
  lib.construct =
      reinterpret_cast<void (*)(void*)>(dlsym(h, "_ZN13sentencepiece22SentencePieceProcessorC1Ev"));
  lib.destroy_status =
      reinterpret_cast<void (*)(void*)>(dlsym(h, "_ZN13sentencepiece4util6StatusD1Ev"));
  lib.status_message = reinterpret_cast<const char* (*)(const void*)>(
      dlsym(h, "_ZNK13sentencepiece4util6Status13error_messageEv"));
  if (!lib.construct || !lib.destroy_status || !lib.status_message) {
    return absl::FailedPreconditionError(
        absl::StrCat(kSoname, " lacks the expected SentencePieceProcessor symbols"));
  }
  return lib;
}

absl::StatusOr<const SpmLibrary*> Library() {
  static const auto* lib = new absl::StatusOr<SpmLibrary>(OpenLibrary());
  if (!lib->ok()) return lib->status();
  return &**lib;
}

// A util::Status returned by the library, built in place (C++17 guaranteed
// elision: no copy) and destroyed by the library.
class ReturnedStatus {
 public:
  template <typename Call>
  ReturnedStatus(const SpmLibrary* lib, Call&& call) : lib_(lib) {
    new (storage_) SpStatus(call());
  }
  ~ReturnedStatus() { lib_->destroy_status(storage_); }
  ReturnedStatus(const ReturnedStatus&) = delete;
  ReturnedStatus& operator=(const ReturnedStatus&) = delete;

  bool ok() const { return std::launder(reinterpret_cast<const SpStatus*>(storage_))->ok(); }
  std::string message() const {
    const char* m = lib_->status_message(storage_);
    return m == nullptr ? std::string() : std::string(m);
  }

 private:
  const SpmLibrary* lib_;
  alignas(SpStatus) unsigned char storage_[sizeof(SpStatus)];
};

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(const SpmLibrary* lib, std::unique_ptr<Processor> sp, std::string path)
      : lib_(lib), sp_(std::move(sp)), path_(std::move(path)) {}

  absl::StatusOr<std::vector<int64_t>> Encode(absl::string_view text,
                                              bool add_special_tokens) const override {
    const int64_t bad = FirstInvalidUtf8Offset(text);
    if (bad >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("text is not valid UTF-8 at byte offset ", bad));
    }
    std::vector<int> ids;
    const ReturnedStatus st(
        lib_, [&] { return sp_->Encode(std::string_view(text.data(), text.size()), &ids); });
    if (!st.ok()) {
      return absl::InternalError(
          absl::StrCat(path_, ": SentencePiece could not encode the text: ", st.message()));
    }
    std::vector<int64_t> out;
    out.reserve(ids.size() + 1);
    const int bos = sp_->bos_id();
    if (add_special_tokens && bos >= 0) out.push_back(bos);
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }

  int64_t vocab_size() const override { return sp_->GetPieceSize(); }
  std::string Describe() const override { return "tokenizer.model (SentencePiece)"; }

 private:
  const SpmLibrary* lib_;
  std::unique_ptr<Processor> sp_;
  std::string path_;
};

}  // namespace


absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceTokenizer(
    const std::string& model_path) {
  std::ifstream in(model_path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(model_path, ": cannot open the file"));
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string bytes = buf.str();
  if (bytes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(model_path, ": the file is empty"));
  }
  SR_ASSIGN_OR_RETURN(const SpmLibrary* lib, Library());
  void* memory = ::operator new(sizeof(Processor));
  lib->construct(memory);
  std::unique_ptr<Processor> sp(static_cast<Processor*>(memory));  // virtual destructor
  const ReturnedStatus st(lib, [&] {
    return sp->LoadFromSerializedProto(std::string_view(bytes.data(), bytes.size()));
  });
  if (!st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_path, ": not a SentencePiece model: ", st.message()));
  }
  return std::unique_ptr<Tokenizer>(
      std::make_unique<SentencePieceTokenizer>(lib, std::move(sp), model_path));
}

}  // namespace signround
