// chorus — tool_choice: whether and which tool a model must call, and the grammar that makes a
// small model's call readable. With `required` or a named function the call is generated under
// a grammar of the family's call syntax (what tokenizer/tool_calls.hpp parses and
// tokenizer/chat_template.hpp renders) whose arguments follow each tool's parameters schema
// (sample/json_schema.hpp), so that parse_tool_calls always reads it back.
//
//   auto      the tools are offered in the prompt; the model answers or calls, freely; the reply
//             is parsed (malformed calls are reported, not dropped)
//   none      the tools are not offered; the reply is text
//   required  the reply is one call (up to tool_grammar_options::max_calls) of any of the tools
//   NAME      the reply is one call (or more) of the function NAME
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/sample/grammar.hpp"
#include "chorus/sample/json_schema.hpp"
#include "chorus/tokenizer/chat_template.hpp"

namespace chorus::inline CHORUS_ABI::sample {

struct tool_choice {
  enum class mode { automatic, none, required, named };
  mode kind = mode::automatic;
  std::string function;  // mode::named

  // "auto", "none", "required", or a function's name.
  static tool_choice parse(std::string_view text) {
    if (text == "auto") return {mode::automatic, {}};
    if (text == "none") return {mode::none, {}};
    if (text == "required") return {mode::required, {}};
    if (text.empty()) fail(errc::invalid_argument, "tool_choice: empty (auto, none, required or a function's name)");
    return {mode::named, std::string(text)};
  }
  bool constrained() const noexcept { return kind == mode::required || kind == mode::named; }
};

struct tool_grammar_options {
  std::uint32_t max_calls = 1;   // calls in one reply (parallel calls when > 1)
  json_schema_options schema = {};
};

// A tool spec's function object ({"type":"function","function":{...}} or the bare object).
inline const ordered_json& tool_function_of(const ordered_json& spec, std::size_t index) {
  const ordered_json& f = spec.is_object() && spec.contains("function") ? spec["function"] : spec;
  if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || f["name"].get_ref<const std::string&>().empty()) {
    fail(errc::invalid_argument, "tools: tool ", index, " has no function name (expected {\"type\": \"function\", \"function\": {\"name\": ...}})");
  }
  return f;
}

