// libFuzzer target: the grammar text form and the JSON Schema compiler on arbitrary bytes (only
// chorus::error may come out), and, when the input compiles, a walk of the constraint over the
// stories260K vocabulary driven by the input's bytes: every allowed token is accepted without
// error, and the mask is never empty before the output is finished.
#include <chorus/chorus.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace {
const chorus::tokenizer::tokenizer& vocabulary() {
  static const auto tok = chorus::tokenizer::tokenizer::from_gguf(
      chorus::gguf::file::open(std::string(CHORUS_SHARED_DIR) + "/models/stories260K.gguf"));
  return tok;
}
const std::shared_ptr<const chorus::sample::token_index>& index() {
  static const auto idx = std::make_shared<const chorus::sample::token_index>(vocabulary());
  return idx;
}

void walk(const chorus::sample::grammar& g, std::string_view choices) {
  chorus::sample::grammar_constraint c(std::make_shared<const chorus::sample::grammar>(g), index(), vocabulary(),
                                       {.max_depth = 64, .state_capacity = 64, .state_limit = 512});
  for (std::size_t step = 0; step < 64 && !c.finished(); ++step) {
    std::span<const std::uint64_t> mask;
    try {
      mask = c.allowed();
    } catch (const chorus::error&) {
      return;  // no token of this small vocabulary spells what the grammar needs next
    }
    std::size_t allowed = 0;
    for (const auto w : mask) allowed += static_cast<std::size_t>(std::popcount(w));
    if (allowed == 0) __builtin_trap();
    std::size_t pick = step < choices.size() ? static_cast<std::uint8_t>(choices[step]) % allowed : 0;
    for (std::size_t i = 0; i < index()->size(); ++i) {
      if (chorus::sample::token_bit(mask, static_cast<chorus::sample::token_id>(i)) && pick-- == 0) {
        c.accept(static_cast<chorus::sample::token_id>(i));  // must not throw: the mask allowed it
        break;
      }
    }
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::size_t split = text.find('\0');
  const std::string_view source = text.substr(0, split);
  const std::string_view choices = split == std::string_view::npos ? std::string_view{} : text.substr(split + 1);
  try {
    walk(chorus::sample::parse_grammar(source), choices);
  } catch (const chorus::error&) {
  }
  try {
    walk(chorus::sample::compile_json_schema(source), choices);
  } catch (const chorus::error&) {
  }
  return 0;
}
