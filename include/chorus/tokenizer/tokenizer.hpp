// chorus — text to token ids and back, for SentencePiece ("llama") and byte-level BPE
// ("gpt2") vocabularies, matching the reference implementation's ids exactly.
#pragma once

#include <cctype>
#include <cstdint>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/gguf/file.hpp"
#include "chorus/tokenizer/pre_tokenize.hpp"
#include "chorus/tokenizer/utf8.hpp"
#include "chorus/tokenizer/vocab.hpp"

namespace chorus::inline CHORUS_ABI::tokenizer {

class tokenizer {
 public:
  explicit tokenizer(vocab v) : vocab_(std::move(v)) {
    if (vocab_.kind() == model_kind::bpe) {
      pre_ = pre_tokenizer_from_name(vocab_.pre_tokenizer());
      build_byte_maps();
    }
  }
  static tokenizer from_gguf(const gguf::file& file) { return tokenizer(vocab::from_gguf(file)); }

  const vocab& vocabulary() const noexcept { return vocab_; }

  // add_special: BOS (and EOS) as the vocabulary asks; parse_special: control tokens written
  // as text ("<s>", "<|im_start|>") become their ids instead of being tokenized as text.
  std::vector<token_id> encode(std::string_view text, bool add_special = true, bool parse_special = false) const {
    std::vector<token_id> out;
    if (add_special && vocab_.add_bos() && vocab_.bos()) out.push_back(*vocab_.bos());
    bool previous_special = true;  // SentencePiece: the first text gets a space prefix
    for (const auto& f : partition(text, parse_special)) {
      if (f.token >= 0) {
        out.push_back(f.token);
        previous_special = true;
        continue;
      }
      const std::string_view piece = text.substr(f.begin, f.end - f.begin);
      if (vocab_.kind() == model_kind::spm) {
        encode_spm(piece, vocab_.add_space_prefix() && previous_special, out);
      } else {
        encode_bpe(piece, out);
      }
      previous_special = false;
    }
    if (add_special && vocab_.add_eos() && vocab_.eos()) out.push_back(*vocab_.eos());
    return out;
  }

  // The bytes a token stands for. Control tokens give nothing unless `special`.
  std::string token_to_piece(token_id id, bool special = false) const {
    if (id < 0 || static_cast<std::size_t>(id) >= vocab_.size()) {
      fail(errc::invalid_argument, "token id ", id, " is outside the vocabulary of ", vocab_.size());
    }
    const auto& t = vocab_[id];
    switch (t.type) {
      case token_type::control: return special ? t.text : std::string();
      case token_type::user_defined: return t.text;
      case token_type::unknown: return vocab_.kind() == model_kind::spm ? std::string("\xE2\x96\x85") : t.text;
      case token_type::byte:
        if (vocab_.kind() == model_kind::spm && t.text.size() == 6) {
          return std::string(1, static_cast<char>(std::stoi(t.text.substr(3, 2), nullptr, 16)));
        }
        [[fallthrough]];
      default:
        return vocab_.kind() == model_kind::spm ? unescape_spm(t.text) : unmap_bpe(t.text);
    }
  }

  // The text of a sequence of tokens. SentencePiece drops the space it added in front.
  std::string decode(std::span<const token_id> ids, bool special = false) const {
    std::string out;
    bool first = true;
    for (const auto id : ids) {
      std::string piece = token_to_piece(id, special);
      if (first && vocab_.kind() == model_kind::spm && vocab_.add_space_prefix() && !piece.empty() && piece[0] == ' ') {
        piece.erase(0, 1);
      }
      if (!piece.empty() || vocab_[id].type != token_type::control) first = false;
      out += piece;
    }
    return out;
  }

 private:
  struct fragment {
    std::size_t begin = 0, end = 0;
    token_id token = -1;  // >= 0: a special token matched in the text
  };