// The grammar of a reply that calls one of `tools` (all of them for `required`, the named one
// otherwise), in the call syntax of `family`.
inline grammar tool_call_grammar(tokenizer::chat_template_kind family, std::span<const ordered_json> tools, const tool_choice& choice,
                                 const tool_grammar_options& options = {}) {
  using kind = tokenizer::chat_template_kind;
  if (!choice.constrained()) fail(errc::invalid_argument, "tools: a call grammar is for tool_choice 'required' or a function's name");
  if (tools.empty()) fail(errc::invalid_argument, "tools: tool_choice '", choice.kind == tool_choice::mode::required ? "required" : choice.function, "' without tools");
  if (options.max_calls == 0) fail(errc::invalid_argument, "tools: max_calls must be at least 1");
  const bool mistral = family == kind::mistral_v3 || family == kind::mistral_v3_tekken || family == kind::mistral_v7;
  if (!mistral && family != kind::qwen2_5 && family != kind::llama3_1) {
    fail(errc::invalid_argument, "tools: the chat format ", tokenizer::to_string(family),
         " has no tool-call syntax (mistral-v3, mistral-v3-tekken, mistral-v7, qwen2.5, llama3.1 have)");
  }
  grammar_builder b;
  // the documents must outlive their compilers
  std::vector<ordered_json> parameters;
  std::vector<std::string> names;
  for (std::size_t t = 0; t < tools.size(); ++t) {
    const auto& f = tool_function_of(tools[t], t);
    const std::string name = f["name"].get<std::string>();
    if (choice.kind == tool_choice::mode::named && name != choice.function) continue;
    names.push_back(name);
    parameters.push_back(f.contains("parameters") ? f["parameters"] : ordered_json{{"type", "object"}});
  }
  if (names.empty()) {
    std::string known;
    for (std::size_t t = 0; t < tools.size(); ++t) known += (known.empty() ? "" : ", ") + tool_function_of(tools[t], t)["name"].get<std::string>();
    fail(errc::invalid_argument, "tools: tool_choice names '", choice.function, "', which is not among the tools (", known, ")");
  }
  const char* arguments_key = family == kind::llama3_1 ? "\"parameters\"" : "\"arguments\"";
  std::vector<sequence> calls;
  for (std::size_t i = 0; i < names.size(); ++i) {
    json_schema_compiler c(b, parameters[i], options.schema, names[i]);
    std::uint32_t args;
    try {
      args = c.compile();
    } catch (const error& e) {
      fail(e.kind(), "tools: function '", names[i], "' parameters: ", e.what());
    }
    // {"name": "f", "arguments": {...}} (+ an optional 9-character id in the Mistral formats)
    sequence call{b.chars(char_class::of('{'))};
    grammar_builder::append(call, b.literal("\"name\""));
    grammar_builder::append(call, c.colon());
    grammar_builder::append(call, b.literal(ordered_json(names[i]).dump()));
    grammar_builder::append(call, c.comma());
    grammar_builder::append(call, b.literal(arguments_key));
    grammar_builder::append(call, c.colon());
    call.push_back(b.ref(args));
    if (mistral) {
      char_class id_chars = char_class::between('a', 'z');
      id_chars.add('A', 'Z');
      id_chars.add('0', '9');
      sequence id = c.comma();
      grammar_builder::append(id, b.literal("\"id\""));
      grammar_builder::append(id, c.colon());
      id.push_back(b.chars(char_class::of('"')));
      id.push_back(b.chars(id_chars, 9, 9));
      id.push_back(b.chars(char_class::of('"')));
      const auto id_rule = b.add_rule("call-id");
      b.define(id_rule, {std::move(id)});
      call.push_back(b.ref(id_rule, 0, 1));
    }
    call.push_back(b.chars(char_class::of('}')));
    calls.push_back(std::move(call));
  }
  const auto call_rule = b.add_rule("call");
  b.define(call_rule, std::move(calls));

  sequence reply;
  const std::uint32_t more = options.max_calls - 1;
  if (mistral) {
    // [TOOL_CALLS] [call, call]  (v3 writes a space after the marker, tekken and v7 none)
    reply.push_back(b.special("[TOOL_CALLS]"));
    if (family == kind::mistral_v3) reply.push_back(b.chars(char_class::of(' '), 0, 1));
    reply.push_back(b.chars(char_class::of('[')));
    reply.push_back(b.ref(call_rule));
    if (more > 0) {
      const auto next = b.add_rule("next-call");
      sequence s = b.literal(", ");
      s.push_back(b.ref(call_rule));
      b.define(next, {std::move(s)});
      reply.push_back(b.ref(next, 0, more));
    }
    reply.push_back(b.chars(char_class::of(']')));
  } else if (family == kind::qwen2_5) {
    // <tool_call>\n{...}\n</tool_call>, blocks separated by a newline
    const auto block = b.add_rule("tool-call-block");
    sequence s = b.literal("<tool_call>\n");
    s.push_back(b.ref(call_rule));
    grammar_builder::append(s, b.literal("\n</tool_call>"));
    b.define(block, {std::move(s)});
    reply.push_back(b.ref(block));
    if (more > 0) {
      const auto next = b.add_rule("next-block");
      sequence n = b.literal("\n");
      n.push_back(b.ref(block));
      b.define(next, {std::move(n)});
      reply.push_back(b.ref(next, 0, more));
    }
  } else {
    // llama3.1: the one call object is the whole reply
    if (options.max_calls > 1) fail(errc::invalid_argument, "tools: llama3.1 takes one call per reply (max_calls ", options.max_calls, ")");
    reply.push_back(b.ref(call_rule));
  }
  const auto root = b.add_rule("root");
  b.define(root, {std::move(reply)});
  return b.build(root);
}

}  // namespace chorus::inline CHORUS_ABI::sample
