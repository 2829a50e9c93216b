#include "src/export/gguf_tokenizer.h"

#include <sys/stat.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "src/common/file_util.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"

namespace signround {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxTokenizerBytes = 256 << 20;

// --- protobuf wire format -------------------------------------------------

enum WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// Reads protobuf fields from a slice of the file; offsets in errors are from
// the start of the file.
class WireReader {
 public:
  WireReader(absl::string_view data, uint64_t base, absl::string_view label)
      : data_(data), base_(base), label_(label) {}

  bool done() const { return pos_ >= data_.size(); }
  uint64_t offset() const { return base_ + pos_; }

  absl::Status Error(uint64_t at, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(label_, ": byte ", at, ": ", what));
  }

  absl::StatusOr<uint64_t> Varint() {
    const uint64_t start = offset();
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      if (done()) return Error(start, "truncated varint");
      const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      if (i == 9 && b > 1) return Error(start, "varint overflows 64 bits");
      v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0) return v;
    }
    return Error(start, "varint longer than 10 bytes");
  }

  // The next field's number and wire type.
  absl::Status Tag(uint64_t* field, int* wire) {
    const uint64_t start = offset();
    SR_ASSIGN_OR_RETURN(uint64_t tag, Varint());
    *field = tag >> 3;
    *wire = static_cast<int>(tag & 7);
    if (*field == 0) return Error(start, "field number 0");
    if (*wire != kVarint && *wire != kFixed64 && *wire != kLengthDelimited && *wire != kFixed32) {
      return Error(start, absl::StrCat("field ", *field, " has unsupported wire type ", *wire));
    }
    return absl::OkStatus();
  }

  // A length-delimited payload; `*start` receives its file offset.
  absl::StatusOr<absl::string_view> Bytes(uint64_t* start) {
    const uint64_t at = offset();
    SR_ASSIGN_OR_RETURN(uint64_t n, Varint());
    const uint64_t left = data_.size() - pos_;
    if (n > left) {
      return Error(at, absl::StrCat("length ", n, " runs past the end (", left, " bytes left)"));
    }
    *start = offset();
    absl::string_view out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }

  absl::StatusOr<uint32_t> Fixed32() {
    if (data_.size() - pos_ < 4) return Error(offset(), "truncated fixed32");
    uint32_t v;
    std::memcpy(&v, data_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }

  absl::Status Skip(int wire) {
    uint64_t unused;
    switch (wire) {
      case kVarint:
        return Varint().status();
      case kLengthDelimited:
        return Bytes(&unused).status();
      case kFixed32:
        return Fixed32().status();
      default:  // kFixed64
        if (data_.size() - pos_ < 8) return Error(offset(), "truncated fixed64");
        pos_ += 8;
        return absl::OkStatus();
    }
  }

  // INVALID_ARGUMENT unless field `field` has wire type `expected`.
  absl::Status Expect(uint64_t at, uint64_t field, int wire, int expected) const {
    if (wire == expected) return absl::OkStatus();
    return Error(at,
                 absl::StrCat("field ", field, " has wire type ", wire, ", expected ", expected));
  }

 private:
  absl::string_view data_;
  uint64_t base_;
  size_t pos_ = 0;
  absl::string_view label_;
};

struct Piece {
  std::string text;
  float score = 0.0f;
  int32_t type = kTokenNormal;
};

// SentencePiece: 1 piece (string), 2 score (float), 3 type (enum).
absl::StatusOr<Piece> ParsePiece(absl::string_view bytes, uint64_t base, absl::string_view label,
                                 size_t index) {
  WireReader r(bytes, base, label);
  Piece p;
  while (!r.done()) {
    const uint64_t at = r.offset();
    uint64_t field = 0;
    int wire = 0;
    SR_RETURN_IF_ERROR(r.Tag(&field, &wire));
    if (field == 1) {
      SR_RETURN_IF_ERROR(r.Expect(at, field, wire, kLengthDelimited));
      uint64_t start;
      SR_ASSIGN_OR_RETURN(absl::string_view text, r.Bytes(&start));
      p.text = std::string(text);
    } else if (field == 2) {
      SR_RETURN_IF_ERROR(r.Expect(at, field, wire, kFixed32));
      SR_ASSIGN_OR_RETURN(uint32_t bits, r.Fixed32());
      std::memcpy(&p.score, &bits, 4);
    } else if (field == 3) {
      SR_RETURN_IF_ERROR(r.Expect(at, field, wire, kVarint));
      SR_ASSIGN_OR_RETURN(uint64_t type, r.Varint());
      if (type < kTokenNormal || type > kTokenByte) {
        return r.Error(at, absl::StrCat("piece ", index, " has type ", static_cast<int64_t>(type),
                                        ", not a SentencePiece type (1 to 6)"));
      }
      p.type = static_cast<int32_t>(type);
    } else {
      SR_RETURN_IF_ERROR(r.Skip(wire));
    }
  }
  return p;
}