  // Splits the text around special tokens (longest first; control and unknown tokens only when
  // parse_special), absorbing whitespace next to tokens that strip it.
  std::vector<fragment> partition(std::string_view text, bool parse_special) const {
    std::vector<fragment> fragments;
    if (text.empty()) return fragments;
    fragments.push_back({0, text.size(), -1});
    std::vector<fragment> next;
    for (const token_id id : vocab_.special_tokens()) {
      const auto& t = vocab_[id];
      if (!parse_special && (t.type == token_type::control || t.type == token_type::unknown)) continue;
      next.clear();
      for (const fragment& f : fragments) {
        if (f.token >= 0) {
          next.push_back(f);
          continue;
        }
        std::size_t begin = f.begin;
        for (;;) {
          const std::size_t at = text.substr(begin, f.end - begin).find(t.text);
          if (at == std::string_view::npos) break;
          const std::size_t match = begin + at;
          std::size_t left_end = match;
          if (t.lstrip) while (left_end > begin && std::isspace(static_cast<unsigned char>(text[left_end - 1]))) --left_end;
          if (left_end > begin) next.push_back({begin, left_end, -1});
          next.push_back({match, match + t.text.size(), id});
          begin = match + t.text.size();
          if (t.rstrip) while (begin < f.end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
        }
        if (begin < f.end) next.push_back({begin, f.end, -1});
      }
      fragments.swap(next);
    }
    return fragments;
  }

  // --- SentencePiece ------------------------------------------------------------------

  static std::string unescape_spm(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
      if (text.substr(i, 3) == "\xE2\x96\x81") {
        out += ' ';
        i += 3;
      } else {
        out += text[i++];
      }
    }
    return out;
  }

  // Greedy merging of the adjacent pair whose concatenation is the best-scoring vocabulary
  // token (ties: leftmost), then byte fallback for pieces the vocabulary lacks.
  void encode_spm(std::string_view raw, bool space_prefix, std::vector<token_id>& out) const {
    std::string text;
    text.reserve(raw.size() * 3 + 3);
    if (space_prefix) text += "\xE2\x96\x81";
    for (const char c : raw) {
      if (c == ' ') text += "\xE2\x96\x81";
      else text += c;
    }
    struct symbol {
      int prev, next;
      std::size_t begin, length;
    };
    std::vector<symbol> symbols;
    for (std::size_t pos = 0; pos < text.size();) {
      const std::size_t length = std::min(utf8::sequence_length(static_cast<std::uint8_t>(text[pos])), text.size() - pos);
      symbols.push_back({static_cast<int>(symbols.size()) - 1, static_cast<int>(symbols.size()) + 1, pos, length});
      pos += length;
    }
    if (symbols.empty()) return;
    symbols.back().next = -1;
    struct bigram {
      int left, right;
      float score;
      std::size_t length;
      bool operator<(const bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
    };
    std::priority_queue<bigram> queue;
    auto try_add = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const std::string_view pair(text.data() + symbols[left].begin, symbols[left].length + symbols[right].length);
      if (const auto id = vocab_.find(pair)) queue.push({left, right, vocab_[*id].score, pair.size()});
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);
    while (!queue.empty()) {
      const bigram b = queue.top();
      queue.pop();
      symbol& left = symbols[b.left];
      symbol& right = symbols[b.right];
      if (left.length == 0 || right.length == 0 || left.length + right.length != b.length) continue;  // stale
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = b.left;
      try_add(left.prev, b.left);
      try_add(b.left, left.next);
    }
    for (int i = 0; i != -1; i = symbols[i].next) {
      const std::string_view piece(text.data() + symbols[i].begin, symbols[i].length);
      if (const auto id = vocab_.find(piece)) {
        out.push_back(*id);
        continue;
      }
      for (const char c : piece) {
        const token_id byte = vocab_.byte_token(static_cast<std::uint8_t>(c));
        if (byte >= 0) out.push_back(byte);
        else if (vocab_.unk()) out.push_back(*vocab_.unk());
      }
    }
  }

  // --- byte-level BPE -----------------------------------------------------------------

  // GPT-2's reversible map from bytes to printable code points.
  void build_byte_maps() {
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const std::uint32_t cp = printable ? static_cast<std::uint32_t>(b) : 256u + static_cast<std::uint32_t>(extra++);
      byte_to_text_[b].clear();
      utf8::append(byte_to_text_[b], cp);
      text_to_byte_[cp] = static_cast<std::uint8_t>(b);
      byte_mapped_[cp] = true;
    }
  }

  std::string unmap_bpe(std::string_view text) const {
    std::string out;
    for (std::size_t pos = 0; pos < text.size();) {
      const std::size_t start = pos;
      const std::uint32_t cp = utf8::decode_lenient(text, pos);
      if (cp < 324 && byte_mapped_[cp]) out += static_cast<char>(text_to_byte_[cp]);
      else out.append(text.substr(start, pos - start));  // not a mapped code point: keep it
    }
    return out;
  }

