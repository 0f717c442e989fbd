// chorus — constrained decoding: which tokens of a vocabulary can continue an output so that it
// stays a prefix of a sentence of a grammar (sample/grammar.hpp), as a bitset the sampler
// applies before any other stage.
//
// How (docs/structured-output.md has the long form):
//  * token_index: the vocabulary seen as bytes. Each token's bytes are what the tokenizer's
//    decoder writes for it (SentencePiece '▁' as a space, <0xNN> as the byte, byte-level BPE
//    through its byte-to-unicode map); control tokens have no bytes and are matched only as
//    special tokens by text. The tokens are laid out in a byte trie (preorder array, each node
//    knowing where its subtree ends), so that a walk can skip every token that shares an
//    invalid prefix at once.
//  * the parser: a set of stacks over the flattened grammar (a graph-structured stack: nodes
//    (position, repetition count, parent) are hash-consed, so equal stacks are one id), fed
//    code points assembled from bytes (a token may end inside a UTF-8 character: the state
//    then carries the pending bytes and only checks that some completion is acceptable).
//  * a lazy DFA over parser states: each parser state gets an id, and the transition from a
//    state on a byte is computed once and then read from a table. A trie walk is then one
//    table read per trie node visited.
//  * slices: inside a JSON string nearly every token is valid, and walking all of them would
//    cost a read per trie node of the whole vocabulary. For a few character classes (JSON
//    string characters, digits) the index precomputes the tokens made only of such characters
//    (a trailing incomplete character included): when the parser sits in a repetition of a
//    class that includes one (`[^"\\]*`, `char*` with `char ::= [^"\\\x00-\x1f] | escape`,
//    bounded repetitions too, counting how many characters remain), those tokens are valid
//    in bulk (a precomputed mask, by token length in characters) and only the other tokens are
//    walked. This is llguidance's idea of "slices", done over this parser.
//
// The mask path (allowed(), accept()) allocates nothing once the parser states it meets fit in
// the capacity reserved up front (constraint_options::state_capacity); beyond, the tables grow.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/sample/grammar.hpp"
#include "chorus/tokenizer/tokenizer.hpp"

namespace chorus::inline CHORUS_ABI::sample {

using token_id = std::int32_t;

// Bit i of a token set lives in word i / 64, bit i % 64.
inline std::size_t token_words(std::size_t n_vocab) noexcept { return (n_vocab + 63) / 64; }
inline bool token_bit(std::span<const std::uint64_t> set, token_id id) noexcept {
  return (set[static_cast<std::size_t>(id) >> 6] >> (static_cast<std::size_t>(id) & 63)) & 1u;
}


// A byte trie of token texts in preorder: node i's subtree is [i, end); nodes[0] is the root.
struct token_trie {
  struct node {
    std::uint32_t end = 0;          // one past the last node of the subtree
    std::uint32_t first_token = 0;  // tokens whose bytes end here: tokens[first_token, +token_count)
    std::uint16_t token_count = 0;
    std::uint16_t depth = 0;        // bytes from the root
    std::uint8_t byte = 0;
    std::uint8_t max_chars = 0;     // longest token below, in characters (slices; saturates at 255)
  };
  std::vector<node> nodes;
  std::vector<token_id> tokens;
  std::size_t max_depth = 0;

  // From (bytes, id) pairs sorted by bytes.
  static token_trie build(const std::vector<std::pair<std::string_view, token_id>>& sorted) {
    token_trie t;
    t.nodes.push_back({});
    std::vector<std::uint32_t> path{0}, parent;
    std::vector<std::uint8_t> own_chars{0};
    parent.push_back(0);
    std::string_view previous;
    for (const auto& [bytes, id] : sorted) {
      std::size_t common = 0;
      while (common < previous.size() && common < bytes.size() && previous[common] == bytes[common]) ++common;
      while (path.size() - 1 > common) {
        t.nodes[path.back()].end = static_cast<std::uint32_t>(t.nodes.size());
        path.pop_back();
      }
      for (std::size_t d = common; d < bytes.size(); ++d) {
        node n;
        n.byte = static_cast<std::uint8_t>(bytes[d]);
        n.depth = static_cast<std::uint16_t>(d + 1);
        parent.push_back(path.back());
        own_chars.push_back(0);
        path.push_back(static_cast<std::uint32_t>(t.nodes.size()));
        t.nodes.push_back(n);
      }
      node& at = t.nodes[path.back()];
      if (at.token_count == 0) at.first_token = static_cast<std::uint32_t>(t.tokens.size());
      ++at.token_count;
      t.tokens.push_back(id);
      std::size_t chars = 0;
      for (const char c : bytes) chars += (static_cast<std::uint8_t>(c) >> 6) != 2;
      own_chars[path.back()] = static_cast<std::uint8_t>(std::min<std::size_t>(chars, 255));
      t.max_depth = std::max(t.max_depth, bytes.size());
      previous = bytes;
    }
    while (!path.empty()) {
      t.nodes[path.back()].end = static_cast<std::uint32_t>(t.nodes.size());
      path.pop_back();
    }
    for (std::size_t i = t.nodes.size(); i-- > 0;) {
      auto& n = t.nodes[i];
      n.max_chars = std::max(n.max_chars, own_chars[i]);
      if (i > 0) {
        auto& p = t.nodes[parent[i]];
        p.max_chars = std::max(p.max_chars, n.max_chars);
      }
    }
    return t;
  }
};

// A vocabulary as the constraint sees it. Immutable; build once per vocabulary and share
// between constraints (std::shared_ptr<const token_index>).
class token_index {
 public:
  // Tokens of a slice with at most this many characters have a precomputed mask each;
  // longer ones are walked.
  static constexpr std::uint32_t slice_length_cap = 32;

