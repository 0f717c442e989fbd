// chorus — text to token ids and back, for SentencePiece ("llama") and byte-level BPE
// ("gpt2") vocabularies, matching the reference implementation's (llama.cpp's) ids exactly.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/core/utf8.hpp"
#include "chorus/gguf/file.hpp"
#include "chorus/tokenizer/pre_tokenize.hpp"
#include "chorus/tokenizer/utf8.hpp"
#include "chorus/tokenizer/vocab.hpp"

namespace chorus::inline CHORUS_ABI::tokenizer {

// Encoder and decoder over one vocabulary. Immutable after construction: one tokenizer can be
// used from several threads at once.
class tokenizer {
 public:
  explicit tokenizer(vocab v) : vocab_(std::move(v)) {
    if (vocab_.empty()) fail(errc::invalid_argument, "tokenizer: empty vocabulary");
    pre_ = pre_tokenizer(vocab_.pre_kind());
    if (vocab_.kind() == model_kind::bpe) build_byte_maps();
    build_pieces();
  }
  static tokenizer from_gguf(const gguf::file& file) { return tokenizer(vocab::from_gguf(file)); }

  const vocab& vocabulary() const noexcept { return vocab_; }

  // Token ids of `text`, as llama_tokenize(text, add_special, parse_special):
  // add_special: BOS (and EOS) as the vocabulary asks; parse_special: control tokens written
  // as text ("<s>", "<|im_start|>") become their ids instead of being tokenized as text.
  // User-defined tokens are always matched as units.
  std::vector<token_id> encode(std::string_view text, bool add_special = true, bool parse_special = false) const {
    std::vector<token_id> out;
    out.reserve(text.size() / 3 + 2);
    encode(text, out, add_special, parse_special);
    return out;
  }
  // The same, appending to `out`.
  void encode(std::string_view text, std::vector<token_id>& out, bool add_special, bool parse_special) const {
    workspace ws;
    if (add_special && vocab_.add_bos()) out.push_back(*vocab_.bos());
    bool previous_special = true;  // SentencePiece: text after a special token (or at the start) gets a space prefix
    partition(text, parse_special, ws.fragments);
    for (const auto& f : ws.fragments) {
      if (f.token >= 0) {
        out.push_back(f.token);
        previous_special = true;
        continue;
      }
      const std::string_view piece = text.substr(f.begin, f.end - f.begin);
      if (vocab_.kind() == model_kind::spm) {
        encode_spm(piece, vocab_.add_space_prefix() && previous_special, out, ws);
      } else {
        encode_bpe(piece, out, ws);
      }
      previous_special = false;
    }
    if (add_special && vocab_.add_eos()) out.push_back(*vocab_.eos());
  }

  // The bytes a token stands for, as llama_token_to_piece(id, lstrip = 0, special). Control and
  // unknown tokens give nothing unless `special`. The view lives as long as the tokenizer.
  std::string_view token_to_piece(token_id id, bool special = false) const {
    if (!vocab_.contains(id)) {
      fail(errc::out_of_range, "token id ", id, " is outside the vocabulary of ", vocab_.size(), " tokens");
    }
    const auto i = static_cast<std::size_t>(id);
    if (!special && hidden_[i]) return {};
    return std::string_view(pieces_).substr(piece_offsets_[i], piece_offsets_[i + 1] - piece_offsets_[i]);
  }

