// chorus — a tokenizer vocabulary: token texts, scores, types, special ids, BPE merge ranks and
// the flags that drive encoding, built from a plain struct or from a GGUF file's
// tokenizer.ggml.* metadata with the same defaults and fix-ups as the reference (llama.cpp).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/gguf/file.hpp"
#include "chorus/tokenizer/pre_tokenize.hpp"

namespace chorus::inline CHORUS_ABI::tokenizer {

using token_id = std::int32_t;

// GGUF token types (tokenizer.ggml.token_type).
enum class token_type : std::int32_t { undefined = 0, normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };
enum class model_kind { spm, bpe };  // tokenizer.ggml.model "llama" | "gpt2"

// Everything a vocabulary is made of, as plain data. vocab(vocab_data) validates it and builds
// the lookup structures; vocab::from_gguf fills it from a file, applying the reference's defaults.
struct vocab_data {
  model_kind kind = model_kind::spm;
  std::string pre;                     // tokenizer.ggml.pre (BPE only; "" = absent = "default")
  std::vector<std::string> tokens;     // token texts, id = index
  std::vector<float> scores;           // empty: all 0
  std::vector<std::int32_t> types;     // token_type values; empty: all normal
  std::vector<std::string> merges;     // BPE: "left right", rank = index
  std::optional<std::int64_t> bos, eos, eot, unk, pad;
  std::optional<bool> add_bos;         // absent: SPM adds BOS, BPE only for llama3/tekken-style pre-tokenizers
  std::optional<bool> add_eos;         // absent: false
  std::optional<bool> add_space_prefix;// absent: SPM true, BPE false
  std::string model_name;              // general.name: the reference patches a few vocabularies by name (Phi-3)
  std::string source = "<vocab>";      // for error messages
};

namespace detail {

inline std::uint64_t hash_text(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t n = s.size();
  std::uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
  while (n >= 8) {
    std::uint64_t k;
    std::memcpy(&k, p, 8);
    h ^= k * 0xFF51AFD7ED558CCDull;
    h = ((h << 31) | (h >> 33)) * 0xC4CEB9FE1A85EC53ull;
    p += 8;
    n -= 8;
  }
  std::uint64_t k = 0;
  for (std::size_t i = 0; i < n; ++i) k |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  h ^= k * 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  return h;
}

// Open-addressing table from token text to id; the texts live in the vocabulary's pool.
class text_index {
 public:
  template <class TextOf>
  void build(std::size_t n, TextOf text_of) {
    std::size_t capacity = 16;
    while (capacity < n * 2) capacity *= 2;
    slots_.assign(capacity, slot{0, -1});
    mask_ = capacity - 1;
    for (std::size_t id = 0; id < n; ++id) {
      const std::string_view text = text_of(static_cast<token_id>(id));
      const std::uint64_t h = hash_text(text);
      std::size_t i = h & mask_;
      for (;; i = (i + 1) & mask_) {
        if (slots_[i].id < 0) {
          slots_[i] = {static_cast<std::uint32_t>(h >> 32), static_cast<token_id>(id)};
          break;
        }
        if (slots_[i].tag == static_cast<std::uint32_t>(h >> 32) && text_of(slots_[i].id) == text) {
          slots_[i].id = static_cast<token_id>(id);  // a repeated text: the last id wins, as in the reference
          break;
        }
      }
    }
  }
  template <class TextOf>
  token_id find(std::string_view text, TextOf text_of) const noexcept {
    if (slots_.empty()) return -1;
    const std::uint64_t h = hash_text(text);
    const auto tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.tag == tag && text_of(s.id) == text) return s.id;
    }
  }

 private:
  struct slot {
    std::uint32_t tag;
    token_id id;
  };
  std::vector<slot> slots_;
  std::size_t mask_ = 0;
};