  struct slice {
    char_class chars;
    token_trie outside;   // the tokens that are not in the slice
    token_trie inside;    // the tokens in the slice (walked only for those longer than the room)
    std::vector<std::uint64_t> up_to;  // (slice_length_cap + 1) masks: tokens of <= L characters
    std::size_t count = 0;
  };

  explicit token_index(const tokenizer::tokenizer& tok) : token_index(tok, {json_string_chars(), char_class::between('0', '9')}) {}

  token_index(const tokenizer::tokenizer& tok, const std::vector<char_class>& slice_classes) {
    const auto& vocab = tok.vocabulary();
    n_vocab_ = vocab.size();
    words_ = token_words(n_vocab_);
    offsets_.reserve(n_vocab_ + 1);
    hidden_.assign(n_vocab_, 0);
    for (std::size_t i = 0; i < n_vocab_; ++i) {
      const auto id = static_cast<token_id>(i);
      offsets_.push_back(static_cast<std::uint32_t>(bytes_.size()));
      const std::string_view piece = tok.token_to_piece(id, false);
      if (piece.empty()) hidden_[i] = !tok.token_to_piece(id, true).empty();
      bytes_ += piece;
    }
    offsets_.push_back(static_cast<std::uint32_t>(bytes_.size()));
    eog_ = vocab.end_of_generation_tokens();

    std::vector<std::pair<std::string_view, token_id>> all;
    all.reserve(n_vocab_);
    for (std::size_t i = 0; i < n_vocab_; ++i) {
      const auto b = bytes(static_cast<token_id>(i));
      if (!b.empty() && b.size() < 65536) all.emplace_back(b, static_cast<token_id>(i));
    }
    std::sort(all.begin(), all.end());
    full_ = token_trie::build(all);
    max_token_bytes_ = full_.max_depth;

    for (const auto& cls : slice_classes) {
      slice s;
      s.chars = cls;
      s.up_to.assign(static_cast<std::size_t>(slice_length_cap + 1) * words_, 0);
      std::vector<std::pair<std::string_view, token_id>> in, out;
      for (const auto& entry : all) {
        const std::size_t chars = slice_chars(entry.first, cls);
        if (chars == 0) {
          out.push_back(entry);
          continue;
        }
        in.push_back(entry);
        ++s.count;
        for (std::size_t L = chars; L <= slice_length_cap; ++L) {  // longer tokens are walked
          s.up_to[L * words_ + (static_cast<std::size_t>(entry.second) >> 6)] |= std::uint64_t{1} << (entry.second & 63);
        }
      }
      s.outside = token_trie::build(out);
      s.inside = token_trie::build(in);
      slices_.push_back(std::move(s));
    }
  }