  // The text of a sequence of tokens, as llama_detokenize(ids, remove_special = false,
  // unparse_special = special): the space SentencePiece put in front of the first token is
  // dropped, and vocabularies that ask for it (GPT-2 style) get the reference's clean-up of
  // spaces before punctuation and contractions. May contain invalid UTF-8 (byte tokens).
  std::string decode(std::span<const token_id> ids, bool special = false) const {
    std::string out;
    bool strip_space = vocab_.add_space_prefix();
    for (const auto id : ids) {
      std::string_view piece = token_to_piece(id, special);
      if (strip_space && !piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
      strip_space = false;
      out += piece;
    }
    if (vocab_.clean_spaces()) clean_up_spaces(out);
    return out;
  }

 private:
  struct fragment {
    std::size_t begin = 0, end = 0;
    token_id token = -1;  // >= 0: a special token matched in the text
  };
  struct spm_symbol {
    int prev, next;
    std::uint32_t begin, length;
  };
  struct bpe_symbol {
    int prev, next;
    std::uint32_t begin, length;
    token_id id;  // the token whose text this symbol is, or -1
  };
  struct bigram {
    float score;  // SentencePiece: higher first
    int rank;     // BPE: lower first
    int left, right;
    std::uint32_t length;
  };
  // Per-call buffers, reused across the words of one call.
  struct workspace {
    std::vector<fragment> fragments, fragments_next;
    std::string text;
    std::vector<spm_symbol> spm;
    std::vector<bpe_symbol> bpe;
    std::vector<bigram> heap;
    std::vector<std::uint32_t> cps;
    std::vector<std::uint8_t> classes;
    std::vector<std::uint32_t> words, scratch;
    std::string pair;
  };

  static bool is_space_byte(char c) noexcept { return c == ' ' || (c >= '\t' && c <= '\r'); }

  // Splits the text around special tokens (longest first; control and unknown tokens only when
  // parse_special), absorbing whitespace next to tokens that strip it.
  void partition(std::string_view text, bool parse_special, std::vector<fragment>& fragments) const {
    fragments.clear();
    if (text.empty()) return;
    fragments.push_back({0, text.size(), -1});
    std::vector<fragment> next;
    for (const token_id id : vocab_.special_tokens()) {
      const auto t = vocab_[id];
      if (!parse_special && (t.type == token_type::control || t.type == token_type::unknown)) continue;
      if (t.text.empty()) continue;
      bool found = false;
      for (const fragment& f : fragments) {
        if (f.token < 0 && text.substr(f.begin, f.end - f.begin).find(t.text) != std::string_view::npos) {
          found = true;
          break;
        }
      }
      if (!found) continue;
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
          if (t.lstrip) {
            while (left_end > begin && is_space_byte(text[left_end - 1])) --left_end;
          }
          if (left_end > begin) next.push_back({begin, left_end, -1});
          next.push_back({match, match + t.text.size(), id});
          begin = match + t.text.size();
          if (t.rstrip) {
            while (begin < f.end && is_space_byte(text[begin])) ++begin;
          }
        }
        if (begin < f.end) next.push_back({begin, f.end, -1});
      }
      fragments.swap(next);
    }
  }

  // --- SentencePiece ------------------------------------------------------------------

  // The reference cuts symbols by the lead byte alone (F8..FF count as 4-byte leads).
  static std::uint32_t spm_char_length(std::uint8_t lead) noexcept {
    static constexpr std::uint8_t table[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return table[lead >> 4];
  }

  // Greedy merging of the adjacent pair whose concatenation is the best-scoring vocabulary
  // token (ties: leftmost), then byte fallback for pieces the vocabulary lacks.
  void encode_spm(std::string_view raw, bool space_prefix, std::vector<token_id>& out, workspace& ws) const {
    std::string& text = ws.text;
    text.clear();
    if (space_prefix) text += "\xE2\x96\x81";
    for (const char c : raw) {
      if (c == ' ') text += "\xE2\x96\x81";
      else text += c;
    }
    if (text.empty()) return;
    auto& symbols = ws.spm;
    symbols.clear();
    for (std::size_t pos = 0; pos < text.size();) {
      const auto length = std::min<std::size_t>(spm_char_length(static_cast<std::uint8_t>(text[pos])), text.size() - pos);
      const int index = static_cast<int>(symbols.size());
      symbols.push_back({index - 1, index + 1, static_cast<std::uint32_t>(pos), static_cast<std::uint32_t>(length)});
      pos += length;
    }
    symbols.back().next = -1;
    auto& heap = ws.heap;
    heap.clear();
    const auto before = [](const bigram& a, const bigram& b) {  // "a has lower priority than b"
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    auto try_add = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const std::uint32_t length = symbols[left].length + symbols[right].length;
      const token_id id = vocab_.find_id(std::string_view(text.data() + symbols[left].begin, length));
      if (id < 0) return;
      heap.push_back({vocab_.score(id), 0, left, right, length});
      std::push_heap(heap.begin(), heap.end(), before);
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), before);
      const bigram b = heap.back();
      heap.pop_back();
      spm_symbol& left = symbols[b.left];
      spm_symbol& right = symbols[b.right];
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
      const token_id id = vocab_.find_id(piece);
      if (id >= 0) {
        out.push_back(id);
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
    std::fill(std::begin(unmapped_), std::end(unmapped_), std::int16_t{-1});
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const std::uint32_t cp = printable ? static_cast<std::uint32_t>(b) : 256u + static_cast<std::uint32_t>(extra++);
      std::string text;
      append_utf8(text, cp);
      byte_text_len_[b] = static_cast<std::uint8_t>(text.size());
      std::copy(text.begin(), text.end(), byte_text_[b]);
      byte_token_[b] = vocab_.find_id(text);
      unmapped_[cp] = static_cast<std::int16_t>(b);
    }
  }