// Open-addressing table from a pair of token ids to the merge's rank and the merged token.
class merge_index {
 public:
  struct entry {
    std::int32_t rank;
    token_id merged;  // id of left+right, or -1 when the vocabulary lacks it
  };
  void reserve(std::size_t n) {
    std::size_t capacity = 16;
    while (capacity < n * 2) capacity *= 2;
    keys_.assign(capacity, empty);
    values_.assign(capacity, entry{-1, -1});
    mask_ = capacity - 1;
  }
  // First insertion wins (a repeated merge keeps its lowest rank).
  void insert(token_id left, token_id right, entry e) {
    const std::uint64_t key = pack(left, right);
    for (std::size_t i = slot_of(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return;
      if (keys_[i] == empty) {
        keys_[i] = key;
        values_[i] = e;
        return;
      }
    }
  }
  const entry* find(token_id left, token_id right) const noexcept {
    if (keys_.empty()) return nullptr;
    const std::uint64_t key = pack(left, right);
    for (std::size_t i = slot_of(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == empty) return nullptr;
    }
  }

 private:
  static constexpr std::uint64_t empty = ~0ull;
  static std::uint64_t pack(token_id l, token_id r) noexcept {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(l)) << 32) | static_cast<std::uint32_t>(r);
  }
  std::size_t slot_of(std::uint64_t key) const noexcept { return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> 17) & mask_; }
  std::vector<std::uint64_t> keys_;
  std::vector<entry> values_;
  std::size_t mask_ = 0;
};

}  // namespace detail

// An immutable vocabulary. Copies are cheap (the data is shared) and safe to use from several
// threads at once.
class vocab {
 public:
  // A token's data as views into the vocabulary.
  struct token_info {
    std::string_view text;
    float score = 0.0f;
    token_type type = token_type::normal;
    bool lstrip = false;  // matched as a special token, it absorbs the whitespace before it
    bool rstrip = false;  // ... and after it
  };

  vocab() = default;

  explicit vocab(vocab_data data) {
    auto s = std::make_shared<state>();
    s->source = std::move(data.source);
    s->kind = data.kind;
    const std::size_t n = data.tokens.size();
    if (n == 0) fail(errc::bad_format, s->source, ": the vocabulary has no tokens");
    if (n > 0x7FFFFFFF) fail(errc::bad_format, s->source, ": ", n, " tokens is more than a token id can hold");
    if (!data.scores.empty() && data.scores.size() != n) {
      fail(errc::bad_format, s->source, ": ", data.scores.size(), " token scores for ", n, " tokens (tokenizer.ggml.scores)");
    }
    if (!data.types.empty() && data.types.size() != n) {
      fail(errc::bad_format, s->source, ": ", data.types.size(), " token types for ", n, " tokens (tokenizer.ggml.token_type)");
    }

    // Texts into one pool. An empty text becomes "[EMPTY_<id>]", as in the reference.
    std::size_t bytes = 0;
    for (const auto& t : data.tokens) bytes += t.empty() ? 16 : t.size();
    s->pool.reserve(bytes);
    s->offsets.reserve(n + 1);
    s->info.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      s->offsets.push_back(static_cast<std::uint32_t>(s->pool.size()));
      if (data.tokens[i].empty()) s->pool += "[EMPTY_" + std::to_string(i) + "]";
      else s->pool += data.tokens[i];
      auto& t = s->info[i];
      t.score = data.scores.empty() ? 0.0f : data.scores[i];
      const std::int32_t type = data.types.empty() ? 1 : data.types[i];
      t.type = (type >= 0 && type <= 6) ? static_cast<token_type>(type) : token_type::undefined;
    }
    if (s->pool.size() > 0xFFFFFFFFull) fail(errc::bad_format, s->source, ": token texts exceed 4 GiB");
    s->offsets.push_back(static_cast<std::uint32_t>(s->pool.size()));
    const state* raw = s.get();
    s->index.build(n, [raw](token_id id) { return raw->text(id); });

    auto id_of = [&](const char* what, const std::optional<std::int64_t>& value) -> std::optional<token_id> {
      if (!value || *value == -1 || *value == 0xFFFFFFFFll) return std::nullopt;  // absent / "no such token"
      if (*value < 0 || static_cast<std::uint64_t>(*value) >= n) {
        fail(errc::bad_format, s->source, ": ", what, " = ", *value, " is outside the vocabulary of ", n, " tokens");
      }
      return static_cast<token_id>(*value);
    };
    s->bos = id_of("tokenizer.ggml.bos_token_id", data.bos);
    s->eos = id_of("tokenizer.ggml.eos_token_id", data.eos);
    s->eot = id_of("tokenizer.ggml.eot_token_id", data.eot);
    s->unk = id_of("tokenizer.ggml.unknown_token_id", data.unk);
    s->pad = id_of("tokenizer.ggml.padding_token_id", data.pad);

