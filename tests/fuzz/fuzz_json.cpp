// libFuzzer target: untrusted JSON text (a model's tool-call arguments, a request body)
// through chorus::parse_json and, where it parses, back out through the writers the chat
// templates use. A parse either succeeds or throws chorus::error; what parses writes out and
// reads back to the same value.
#include <chorus/inference.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  nlohmann::ordered_json value;
  try {
    value = chorus::parse_json(text, "fuzz input");
  } catch (const chorus::error& e) {
    if (e.kind() != chorus::errc::bad_format) std::abort();
    return 0;
  }
  const std::string python = chorus::tokenizer::dump_as_python(value);
  const std::string compact = value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::strict);
  if (chorus::parse_json(python) != value || chorus::parse_json(compact) != value) std::abort();
  return 0;
}