  void encode_bpe(std::string_view raw, std::vector<token_id>& out, workspace& ws) const {
    // Lenient decoding as in the reference: invalid bytes become U+FFFD, overlong forms and
    // surrogates their code points; the words are then re-encoded from the code points.
    auto& cps = ws.cps;
    auto& classes = ws.classes;
    cps.clear();
    classes.clear();
    for (std::size_t pos = 0; pos < raw.size();) {
      const auto c = static_cast<std::uint8_t>(raw[pos]);
      std::uint32_t cp;
      if (c < 0x80) {
        cp = c;
        ++pos;
      } else {
        cp = utf8::decode_lenient(raw, pos);
      }
      cps.push_back(cp);
    }
    const std::uint8_t* bmp = unicode::bmp_classes();
    classes.resize(cps.size());
    for (std::size_t i = 0; i < cps.size(); ++i) classes[i] = cps[i] < 0x10000 ? bmp[cps[i]] : unicode::classify_slow(cps[i]);
    pre_.split(cps, classes, ws.words, ws.scratch);
    std::size_t start = 0;
    for (const auto length : ws.words) {
      encode_word(std::span<const std::uint32_t>(cps.data() + start, length), out, ws);
      start += length;
    }
  }

  // Maps one word's bytes to their printable code points and merges them by rank.
  void encode_word(std::span<const std::uint32_t> word, std::vector<token_id>& out, workspace& ws) const {
    std::string& text = ws.text;
    auto& symbols = ws.bpe;
    text.clear();
    symbols.clear();
    for (const std::uint32_t cp : word) {
      char bytes[4];
      std::size_t n;
      if (cp < 0x80) {
        bytes[0] = static_cast<char>(cp);
        n = 1;
      } else if (cp < 0x800) {
        bytes[0] = static_cast<char>(0xC0 | (cp >> 6));
        bytes[1] = static_cast<char>(0x80 | (cp & 0x3F));
        n = 2;
      } else if (cp < 0x10000) {
        bytes[0] = static_cast<char>(0xE0 | (cp >> 12));
        bytes[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        bytes[2] = static_cast<char>(0x80 | (cp & 0x3F));
        n = 3;
      } else {
        bytes[0] = static_cast<char>(0xF0 | ((cp >> 18) & 0x07));
        bytes[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        bytes[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        bytes[3] = static_cast<char>(0x80 | (cp & 0x3F));
        n = 4;
      }
      for (std::size_t k = 0; k < n; ++k) {
        const auto b = static_cast<std::uint8_t>(bytes[k]);
        const int index = static_cast<int>(symbols.size());
        symbols.push_back({index - 1, index + 1, static_cast<std::uint32_t>(text.size()), byte_text_len_[b], byte_token_[b]});
        text.append(byte_text_[b], byte_text_len_[b]);
      }
    }
    if (symbols.empty()) return;
    symbols.back().next = -1;
    if (vocab_.ignore_merges()) {
      const token_id whole = vocab_.find_id(text);
      if (whole >= 0) {
        out.push_back(whole);
        return;
      }
    }
    auto& heap = ws.heap;
    heap.clear();
    const auto before = [](const bigram& a, const bigram& b) { return a.rank > b.rank || (a.rank == b.rank && a.left > b.left); };
    const bool text_merges = vocab_.has_text_merges();
    auto try_add = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const bpe_symbol& l = symbols[left];
      const bpe_symbol& r = symbols[right];
      int rank = -1;
      if (l.id >= 0 && r.id >= 0) {
        if (const auto* m = vocab_.merge(l.id, r.id)) rank = m->rank;
      } else if (text_merges) {
        rank = vocab_.merge_rank(std::string_view(text).substr(l.begin, l.length), std::string_view(text).substr(r.begin, r.length));
      }
      if (rank < 0) return;
      heap.push_back({0.0f, rank, left, right, l.length + r.length});
      std::push_heap(heap.begin(), heap.end(), before);
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), before);
      const bigram b = heap.back();
      heap.pop_back();
      bpe_symbol& left = symbols[b.left];
      bpe_symbol& right = symbols[b.right];
      if (left.length == 0 || right.length == 0 || left.length + right.length != b.length) continue;  // stale
      token_id merged = -1;
      if (left.id >= 0 && right.id >= 0) {
        if (const auto* m = vocab_.merge(left.id, right.id)) merged = m->merged;
      } else {
        merged = vocab_.find_id(std::string_view(text).substr(left.begin, left.length + right.length));
      }
      left.length += right.length;
      left.id = merged;
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = b.left;
      try_add(left.prev, b.left);
      try_add(b.left, left.next);
    }
    for (int i = 0; i != -1; i = symbols[i].next) {
      const bpe_symbol& s = symbols[i];
      if (s.id >= 0) {
        out.push_back(s.id);
        continue;
      }
      // A piece without a token: its single bytes that are tokens, the others dropped (as the reference).
      for (std::uint32_t k = 0; k < s.length; ++k) {
        const token_id id = vocab_.find_id(std::string_view(text).substr(s.begin + k, 1));
        if (id >= 0) out.push_back(id);
      }
    }
  }

