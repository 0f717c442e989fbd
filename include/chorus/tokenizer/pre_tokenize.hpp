// chorus — BPE pre-tokenizers: split text into the words that byte-level BPE merges within,
// written as hand-made scanners over code points (no regex engine) for the patterns named by
// tokenizer.ggml.pre.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/tokenizer/unicode_tables.hpp"
#include "chorus/tokenizer/utf8.hpp"

namespace chorus::inline CHORUS_ABI::tokenizer {

namespace unicode {
template <std::size_t N>
constexpr bool in(const code_point_range (&table)[N], std::uint32_t cp) noexcept {
  const auto* it = std::upper_bound(table, table + N, cp, [](std::uint32_t v, const code_point_range& r) { return v < r.first; });
  return it != table && cp <= (it - 1)->last;
}
inline bool is_letter(std::uint32_t cp) noexcept { return in(letters, cp); }
inline bool is_number(std::uint32_t cp) noexcept { return in(numbers, cp); }
// The whitespace class of the reference's \s.
inline bool is_space(std::uint32_t cp) noexcept {
  return (cp >= 0x9 && cp <= 0xD) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}
}  // namespace unicode

enum class pre_tokenizer { gpt2 };

inline pre_tokenizer pre_tokenizer_from_name(std::string_view name) {
  if (name == "gpt-2" || name == "default" || name == "gpt2") return pre_tokenizer::gpt2;
  fail(errc::unsupported, "BPE pre-tokenizer '", name, "' is not supported yet (supported: gpt-2)");
}

// The GPT-2 pattern:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Appends the byte ranges [begin, end) of each word to `words`.
inline void split_gpt2(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& words) {
  // Decode once: code points with their byte offsets.
  std::vector<std::uint32_t> cps;
  std::vector<std::size_t> offsets;
  for (std::size_t pos = 0; pos < text.size();) {
    offsets.push_back(pos);
    cps.push_back(utf8::decode_lenient(text, pos));
  }
  offsets.push_back(text.size());
  const std::size_t n = cps.size();
  auto at = [&](std::size_t i) -> std::uint32_t { return i < n ? cps[i] : 0xFFFFFFFFu; };
  auto letter = [&](std::size_t i) { return i < n && unicode::is_letter(cps[i]); };
  auto number = [&](std::size_t i) { return i < n && unicode::is_number(cps[i]); };
  auto space = [&](std::size_t i) { return i < n && unicode::is_space(cps[i]); };
  auto other = [&](std::size_t i) { return i < n && !unicode::is_space(cps[i]) && !letter(i) && !number(i); };

  std::size_t i = 0;
  while (i < n) {
    const std::size_t start = i;
    // contractions
    if (at(i) == '\'' && i + 1 < n) {
      const std::uint32_t c1 = at(i + 1), c2 = at(i + 2);
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        words.emplace_back(offsets[i], offsets[i + 2]);
        i += 2;
        continue;
      }
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
        words.emplace_back(offsets[i], offsets[i + 3]);
        i += 3;
        continue;
      }
    }
    const std::size_t body = at(i) == ' ' ? i + 1 : i;  // optional leading space
    if (letter(body)) {
      i = body;
      while (letter(i)) ++i;
    } else if (number(body)) {
      i = body;
      while (number(i)) ++i;
    } else if (other(body)) {
      i = body;
      while (other(i)) ++i;
    } else if (space(i)) {
      // \s+(?!\S): whitespace not followed by non-space; when more text follows, the last
      // space is left to start the next word.
      std::size_t end = i;
      while (space(end)) ++end;
      if (end < n && end - i > 1) end -= 1;
      i = end;
    } else {
      i = i + 1;
    }
    words.emplace_back(offsets[start], offsets[i]);
  }
}

}  // namespace chorus::inline CHORUS_ABI::tokenizer
