// A synthetic byte-level BPE vocabulary, written with chorus's GGUF writer, for differential
// tests of the pre-tokenizers (tests/test_pretokenizers.cpp) against the reference. The same
// construction is used by tools/gen_pretokenizer_goldens.cpp to write the files the reference
// tokenizes, so a change here needs the goldens regenerated (tools/gen_pretokenizer_goldens.py).
//
// The vocabulary is built so that a different pre-token boundary changes the ids: the 256 byte
// tokens (GPT-2's byte-to-unicode form, id = byte), a merge for every pair of bytes (in a
// scrambled rank order), and some 3-byte merges (space + two ASCII letters, three digits, three
// spaces/newlines) whose result depends on where a word starts. Then two control tokens,
// <|bos|> and <|eos|>. add_bos_token is false.
#pragma once

#include <chorus/chorus.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace chorus_test::synthetic_bpe {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others are mapped
// in order onto U+0100... ; returned as UTF-8.
inline std::array<std::string, 256> byte_symbols() {
  std::array<std::string, 256> out;
  auto utf8 = [](std::uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
  };
  std::uint32_t next = 256;
  for (std::uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    out[b] = utf8(printable ? b : next++);
  }
  return out;
}

struct vocab_spec {
  std::vector<std::string> tokens;
  std::vector<std::int32_t> types;
  std::vector<std::string> merges;
  std::int32_t bos = 0;
  std::int32_t eos = 0;
};

inline vocab_spec build() {
  const auto sym = byte_symbols();
  vocab_spec v;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(sym[b]);
  auto add_merge = [&](const std::string& left, const std::string& right) {
    v.merges.push_back(left + " " + right);
    v.tokens.push_back(left + right);
  };
  // Every pair of bytes; rank order scrambled by an odd multiplier (a bijection of 0..65535).
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const std::uint32_t p = (i * 40503u) & 0xFFFFu;
    add_merge(sym[p >> 8], sym[p & 0xFF]);
  }
  // 3-byte tokens: space + two letters, three digits, runs of three spaces / newlines.
  std::string letters;
  for (char c = 'a'; c <= 'z'; ++c) letters += c;
  for (char c = 'A'; c <= 'Z'; ++c) letters += c;
  const std::string space = sym[' '];
  for (std::size_t i = 0; i < letters.size(); ++i) {
    for (std::size_t j = 0; j < letters.size(); ++j) {
      if ((i * 7 + j * 3) % 5 == 0) add_merge(space + letters[i], std::string(1, letters[j]));  // "Ġa" + "b"
      if ((i * 3 + j * 5) % 7 == 0) add_merge(std::string(1, letters[i]), space + letters[j]);  // "a" + "Ġb" (never a word)
    }
  }
  for (char a = '0'; a <= '9'; ++a) {
    for (char b = '0'; b <= '9'; ++b) {
      for (char c = '0'; c <= '9'; ++c) {
        if ((a + b + c) % 2 == 0) add_merge(std::string{a, b}, std::string(1, c));
      }
    }
  }
  for (const unsigned char ws : {' ', '\n', '\t', '\r'}) add_merge(sym[ws] + sym[ws], sym[ws]);
  add_merge(sym['\r'] + sym['\n'], sym['\r'] + sym['\n']);
  v.types.assign(v.tokens.size(), 1);  // normal
  v.bos = static_cast<std::int32_t>(v.tokens.size());
  v.tokens.push_back("<|bos|>");
  v.types.push_back(3);  // control
  v.eos = static_cast<std::int32_t>(v.tokens.size());
  v.tokens.push_back("<|eos|>");
  v.types.push_back(3);
  return v;
}

// Writes the vocabulary with tokenizer.ggml.pre = `pre` (a vocab-only GGUF the reference loads).
inline void write(const std::filesystem::path& path, std::string_view pre) {
  const auto v = build();
  chorus::gguf::writer w;
  w.set("general.architecture", std::string_view("llama"));
  w.set("general.name", std::string_view("synthetic-bpe"));
  w.set("tokenizer.ggml.model", std::string_view("gpt2"));
  w.set("tokenizer.ggml.pre", pre);
  w.set_array("tokenizer.ggml.tokens", v.tokens);
  w.set_array("tokenizer.ggml.token_type", v.types);
  w.set_array("tokenizer.ggml.merges", v.merges);
  w.set("tokenizer.ggml.bos_token_id", static_cast<std::uint32_t>(v.bos));
  w.set("tokenizer.ggml.eos_token_id", static_cast<std::uint32_t>(v.eos));
  w.set("tokenizer.ggml.add_bos_token", false);
  w.set("tokenizer.ggml.add_eos_token", false);
  w.write(path);
}

}  // namespace chorus_test::synthetic_bpe