  std::size_t size() const noexcept { return n_vocab_; }
  std::size_t words() const noexcept { return words_; }
  std::size_t max_token_bytes() const noexcept { return max_token_bytes_; }
  // The bytes the decoder writes for a token (empty for control and unused tokens).
  std::string_view bytes(token_id id) const noexcept {
    const auto i = static_cast<std::size_t>(id);
    return std::string_view(bytes_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
  }
  // A control token (no bytes, only a text): `[TOOL_CALLS]`, `<|python_tag|>`.
  bool is_control(token_id id) const noexcept { return hidden_[static_cast<std::size_t>(id)] != 0; }
  const std::vector<token_id>& end_of_generation() const noexcept { return eog_; }
  bool is_end_of_generation(token_id id) const noexcept { return std::find(eog_.begin(), eog_.end(), id) != eog_.end(); }
  const token_trie& full() const noexcept { return full_; }
  const std::vector<slice>& slices() const noexcept { return slices_; }

  // The control token whose text is `text`, or -1.
  token_id control_token(const tokenizer::tokenizer& tok, std::string_view text) const {
    const token_id id = tok.vocabulary().find_id(text);
    return id >= 0 && is_control(id) ? id : -1;
  }

  // The number of characters of `bytes` when they are complete characters of `cls` followed by
  // at most one incomplete character that some member of `cls` completes; 0 otherwise.
  static std::size_t slice_chars(std::string_view bytes, const char_class& cls) {
    std::size_t chars = 0;
    for (std::size_t pos = 0; pos < bytes.size();) {
      std::size_t p = pos;
      const std::int32_t cp = detail::decode_utf8_strict(bytes, p);
      if (cp >= 0) {
        if (!cls.contains(static_cast<char32_t>(cp))) return 0;
        ++chars;
        pos = p;
        continue;
      }
      // an incomplete character is allowed at the very end only
      char32_t lo, hi;
      if (!partial_range(bytes.substr(pos), lo, hi) || !cls.intersects(lo, hi)) return 0;
      return chars + 1;
    }
    return chars;
  }

  // The code points that could complete the incomplete UTF-8 sequence `prefix` (a lead byte and
  // fewer continuation bytes than it announces), as a range; false when no sequence starts so.
  static bool partial_range(std::string_view prefix, char32_t& lo, char32_t& hi) {
    if (prefix.empty()) return false;
    const auto b0 = static_cast<std::uint8_t>(prefix[0]);
    std::size_t len;
    std::uint32_t bits;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
      bits = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      bits = b0 & 0x0F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      bits = b0 & 0x07;
    } else {
      return false;
    }
    if (prefix.size() >= len) return false;
    for (std::size_t k = 1; k < prefix.size(); ++k) {
      const auto b = static_cast<std::uint8_t>(prefix[k]);
      if ((b >> 6) != 2) return false;
      bits = (bits << 6) | (b & 0x3F);
    }
    return range_of(bits, static_cast<std::uint32_t>(len - prefix.size()), static_cast<std::uint32_t>(len), lo, hi);
  }
  // The range of code points whose UTF-8 form of `len` bytes starts with the `bits` already
  // read, `need` continuation bytes still to come; false when it holds no valid code point.
  static bool range_of(std::uint32_t bits, std::uint32_t need, std::uint32_t len, char32_t& lo, char32_t& hi) noexcept {
    static constexpr std::uint32_t minimum[5] = {0, 0, 0x80, 0x800, 0x10000};
    static constexpr std::uint32_t maximum[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    std::uint32_t l = bits << (6 * need);
    std::uint32_t h = l | ((std::uint32_t{1} << (6 * need)) - 1);
    l = std::max(l, minimum[len]);
    h = std::min(h, maximum[len]);
    if (l > h) return false;
    if (l >= 0xD800 && h <= 0xDFFF) return false;  // only surrogates
    lo = l;
    hi = h;
    return true;
  }

 private:
  std::size_t n_vocab_ = 0, words_ = 0, max_token_bytes_ = 0;
  std::string bytes_;
  std::vector<std::uint32_t> offsets_;
  std::vector<std::uint8_t> hidden_;
  std::vector<token_id> eog_;
  token_trie full_;
  std::vector<slice> slices_;
};

struct constraint_options {
  std::uint32_t max_depth = 512;      // the parser's stack depth (nesting) beyond which a path dies
  std::size_t state_capacity = 4096;  // parser states reserved up front (no allocation within)
  std::size_t state_limit = 1u << 16; // beyond this many cached states the cache is rebuilt
};

// The grammar's progress over one output: which tokens may come next (allowed()), and the
// token chosen (accept()). One generation at a time; reset() starts a new output. Not
// thread-safe; the grammar and the token index it reads are shared and immutable.
class grammar_constraint {
 public:
  grammar_constraint(std::shared_ptr<const grammar> g, std::shared_ptr<const token_index> index,
                     const tokenizer::tokenizer& tok, constraint_options options = {})
      : grammar_(std::move(g)), index_(std::move(index)), options_(options) {
    if (!grammar_ || !index_) fail(errc::invalid_argument, "grammar constraint: needs a grammar and a token index");
    if (index_->size() != tok.vocabulary().size()) {
      fail(errc::invalid_argument, "grammar constraint: the token index has ", index_->size(), " tokens, the tokenizer ",
           tok.vocabulary().size());
    }
    const auto& specials = grammar_->specials();
    special_tokens_.reserve(specials.size());
    for (const auto& text : specials) special_tokens_.push_back(index_->control_token(tok, text));
    width_ = 256 + static_cast<std::uint32_t>(specials.size());
    mask_.assign(index_->words(), 0);
    depth_states_.assign(index_->max_token_bytes() + 2, 0);
    for (const auto& s : index_->slices()) {
      std::vector<std::uint8_t> includes(grammar_->classes().size());
      for (std::size_t c = 0; c < includes.size(); ++c) includes[c] = grammar_->classes()[c].includes(s.chars);
      class_includes_slice_.push_back(std::move(includes));
    }
    reserve(options_.state_capacity);
    reset();
  }

