// chorus — tool calls out: what a model wrote, read back into {id, name, arguments} in the
// syntax of its chat family (the same families chat_template.hpp renders calls in):
//   mistral_v3           [TOOL_CALLS] [{"name": "f", "arguments": {...}, "id": "abc123XYZ"}, ...]
//   mistral_v3_tekken,   [TOOL_CALLS][{"name": "f", "arguments": {...}, "id": "abc123XYZ"}, ...]
//   mistral_v7           (text before the marker is the message's content; the id may be absent)
//   qwen2_5 (Hermes)     <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call> (any number,
//                        text around them is content)
//   llama3_1             {"name": "f", "parameters": {...}} as the whole message ("arguments" is
//                        read too; an optional <|python_tag|> before it)
// Give the text with special tokens written out (tokenizer::decode(ids, true)): in real
// vocabularies "[TOOL_CALLS]" is a control token that plain decoding leaves out.
//
// A call that cannot be read (bad JSON, no name, arguments that are not an object, a block
// left open) is kept in parsed_reply::malformed with its raw text and the reason; nothing the
// model wrote is dropped. Calls without an id get one: 9 letters and digits derived from the
// call and its position (the Mistral formats require that shape when the call is sent back).
//
// canonical_json / canonical_call give a text form for equality: keys sorted (recursively),
// no whitespace, integral numbers as integers (1.0 == 1), other numbers in the shortest form
// that reads back to the same double, -0 as 0, strings as nlohmann/json escapes them (raw UTF-8).
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/tokenizer/chat_template.hpp"

namespace chorus::inline CHORUS_ABI::tokenizer {

struct tool_call {
  std::string id;
  std::string name;
  nlohmann::ordered_json arguments = nlohmann::ordered_json::object();
};

struct malformed_tool_call {
  std::string raw;     // exactly what the model wrote for it
  std::string reason;  // why it could not be read
};

struct parsed_reply {
  std::string content;  // the text that is not a call (trimmed)
  std::vector<tool_call> calls;
  std::vector<malformed_tool_call> malformed;

  // OpenAI's finish reasons, with one more: "tool_calls" (calls, none malformed),
  // "malformed_tool_call" (the model tried to call and some call cannot be read), "stop".
  std::string_view finish_reason() const noexcept {
    if (!malformed.empty()) return "malformed_tool_call";
    if (!calls.empty()) return "tool_calls";
    return "stop";
  }
};

namespace detail {

inline std::string_view trim(std::string_view s) noexcept {
  constexpr std::string_view space = " \t\n\r\f\v";
  const auto first = s.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(space) - first + 1);
}

// The end of the JSON value (object or array) that starts at `pos`, by bracket depth outside
// strings; npos when it never closes.
inline std::size_t json_value_end(std::string_view text, std::size_t pos) noexcept {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = pos; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') ++depth;
    else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
      if (depth < 0) return std::string_view::npos;
    }
  }
  return std::string_view::npos;
}

inline std::string make_call_id(std::string_view seed, std::size_t index) {
  std::uint64_t h = 0xCBF29CE484222325ull ^ (index * 0x9E3779B97F4A7C15ull);
  for (const char c : seed) h = (h ^ static_cast<std::uint8_t>(c)) * 0x100000001B3ull;
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id;
  for (int i = 0; i < 9; ++i) {
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    id += alphabet[h % 62];
  }
  return id;
}

// One call object: {"name": ..., "arguments"|"parameters": {...} or a JSON string of one, "id"?}.
inline bool read_call(const nlohmann::ordered_json& j, std::size_t index, std::vector<tool_call>& calls, std::string& reason) {
  if (!j.is_object()) {
    reason = "a call must be a JSON object";
    return false;
  }
  const auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    reason = "the call has no \"name\" string";
    return false;
  }
  tool_call call;
  call.name = name->get<std::string>();
  auto args = j.find("arguments");
  if (args == j.end()) args = j.find("parameters");
  if (args != j.end()) {
    if (args->is_string()) {
      // some models write the arguments as a JSON string of the object
      try {
        call.arguments = nlohmann::ordered_json::parse(args->get_ref<const std::string&>());
      } catch (const nlohmann::json::exception&) {
        reason = "the arguments string is not JSON";
        return false;
      }
    } else {
      call.arguments = *args;
    }
    if (!call.arguments.is_object()) {
      reason = "the arguments are not a JSON object";
      return false;
    }
  }
  if (const auto id = j.find("id"); id != j.end() && id->is_string() && !id->get_ref<const std::string&>().empty()) {
    call.id = id->get<std::string>();
  } else {
    call.id = make_call_id(j.dump(), index);
  }
  calls.push_back(std::move(call));
  return true;
}

