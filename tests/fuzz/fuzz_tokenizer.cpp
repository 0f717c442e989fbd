// libFuzzer target: encode arbitrary bytes with a SentencePiece and a byte-level BPE
// vocabulary (with and without special-token parsing), decode the ids, and stream them.
#include <chorus/chorus.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {
// Structurally valid UTF-8 (lead bytes followed by the right number of continuation bytes).
bool valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = chorus::tokenizer::utf8::sequence_length(static_cast<std::uint8_t>(text[i]));
    if (n == 1 && static_cast<std::uint8_t>(text[i]) >= 0x80) return false;
    if (i + n > text.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      if ((static_cast<std::uint8_t>(text[i + k]) >> 6) != 0x2) return false;
    }
    i += n;
  }
  return true;
}

const chorus::tokenizer::tokenizer& vocabulary(const char* name) {
  static const auto spm = chorus::tokenizer::tokenizer::from_gguf(
      chorus::gguf::file::open(std::string(CHORUS_SHARED_DIR) + "/golden/tokenizer/ggml-vocab-llama-spm.gguf"));
  static const auto bpe = chorus::tokenizer::tokenizer::from_gguf(
      chorus::gguf::file::open(std::string(CHORUS_SHARED_DIR) + "/golden/tokenizer/ggml-vocab-gpt-2.gguf"));
  return std::string_view(name) == "spm" ? spm : bpe;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const char* name : {"spm", "bpe"}) {
    const auto& tk = vocabulary(name);
    const auto ids = tk.encode(text, size % 2 == 0, size % 3 == 0);
    const std::string decoded = tk.decode(ids);
    chorus::tokenizer::stream_decoder stream(tk);
    std::string streamed;
    for (const auto id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    // SentencePiece with byte fallback is lossless for valid UTF-8 without a literal U+2581
    // (its escape for spaces); an invalid lead byte swallows the next character, as in the
    // reference implementation.
    const bool spm_lossless = std::string_view(name) == "spm" && size % 2 != 0 && size % 3 != 0 &&
                              text.find("\xE2\x96\x81") == std::string_view::npos && valid_utf8(text);
    if (spm_lossless && decoded != text) __builtin_trap();
    // Streaming gives the same bytes as decoding, except that decode() of GPT-2 style
    // vocabularies also removes the spaces before punctuation (which needs the whole text).
    if (tk.vocabulary().clean_spaces() ? streamed.size() < decoded.size() : streamed != decoded) __builtin_trap();
  }
  return 0;
}