struct SpecialIds {
  int32_t unk = 0, bos = 1, eos = 2, pad = -1;  // TrainerSpec defaults
};

// TrainerSpec: 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id (int32).
absl::Status ParseTrainerSpec(absl::string_view bytes, uint64_t base, absl::string_view label,
                              SpecialIds* ids) {
  WireReader r(bytes, base, label);
  while (!r.done()) {
    const uint64_t at = r.offset();
    uint64_t field = 0;
    int wire = 0;
    SR_RETURN_IF_ERROR(r.Tag(&field, &wire));
    int32_t* target = field == 40   ? &ids->unk
                      : field == 41 ? &ids->bos
                      : field == 42 ? &ids->eos
                      : field == 43 ? &ids->pad
                                    : nullptr;
    if (target == nullptr) {
      SR_RETURN_IF_ERROR(r.Skip(wire));
      continue;
    }
    SR_RETURN_IF_ERROR(r.Expect(at, field, wire, kVarint));
    SR_ASSIGN_OR_RETURN(uint64_t v, r.Varint());
    *target = static_cast<int32_t>(static_cast<uint32_t>(v));  // int32 varints sign-extend
  }
  return absl::OkStatus();
}

// A special token id as a u32, or nullopt when disabled (negative).
absl::StatusOr<std::optional<uint32_t>> CheckId(int64_t id, size_t n_tokens,
                                                absl::string_view label, absl::string_view what) {
  if (id < 0) return std::nullopt;
  if (static_cast<uint64_t>(id) >= n_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": ", what, " ", id, " is not a token id (", n_tokens, " tokens)"));
  }
  return static_cast<uint32_t>(id);
}

// Fills the ids from tokens.size() up to `vocab_size` with "[PAD<i>]".
void PadVocab(GgufVocab* v, int64_t vocab_size) {
  for (int64_t i = static_cast<int64_t>(v->tokens.size()); i < vocab_size; ++i) {
    v->tokens.push_back(absl::StrCat("[PAD", i, "]"));
    v->token_types.push_back(kTokenUnused);
    if (!v->scores.empty()) v->scores.push_back(0.0f);
  }
}

// --- tokenizer.json ---------------------------------------------------------

// llama.cpp's name for the pre-tokenizer, from the regex it splits with.
std::string BpePreTokenizer(const json& root) {
  static const char kLlama3[] =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const char kQwen2[] =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  auto it = root.find("pre_tokenizer");
  if (it == root.end() || !it->is_object()) return "";
  const json& pre = *it;
  auto type_it = pre.find("type");
  const std::string type =
      type_it != pre.end() && type_it->is_string() ? type_it->get<std::string>() : "";
  if (type == "ByteLevel") {
    auto r = pre.find("use_regex");
    return r == pre.end() || *r == true ? "gpt-2" : "";
  }
  if (type != "Sequence" || !pre.contains("pretokenizers")) return "";
  for (const json& p : pre["pretokenizers"]) {
    if (!p.is_object() || p.value("type", json()) != "Split") continue;
    const json* regex = nullptr;
    if (auto pat = p.find("pattern"); pat != p.end() && pat->is_object()) {
      if (auto r = pat->find("Regex"); r != pat->end() && r->is_string()) regex = &*r;
    }
    if (regex == nullptr) return "";
    if (*regex == kLlama3) return "llama-bpe";
    if (*regex == kQwen2) return "qwen2";
    return "";
  }
  return "";
}