    if (s->kind == model_kind::bpe) {
      s->pre_name = data.pre;
      if (auto traits = pre_tokenizer_by_name(data.pre)) {
        s->pre = *traits;
      } else {
        // Unknown name: split with the "default" patterns, as newer versions of the reference do,
        // and say so (pre_tokenizer_is_fallback) so that callers can warn or refuse.
        s->pre = *pre_tokenizer_by_name("default");
        s->pre_fallback = true;
      }
      s->add_bos = data.add_bos.value_or(s->pre.add_bos);
      s->add_space_prefix = data.add_space_prefix.value_or(false);
      s->clean_spaces = s->pre.clean_spaces;
      s->ignore_merges = s->pre.ignore_merges;
      build_merges(*s, data.merges);
    } else {
      s->pre_name = data.pre.empty() ? "default" : data.pre;
      s->add_bos = data.add_bos.value_or(true);
      s->add_space_prefix = data.add_space_prefix.value_or(true);
      s->clean_spaces = false;
    }
    s->add_eos = data.add_eos.value_or(false);
    if (s->add_bos && !s->bos) fail(errc::bad_format, s->source, ": the vocabulary adds BOS but has no tokenizer.ggml.bos_token_id");
    if (s->add_eos && !s->eos) fail(errc::bad_format, s->source, ": the vocabulary adds EOS but has no tokenizer.ggml.eos_token_id");

    mark_by_text(*s);

    // Tokens matched as whole units inside the text, longest first so that a longer special
    // token wins over its prefix.
    for (std::size_t i = 0; i < n; ++i) {
      const auto type = s->info[i].type;
      if (type == token_type::control || type == token_type::user_defined || type == token_type::unknown) {
        s->specials.push_back(static_cast<token_id>(i));
      }
    }
    std::stable_sort(s->specials.begin(), s->specials.end(),
                     [raw](token_id a, token_id b) { return raw->text(a).size() > raw->text(b).size(); });