inline void read_json_calls(std::string_view raw, parsed_reply& out) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(raw);
  } catch (const nlohmann::json::exception& e) {
    out.malformed.push_back({std::string(raw), std::string("not valid JSON: ") + e.what()});
    return;
  }
  std::string reason;
  if (j.is_array()) {
    if (j.empty()) out.malformed.push_back({std::string(raw), "an empty list of calls"});
    for (const auto& item : j) {
      if (!read_call(item, out.calls.size(), out.calls, reason)) out.malformed.push_back({item.dump(), reason});
    }
  } else if (!read_call(j, out.calls.size(), out.calls, reason)) {
    out.malformed.push_back({std::string(raw), reason});
  }
}

inline void append_content(std::string& content, std::string_view piece) {
  piece = trim(piece);
  if (piece.empty()) return;
  if (!content.empty()) content += '\n';
  content += piece;
}

inline parsed_reply parse_mistral(std::string_view text) {
  parsed_reply out;
  constexpr std::string_view marker = "[TOOL_CALLS]";
  std::size_t pos = 0;
  for (;;) {
    const std::size_t at = text.find(marker, pos);
    if (at == std::string_view::npos) {
      append_content(out.content, text.substr(pos));
      break;
    }
    append_content(out.content, text.substr(pos, at - pos));
    std::size_t begin = at + marker.size();
    while (begin < text.size() && (text[begin] == ' ' || text[begin] == '\n')) ++begin;
    const std::size_t end = begin < text.size() && (text[begin] == '[' || text[begin] == '{') ? json_value_end(text, begin)
                                                                                            : std::string_view::npos;
    if (end == std::string_view::npos) {
      // unreadable up to the next marker (or the end)
      const std::size_t next = text.find(marker, begin);
      const auto raw = text.substr(begin, next == std::string_view::npos ? std::string_view::npos : next - begin);
      out.malformed.push_back({std::string(raw), begin >= text.size() ? "nothing after [TOOL_CALLS]"
                                                                      : "the calls after [TOOL_CALLS] are not a complete JSON list"});
      if (next == std::string_view::npos) break;
      pos = next;
      continue;
    }
    read_json_calls(text.substr(begin, end - begin), out);
    pos = end;
    // the end-of-turn text that may follow
    if (text.substr(pos).starts_with("</s>")) pos += 4;
  }
  // A model that leaves out the marker but answers with the list of calls alone.
  if (out.calls.empty() && out.malformed.empty()) {
    const std::string_view t = trim(text);
    if (t.starts_with("[{\"name\"") && json_value_end(t, 0) == t.size()) {
      parsed_reply bare;
      read_json_calls(t, bare);
      if (bare.malformed.empty()) return bare;
    }
  }
  return out;
}

inline parsed_reply parse_hermes(std::string_view text) {
  parsed_reply out;
  constexpr std::string_view open = "<tool_call>", close = "</tool_call>";
  std::size_t pos = 0;
  for (;;) {
    const std::size_t at = text.find(open, pos);
    if (at == std::string_view::npos) {
      append_content(out.content, text.substr(pos));
      break;
    }
    append_content(out.content, text.substr(pos, at - pos));
    const std::size_t begin = at + open.size();
    const std::size_t end = text.find(close, begin);
    const std::string_view body = trim(text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin));
    if (end == std::string_view::npos) {
      // a block left open: read it if it is complete JSON, else report it
      parsed_reply inner;
      read_json_calls(body, inner);
      if (inner.malformed.empty() && !inner.calls.empty()) {
        for (auto& c : inner.calls) out.calls.push_back(std::move(c));
      } else {
        out.malformed.push_back({std::string(text.substr(at)), "<tool_call> is not closed by </tool_call>"});
      }
      break;
    }
    read_json_calls(body, out);
    pos = end + close.size();
  }
  return out;
}