absl::StatusOr<int64_t> TokenId(const json& value, int64_t vocab_size, absl::string_view where,
                                absl::string_view token) {
  std::optional<int64_t> id = JsonToInt64(value);
  if (!id || *id < 0 || *id >= vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": token '", token, "' has id ",
                                                   value.dump(), ", not an integer in [0, ",
                                                   vocab_size, ") (config vocab_size)"));
  }
  return *id;
}

}  // namespace

absl::StatusOr<GgufVocab> ParseSentencePieceModel(absl::string_view bytes, absl::string_view label,
                                                  int64_t vocab_size) {
  GgufVocab v;
  v.model = "llama";
  v.pre = "default";  // what llama.cpp's converter writes for every SentencePiece vocabulary
  SpecialIds ids;
  WireReader r(bytes, 0, label);
  while (!r.done()) {
    const uint64_t at = r.offset();
    uint64_t field = 0;
    int wire = 0;
    SR_RETURN_IF_ERROR(r.Tag(&field, &wire));
    if (field != 1 && field != 2) {
      SR_RETURN_IF_ERROR(r.Skip(wire));
      continue;
    }
    SR_RETURN_IF_ERROR(r.Expect(at, field, wire, kLengthDelimited));
    uint64_t start;
    SR_ASSIGN_OR_RETURN(absl::string_view body, r.Bytes(&start));
    if (field == 2) {
      SR_RETURN_IF_ERROR(ParseTrainerSpec(body, start, label, &ids));
      continue;
    }
    if (static_cast<int64_t>(v.tokens.size()) >= vocab_size) {
      return r.Error(at,
                     absl::StrCat("more pieces than the config's vocab_size (", vocab_size, ")"));
    }
    SR_ASSIGN_OR_RETURN(Piece p, ParsePiece(body, start, label, v.tokens.size()));
    v.tokens.push_back(std::move(p.text));
    v.scores.push_back(p.score);
    v.token_types.push_back(p.type);
  }
  if (v.tokens.empty()) return absl::InvalidArgumentError(absl::StrCat(label, ": no pieces"));
  const size_t n = v.tokens.size();
  SR_ASSIGN_OR_RETURN(v.unk_id, CheckId(ids.unk, n, label, "unk_id"));
  SR_ASSIGN_OR_RETURN(v.bos_id, CheckId(ids.bos, n, label, "bos_id"));
  SR_ASSIGN_OR_RETURN(v.eos_id, CheckId(ids.eos, n, label, "eos_id"));
  SR_ASSIGN_OR_RETURN(v.pad_id, CheckId(ids.pad, n, label, "pad_id"));
  PadVocab(&v, vocab_size);
  return v;
}

