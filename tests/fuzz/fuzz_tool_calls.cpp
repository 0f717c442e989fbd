// libFuzzer target: the tool-call parser of every chat family on arbitrary text never throws,
// and keeps what it cannot read (a reply with a call marker yields calls or malformed calls);
// the canonical form of each parsed call is stable under a parse of its own text.
#include <chorus/chorus.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using kind = chorus::tokenizer::chat_template_kind;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const auto k : {kind::mistral_v3, kind::mistral_v3_tekken, kind::mistral_v7, kind::qwen2_5, kind::llama3_1, kind::chatml}) {
    const auto reply = chorus::tokenizer::parse_tool_calls(k, text);
    const bool marker = (k == kind::qwen2_5 && text.find("<tool_call>") != std::string_view::npos) ||
                        ((k == kind::mistral_v3 || k == kind::mistral_v3_tekken || k == kind::mistral_v7) &&
                         text.find("[TOOL_CALLS]") != std::string_view::npos);
    if (marker && reply.calls.empty() && reply.malformed.empty()) __builtin_trap();
    for (const auto& call : reply.calls) {
      if (call.name.empty() || call.id.empty() || !call.arguments.is_object()) __builtin_trap();
      const std::string canonical = chorus::tokenizer::canonical_call(call);
      const auto again = chorus::sample::ordered_json::parse(canonical);
      const chorus::tokenizer::tool_call copy{call.id, again["name"].get<std::string>(), again["arguments"]};
      if (chorus::tokenizer::canonical_call(copy) != canonical) __builtin_trap();
    }
  }
  return 0;
}
