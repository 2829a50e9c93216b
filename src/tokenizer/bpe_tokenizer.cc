#include "src/tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "src/common/file_util.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"
#include "src/tokenizer/bpe_model.h"
#include "src/tokenizer/byte_level.h"

namespace signround {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxTokenizerJsonBytes = uint64_t{1} << 30;
constexpr int64_t kMaxId = (int64_t{1} << 31) - 1;

absl::Status Bad(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::Status Unsupported(const std::string& file, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", what, " is not supported"));
}

// The "type" of a component object, or "" when absent.
absl::StatusOr<std::string> ComponentType(const json& obj, const std::string& where) {
  if (!obj.is_object()) return Bad(where, absl::StrCat("expected an object, got ", obj.type_name()));
  const auto it = obj.find("type");
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return Bad(where + "/type", "expected a string");
  return it->get<std::string>();
}

absl::StatusOr<bool> BoolOr(const json& obj, const char* key, bool dflt, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) return Bad(absl::StrCat(where, "/", key), "expected a boolean");
  return it->get<bool>();
}

absl::StatusOr<int64_t> IdValue(const json& v, const std::string& where) {
  const std::optional<int64_t> id = JsonToInt64(v);
  if (!id || *id < 0 || *id > kMaxId) return Bad(where, "expected an integer id in [0, 2^31)");
  return *id;
}

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool lstrip = false, rstrip = false, single_word = false;
};

// One pre-tokenization stage before the final ByteLevel one.
struct PreTokenizers {
  std::vector<std::unique_ptr<RegexSplitter>> splits;
  bool add_prefix_space = false;
  std::unique_ptr<RegexSplitter> byte_level_regex;  // null without use_regex
};

class BpeTokenizer : public Tokenizer {
 public:
  std::unique_ptr<BpeModel> model;
  PreTokenizers pre;
  std::vector<AddedToken> added;               // sorted longest first
  std::array<std::vector<int>, 256> by_first;  // indices into `added`
  std::vector<int64_t> prefix_ids, suffix_ids;
  int64_t vocab_size_ = 0;

  absl::StatusOr<std::vector<int64_t>> Encode(absl::string_view text,
                                              bool add_special_tokens) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  std::string Describe() const override { return "tokenizer.json (BPE)"; }

 private:
  const AddedToken* MatchAt(absl::string_view text, size_t i) const;
  absl::Status EncodePlain(absl::string_view text, std::vector<int64_t>* ids) const;
};

bool IsWordByte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
         u == '_';
}