  const grammar& rules() const noexcept { return *grammar_; }
  const token_index& index() const noexcept { return *index_; }

  // A constraint over the same grammar and vocabulary at the start of an output, with a state of
  // its own (the grammar and the token index stay shared): one per sequence when several
  // sequences generate at once under one set of options.
  grammar_constraint fresh() const {
    grammar_constraint c(*this);
    c.reserve(options_.state_capacity);  // a copy's buffers have no spare capacity
    c.clear_cache();
    c.reset();
    return c;
  }

  // Back to the start of an output.
  void reset() {
    if (states_.empty() || states_.size() > options_.state_limit) clear_cache();
    current_ = start_;
    finished_ = false;
    mask_valid_ = false;
  }

  // The tokens that may come next: a bitset over the vocabulary (token_bit). End-of-generation
  // tokens are in it exactly when the output so far is complete. Valid until accept()/reset().
  std::span<const std::uint64_t> allowed() {
    if (!mask_valid_) compute_mask();
    return mask_;
  }
  bool allows(token_id id) { return id >= 0 && static_cast<std::size_t>(id) < index_->size() && token_bit(allowed(), id); }

  // Sets the logits of the tokens that may not come next to -infinity.
  void apply(std::span<float> logits) {
    if (logits.size() != index_->size()) fail(errc::invalid_argument, "grammar constraint: ", logits.size(), " logits for ", index_->size(), " tokens");
    const auto set = allowed();
    for (std::size_t i = 0; i < logits.size(); ++i) {
      if (!((set[i >> 6] >> (i & 63)) & 1u)) logits[i] = -std::numeric_limits<float>::infinity();
    }
  }

  // Advances over the chosen token. A token the grammar does not allow is an error
  // (errc::invalid_argument) and leaves the state as it was.
  void accept(token_id id) {
    if (id < 0 || static_cast<std::size_t>(id) >= index_->size()) fail(errc::out_of_range, "grammar constraint: token ", id, " is outside the vocabulary");
    if (finished_) fail(errc::invalid_argument, "grammar constraint: token ", id, " after the end of the output");
    if (index_->is_end_of_generation(id)) {
      if (!states_[current_].accepting) fail(errc::invalid_argument, "grammar constraint: end of generation before the output is complete");
      finished_ = true;
      mask_valid_ = false;
      return;
    }
    std::uint32_t s = current_;
    const auto special = std::find(special_tokens_.begin(), special_tokens_.end(), id);
    if (special != special_tokens_.end()) {
      s = step(s, 256 + static_cast<std::uint32_t>(special - special_tokens_.begin()));
    } else {
      const auto b = index_->bytes(id);
      if (b.empty()) s = dead;
      for (std::size_t i = 0; i < b.size() && s != dead; ++i) s = step(s, static_cast<std::uint8_t>(b[i]));
    }
    if (s == dead) {
      fail(errc::invalid_argument, "grammar constraint: token ", id, " ('", index_->bytes(id), "') cannot continue the output here");
    }
    current_ = s;
    mask_valid_ = false;
    if (states_.size() > options_.state_limit) rebuild_cache();
  }
  // Advances over bytes (for tests and for forcing a prefix); false (state unchanged) when they
  // cannot continue the output.
  bool accept_bytes(std::string_view bytes) {
    std::uint32_t s = current_;
    for (std::size_t i = 0; i < bytes.size() && s != dead; ++i) s = step(s, static_cast<std::uint8_t>(bytes[i]));
    if (s == dead) return false;
    current_ = s;
    mask_valid_ = false;
    return true;
  }

  // Whether `bytes` could come next (the state does not change).
  bool accepts(std::string_view bytes) {
    std::uint32_t s = current_;
    for (std::size_t i = 0; i < bytes.size() && s != dead; ++i) s = step(s, static_cast<std::uint8_t>(bytes[i]));
    return s != dead && !finished_;
  }
  // Whether the output would be complete after `bytes`.
  bool completes(std::string_view bytes) {
    std::uint32_t s = current_;
    for (std::size_t i = 0; i < bytes.size() && s != dead; ++i) s = step(s, static_cast<std::uint8_t>(bytes[i]));
    return s != dead && !finished_ && states_[s].accepting;
  }