inline parsed_reply parse_llama3_1(std::string_view text) {
  parsed_reply out;
  std::string_view t = trim(text);
  if (t.starts_with("<|python_tag|>")) t = trim(t.substr(14));
  if (!t.starts_with("{")) {
    out.content = std::string(trim(text));
    return out;
  }
  const std::size_t end = json_value_end(t, 0);
  nlohmann::ordered_json j;
  bool parsed = false;
  if (end != std::string_view::npos) {
    try {
      j = nlohmann::ordered_json::parse(t.substr(0, end));
      parsed = true;
    } catch (const nlohmann::json::exception&) {
    }
  }
  if (!parsed) {
    // an object that does not close or parse: a call only if it looks like one
    if (t.find("\"name\"") != std::string_view::npos) {
      out.malformed.push_back({std::string(t), end == std::string_view::npos ? "the call's JSON object is not closed" : "the call is not valid JSON"});
    } else {
      out.content = std::string(trim(text));
    }
    return out;
  }
  if (!j.is_object() || !j.contains("name")) {  // JSON, but not a call: the answer itself
    out.content = std::string(trim(text));
    return out;
  }
  std::string reason;
  if (!read_call(j, 0, out.calls, reason)) out.malformed.push_back({std::string(t.substr(0, end)), reason});
  append_content(out.content, t.substr(end));
  return out;
}

inline void write_canonical(std::string& out, const nlohmann::ordered_json& v) {
  switch (v.type()) {
    case nlohmann::ordered_json::value_t::object: {
      std::vector<const std::string*> keys;
      keys.reserve(v.size());
      for (const auto& [key, item] : v.items()) keys.push_back(&key);
      std::sort(keys.begin(), keys.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
      out += '{';
      for (std::size_t i = 0; i < keys.size(); ++i) {
        if (i > 0) out += ',';
        out += nlohmann::ordered_json(*keys[i]).dump();
        out += ':';
        write_canonical(out, v.at(*keys[i]));
      }
      out += '}';
      return;
    }
    case nlohmann::ordered_json::value_t::array:
      out += '[';
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (i > 0) out += ',';
        write_canonical(out, v[i]);
      }
      out += ']';
      return;
    case nlohmann::ordered_json::value_t::number_float: {
      const double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9007199254740992.0) {
        out += std::to_string(static_cast<std::int64_t>(d));  // 1.0 and 1 are the same number; -0 is 0
        return;
      }
      char buffer[40];
      const auto r = std::to_chars(buffer, buffer + sizeof buffer, d);
      out.append(buffer, r.ptr);
      return;
    }
    default: out += v.dump(); return;
  }
}

}  // namespace detail

// The calls in a reply of the family `kind`. Families without tool calls give the text as
// content.
inline parsed_reply parse_tool_calls(chat_template_kind kind, std::string_view text) {
  switch (kind) {
    case chat_template_kind::mistral_v3:
    case chat_template_kind::mistral_v3_tekken:
    case chat_template_kind::mistral_v7: return detail::parse_mistral(text);
    case chat_template_kind::qwen2_5: return detail::parse_hermes(text);
    case chat_template_kind::llama3_1: return detail::parse_llama3_1(text);
    default: {
      parsed_reply out;
      out.content = std::string(detail::trim(text));
      return out;
    }
  }
}

// A JSON value's canonical text (see the top of this file).
inline std::string canonical_json(const nlohmann::ordered_json& value) {
  std::string out;
  detail::write_canonical(out, value);
  return out;
}

// A call's canonical text, {"arguments":...,"name":"..."}: two calls agree when these are equal
// (the id is left out: it names the call, not the action).
inline std::string canonical_call(const tool_call& call) {
  std::string out = "{\"arguments\":";
  detail::write_canonical(out, call.arguments);
  out += ",\"name\":";
  out += nlohmann::ordered_json(call.name).dump();
  out += '}';
  return out;
}

inline bool same_call(const tool_call& a, const tool_call& b) { return canonical_call(a) == canonical_call(b); }

// The calls as chat_template.hpp takes them back (arguments as compact JSON text), for the
// assistant message of a conversation that goes on.
inline std::vector<chat_tool_call> to_chat_tool_calls(const std::vector<tool_call>& calls) {
  std::vector<chat_tool_call> out;
  out.reserve(calls.size());
  for (const auto& c : calls) out.push_back({c.id, c.name, c.arguments.dump()});
  return out;
}

}  // namespace chorus::inline CHORUS_ABI::tokenizer
