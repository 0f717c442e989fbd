// chorus — UTF-8 decoding helpers for the tokenizers and the streaming decoder (encoding: core/utf8.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "chorus/config.hpp"

namespace chorus::inline CHORUS_ABI::tokenizer::utf8 {

// Length of the sequence a lead byte announces (1 for continuation or invalid bytes, so that
// scanning always advances).
constexpr std::size_t sequence_length(std::uint8_t lead) noexcept {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

// Lenient decoding, as the reference's BPE path does: a sequence whose continuation bytes
// are missing or wrong decodes to U+FFFD for its first byte and decoding resumes after it;
// overlong forms and surrogates are accepted as code points.
inline std::uint32_t decode_lenient(std::string_view text, std::size_t& pos) noexcept {
  const auto lead = static_cast<std::uint8_t>(text[pos]);
  const std::size_t length = sequence_length(lead);
  if (length == 1) {
    ++pos;
    return lead < 0x80 ? lead : 0xFFFD;
  }
  if (pos + length > text.size()) {
    ++pos;
    return 0xFFFD;
  }
  for (std::size_t k = 1; k < length; ++k) {
    if ((static_cast<std::uint8_t>(text[pos + k]) >> 6) != 0x2) {
      ++pos;
      return 0xFFFD;
    }
  }
  std::uint32_t cp = lead & (0x7F >> length);
  for (std::size_t k = 1; k < length; ++k) cp = (cp << 6) | (static_cast<std::uint8_t>(text[pos + k]) & 0x3F);
  pos += length;
  return cp;
}

// Length of the longest prefix of `bytes` that ends on a complete code point boundary,
// treating structurally invalid bytes as complete (they are passed through as they are).
inline std::size_t complete_prefix(std::string_view bytes) noexcept {
  // Look back at most 3 bytes for a lead byte whose sequence is not finished.
  const std::size_t n = bytes.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto c = static_cast<std::uint8_t>(bytes[n - back]);
    if ((c >> 6) == 0x2) continue;  // continuation: keep looking for the lead
    const std::size_t length = sequence_length(c);
    if (length > back) return n - back;  // lead of an unfinished sequence
    return n;
  }
  return n;
}

}  // namespace chorus::inline CHORUS_ABI::tokenizer::utf8