  // The output so far is a complete sentence of the grammar.
  bool accepting() const noexcept { return !finished_ && states_[current_].accepting; }
  // Nothing can follow: an end-of-generation token was accepted, or the output is complete and
  // the grammar allows no more characters.
  bool finished() const noexcept { return finished_ || (states_[current_].accepting && states_[current_].size == 0); }
  // Parser states in the cache (for benchmarks).
  std::size_t cached_states() const noexcept { return states_.size(); }

 private:
  static constexpr std::uint32_t unknown = 0xFFFFFFFFu;
  static constexpr std::uint32_t dead = 0xFFFFFFFEu;
  static constexpr std::uint32_t no_room = 0;
  static constexpr std::uint32_t endless = 0xFFFFFFFFu;

  struct node {
    std::uint32_t pos, count, parent, depth;
  };
  struct state {
    std::uint32_t first = 0, size = 0;  // ready nodes: state_nodes_[first, first + size)
    std::uint32_t bits = 0;             // an incomplete UTF-8 character: bits read so far
    std::uint8_t need = 0, len = 0;     // continuation bytes still to come, sequence length
    bool accepting = false;
    std::int8_t slice = -1;             // the slice valid in bulk here (-1: none)
    std::uint32_t room = 0;             // how many characters of that slice fit
    std::uint64_t hash = 0;
  };
  struct work_item {
    std::uint32_t pos, count, parent;
  };

  static std::size_t power_of_two_at_least(std::size_t n) {
    std::size_t p = 1024;
    while (p < n) p *= 2;
    return p;
  }
  void reserve(std::size_t states) {
    nodes_.reserve(states * 8);
    node_slots_.assign(power_of_two_at_least(states * 16), 0);
    states_.reserve(states);
    state_nodes_.reserve(states * 8);
    state_slots_.assign(power_of_two_at_least(states * 2), 0);
    table_.reserve(states * width_);
    stamps_.reserve(states * 8);
    ready_.reserve(256);
    work_.reserve(256);
  }

  // ---- nodes (hash-consed stack frames) ----
  static std::uint64_t mix(std::uint64_t h) noexcept {
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
  }
  std::uint32_t intern_node(std::uint32_t pos, std::uint32_t count, std::uint32_t parent) {
    if ((nodes_.size() + 1) * 2 > node_slots_.size()) grow_node_slots();
    const std::uint64_t h = mix((std::uint64_t{pos} << 32 | count) ^ (std::uint64_t{parent} * 0x9E3779B97F4A7C15ull));
    const std::size_t mask = node_slots_.size() - 1;
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      const std::uint32_t id = node_slots_[i];
      if (id == 0) {
        const std::uint32_t depth = parent == 0 ? 1 : nodes_[parent].depth + 1;
        nodes_.push_back({pos, count, parent, depth});
        stamps_.push_back(0);
        node_slots_[i] = static_cast<std::uint32_t>(nodes_.size() - 1);
        return node_slots_[i];
      }
      const node& n = nodes_[id];
      if (n.pos == pos && n.count == count && n.parent == parent) return id;
    }
  }
  void grow_node_slots() {
    std::size_t capacity = std::max<std::size_t>(node_slots_.size() * 2, 1024);
    while (capacity < (nodes_.size() + 1) * 4) capacity *= 2;
    node_slots_.assign(capacity, 0);
    const std::size_t mask = capacity - 1;
    for (std::uint32_t id = 1; id < nodes_.size(); ++id) {
      const node& n = nodes_[id];
      const std::uint64_t h = mix((std::uint64_t{n.pos} << 32 | n.count) ^ (std::uint64_t{n.parent} * 0x9E3779B97F4A7C15ull));
      std::size_t i = h & mask;
      while (node_slots_[i] != 0) i = (i + 1) & mask;
      node_slots_[i] = id;
    }
  }

