#include "src/tokenizer/bpe_model.h"

#include <cstdio>
#include <queue>

namespace signround {
namespace {

constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 100000;

size_t Utf8CharLength(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xF0) return 4;
  if (c >= 0xE0) return 3;
  if (c >= 0xC0) return 2;
  return 1;  // not reached for valid UTF-8
}

}  // namespace

BpeModel::BpeModel(std::unordered_map<std::string, int64_t> vocab,
                   std::unordered_map<uint64_t, std::pair<int32_t, int64_t>> merges,
                   BpeModelOptions options)
    : vocab_(std::move(vocab)), merges_(std::move(merges)), options_(options) {
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_ids_[b] = Find(name);
  }
}

std::optional<int64_t> BpeModel::Find(absl::string_view token) const {
  const auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::InitialSymbols(absl::string_view word, std::vector<Symbol>* symbols) const {
  bool last_unk = false;
  const auto push = [&](int64_t id) {
    const int pos = static_cast<int>(symbols->size());
    symbols->push_back({id, pos - 1, pos + 1, true});
  };
  for (size_t i = 0; i < word.size();) {
    const size_t n = std::min(Utf8CharLength(static_cast<unsigned char>(word[i])), word.size() - i);
    const absl::string_view ch = word.substr(i, n);
    i += n;
    if (const auto id = Find(ch)) {
      push(*id);
      last_unk = false;
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (const char c : ch) all = all && byte_ids_[static_cast<unsigned char>(c)].has_value();
      if (all) {
        for (const char c : ch) push(*byte_ids_[static_cast<unsigned char>(c)]);
        last_unk = false;
        continue;
      }
    }
    if (!options_.unk_id) continue;  // as Hugging Face does: dropped without an unk token
    if (!(options_.fuse_unk && last_unk)) push(*options_.unk_id);
    last_unk = true;
  }
  if (!symbols->empty()) symbols->back().next = -1;
}

void BpeModel::MergeAll(std::vector<Symbol>* symbols) const {
  struct Candidate {
    int32_t rank;
    int pos;
    int64_t new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  std::vector<Symbol>& s = *symbols;
  const auto consider = [&](int left) {
    if (left < 0 || s[left].next < 0) return;
    const auto it = merges_.find(PairKey(s[left].id, s[s[left].next].id));
    if (it != merges_.end()) queue.push({it->second.first, left, it->second.second});
  };
  for (int i = 0; i + 1 < static_cast<int>(s.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = s[top.pos];
    if (!left.alive || left.next < 0) continue;
    const auto it = merges_.find(PairKey(left.id, s[left.next].id));
    if (it == merges_.end() || it->second.second != top.new_id) continue;  // stale
    Symbol& right = s[left.next];
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) s[left.next].prev = top.pos;
    consider(left.prev);
    consider(top.pos);
  }
}

void BpeModel::EncodeWord(absl::string_view word, std::vector<int64_t>* ids) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (const auto id = Find(word)) {
      ids->push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word.data(), word.size());
    std::lock_guard<std::mutex> lock(cache_mu_);
    const auto it = cache_.find(key);
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<Symbol> symbols;
  InitialSymbols(word, &symbols);
  MergeAll(&symbols);
  std::vector<int64_t> out;
  for (const Symbol& sym : symbols) {
    if (sym.alive) out.push_back(sym.id);
  }
  ids->insert(ids->end(), out.begin(), out.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::move(key), std::move(out));
  }
}

}  // namespace signround