  // --- pieces -------------------------------------------------------------------------

  // The piece of every token, computed once (special = true form); control and unknown tokens
  // are hidden when special = false.
  void build_pieces() {
    const std::size_t n = vocab_.size();
    piece_offsets_.reserve(n + 1);
    hidden_.assign(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
      const auto id = static_cast<token_id>(i);
      piece_offsets_.push_back(pieces_.size());
      const auto t = vocab_[id];
      switch (t.type) {
        case token_type::control:
        case token_type::unknown:
          hidden_[i] = 1;
          pieces_ += t.text;
          break;
        case token_type::user_defined:
          pieces_ += t.text;
          break;
        case token_type::normal:
          if (vocab_.kind() == model_kind::spm) append_unescaped(pieces_, t.text);
          else append_unmapped(pieces_, t.text);
          break;
        case token_type::byte:
          if (t.text.size() == 6 && t.text.starts_with("<0x") && t.text.back() == '>') {
            pieces_ += static_cast<char>(std::stoi(std::string(t.text.substr(3, 2)), nullptr, 16));
          } else if (vocab_.kind() == model_kind::bpe) {
            append_unmapped(pieces_, t.text);
          }
          break;
        default:  // unused, undefined: nothing, as in the reference
          break;
      }
    }
    piece_offsets_.push_back(pieces_.size());
  }