  void encode_bpe(std::string_view raw, std::vector<token_id>& out) const {
    // Invalid UTF-8 becomes U+FFFD and overlong forms their code points before the bytes
    // are mapped, as in the reference: the BPE sees the re-encoded text.
    std::string text;
    text.reserve(raw.size());
    for (std::size_t pos = 0; pos < raw.size();) utf8::append(text, utf8::decode_lenient(raw, pos));
    std::vector<std::pair<std::size_t, std::size_t>> words;
    split_gpt2(text, words);
    std::string mapped;
    for (const auto& [begin, end] : words) {
      mapped.clear();
      std::vector<std::size_t> boundaries;  // symbol starts in `mapped`
      for (std::size_t i = begin; i < end; ++i) {
        boundaries.push_back(mapped.size());
        mapped += byte_to_text_[static_cast<std::uint8_t>(text[i])];
      }
      merge_bpe(mapped, boundaries, out);
    }
  }

  // Merges adjacent symbols by rank (lowest first, leftmost on ties) until none applies.
  void merge_bpe(const std::string& word, const std::vector<std::size_t>& starts, std::vector<token_id>& out) const {
    struct symbol {
      int prev, next;
      std::size_t begin, length;
    };
    std::vector<symbol> symbols;
    for (std::size_t i = 0; i < starts.size(); ++i) {
      const std::size_t end = i + 1 < starts.size() ? starts[i + 1] : word.size();
      symbols.push_back({static_cast<int>(i) - 1, static_cast<int>(i) + 1, starts[i], end - starts[i]});
    }
    if (symbols.empty()) return;
    symbols.back().next = -1;
    struct bigram {
      int left, right, rank;
      std::size_t length;
      bool operator<(const bigram& o) const { return rank > o.rank || (rank == o.rank && left > o.left); }
    };
    std::priority_queue<bigram> queue;
    std::string pair;
    auto try_add = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      pair.assign(word, symbols[left].begin, symbols[left].length);
      pair += ' ';
      pair.append(word, symbols[right].begin, symbols[right].length);
      const int rank = vocab_.merge_rank(pair);
      if (rank >= 0) queue.push({left, right, rank, symbols[left].length + symbols[right].length});
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);
    while (!queue.empty()) {
      const bigram b = queue.top();
      queue.pop();
      symbol& left = symbols[b.left];
      symbol& right = symbols[b.right];
      if (left.length == 0 || right.length == 0 || left.length + right.length != b.length) continue;
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = b.left;
      try_add(left.prev, b.left);
      try_add(b.left, left.next);
    }
    for (int i = 0; i != -1; i = symbols[i].next) {
      const std::string_view piece(word.data() + symbols[i].begin, symbols[i].length);
      if (const auto id = vocab_.find(piece)) {
        out.push_back(*id);
        continue;
      }
      // A piece without a token: fall back to its single (mapped) bytes.
      for (std::size_t pos = 0; pos < piece.size();) {
        const std::size_t start = pos;
        utf8::decode_lenient(piece, pos);
        if (const auto id = vocab_.find(piece.substr(start, pos - start))) out.push_back(*id);
        else if (vocab_.unk()) out.push_back(*vocab_.unk());
      }
    }
  }

  vocab vocab_;
  pre_tokenizer pre_ = pre_tokenizer::gpt2;
  std::string byte_to_text_[256];
  std::uint8_t text_to_byte_[324] = {};
  bool byte_mapped_[324] = {};
};

// Turns a stream of tokens into text without ever emitting part of a UTF-8 character: bytes
// of an unfinished character wait for the next token.
class stream_decoder {
 public:
  explicit stream_decoder(const tokenizer& t) : tokenizer_(&t) {}

  // The text that is complete after this token (possibly empty).
  std::string push(token_id id) {
    pending_ += tokenizer_->token_to_piece(id);
    if (first_ && tokenizer_->vocabulary().kind() == model_kind::spm && tokenizer_->vocabulary().add_space_prefix() &&
        !pending_.empty()) {
      if (pending_[0] == ' ') pending_.erase(0, 1);
      first_ = false;
    } else if (!pending_.empty()) {
      first_ = false;
    }
    const std::size_t ready = utf8::complete_prefix(pending_);
    std::string out = pending_.substr(0, ready);
    pending_.erase(0, ready);
    return out;
  }
  // Whatever is left at the end (an unfinished character is emitted as its raw bytes).
  std::string flush() { return std::exchange(pending_, std::string()); }
  // Start a new text without the leading-space rule of the first token.
  void continue_text() noexcept { first_ = false; }

 private:
  const tokenizer* tokenizer_;
  std::string pending_;
  bool first_ = true;
};

}  // namespace chorus::inline CHORUS_ABI::tokenizer