  // ---- states ----
  std::uint32_t intern_state(bool accepting, std::uint32_t bits, std::uint8_t need, std::uint8_t len) {
    std::uint64_t h = mix(std::uint64_t{bits} << 16 | std::uint64_t{need} << 8 | len | (accepting ? 1ull << 40 : 0));
    for (const auto id : ready_) h = mix(h ^ id);
    if ((states_.size() + 1) * 2 > state_slots_.size()) grow_state_slots();
    const std::size_t mask = state_slots_.size() - 1;
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      const std::uint32_t slot = state_slots_[i];
      if (slot == 0) {
        state s;
        s.first = static_cast<std::uint32_t>(state_nodes_.size());
        s.size = static_cast<std::uint32_t>(ready_.size());
        s.bits = bits;
        s.need = need;
        s.len = len;
        s.accepting = accepting;
        s.hash = h;
        state_nodes_.insert(state_nodes_.end(), ready_.begin(), ready_.end());
        if (need == 0) choose_slice(s);
        states_.push_back(s);
        table_.resize(table_.size() + width_, unknown);
        state_slots_[i] = static_cast<std::uint32_t>(states_.size());
        return static_cast<std::uint32_t>(states_.size() - 1);
      }
      const state& s = states_[slot - 1];
      if (s.hash == h && s.accepting == accepting && s.bits == bits && s.need == need && s.len == len && s.size == ready_.size() &&
          std::equal(ready_.begin(), ready_.end(), state_nodes_.begin() + s.first)) {
        return slot - 1;
      }
    }
  }
  void grow_state_slots() {
    std::size_t capacity = std::max<std::size_t>(state_slots_.size() * 2, 1024);
    while (capacity < (states_.size() + 1) * 4) capacity *= 2;
    state_slots_.assign(capacity, 0);
    const std::size_t mask = capacity - 1;
    for (std::uint32_t id = 0; id < states_.size(); ++id) {
      std::size_t i = states_[id].hash & mask;
      while (state_slots_[i] != 0) i = (i + 1) & mask;
      state_slots_[i] = id + 1;
    }
  }

  // Which slice is valid in bulk from this state, and for how many characters: a ready node at
  // a repetition of a class that includes the slice's characters (case A), or at a one-class
  // alternative of a rule that is itself being repeated (case B: `char*`, `char{0,20}`).
  void choose_slice(state& s) const {
    const auto& elements = grammar_->elements();
    const auto& slices = index_->slices();
    std::size_t best_count = 0;
    for (std::size_t k = 0; k < slices.size(); ++k) {
      std::uint32_t room = no_room;
      for (std::uint32_t i = 0; i < s.size; ++i) {
        const node& n = nodes_[state_nodes_[s.first + i]];
        const element& e = elements[n.pos];
        if (e.kind != element_kind::chars || !class_includes_slice_[k][e.index]) continue;
        std::uint32_t r = e.max == unbounded ? endless : e.max - n.count;
        if (e.sole && e.max == 1 && n.count == 0 && n.parent != 0) {
          const node& p = nodes_[n.parent];
          const element& pe = elements[p.pos];
          if (pe.kind == element_kind::rule && pe.index == e.owner) {
            r = pe.max == unbounded ? endless : 1 + (pe.max - p.count);
          }
        }
        room = std::max(room, r);
      }
      if (room != no_room && slices[k].count > best_count) {
        best_count = slices[k].count;
        s.slice = static_cast<std::int8_t>(k);
        s.room = room;
      }
    }
  }

  void clear_cache() {
    nodes_.clear();
    stamps_.clear();
    nodes_.push_back({0, 0, 0, 0});  // id 0: the bottom of every stack
    stamps_.push_back(0);
    std::fill(node_slots_.begin(), node_slots_.end(), 0);
    states_.clear();
    state_nodes_.clear();
    std::fill(state_slots_.begin(), state_slots_.end(), 0);
    table_.clear();
    // the start state: the root rule expanded
    ready_.clear();
    work_.clear();
    accept_flag_ = false;
    ++stamp_;
    const auto root = grammar_->root();
    for (const auto alt : grammar_->rules()[root].alternatives) work_.push_back({alt, 0, 0});
    run_work();
    start_ = intern_state(accept_flag_, 0, 0, 0);
  }
  // Keeps only the current state (its stacks copied into fresh tables).
  void rebuild_cache() {
    const std::vector<node> old_nodes = nodes_;
    const state old = states_[current_];
    const std::vector<std::uint32_t> old_ready(state_nodes_.begin() + old.first, state_nodes_.begin() + old.first + old.size);
    clear_cache();
    std::vector<std::uint32_t> remap(old_nodes.size(), 0);
    auto copy = [&](auto&& self, std::uint32_t id) -> std::uint32_t {
      if (id == 0) return 0;
      if (remap[id] != 0) return remap[id];
      const node n = old_nodes[id];
      const std::uint32_t parent = self(self, n.parent);
      return remap[id] = intern_node(n.pos, n.count, parent);
    };
    ready_.clear();
    for (const auto id : old_ready) ready_.push_back(copy(copy, id));
    std::sort(ready_.begin(), ready_.end());
    ready_.erase(std::unique(ready_.begin(), ready_.end()), ready_.end());
    current_ = intern_state(old.accepting, old.bits, old.need, old.len);
    mask_valid_ = false;
  }