bool IsSpaceByte(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

const AddedToken* BpeTokenizer::MatchAt(absl::string_view text, size_t i) const {
  for (const int index : by_first[static_cast<unsigned char>(text[i])]) {
    const AddedToken& tok = added[index];
    if (text.compare(i, tok.content.size(), tok.content) != 0) continue;
    if (tok.single_word) {
      const size_t end = i + tok.content.size();
      if ((i > 0 && IsWordByte(text[i - 1])) || (end < text.size() && IsWordByte(text[end]))) {
        continue;
      }
    }
    return &tok;
  }
  return nullptr;
}

absl::Status BpeTokenizer::EncodePlain(absl::string_view text, std::vector<int64_t>* ids) const {
  if (text.empty()) return absl::OkStatus();
  std::vector<absl::string_view> pieces{text};
  for (const auto& split : pre.splits) {
    std::vector<absl::string_view> next;
    for (const absl::string_view piece : pieces) SR_RETURN_IF_ERROR(split->Split(piece, &next));
    pieces.swap(next);
  }
  std::string prefixed, mapped;
  std::vector<absl::string_view> words;
  for (absl::string_view piece : pieces) {
    if (pre.add_prefix_space && piece.front() != ' ') {
      prefixed = absl::StrCat(" ", piece);
      piece = prefixed;
    }
    words.clear();
    if (pre.byte_level_regex != nullptr) {
      SR_RETURN_IF_ERROR(pre.byte_level_regex->Split(piece, &words));
    } else {
      words.push_back(piece);
    }
    for (const absl::string_view word : words) {
      mapped.clear();
      AppendByteLevel(word, &mapped);
      model->EncodeWord(mapped, ids);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> BpeTokenizer::Encode(absl::string_view text,
                                                          bool add_special_tokens) const {
  SR_RETURN_IF_ERROR(ValidateUtf8(text));
  std::vector<int64_t> ids;
  if (add_special_tokens) ids = prefix_ids;
  size_t start = 0;  // of the text not yet encoded
  for (size_t i = 0; i < text.size();) {
    const AddedToken* tok = added.empty() ? nullptr : MatchAt(text, i);
    if (tok == nullptr) {
      ++i;
      continue;
    }
    size_t match_start = i, match_end = i + tok->content.size();
    if (tok->lstrip) {
      while (match_start > start && IsSpaceByte(text[match_start - 1])) --match_start;
    }
    if (tok->rstrip) {
      while (match_end < text.size() && IsSpaceByte(text[match_end])) ++match_end;
    }
    SR_RETURN_IF_ERROR(EncodePlain(text.substr(start, match_start - start), &ids));
    ids.push_back(tok->id);
    start = i = match_end;
  }
  SR_RETURN_IF_ERROR(EncodePlain(text.substr(start), &ids));
  if (add_special_tokens) ids.insert(ids.end(), suffix_ids.begin(), suffix_ids.end());
  return ids;
}

absl::StatusOr<std::unordered_map<std::string, int64_t>> LoadVocab(const json& model,
                                                                  const std::string& where,
                                                                  int64_t* max_id) {
  const auto it = model.find("vocab");
  if (it == model.end() || !it->is_object()) return Bad(where + "/vocab", "expected an object");
  std::unordered_map<std::string, int64_t> vocab;
  vocab.reserve(it->size());
  for (const auto& [token, value] : it->items()) {
    SR_ASSIGN_OR_RETURN(const int64_t id, IdValue(value, absl::StrCat(where, "/vocab/", token)));
    vocab.emplace(token, id);
    *max_id = std::max(*max_id, id);
  }
  return vocab;
}

absl::StatusOr<std::pair<std::string, std::string>> MergePair(const json& m,
                                                              const std::string& where) {
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    const size_t space = s.find(' ');
    if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
      return Bad(where, "expected \"left right\" with exactly one space");
    }
    return std::make_pair(s.substr(0, space), s.substr(space + 1));
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    return std::make_pair(m[0].get<std::string>(), m[1].get<std::string>());
  }
  return Bad(where, "expected a string \"left right\" or a [left, right] pair");
}

absl::StatusOr<std::unordered_map<uint64_t, std::pair<int32_t, int64_t>>> LoadMerges(
    const json& model, const std::unordered_map<std::string, int64_t>& vocab,
    const std::string& where) {
  const auto it = model.find("merges");
  if (it == model.end() || !it->is_array()) return Bad(where + "/merges", "expected an array");
  if (it->size() > static_cast<size_t>(kMaxId)) return Bad(where + "/merges", "too many merges");
  std::unordered_map<uint64_t, std::pair<int32_t, int64_t>> merges;
  merges.reserve(it->size());
  const auto id_of = [&](const std::string& token) -> std::optional<int64_t> {
    const auto v = vocab.find(token);
    return v == vocab.end() ? std::nullopt : std::optional<int64_t>(v->second);
  };
  for (size_t rank = 0; rank < it->size(); ++rank) {
    const std::string at = absl::StrCat(where, "/merges/", rank);
    SR_ASSIGN_OR_RETURN(const auto pair, MergePair((*it)[rank], at));
    const auto left = id_of(pair.first), right = id_of(pair.second);
    const auto merged = id_of(pair.first + pair.second);
    if (!left || !right || !merged) return Bad(at, "merge of tokens that are not in the vocab");
    // A repeated pair takes its last rank, as Hugging Face's map does.
    merges[BpeModel::PairKey(*left, *right)] = {static_cast<int32_t>(rank), *merged};
  }
  return merges;
}

absl::Status CheckModelKind(const json& model, const std::string& file) {
  SR_ASSIGN_OR_RETURN(const std::string type, ComponentType(model, file + ": /model"));
  if (type.empty() && !(model.contains("vocab") && model.contains("merges"))) {
    return Unsupported(file, "model without type, vocab and merges");
  }
  if (!type.empty() && type != "BPE") return Unsupported(file, "model type " + type);
  const auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null() &&
      !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    return Unsupported(file, "BPE dropout");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto v = model.find(key);
    if (v == model.end() || v->is_null()) continue;
    if (!v->is_string()) return Bad(absl::StrCat(file, ": /model/", key), "expected a string");
    if (!v->get_ref<const std::string&>().empty()) {
      return Unsupported(file, absl::StrCat("model.", key, " '", v->get<std::string>(), "'"));
    }
  }
  return absl::OkStatus();
}

absl::Status LoadModel(const json& root, const std::string& file, BpeTokenizer* tok) {
  const auto it = root.find("model");
  if (it == root.end()) return Bad(file, "missing 'model'");
  const json& model = *it;
  const std::string where = file + ": /model";
  SR_RETURN_IF_ERROR(CheckModelKind(model, file));
  int64_t max_id = -1;
  SR_ASSIGN_OR_RETURN(auto vocab, LoadVocab(model, where, &max_id));
  SR_ASSIGN_OR_RETURN(auto merges, LoadMerges(model, vocab, where));
  BpeModelOptions options;
  SR_ASSIGN_OR_RETURN(options.ignore_merges, BoolOr(model, "ignore_merges", false, where));
  SR_ASSIGN_OR_RETURN(options.byte_fallback, BoolOr(model, "byte_fallback", false, where));
  SR_ASSIGN_OR_RETURN(options.fuse_unk, BoolOr(model, "fuse_unk", false, where));
  const auto unk = model.find("unk_token");
  if (unk != model.end() && !unk->is_null()) {
    if (!unk->is_string()) return Bad(where + "/unk_token", "expected a string");
    const auto id = vocab.find(unk->get<std::string>());
    if (id == vocab.end()) return Bad(where + "/unk_token", "is not in the vocab");
    options.unk_id = id->second;
  }
  tok->vocab_size_ = max_id + 1;
  tok->model = std::make_unique<BpeModel>(std::move(vocab), std::move(merges), options);
  return absl::OkStatus();
}

absl::Status LoadSplit(const json& split, const std::string& file, const std::string& where,
                       PreTokenizers* pre) {
  SR_ASSIGN_OR_RETURN(const bool invert, BoolOr(split, "invert", false, where));
  if (invert) return Unsupported(file, "Split pre-tokenizer with invert true");
  const auto behavior = split.find("behavior");
  if (behavior == split.end() || !behavior->is_string()) {
    return Bad(where + "/behavior", "expected a string");
  }
  const auto pattern = split.find("pattern");
  if (pattern == split.end() || !pattern->is_object() || pattern->size() != 1) {
    return Bad(where + "/pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
  }
  const std::string kind = pattern->begin().key();
  if ((kind != "Regex" && kind != "String") || !pattern->begin().value().is_string()) {
    return Bad(where + "/pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
  }
  auto parsed = ParseSplitBehavior(behavior->get<std::string>());
  if (!parsed.ok()) return Bad(file, parsed.status().message());
  auto splitter =
      RegexSplitter::Create(pattern->begin().value().get<std::string>(), kind == "String", *parsed);
  if (!splitter.ok()) return Bad(where + "/pattern", splitter.status().message());
  pre->splits.push_back(*std::move(splitter));
  return absl::OkStatus();
}

absl::Status LoadByteLevel(const json& bl, const std::string& where, PreTokenizers* pre) {
  SR_ASSIGN_OR_RETURN(pre->add_prefix_space, BoolOr(bl, "add_prefix_space", false, where));
  SR_ASSIGN_OR_RETURN(const bool use_regex, BoolOr(bl, "use_regex", true, where));
  if (use_regex) {
    SR_ASSIGN_OR_RETURN(pre->byte_level_regex,
                        RegexSplitter::Create(kGpt2Regex, false, SplitBehavior::kIsolated));
  }
  return absl::OkStatus();
}

// ByteLevel, or Sequence[Split..., ByteLevel] (ByteLevel last, once).
absl::Status LoadPreTokenizer(const json& root, const std::string& file, PreTokenizers* pre) {
  const auto it = root.find("pre_tokenizer");
  if (it == root.end() || it->is_null()) return Unsupported(file, "pre_tokenizer null");
  const std::string where = file + ": /pre_tokenizer";
  SR_ASSIGN_OR_RETURN(const std::string type, ComponentType(*it, where));
  if (type == "ByteLevel") return LoadByteLevel(*it, where, pre);
  if (type != "Sequence") return Unsupported(file, "pre_tokenizer " + type);
  const auto list = it->find("pretokenizers");
  if (list == it->end() || !list->is_array() || list->empty()) {
    return Bad(where + "/pretokenizers", "expected a non-empty array");
  }
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string at = absl::StrCat(where, "/pretokenizers/", i);
    SR_ASSIGN_OR_RETURN(const std::string step, ComponentType((*list)[i], at));
    const bool last = i + 1 == list->size();
    if (step == "Split" && !last) {
      SR_RETURN_IF_ERROR(LoadSplit((*list)[i], file, at, pre));
    } else if (step == "ByteLevel" && last) {
      SR_RETURN_IF_ERROR(LoadByteLevel((*list)[i], at, pre));
    } else {
      return Unsupported(file, absl::StrCat("pre_tokenizer Sequence step ", i, " '", step,
                                            "' (only Split steps then one final ByteLevel)"));
    }
  }
  return absl::OkStatus();
}

absl::Status LoadAddedTokens(const json& root, const std::string& file, BpeTokenizer* tok) {
  const auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return Bad(file + ": /added_tokens", "expected an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string at = absl::StrCat(file, ": /added_tokens/", i);
    const json& entry = (*it)[i];
    if (!entry.is_object()) return Bad(at, "expected an object");
    AddedToken t;
    const auto content = entry.find("content");
    if (content == entry.end() || !content->is_string() || content->get_ref<const std::string&>().empty()) {
      return Bad(at + "/content", "expected a non-empty string");
    }
    t.content = content->get<std::string>();
    SR_RETURN_IF_ERROR(ValidateUtf8(t.content));
    const auto id = entry.find("id");
    if (id == entry.end()) return Bad(at + "/id", "missing");
    SR_ASSIGN_OR_RETURN(t.id, IdValue(*id, at + "/id"));
    SR_ASSIGN_OR_RETURN(t.lstrip, BoolOr(entry, "lstrip", false, at));
    SR_ASSIGN_OR_RETURN(t.rstrip, BoolOr(entry, "rstrip", false, at));
    SR_ASSIGN_OR_RETURN(t.single_word, BoolOr(entry, "single_word", false, at));
    tok->vocab_size_ = std::max(tok->vocab_size_, t.id + 1);
    tok->added.push_back(std::move(t));
  }
  std::stable_sort(tok->added.begin(), tok->added.end(), [](const AddedToken& a,
                                                            const AddedToken& b) {
    return a.content.size() > b.content.size();
  });
  for (size_t i = 0; i < tok->added.size(); ++i) {
    tok->by_first[static_cast<unsigned char>(tok->added[i].content[0])].push_back(
        static_cast<int>(i));
  }
  return absl::OkStatus();
}

// The id of a special token named in the post-processor or tokenizer_config.json.
std::optional<int64_t> TokenId(const BpeTokenizer& tok, const std::string& token) {
  for (const AddedToken& t : tok.added) {
    if (t.content == token) return t.id;
  }
  return tok.model->Find(token);
}

absl::Status LoadTemplate(const json& proc, const std::string& file, const std::string& where,
                          BpeTokenizer* tok) {
  const auto single = proc.find("single");
  if (single == proc.end() || !single->is_array()) return Bad(where + "/single", "expected an array");
  const auto specials = proc.find("special_tokens");
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const std::string at = absl::StrCat(where, "/single/", i);
    const json& piece = (*single)[i];
    if (!piece.is_object() || piece.size() != 1 || !piece.begin().value().is_object()) {
      return Bad(at, "expected {\"SpecialToken\": {...}} or {\"Sequence\": {...}}");
    }
    const json& body = piece.begin().value();
    if (piece.begin().key() == "Sequence") {
      if (seen_sequence) return Unsupported(file, "a template with two sequences in 'single'");
      seen_sequence = true;
      continue;
    }
    const auto name = body.find("id");
    if (piece.begin().key() != "SpecialToken" || name == body.end() || !name->is_string()) {
      return Bad(at, "expected {\"SpecialToken\": {\"id\": <string>}}");
    }
    std::vector<int64_t>& out = seen_sequence ? tok->suffix_ids : tok->prefix_ids;
    const std::string token = name->get<std::string>();
    const json* entry = nullptr;
    if (specials != proc.end() && specials->is_object() && specials->contains(token)) {
      entry = &(*specials)[token];
    }
    if (entry != nullptr && entry->is_object() && entry->contains("ids")) {
      const json& ids = (*entry)["ids"];
      if (!ids.is_array()) return Bad(where + "/special_tokens/" + token + "/ids", "expected an array");
      for (const json& id : ids) {
        SR_ASSIGN_OR_RETURN(const int64_t v, IdValue(id, where + "/special_tokens/" + token + "/ids"));
        out.push_back(v);
      }
    } else if (const auto id = TokenId(*tok, token)) {
      out.push_back(*id);
    } else {
      return Bad(at, "special token '" + token + "' is not in the vocab");
    }
  }
  if (!seen_sequence) return Bad(where + "/single", "has no Sequence");
  return absl::OkStatus();
}

absl::Status LoadPostProcessor(const json& proc, const std::string& file, const std::string& where,
                               BpeTokenizer* tok) {
  if (proc.is_null()) return absl::OkStatus();
  SR_ASSIGN_OR_RETURN(const std::string type, ComponentType(proc, where));
  if (type == "ByteLevel") return absl::OkStatus();
  if (type == "TemplateProcessing") return LoadTemplate(proc, file, where, tok);
  if (type == "Sequence") {
    const auto list = proc.find("processors");
    if (list == proc.end() || !list->is_array()) return Bad(where + "/processors", "expected an array");
    for (size_t i = 0; i < list->size(); ++i) {
      SR_RETURN_IF_ERROR(
          LoadPostProcessor((*list)[i], file, absl::StrCat(where, "/processors/", i), tok));
    }
    return absl::OkStatus();
  }
  return Unsupported(file, "post_processor " + type);
}

// bos_token / eos_token: a string, or an object with "content".
absl::StatusOr<std::optional<std::string>> ConfigToken(const json& config, const char* key,
                                                       const std::string& where) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::optional<std::string>();
  if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return std::optional<std::string>((*it)["content"].get<std::string>());
  }
  return Bad(absl::StrCat(where, "/", key), "expected a string or {\"content\": <string>}");
}