  static void append_unescaped(std::string& out, std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
      if (text.compare(i, 3, "\xE2\x96\x81") == 0) {
        out += ' ';
        i += 3;
      } else {
        out += text[i++];
      }
    }
  }

  // Inverse of the byte map. A code point outside it is written as the reference does:
  // "[UNK_BYTE_0x<its UTF-8 in hex><the token text>]".
  void append_unmapped(std::string& out, std::string_view text) const {
    for (std::size_t pos = 0; pos < text.size();) {
      const std::uint32_t cp = utf8::decode_lenient(text, pos);
      if (cp < 324 && unmapped_[cp] >= 0) {
        out += static_cast<char>(unmapped_[cp]);
        continue;
      }
      std::string bytes;
      append_utf8(bytes, cp);
      out += "[UNK_BYTE_0x";
      static constexpr char hex[] = "0123456789abcdef";
      for (const unsigned char c : bytes) {
        out += hex[c >> 4];
        out += hex[c & 15];
      }
      out += text;
      out += ']';
    }
  }

  // The reference's clean-up for vocabularies with clean_spaces: " ?", " !", " .", " ,"
  // lose the space; " ' " becomes "'"; " 's", " 'm", " 're", " 've" lose the space.
  static void clean_up_spaces(std::string& t) {
    std::size_t n = t.size();
    std::size_t total = n ? 1 : 0;
    for (std::size_t i = 1; i < n; ++i) {
      const char x = t[i];
      if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --total;
      t[total++] = x;
    }
    n = total;
    total = n ? 1 : 0;
    for (std::size_t i = 1; i < n; ++i) {
      const char x = t[i];
      if (x == '\'' && i + 1 < n && t[i - 1] == ' ' && t[i + 1] == ' ') {
        --total;
        t[++i] = '\0';
      }
      t[total++] = x;
    }
    n = total;
    total = n ? 1 : 0;
    for (std::size_t i = 1; i < n; ++i) {
      const char x = t[i];
      if (t[i - 1] == ' ' && x == '\'' && i + 1 < n) {
        const char x1 = t[i + 1];
        if (x1 == 's' || x1 == 'm') {
          --total;
        } else if (x1 != 't' && x1 != 'd' && i + 2 < n) {
          const char x2 = t[i + 2];
          if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) --total;
        }
      }
      t[total++] = x;
    }
    t.resize(total);
  }

  vocab vocab_;
  pre_tokenizer pre_;
  char byte_text_[256][2] = {};
  std::uint8_t byte_text_len_[256] = {};
  token_id byte_token_[256] = {};
  std::int16_t unmapped_[324] = {};
  std::string pieces_;
  std::vector<std::size_t> piece_offsets_;
  std::vector<std::uint8_t> hidden_;
};

// Turns a stream of tokens into text without ever emitting part of a UTF-8 character: bytes of
// an unfinished character wait for the next token; bytes that can never complete one are passed
// through as they are. The concatenated output equals the concatenated pieces (with the first
// piece's SentencePiece space dropped, as in decode); decode() additionally applies the space
// clean-up of GPT-2 style vocabularies, which needs the whole text.
class stream_decoder {
 public:
  explicit stream_decoder(const tokenizer& t, bool special = false) : tokenizer_(&t), special_(special) {
    // Generation pushes one token at a time: with room for a few pieces reserved up front,
    // push() does not allocate (a piece longer than this grows the buffers once).
    pending_.reserve(64);
    ready_.reserve(64);
  }

  // The text that is complete after this token (possibly empty). The view stays valid until the
  // next push() or flush().
  std::string_view push(token_id id) {
    std::string_view piece = tokenizer_->token_to_piece(id, special_);
    if (first_ && tokenizer_->vocabulary().add_space_prefix() && !piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
    first_ = false;
    pending_ += piece;
    const std::size_t ready = utf8::complete_prefix(pending_);
    ready_.assign(pending_, 0, ready);
    pending_.erase(0, ready);
    return ready_;
  }
  // Whatever is left at the end (an unfinished character is emitted as its raw bytes).
  std::string_view flush() {
    ready_.swap(pending_);
    pending_.clear();
    return ready_;
  }
  // Continue a text: the next token is not the first (its leading space is kept).
  void continue_text() noexcept { first_ = false; }

 private:
  const tokenizer* tokenizer_;
  bool special_ = false;
  std::string pending_;  // bytes of an unfinished UTF-8 character
  std::string ready_;    // what the last push()/flush() returned
  bool first_ = true;
};

}  // namespace chorus::inline CHORUS_ABI::tokenizer