absl::StatusOr<GgufVocab> ParseHfBpeTokenizer(absl::string_view json_text, absl::string_view label,
                                              const ModelConfig& config) {
  SR_ASSIGN_OR_RETURN(json root, ParseJsonObject(json_text, label));
  const std::string where_model = absl::StrCat(label, ": model");
  auto model_it = root.find("model");
  if (model_it == root.end() || !model_it->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": key 'model' must be an object"));
  }
  const json& model = *model_it;
  auto type = model.find("type");
  if (type != model.end() && *type != "BPE") {
    return absl::InvalidArgumentError(
        absl::StrCat(where_model, ": type ", type->dump(),
                     " is not supported for GGUF (BPE tokenizer.json or tokenizer.model only)"));
  }
  auto vocab_it = model.find("vocab");
  auto merges_it = model.find("merges");
  if (vocab_it == model.end() || !vocab_it->is_object() || merges_it == model.end() ||
      !merges_it->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where_model, ": a BPE model needs a 'vocab' object and a 'merges' array"));
  }

  const int64_t vocab_size = config.vocab_size;
  std::vector<std::optional<std::string>> by_id(static_cast<size_t>(vocab_size));
  std::vector<int32_t> types(static_cast<size_t>(vocab_size), kTokenNormal);
  for (const auto& [token, id_value] : vocab_it->items()) {
    SR_ASSIGN_OR_RETURN(int64_t id, TokenId(id_value, vocab_size, where_model + ".vocab", token));
    if (by_id[id]) {
      return absl::InvalidArgumentError(absl::StrCat(where_model, ".vocab: tokens '", *by_id[id],
                                                     "' and '", token, "' share id ", id));
    }
    by_id[id] = token;
  }
  if (auto added = root.find("added_tokens"); added != root.end() && !added->is_null()) {
    if (!added->is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(label, ": 'added_tokens' must be an array"));
    }
    for (size_t i = 0; i < added->size(); ++i) {
      const json& t = (*added)[i];
      const std::string where = absl::StrCat(label, ": added_tokens[", i, "]");
      if (!t.is_object() || !t.contains("content") || !t["content"].is_string() ||
          !t.contains("id")) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": must be an object with 'id' and string 'content'"));
      }
      const std::string content = t["content"].get<std::string>();
      SR_ASSIGN_OR_RETURN(int64_t id, TokenId(t["id"], vocab_size, where, content));
      const bool special = t.value("special", json(false)) == true;
      by_id[id] = content;
      types[id] = special ? kTokenControl : kTokenUserDefined;
    }
  }

  GgufVocab v;
  v.model = "gpt2";
  v.pre = BpePreTokenizer(root);
  for (int64_t i = 0; i < vocab_size; ++i) {
    v.tokens.push_back(by_id[i] ? std::move(*by_id[i]) : absl::StrCat("[PAD", i, "]"));
    v.token_types.push_back(by_id[i] ? types[i] : kTokenUnused);
  }
  for (size_t i = 0; i < merges_it->size(); ++i) {
    const json& m = (*merges_it)[i];
    if (m.is_string()) {
      v.merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      v.merges.push_back(absl::StrCat(m[0].get<std::string>(), " ", m[1].get<std::string>()));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where_model, ".merges[", i, "]: must be a string or a pair of strings"));
    }
  }
  if (config.bos_token_id) {
    SR_ASSIGN_OR_RETURN(
        v.bos_id, CheckId(*config.bos_token_id, v.tokens.size(), "config.json", "bos_token_id"));
  }
  if (!config.eos_token_ids.empty()) {
    SR_ASSIGN_OR_RETURN(
        v.eos_id, CheckId(config.eos_token_ids[0], v.tokens.size(), "config.json", "eos_token_id"));
  }
  return v;
}

absl::StatusOr<std::optional<GgufVocab>> LoadGgufVocab(const std::string& model_dir,
                                                       const ModelConfig& config) {
  struct stat st;
  const std::string spm = JoinPath(model_dir, "tokenizer.model");
  if (::stat(spm.c_str(), &st) == 0) {
    SR_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(spm, kMaxTokenizerBytes));
    SR_ASSIGN_OR_RETURN(GgufVocab v, ParseSentencePieceModel(bytes, spm, config.vocab_size));
    return v;
  }
  const std::string hf = JoinPath(model_dir, "tokenizer.json");
  if (::stat(hf.c_str(), &st) == 0) {
    SR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(hf, kMaxTokenizerBytes));
    SR_ASSIGN_OR_RETURN(GgufVocab v, ParseHfBpeTokenizer(text, hf, config));
    return v;
  }
  return std::nullopt;
}

void AddVocabMetadata(const GgufVocab& v, GgufMetadata* m) {
  m->AddString("tokenizer.ggml.model", v.model);
  if (!v.pre.empty()) m->AddString("tokenizer.ggml.pre", v.pre);
  m->AddStringArray("tokenizer.ggml.tokens", v.tokens);
  if (!v.scores.empty()) m->AddArray("tokenizer.ggml.scores", v.scores);
  m->AddArray("tokenizer.ggml.token_type", v.token_types);
  if (v.model == "gpt2") m->AddStringArray("tokenizer.ggml.merges", v.merges);  // required
  if (v.bos_id) m->AddU32("tokenizer.ggml.bos_token_id", *v.bos_id);
  if (v.eos_id) m->AddU32("tokenizer.ggml.eos_token_id", *v.eos_id);
  if (v.unk_id) m->AddU32("tokenizer.ggml.unknown_token_id", *v.unk_id);
  if (v.pad_id) m->AddU32("tokenizer.ggml.padding_token_id", *v.pad_id);
}

}  // namespace signround