  // Expands the work items into ready nodes (at a character class or a special token) and the
  // accept flag (a stack emptied). Each node is expanded once per call (stamps), which also
  // ends the loops of repetitions whose body can be empty.
  void run_work() {
    const auto& elements = grammar_->elements();
    const auto& rules = grammar_->rules();
    while (!work_.empty()) {
      const work_item w = work_.back();
      work_.pop_back();
      const std::uint32_t id = intern_node(w.pos, w.count, w.parent);
      if (stamps_[id] == stamp_) continue;
      stamps_[id] = stamp_;
      const element& e = elements[w.pos];
      switch (e.kind) {
        case element_kind::chars:
          if (w.count < e.max) ready_.push_back(id);
          if (w.count >= e.min) work_.push_back({w.pos + 1, 0, w.parent});
          break;
        case element_kind::special:
          if (special_tokens_[e.index] >= 0) {
            if (w.count == 0) ready_.push_back(id);
            else work_.push_back({w.pos + 1, 0, w.parent});
            break;
          }
          push_rule(w, grammar_->special_fallback(e.index), 1, 1, rules);
          break;
        case element_kind::rule: push_rule(w, e.index, e.min, e.max, rules); break;
        case element_kind::end:
          if (w.parent == 0) {
            accept_flag_ = true;
          } else {
            const node& p = nodes_[w.parent];
            work_.push_back({p.pos, p.count, p.parent});
          }
          break;
      }
    }
    std::sort(ready_.begin(), ready_.end());
    ready_.erase(std::unique(ready_.begin(), ready_.end()), ready_.end());
  }
  void push_rule(const work_item& w, std::uint32_t rule, std::uint32_t min, std::uint32_t max,
                 const std::vector<grammar::rule_info>& rules) {
    const auto& elements = grammar_->elements();
    if (w.count < max) {
      const std::uint32_t next = max == unbounded ? std::min(w.count + 1, min) : w.count + 1;
      std::uint32_t cont;
      if (min == 1 && max == 1 && elements[w.pos + 1].kind == element_kind::end) {
        cont = w.parent;  // a call in tail position returns straight to the caller's caller
      } else {
        const std::uint32_t depth = w.parent == 0 ? 1 : nodes_[w.parent].depth + 1;
        cont = depth > options_.max_depth ? dead : intern_node(w.pos, next, w.parent);
      }
      if (cont != dead && (cont == 0 || nodes_[cont].depth <= options_.max_depth)) {
        for (const auto alt : rules[rule].alternatives) work_.push_back({alt, 0, cont});
      }
    }
    if (w.count >= min) work_.push_back({w.pos + 1, 0, w.parent});
  }

  // The state after `symbol` (a byte, or 256 + k for special token k) from state `s`.
  std::uint32_t step(std::uint32_t s, std::uint32_t symbol) {
    const std::size_t at = static_cast<std::size_t>(s) * width_ + symbol;
    std::uint32_t next = table_[at];
    if (next == unknown) {
      next = transition(s, symbol);
      table_[at] = next;  // after transition(): the table may have grown
    }
    return next;
  }

  std::uint32_t transition(std::uint32_t sid, std::uint32_t symbol) {
    const state s = states_[sid];
    const auto& elements = grammar_->elements();
    const auto& classes = grammar_->classes();
    ready_.clear();
    work_.clear();
    accept_flag_ = false;
    ++stamp_;
    if (symbol >= 256) {
      if (s.need != 0) return dead;
      const std::uint32_t k = symbol - 256;
      for (std::uint32_t i = 0; i < s.size; ++i) {
        const std::uint32_t id = state_nodes_[s.first + i];
        const node& n = nodes_[id];
        const element& e = elements[n.pos];
        if (e.kind == element_kind::special && e.index == k) work_.push_back({n.pos + 1, 0, n.parent});
      }
      return finish_transition();
    }
    const auto b = static_cast<std::uint8_t>(symbol);
    std::uint32_t bits, need, len;
    if (s.need == 0) {
      if (b < 0x80) return consume(s, b);
      if (b >= 0xC2 && b <= 0xDF) {
        bits = b & 0x1F, need = 1, len = 2;
      } else if (b >= 0xE0 && b <= 0xEF) {
        bits = b & 0x0F, need = 2, len = 3;
      } else if (b >= 0xF0 && b <= 0xF4) {
        bits = b & 0x07, need = 3, len = 4;
      } else {
        return dead;
      }
    } else {
      if ((b >> 6) != 2) return dead;
      bits = (s.bits << 6) | (b & 0x3F);
      need = s.need - 1u;
      len = s.len;
    }
    char32_t lo, hi;
    if (!token_index::range_of(bits, need, len, lo, hi)) return dead;
    if (need == 0) return consume(s, lo);
    // an incomplete character: viable when some ready class has a member it could become
    bool viable = false;
    for (std::uint32_t i = 0; i < s.size && !viable; ++i) {
      const element& e = elements[nodes_[state_nodes_[s.first + i]].pos];
      viable = e.kind == element_kind::chars && classes[e.index].intersects(lo, hi);
    }
    if (!viable) return dead;
    ready_.assign(state_nodes_.begin() + s.first, state_nodes_.begin() + s.first + s.size);
    return intern_state(false, bits, static_cast<std::uint8_t>(need), static_cast<std::uint8_t>(len));
  }