    // Per-model attribute patches of the reference.
    std::string name = data.model_name;
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (s->kind == model_kind::bpe && (data.pre == "jina-v2-de" || data.pre == "jina-v2-es" || data.pre == "jina-v2-code")) {
      if (const auto id = raw->find("<mask>"); id >= 0) s->info[static_cast<std::size_t>(id)].lstrip = true;
    } else if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
      for (const auto id : s->specials) s->info[static_cast<std::size_t>(id)].rstrip = true;
      if (const auto id = raw->find("</s>"); id >= 0) s->info[static_cast<std::size_t>(id)].rstrip = true;
      for (const char* text : {"<unk>", "<s>", "<|endoftext|>"}) {
        if (const auto id = raw->find(text); id >= 0) s->info[static_cast<std::size_t>(id)].rstrip = false;
      }
    }

    // Byte fallback tokens <0xNN> (SentencePiece), else the byte as a one-character token.
    for (int b = 0; b < 256; ++b) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "<0x%02X>", b);
      token_id id = raw->find(hex);
      const char one = static_cast<char>(b);
      if (id < 0) id = raw->find(std::string_view(&one, 1));
      s->byte_tokens[b] = id;
    }
    state_ = std::move(s);
  }

  // Reads tokenizer.ggml.* (and general.name) with the reference's defaults for absent keys.
  static vocab from_gguf(const gguf::file& file) {
    vocab_data d;
    d.source = file.source_name();
    const auto model = file.get<std::string>("tokenizer.ggml.model");
    if (model == "llama") {
      d.kind = model_kind::spm;
    } else if (model == "gpt2") {
      d.kind = model_kind::bpe;
    } else {
      fail(errc::unsupported, file.source_name(), ": tokenizer.ggml.model '", model,
           "' is not supported (chorus reads 'llama' SentencePiece and 'gpt2' byte-level BPE vocabularies)");
    }
    d.pre = file.find<std::string>("tokenizer.ggml.pre").value_or("");
    const auto texts = file.get_array<std::string_view>("tokenizer.ggml.tokens");
    d.tokens.assign(texts.begin(), texts.end());
    if (file.has("tokenizer.ggml.scores")) d.scores = file.get_array<float>("tokenizer.ggml.scores");
    if (file.has("tokenizer.ggml.token_type")) d.types = file.get_array<std::int32_t>("tokenizer.ggml.token_type");
    if (d.kind == model_kind::bpe) {
      if (!file.has("tokenizer.ggml.merges")) fail(errc::bad_format, file.source_name(), ": a 'gpt2' vocabulary without tokenizer.ggml.merges");
      const auto merges = file.get_array<std::string_view>("tokenizer.ggml.merges");
      d.merges.assign(merges.begin(), merges.end());
    }
    // The reference's default special ids, used when the keys are absent.
    const std::int64_t n = static_cast<std::int64_t>(d.tokens.size());
    auto fallback = [n](std::int64_t id) -> std::optional<std::int64_t> { return id < n ? std::optional<std::int64_t>(id) : std::nullopt; };
    if (d.kind == model_kind::spm) {
      d.bos = fallback(1);
      d.eos = fallback(2);
      d.unk = fallback(0);
    } else {
      d.bos = fallback(11);
      d.eos = fallback(11);
    }
    auto id_key = [&](const char* key, std::optional<std::int64_t>& into) {
      if (auto value = file.find<std::int64_t>(key)) into = *value;
    };
    id_key("tokenizer.ggml.bos_token_id", d.bos);
    id_key("tokenizer.ggml.eos_token_id", d.eos);
    id_key("tokenizer.ggml.eot_token_id", d.eot);
    id_key("tokenizer.ggml.unknown_token_id", d.unk);
    id_key("tokenizer.ggml.padding_token_id", d.pad);
    d.add_bos = file.find<bool>("tokenizer.ggml.add_bos_token");
    d.add_eos = file.find<bool>("tokenizer.ggml.add_eos_token");
    d.add_space_prefix = file.find<bool>("tokenizer.ggml.add_space_prefix");
    d.model_name = file.find<std::string>("general.name").value_or("");
    return vocab(std::move(d));
  }

  bool empty() const noexcept { return !state_; }
  model_kind kind() const noexcept { return s().kind; }
  // tokenizer.ggml.pre as written in the file ("default" when absent).
  const std::string& pre_tokenizer() const noexcept { return s().pre_name; }
  tokenizer::pre_tokenizer_kind pre_kind() const noexcept { return s().pre.kind; }
  // True when tokenizer.ggml.pre named a pre-tokenizer chorus does not know and the "default"
  // patterns are used instead (ids may then differ from the model's own tokenizer).
  bool pre_tokenizer_is_fallback() const noexcept { return s().pre_fallback; }

  std::size_t size() const noexcept { return state_ ? s().info.size() : 0; }
  bool contains(token_id id) const noexcept { return id >= 0 && static_cast<std::size_t>(id) < size(); }

  token_info operator[](token_id id) const {
    check(id);
    auto info = s().info[static_cast<std::size_t>(id)];
    info.text = s().text(id);
    return info;
  }
  std::string_view text(token_id id) const {
    check(id);
    return s().text(id);
  }
  token_type type(token_id id) const {
    check(id);
    return s().info[static_cast<std::size_t>(id)].type;
  }
  float score(token_id id) const {
    check(id);
    return s().info[static_cast<std::size_t>(id)].score;
  }

  std::optional<token_id> find(std::string_view text) const {
    const token_id id = find_id(text);
    if (id < 0) return std::nullopt;
    return id;
  }
  // The id of a token text, or -1 (the hot-path form of find).
  token_id find_id(std::string_view text) const noexcept { return state_ ? s().find(text) : -1; }

  // The token for a raw byte (<0xNN>, else the one-byte text), or -1.
  token_id byte_token(std::uint8_t byte) const noexcept { return s().byte_tokens[byte]; }

  // BPE: the merge of two adjacent tokens (rank and merged id), or nullptr.
  const detail::merge_index::entry* merge(token_id left, token_id right) const noexcept { return s().merges.find(left, right); }
  // BPE: the rank of the merge "left right", or -1 (also for sides that are not tokens).
  int merge_rank(std::string_view left, std::string_view right) const {
    const token_id l = find_id(left), r = find_id(right);
    if (l >= 0 && r >= 0) {
      const auto* e = merge(l, r);
      return e ? e->rank : -1;
    }
    if (s().text_merges.empty()) return -1;
    const auto it = s().text_merges.find(text_merge_key(left, right));
    return it == s().text_merges.end() ? -1 : it->second;
  }
  bool has_text_merges() const noexcept { return !s().text_merges.empty(); }

  // Control, user-defined and unknown tokens, longest text first.
  const std::vector<token_id>& special_tokens() const noexcept { return s().specials; }

  std::optional<token_id> bos() const noexcept { return s().bos; }
  std::optional<token_id> eos() const noexcept { return s().eos; }
  std::optional<token_id> eot() const noexcept { return s().eot; }
  std::optional<token_id> unk() const noexcept { return s().unk; }
  std::optional<token_id> pad() const noexcept { return s().pad; }
  bool add_bos() const noexcept { return s().add_bos; }
  bool add_eos() const noexcept { return s().add_eos; }
  bool add_space_prefix() const noexcept { return s().add_space_prefix; }
  bool clean_spaces() const noexcept { return s().clean_spaces; }
  bool ignore_merges() const noexcept { return s().ignore_merges; }

  // End of generation: EOS, EOT, and the end-of-turn tokens the reference recognizes by text
  // (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>, <|eom_id|>, <EOT>).
  bool is_end_of_generation(token_id id) const noexcept {
    if (!state_ || !contains(id)) return false;
    return std::find(s().eog.begin(), s().eog.end(), id) != s().eog.end();
  }
  const std::vector<token_id>& end_of_generation_tokens() const noexcept { return s().eog; }

 private:
  struct state {
    model_kind kind = model_kind::spm;
    std::string pre_name;
    pre_tokenizer_traits pre;
    bool pre_fallback = false;
    std::string pool;
    std::vector<std::uint32_t> offsets;
    std::vector<token_info> info;  // text left empty here; see text()
    detail::text_index index;
    detail::merge_index merges;
    std::unordered_map<std::string, int> text_merges;  // merges whose sides are not both tokens (rare)
    std::vector<token_id> specials;
    std::vector<token_id> eog;
    token_id byte_tokens[256] = {};
    std::optional<token_id> bos, eos, eot, unk, pad;
    bool add_bos = false, add_eos = false, add_space_prefix = false, clean_spaces = false, ignore_merges = false;
    std::string source;

    std::string_view text(token_id id) const noexcept {
      const auto i = static_cast<std::size_t>(id);
      return std::string_view(pool).substr(offsets[i], offsets[i + 1] - offsets[i]);
    }
    token_id find(std::string_view t) const noexcept {
      return index.find(t, [this](token_id id) { return text(id); });
    }
  };

  static std::string text_merge_key(std::string_view left, std::string_view right) {
    std::string key = std::to_string(left.size());
    key += ':';
    key += left;
    key += right;
    return key;
  }

  static void build_merges(state& s, const std::vector<std::string>& merges) {
    s.merges.reserve(merges.size());
    std::string joined;
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
      const std::string_view m = merges[rank];
      const auto space = m.find(' ', 1);
      if (space == std::string_view::npos) {
        fail(errc::bad_format, s.source, ": tokenizer.ggml.merges[", rank, "] '", m, "' is not 'left right'");
      }
      const std::string_view left = m.substr(0, space), right = m.substr(space + 1);
      const token_id l = s.find(left), r = s.find(right);
      joined.assign(left);
      joined += right;
      if (l >= 0 && r >= 0) {
        s.merges.insert(l, r, {static_cast<std::int32_t>(rank), s.find(joined)});
      } else {
        s.text_merges.emplace(text_merge_key(left, right), static_cast<int>(rank));
      }
    }
  }

  // The reference finds end-of-turn tokens by their text and treats them as control tokens
  // (so that "<|end|>" written in a prompt is plain text unless special tokens are parsed).
  static void mark_by_text(state& s) {
    static constexpr std::string_view eot_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                                     "<EOT>", "_<EOT>", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"};
    static constexpr std::string_view eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                                     "<|eom_id|>", "<EOT>", "_<EOT>"};
    auto force_control = [&](token_id id) { s.info[static_cast<std::size_t>(id)].type = token_type::control; };
    if (!s.eot) {  // only when tokenizer.ggml.eot_token_id did not name one
      for (const auto text : eot_texts) {
        if (const token_id id = s.find(text); id >= 0) {
          if (!s.eot) s.eot = id;
          force_control(id);
        }
      }
    }
    if (const token_id id = s.find("<|eom_id|>"); id >= 0) force_control(id);
    for (const auto text : eog_texts) {
      if (const token_id id = s.find(text); id >= 0) {
        s.eog.push_back(id);
        force_control(id);
      }
    }
    for (const auto& id : {s.eos, s.eot}) {
      if (id && std::find(s.eog.begin(), s.eog.end(), *id) == s.eog.end()) s.eog.push_back(*id);
    }
  }

  const state& s() const noexcept { return *state_; }
  void check(token_id id) const {
    if (!contains(id)) fail(errc::out_of_range, "token id ", id, " is outside the vocabulary of ", size(), " tokens");
  }

  std::shared_ptr<const state> state_;
};

}  // namespace chorus::inline CHORUS_ABI::tokenizer
