// chorus — BPE pre-tokenizers: split text into the words that byte-level BPE merges within,
// written as hand-made scanners over code points (no regex engine) for the patterns named by
// tokenizer.ggml.pre. Each scanner reproduces the words the reference (llama.cpp) produces.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/tokenizer/unicode_tables.hpp"

namespace chorus::inline CHORUS_ABI::tokenizer {

namespace unicode {

// The classes the pre-tokenizer patterns test. A code point has at most one of letter, number,
// punctuation (its general category L*, N*, P*); whitespace is the White_Space property.
enum class_bits : std::uint8_t { letter_bit = 1, number_bit = 2, punctuation_bit = 4, whitespace_bit = 8 };

template <std::size_t N>
constexpr bool in(const code_point_range (&table)[N], std::uint32_t cp) noexcept {
  const auto* it = std::upper_bound(table, table + N, cp, [](std::uint32_t v, const code_point_range& r) { return v < r.first; });
  return it != table && cp <= (it - 1)->last;
}

// \s of the reference: the Unicode White_Space property (not Python's isspace, which adds 0x1C-0x1F).
constexpr bool is_whitespace(std::uint32_t cp) noexcept {
  return (cp >= 0x9 && cp <= 0xD) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// The letters, numbers and punctuation that Unicode 15.0 and 15.1 added (all outside the Basic
// Multilingual Plane: Kawi, Nag Mundari, Kaktovik numerals, CJK extensions H and I, ...). The
// reference classifies by Unicode 15.1; the generated tables above may be older (they follow the
// unicodedata of the Python that generated them, 14.0 at the time of writing), and an overlap
// with a newer table is harmless. Checked against ICU 72 (Unicode 15.0) plus the 15.1 addition
// (CJK extension I, U+2EBF0..U+2EE5D).
inline constexpr code_point_range letters_15[] = {
    {0x1123F, 0x11240}, {0x11F02, 0x11F02}, {0x11F04, 0x11F10}, {0x11F12, 0x11F33}, {0x1342F, 0x1342F},
    {0x13441, 0x13446}, {0x1B132, 0x1B132}, {0x1B155, 0x1B155}, {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D},
    {0x1E4D0, 0x1E4EB}, {0x2B739, 0x2B739}, {0x2EBF0, 0x2EE5D}, {0x31350, 0x323AF},
};
inline constexpr code_point_range numbers_15[] = {{0x11F50, 0x11F59}, {0x1D2C0, 0x1D2D3}, {0x1E4F0, 0x1E4F9}};
inline constexpr code_point_range punctuation_15[] = {{0x11B00, 0x11B09}, {0x11F43, 0x11F4F}};

inline std::uint8_t classify_slow(std::uint32_t cp) noexcept {
  std::uint8_t bits = 0;
  if (in(letters, cp) || in(letters_15, cp)) bits |= letter_bit;
  else if (in(numbers, cp) || in(numbers_15, cp)) bits |= number_bit;
  else if (in(punctuation, cp) || in(punctuation_15, cp)) bits |= punctuation_bit;
  if (is_whitespace(cp)) bits |= whitespace_bit;
  return bits;
}

// The classes of the Basic Multilingual Plane, computed once (64 KiB); other planes are looked up.
inline const std::uint8_t* bmp_classes() {
  static const std::unique_ptr<std::uint8_t[]> table = [] {
    auto t = std::make_unique<std::uint8_t[]>(0x10000);
    for (std::uint32_t cp = 0; cp < 0x10000; ++cp) t[cp] = classify_slow(cp);
    return t;
  }();
  return table.get();
}

inline std::uint8_t classify(std::uint32_t cp) noexcept { return cp < 0x10000 ? bmp_classes()[cp] : classify_slow(cp); }
inline bool is_letter(std::uint32_t cp) noexcept { return (classify(cp) & letter_bit) != 0; }
inline bool is_number(std::uint32_t cp) noexcept { return (classify(cp) & number_bit) != 0; }
inline bool is_space(std::uint32_t cp) noexcept { return is_whitespace(cp); }

}  // namespace unicode

// The pre-tokenizers chorus implements. Names of tokenizer.ggml.pre map onto them as in the
// reference (see pre_tokenizer_by_name).
enum class pre_tokenizer_kind {
  default_bpe,     // "default" or absent: punctuation runs, GPT-2 words, number runs, digit triples
  gpt2,            // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  llama3,          // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  qwen2,           // the llama3 pattern with single digits: \p{N} instead of \p{N}{1,3}
  deepseek_llm,    // [\r\n] ; \s?[cased letters]+ ; \s?[ASCII/fullwidth punctuation]+ ; \s+$ ; [CJK, Hangul]+ ; \p{N}+
  deepseek_coder,  // [\r\n] ; \s?\p{L}+ ; \s?\p{P}+ ; [CJK, Hangul]+ ; \p{N}
  falcon,          // [\p{P}$+<=>^~|`]+ ; GPT-2 words ; [0-9]{3}
  smollm,          // \p{N} (each digit alone) ; GPT-2 words   (also starcoder, refact, command-r, ...)
  tekken,          // Mistral's tekken: case-split words, \p{N}, punctuation runs with [\r\n/]*, whitespace rules
};

// What a pre-tokenizer name implies besides the split (the reference sets these per name).
struct pre_tokenizer_traits {
  pre_tokenizer_kind kind = pre_tokenizer_kind::default_bpe;
  bool ignore_merges = false;  // a word that is itself a vocabulary token is not merged
  bool clean_spaces = true;    // decode removes the space before , . ! ? and some contractions
  bool add_bos = false;        // default when tokenizer.ggml.add_bos_token is absent
};

// The traits for a tokenizer.ggml.pre value, or nullopt for a name chorus does not know.
inline std::optional<pre_tokenizer_traits> pre_tokenizer_by_name(std::string_view name) {
  using k = pre_tokenizer_kind;
  auto any_of = [&](std::initializer_list<std::string_view> names) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  if (name.empty() || name == "default") return pre_tokenizer_traits{k::default_bpe, false, true, false};
  if (any_of({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral"})) return pre_tokenizer_traits{k::llama3, true, true, true};
  if (any_of({"dbrx", "smaug-bpe"})) return pre_tokenizer_traits{k::llama3, false, true, false};
  if (name == "chatglm-bpe" || name == "glm4") return pre_tokenizer_traits{k::llama3, false, true, false};
  if (name == "deepseek-llm") return pre_tokenizer_traits{k::deepseek_llm, false, false, false};
  if (name == "deepseek-coder") return pre_tokenizer_traits{k::deepseek_coder, false, false, false};
  if (name == "falcon") return pre_tokenizer_traits{k::falcon, false, true, false};
  if (any_of({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "jina-v1-en",
              "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "exaone4"})) {
    return pre_tokenizer_traits{k::gpt2, false, true, false};
  }
  if (any_of({"qwen2", "deepseek-r1-qwen"})) return pre_tokenizer_traits{k::qwen2, false, false, false};
  if (any_of({"stablelm2", "megrez"})) return pre_tokenizer_traits{k::qwen2, false, true, false};
  if (any_of({"smollm", "command-r"})) return pre_tokenizer_traits{k::smollm, false, false, false};
  if (any_of({"starcoder", "refact", "codeshell", "exaone", "minerva-7b"})) return pre_tokenizer_traits{k::smollm, false, true, false};
  if (name == "tekken") return pre_tokenizer_traits{k::tekken, true, false, true};
  return std::nullopt;
}

inline std::string_view to_string(pre_tokenizer_kind kind) noexcept {
  switch (kind) {
    case pre_tokenizer_kind::default_bpe: return "default";
    case pre_tokenizer_kind::gpt2: return "gpt-2";
    case pre_tokenizer_kind::llama3: return "llama3";
    case pre_tokenizer_kind::qwen2: return "qwen2";
    case pre_tokenizer_kind::deepseek_llm: return "deepseek-llm";
    case pre_tokenizer_kind::deepseek_coder: return "deepseek-coder";
    case pre_tokenizer_kind::falcon: return "falcon";
    case pre_tokenizer_kind::smollm: return "smollm";
    case pre_tokenizer_kind::tekken: return "tekken";
  }
  return "?";
}

namespace detail {

// The cased-letter class of DeepSeek LLM's second split pattern (from its tokenizer.json).
inline constexpr unicode::code_point_range deepseek_letters[] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA}, {0x1BC, 0x1BF},
    {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377}, {0x37B, 0x37D}, {0x37F, 0x37F},
    {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481},
    {0x48A, 0x52F}, {0x531, 0x556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA},
    {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D},
    {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC},
    {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102},
    {0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
    {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
    {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3},
    {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF},
    {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3},
    {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
// [!-/:-~！-／：-～‘-‟　-。]
inline constexpr unicode::code_point_range deepseek_punctuation[] = {
    {0x21, 0x2F}, {0x3A, 0x7E}, {0x2018, 0x201F}, {0x3000, 0x3002}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E},
};
// [一-龥ࠀ-一가-퟿]
inline constexpr unicode::code_point_range cjk_hangul[] = {{0x800, 0x9FA5}, {0xAC00, 0xD7FF}};

// The text as the pre-tokenizer sees it: code points and their classes, split into chunks
// (lengths in code points) that each stage splits further.
struct split_state {
  const std::uint32_t* cp = nullptr;
  const std::uint8_t* cls = nullptr;
  std::vector<std::uint32_t>* out = nullptr;

  bool space(std::size_t i) const noexcept { return (cls[i] & unicode::whitespace_bit) != 0; }
  bool letter(std::size_t i) const noexcept { return (cls[i] & unicode::letter_bit) != 0; }
  bool number(std::size_t i) const noexcept { return (cls[i] & unicode::number_bit) != 0; }
  bool lnw(std::size_t i) const noexcept { return (cls[i] & (unicode::letter_bit | unicode::number_bit | unicode::whitespace_bit)) != 0; }

  // The reference runs patterns that have no custom implementation through std::regex over a
  // "collapsed" text: ASCII as is, other whitespace as \v, other letters/numbers/punctuation as
  // one placeholder each (only then does \p{L}, \p{N}, \p{P} see them), anything else as a
  // placeholder no class contains. These predicates mirror that view.
  bool c_letter(std::size_t i) const noexcept {
    const auto c = cp[i];
    return c < 0x80 ? ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') : (cls[i] & (unicode::letter_bit | unicode::whitespace_bit)) == unicode::letter_bit;
  }
  bool c_number(std::size_t i) const noexcept {
    const auto c = cp[i];
    return c < 0x80 ? (c >= '0' && c <= '9') : (cls[i] & (unicode::number_bit | unicode::whitespace_bit)) == unicode::number_bit;
  }
  // \p{P} of the collapsed text: ASCII !"#%&'()*,-./:;?@[\]_{} and other P* code points.
  bool c_punct(std::size_t i) const noexcept {
    const auto c = cp[i];
    if (c < 0x80) {
      return (c >= 0x21 && c <= 0x23) || (c >= 0x25 && c <= 0x2A) || (c >= 0x2C && c <= 0x2F) || c == 0x3A || c == 0x3B ||
             c == 0x3F || c == 0x40 || (c >= 0x5B && c <= 0x5D) || c == 0x5F || c == 0x7B || c == 0x7D;
    }
    return (cls[i] & (unicode::punctuation_bit | unicode::whitespace_bit)) == unicode::punctuation_bit;
  }
  // An explicit code point class of a pattern without \p{..}: other whitespace was replaced by \v first.
  template <std::size_t N>
  bool w_in(const unicode::code_point_range (&table)[N], std::size_t i) const noexcept {
    return (cp[i] < 0x80 || !space(i)) && unicode::in(table, cp[i]);
  }

  void emit(std::size_t length) const { out->push_back(static_cast<std::uint32_t>(length)); }

  // regex_search-style stage: `match(pos, end)` returns the end of a match starting at pos
  // or 0 when none starts there; text between matches stays a chunk of its own.
  template <class Match>
  void search(std::size_t b, std::size_t e, Match match) const {
    std::size_t gap = b;
    for (std::size_t pos = b; pos < e;) {
      const std::size_t m = match(pos, e);
      if (m > pos) {
        if (pos > gap) emit(pos - gap);
        emit(m - pos);
        pos = gap = m;
      } else {
        ++pos;
      }
    }
    if (e > gap) emit(e - gap);
  }

  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  void gpt2(std::size_t b, std::size_t e) const {
    for (std::size_t pos = b; pos < e;) {
      const std::size_t start = pos;
      const std::uint32_t c = cp[pos];
      if (c == '\'' && pos + 1 < e) {
        const std::uint32_t c1 = cp[pos + 1];
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
          emit(2);
          pos += 2;
          continue;
        }
        if (pos + 2 < e) {
          const std::uint32_t c2 = cp[pos + 2];
          if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
            emit(3);
            pos += 3;
            continue;
          }
        }
      }
      const std::size_t body = (c == ' ' && pos + 1 < e) ? pos + 1 : pos;  // optional leading space
      if (c == ' ' && pos + 1 >= e) {
        // a lone space at the end: whitespace rule below
      } else if (letter(body)) {
        pos = body;
        while (pos < e && letter(pos)) ++pos;
        emit(pos - start);
        continue;
      } else if (number(body)) {
        pos = body;
        while (pos < e && number(pos)) ++pos;
        emit(pos - start);
        continue;
      } else if (!lnw(body)) {
        pos = body;
        while (pos < e && !lnw(pos)) ++pos;
        emit(pos - start);
        continue;
      }
      std::size_t spaces = 0;
      while (pos + spaces < e && space(pos + spaces)) ++spaces;
      if (spaces > 1 && pos + spaces < e) {
        emit(spaces - 1);  // \s+(?!\S): leave the last space to the next word
        pos += spaces - 1;
      } else if (spaces > 0) {
        emit(spaces);
        pos += spaces;
      } else {
        emit(1);
        pos += 1;
      }
    }
  }

  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  void llama3(std::size_t b, std::size_t e, std::size_t max_digits) const {
    auto lower = [](std::uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; };
    for (std::size_t pos = b; pos < e;) {
      const std::uint32_t c = cp[pos];
      if (c == '\'' && pos + 1 < e) {
        const std::uint32_t c1 = lower(cp[pos + 1]);
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
          emit(2);
          pos += 2;
          continue;
        }
        if (pos + 2 < e) {
          const std::uint32_t c2 = lower(cp[pos + 2]);
          if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
            emit(3);
            pos += 3;
            continue;
          }
        }
      }
      if (c != '\r' && c != '\n' && !number(pos)) {
        if (letter(pos) || (pos + 1 < e && letter(pos + 1))) {
          const std::size_t start = pos++;
          while (pos < e && letter(pos)) ++pos;
          emit(pos - start);
          continue;
        }
      }
      if (number(pos)) {
        std::size_t run = 0;
        while (pos + run < e && number(pos + run)) ++run;
        for (std::size_t k = 0; k < run; k += max_digits) emit(std::min(max_digits, run - k));
        pos += run;
        continue;
      }
      const std::size_t body = (c == ' ' && pos + 1 < e) ? pos + 1 : pos;
      if (!lnw(body)) {
        const std::size_t start = pos;
        pos = body;
        while (pos < e && !lnw(pos)) ++pos;
        while (pos < e && (cp[pos] == '\r' || cp[pos] == '\n')) ++pos;
        emit(pos - start);
        continue;
      }
      std::size_t spaces = 0, last_newline_end = 0;
      while (pos + spaces < e && space(pos + spaces)) {
        if (cp[pos + spaces] == '\r' || cp[pos + spaces] == '\n') last_newline_end = spaces + 1;
        ++spaces;
      }
      if (last_newline_end > 0) {  // \s*[\r\n]+
        emit(last_newline_end);
        pos += last_newline_end;
      } else if (spaces > 1 && pos + spaces < e) {  // \s+(?!\S)
        emit(spaces - 1);
        pos += spaces - 1;
      } else if (spaces > 0) {
        emit(spaces);
        pos += spaces;
      } else {
        emit(1);
        pos += 1;
      }
    }
  }

  // Tekken, as the reference runs it through std::regex over the collapsed text:
  //   [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+
  //  |[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*
  //  |\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
  // "Upper" = a letter that is not a-z (A-Z and every non-ASCII letter), "lower" = a letter that
  // is not A-Z; backtracking is resolved in closed form (greedy star, first success).
  void tekken(std::size_t b, std::size_t e) const {
    auto is_ascii_upper = [&](std::size_t i) { return cp[i] >= 'A' && cp[i] <= 'Z'; };
    auto is_ascii_lower = [&](std::size_t i) { return cp[i] >= 'a' && cp[i] <= 'z'; };
    auto other_letter = [&](std::size_t i) { return cp[i] >= 0x80 && c_letter(i); };
    auto upper = [&](std::size_t i) { return is_ascii_upper(i) || other_letter(i); };
    auto lower = [&](std::size_t i) { return is_ascii_lower(i) || other_letter(i); };
    auto any_letter = [&](std::size_t i) { return c_letter(i); };
    auto space_c = [&](std::size_t i) { return cp[i] < 0x80 ? ((cp[i] >= 9 && cp[i] <= 13) || cp[i] == ' ') : space(i); };
    auto prefix = [&](std::size_t i) {  // [^\r\n\p{L}\p{N}]
      return cp[i] != '\r' && cp[i] != '\n' && !any_letter(i) && !c_number(i);
    };
    auto other = [&](std::size_t i) { return !space_c(i) && !any_letter(i) && !c_number(i); };
    // upper* lower+  (first alternative) from s; 0 if it fails
    auto case_split_1 = [&](std::size_t s) -> std::size_t {
      std::size_t k = s;
      while (k < e && upper(k)) ++k;
      std::size_t q = e;  // where lower+ starts
      if (k < e && is_ascii_lower(k)) {
        q = k;
      } else {
        for (std::size_t j = k; j > s; --j) {
          if (other_letter(j - 1)) {
            q = j - 1;
            break;
          }
        }
      }
      if (q >= e) return 0;
      std::size_t r = q;
      while (r < e && lower(r)) ++r;
      return r;
    };
    // upper+ lower*  (second alternative)
    auto case_split_2 = [&](std::size_t s) -> std::size_t {
      std::size_t k = s;
      while (k < e && upper(k)) ++k;
      if (k == s) return 0;
      while (k < e && lower(k)) ++k;
      return k;
    };
    search(b, e, [&](std::size_t pos, std::size_t) -> std::size_t {
      const bool has_prefix = prefix(pos) && pos + 1 < e;
      if (has_prefix) {
        if (const auto r = case_split_1(pos + 1)) return r;
      }
      if (const auto r = case_split_1(pos)) return r;
      if (has_prefix) {
        if (const auto r = case_split_2(pos + 1)) return r;
      }
      if (const auto r = case_split_2(pos)) return r;
      if (c_number(pos)) return pos + 1;
      std::size_t s = pos;
      if (cp[pos] == ' ' && pos + 1 < e && other(pos + 1)) s = pos + 1;
      if (other(s)) {
        while (s < e && other(s)) ++s;
        while (s < e && (cp[s] == '\r' || cp[s] == '\n' || cp[s] == '/')) ++s;
        return s;
      }
      std::size_t w = pos, last_newline_end = 0;
      while (w < e && space_c(w)) {
        if (cp[w] == '\r' || cp[w] == '\n') last_newline_end = w + 1;
        ++w;
      }
      if (last_newline_end > 0) return last_newline_end;
      if (w == e && w > pos) return w;
      if (w - pos > 1) return w - 1;
      return w;  // \s+ (0 when no whitespace: no match here)
    });
  }
};

}  // namespace detail

// Splits text (as code points) into the words of one pre-tokenizer. Stateless and thread-safe;
// the caller passes the buffers so that a long-lived encoder allocates nothing per call.
class pre_tokenizer {
 public:
  explicit pre_tokenizer(pre_tokenizer_kind kind = pre_tokenizer_kind::gpt2) noexcept : kind_(kind) {}
  pre_tokenizer_kind kind() const noexcept { return kind_; }

  // `classes[i]` = unicode::classify(cps[i]). Replaces `words` by the word lengths (in code points).
  void split(std::span<const std::uint32_t> cps, std::span<const std::uint8_t> classes, std::vector<std::uint32_t>& words,
             std::vector<std::uint32_t>& scratch) const {
    words.clear();
    if (cps.empty()) return;
    words.push_back(static_cast<std::uint32_t>(cps.size()));
    detail::split_state st{cps.data(), classes.data(), nullptr};
    using k = pre_tokenizer_kind;
    auto stage = [&](auto&& fn) {
      scratch.clear();
      st.out = &scratch;
      std::size_t b = 0;
      for (const auto length : words) {
        fn(b, b + length);
        b += length;
      }
      words.swap(scratch);
    };
    auto ascii_symbol_or_punct = [&](std::size_t i, bool backtick) {  // [\p{P}\$\+<=>\^~\|`]
      const auto c = st.cp[i];
      if (c < 0x80) return st.c_punct(i) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '~' || c == '|' || (backtick && c == '`');
      return st.c_punct(i);
    };
    auto run_of = [&](auto pred) {
      return [&st, pred](std::size_t pos, std::size_t e) -> std::size_t {
        std::size_t r = pos;
        while (r < e && pred(r)) ++r;
        return r;
      };
    };
    auto digits3 = [&](std::size_t pos, std::size_t e) -> std::size_t {
      auto digit = [&](std::size_t i) { return st.cp[i] >= '0' && st.cp[i] <= '9'; };
      return (pos + 3 <= e && digit(pos) && digit(pos + 1) && digit(pos + 2)) ? pos + 3 : 0;
    };
    auto newline = [&](std::size_t pos, std::size_t) -> std::size_t { return (st.cp[pos] == '\r' || st.cp[pos] == '\n') ? pos + 1 : 0; };
    // \s?X+ : an optional whitespace, then at least one X
    auto space_then = [&](auto pred) {
      return [&st, pred](std::size_t pos, std::size_t e) -> std::size_t {
        std::size_t s = pos;
        if (st.space(pos) && pos + 1 < e && pred(pos + 1)) s = pos + 1;
        if (!pred(s)) return 0;
        while (s < e && pred(s)) ++s;
        return s;
      };
    };
    switch (kind_) {
      case k::gpt2:
        stage([&](std::size_t b, std::size_t e) { st.gpt2(b, e); });
        break;
      case k::llama3:
        stage([&](std::size_t b, std::size_t e) { st.llama3(b, e, 3); });
        break;
      case k::qwen2:
        stage([&](std::size_t b, std::size_t e) { st.llama3(b, e, 1); });
        break;
      case k::tekken:
        stage([&](std::size_t b, std::size_t e) { st.tekken(b, e); });
        break;
      case k::default_bpe:
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, run_of([&](std::size_t i) { return ascii_symbol_or_punct(i, false); })); });
        stage([&](std::size_t b, std::size_t e) { st.gpt2(b, e); });
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, run_of([&](std::size_t i) { return st.c_number(i); })); });
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, digits3); });
        break;
      case k::falcon:
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, run_of([&](std::size_t i) { return ascii_symbol_or_punct(i, true); })); });
        stage([&](std::size_t b, std::size_t e) { st.gpt2(b, e); });
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, digits3); });
        break;
      case k::smollm:
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, [&](std::size_t pos, std::size_t) -> std::size_t { return st.c_number(pos) ? pos + 1 : 0; }); });
        stage([&](std::size_t b, std::size_t e) { st.gpt2(b, e); });
        break;
      case k::deepseek_llm:
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, newline); });
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, space_then([&](std::size_t i) { return st.w_in(detail::deepseek_letters, i); })); });
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, space_then([&](std::size_t i) { return st.w_in(detail::deepseek_punctuation, i); })); });
        stage([&](std::size_t b, std::size_t e) {  // \s+$ : the leftmost match is the trailing whitespace run
          std::size_t t = e;
          while (t > b && st.space(t - 1)) --t;
          if (t > b) st.emit(t - b);
          if (e > t) st.emit(e - t);
        });
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, run_of([&](std::size_t i) { return st.w_in(detail::cjk_hangul, i); })); });
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, run_of([&](std::size_t i) { return st.c_number(i); })); });
        break;
      case k::deepseek_coder:
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, newline); });
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, space_then([&](std::size_t i) { return st.c_letter(i); })); });
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, space_then([&](std::size_t i) { return st.c_punct(i); })); });
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, run_of([&](std::size_t i) { return st.w_in(detail::cjk_hangul, i); })); });
        stage([&](std::size_t b, std::size_t e) { st.search(b, e, [&](std::size_t pos, std::size_t) -> std::size_t { return st.c_number(pos) ? pos + 1 : 0; }); });
        break;
    }
  }

 private:
  pre_tokenizer_kind kind_;
};

}  // namespace chorus::inline CHORUS_ABI::tokenizer
