// The BPE model of a tokenizer.json: vocabulary, merge ranks and the
// rank-ordered merge of one pre-tokenized word into ids (Hugging Face's
// tokenizers::models::bpe without dropout), with a word cache.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace signround {

struct BpeModelOptions {
  bool ignore_merges = false;  // a word that is a whole vocab entry is that id
  bool byte_fallback = false;  // unknown characters become <0xXX> tokens
  bool fuse_unk = false;       // consecutive unknowns become one unk
  std::optional<int64_t> unk_id;
};

class BpeModel {
 public:
  // Ids must be in [0, 2^31); every merge (left id, right id) -> (rank, merged id).
  BpeModel(std::unordered_map<std::string, int64_t> vocab,
           std::unordered_map<uint64_t, std::pair<int32_t, int64_t>> merges,
           BpeModelOptions options);

  static uint64_t PairKey(int64_t left, int64_t right) {
    return (static_cast<uint64_t>(left) << 32) | static_cast<uint64_t>(right);
  }

  // Appends the ids of `word` (byte-level characters, valid UTF-8).
  void EncodeWord(absl::string_view word, std::vector<int64_t>* ids) const;

  std::optional<int64_t> Find(absl::string_view token) const;

 private:
  struct Symbol {
    int64_t id;
    int prev;
    int next;
    bool alive;
  };
  void InitialSymbols(absl::string_view word, std::vector<Symbol>* symbols) const;
  void MergeAll(std::vector<Symbol>* symbols) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::unordered_map<uint64_t, std::pair<int32_t, int64_t>> merges_;
  BpeModelOptions options_;
  std::optional<int64_t> byte_ids_[256];  // <0xXX> ids for byte_fallback

  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
};

}  // namespace signround