  std::uint32_t consume(const state& s, char32_t cp) {
    const auto& elements = grammar_->elements();
    const auto& classes = grammar_->classes();
    for (std::uint32_t i = 0; i < s.size; ++i) {
      const node& n = nodes_[state_nodes_[s.first + i]];
      const element& e = elements[n.pos];
      if (e.kind != element_kind::chars || !classes[e.index].contains(cp)) continue;
      const std::uint32_t next = e.max == unbounded ? std::min(n.count + 1, e.min) : n.count + 1;
      work_.push_back({n.pos, next, n.parent});
    }
    return finish_transition();
  }
  std::uint32_t finish_transition() {
    if (work_.empty()) return dead;
    run_work();
    if (ready_.empty() && !accept_flag_) return dead;
    return intern_state(accept_flag_, 0, 0, 0);
  }

  // ---- the mask ----
  void set_bit(token_id id) noexcept {
    mask_[static_cast<std::size_t>(id) >> 6] |= std::uint64_t{1} << (static_cast<std::size_t>(id) & 63);
  }
  // Marks the tokens of `trie` that can follow state `from`; subtrees whose longest token has at
  // most `skip_chars` characters are skipped (they are known already).
  void walk(const token_trie& trie, std::uint32_t from, int skip_chars) {
    const auto* nodes = trie.nodes.data();
    const std::size_t n = trie.nodes.size();
    depth_states_[0] = from;
    std::size_t i = 1;
    while (i < n) {
      const auto& nd = nodes[i];
      if (static_cast<int>(nd.max_chars) <= skip_chars) {
        i = nd.end;
        continue;
      }
      const std::uint32_t s = step(depth_states_[nd.depth - 1u], nd.byte);
      if (s == dead) {
        i = nd.end;
        continue;
      }
      depth_states_[nd.depth] = s;
      for (std::uint32_t t = 0; t < nd.token_count; ++t) set_bit(trie.tokens[nd.first_token + t]);
      ++i;
    }
  }

  void compute_mask() {
    std::fill(mask_.begin(), mask_.end(), 0);
    mask_valid_ = true;
    if (finished_) return;
    const state s = states_[current_];
    if (s.accepting) {
      for (const auto id : index_->end_of_generation()) set_bit(id);
    }
    for (std::size_t k = 0; k < special_tokens_.size(); ++k) {
      if (special_tokens_[k] >= 0 && step(current_, 256 + static_cast<std::uint32_t>(k)) != dead) set_bit(special_tokens_[k]);
    }
    if (s.slice >= 0) {
      const auto& sl = index_->slices()[static_cast<std::size_t>(s.slice)];
      const std::uint32_t fits = std::min<std::uint32_t>(s.room, token_index::slice_length_cap);
      const std::uint64_t* bulk = sl.up_to.data() + static_cast<std::size_t>(fits) * index_->words();
      for (std::size_t w = 0; w < mask_.size(); ++w) mask_[w] |= bulk[w];
      walk(sl.outside, current_, -1);
      walk(sl.inside, current_, static_cast<int>(fits));
    } else {
      walk(index_->full(), current_, -1);
    }
    bool any = false;
    for (const auto w : mask_) any = any || w != 0;
    if (!any) fail(errc::invalid_argument, "grammar constraint: no token of the vocabulary can continue the output here");
  }

  std::shared_ptr<const grammar> grammar_;
  std::shared_ptr<const token_index> index_;
  constraint_options options_;
  std::vector<token_id> special_tokens_;  // per grammar special: the control token, or -1 (spelled)
  std::vector<std::vector<std::uint8_t>> class_includes_slice_;  // [slice][class]
  std::uint32_t width_ = 256;

  std::vector<node> nodes_;
  std::vector<std::uint32_t> node_slots_;
  std::vector<std::uint32_t> stamps_;
  std::uint32_t stamp_ = 0;
  std::vector<state> states_;
  std::vector<std::uint32_t> state_nodes_;
  std::vector<std::uint32_t> state_slots_;
  std::vector<std::uint32_t> table_;
  std::vector<std::uint32_t> ready_;
  std::vector<work_item> work_;
  bool accept_flag_ = false;
  std::uint32_t start_ = 0;

  std::uint32_t current_ = 0;
  bool finished_ = false;
  bool mask_valid_ = false;
  std::vector<std::uint64_t> mask_;
  std::vector<std::uint32_t> depth_states_;
};

}  // namespace chorus::inline CHORUS_ABI::sample