// add_bos_token / add_eos_token: add the token when the post-processor does not.
absl::Status ApplyConfig(const std::string& path, BpeTokenizer* tok) {
  if (path.empty()) return absl::OkStatus();
  SR_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path, uint64_t{64} << 20));
  SR_ASSIGN_OR_RETURN(const json config, ParseJsonObject(text, path));
  const std::string where = path + ": ";
  for (const bool bos : {true, false}) {
    SR_ASSIGN_OR_RETURN(const bool add,
                        BoolOr(config, bos ? "add_bos_token" : "add_eos_token", false, where));
    if (!add) continue;
    const char* key = bos ? "bos_token" : "eos_token";
    SR_ASSIGN_OR_RETURN(const auto token, ConfigToken(config, key, where));
    if (!token) return Bad(where + key, "is missing while add_" + std::string(key) + " is true");
    const auto id = TokenId(*tok, *token);
    if (!id) return Bad(where + key, "'" + *token + "' is not in the vocab");
    std::vector<int64_t>& ids = bos ? tok->prefix_ids : tok->suffix_ids;
    if (std::find(ids.begin(), ids.end(), *id) != ids.end()) continue;
    if (bos) {
      ids.insert(ids.begin(), *id);
    } else {
      ids.push_back(*id);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadBpeTokenizer(
    const std::string& tokenizer_json_path, const std::string& tokenizer_config_path) {
  const std::string& file = tokenizer_json_path;
  SR_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(file, kMaxTokenizerJsonBytes));
  SR_ASSIGN_OR_RETURN(const json root, ParseJsonObject(text, file));
  const auto normalizer = root.find("normalizer");
  if (normalizer != root.end() && !normalizer->is_null()) {
    SR_ASSIGN_OR_RETURN(const std::string type, ComponentType(*normalizer, file + ": /normalizer"));
    return Unsupported(file, "normalizer " + type);
  }
  auto tok = std::make_unique<BpeTokenizer>();
  SR_RETURN_IF_ERROR(LoadModel(root, file, tok.get()));
  SR_RETURN_IF_ERROR(LoadPreTokenizer(root, file, &tok->pre));
  SR_RETURN_IF_ERROR(LoadAddedTokens(root, file, tok.get()));
  const auto post = root.find("post_processor");
  if (post != root.end()) {
    SR_RETURN_IF_ERROR(LoadPostProcessor(*post, file, file + ": /post_processor", tok.get()));
  }
  SR_RETURN_IF_ERROR(ApplyConfig(tokenizer_config_path, tok.get()));
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

}  // namespace signround
