// chorus — chat templates: a conversation (system/user/assistant messages) as the prompt text
// of a model family (ChatML, Llama 2, Llama 3, Mistral [INST] variants, Phi-3, Gemma).
//
// chorus does not run Jinja. The common families are implemented directly, each reproducing
// what its published Jinja template renders; a model's `tokenizer.chat_template` is only
// *recognised* by distinctive markers (detect_chat_template), or the format is chosen by name
// (chat_template_from_name). A template that matches no family falls back to ChatML and says
// so (chat_template_choice::fell_back) rather than failing: a wrong chat format degrades the
// answers, it does not break the program, and the caller can override the choice by name.
//
// The output holds the special tokens as text ("<|im_start|>", "[INST]", "</s>"): tokenize
// it with parse_special = true. It does NOT start with the BOS token unless
// chat_options::add_bos is set: the tokenizer adds BOS itself (add_special = true, when the
// vocabulary asks for it), and a BOS in the text as well would give two. End-of-turn tokens
// inside the conversation ("</s>" after an assistant turn in the Mistral formats, "<s>" before
// each later turn of Llama 2) are part of the format and always written.
//
// Families, with the first turns of system S, user U, assistant A, user V (generation prompt on):
//   chatml            <|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n
//                     <|im_start|>assistant\nA<|im_end|>\n<|im_start|>user\nV<|im_end|>\n<|im_start|>assistant\n
//                     (Qwen2, SmolLM, Hermes, ...; no default system message is inserted)
//   qwen2_5           ChatML as Qwen2.5-Instruct's template writes it: without a system message it
//                     inserts "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a
//                     helpful assistant.<|im_end|>\n"; tools as below
//   llama2            [INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] V [/INST]
//                     (contents stripped of surrounding whitespace, as the Llama-2-chat template does)
//   llama3            <|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>...<|start_header_id|>assistant<|end_header_id|>\n\n
//                     (contents stripped, as the Llama 3 template does)
//   llama3_1          <|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n
//                     Today Date: 26 Jul 2024\n\nS<|eot_id|>... then as llama3 (Llama 3.1, 3.2, 3.3: the
//                     system header is always written; chat_options::date replaces the date, which
//                     Llama 3.2's template sets to the day's; tools as below)
//   mistral_v1        [INST] S\n\nU [/INST]A</s>[INST] V [/INST]
//                     (Mistral-7B-Instruct v0.1/v0.2 template, also the tiny-mistral test model's; that
//                     template has no system role: S is folded into the first user message)
//   mistral_v3        [INST] U[/INST] A</s>[INST] S\n\nV[/INST]
//                     (Mistral-7B-Instruct v0.3: the system message goes into the LAST user message)
//   mistral_v3_tekken [INST]U[/INST]A</s>[INST]S\n\nV[/INST]   (Mistral-Nemo; system in the last user message)
//   mistral_v7        [SYSTEM_PROMPT]S[/SYSTEM_PROMPT][INST]U[/INST]A</s>[INST]V[/INST]
//                     (Mistral-Small 2501/2503, tekken spacing; no default system message is inserted)
//   phi3              <|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\nA<|end|>\n<|user|>\nV<|end|>\n<|assistant|>\n
//   gemma             <start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n
//                     <start_of_turn>user\nV<end_of_turn>\n<start_of_turn>model\n
//                     (role "assistant" is written "model"; the system message is folded into the first
//                     user turn, as Gemma 3's template does; message contents are stripped)
// In the [INST] formats a prompt that ends with a user turn already asks for the answer, so
// add_generation_prompt changes nothing there.
//
// Roles: "system", "user", "assistant" everywhere. ChatML and Llama 3 write any other role name
// as given (e.g. "tool", "ipython"); the other families reject it (errc::invalid_argument). The
// families that fold the system message into a user turn accept it only as the first message.
//
// Tools in mistral_v3 and mistral_v3_tekken (what Mistral-7B-Instruct-v0.3's and Mistral-Nemo's
// templates render; v3 puts a space after each opening marker, tekken none):
//   chat_options::tools (function specs, OpenAI style {"type":"function","function":{...}} or the
//   bare function object) go before the last user message:
//       [AVAILABLE_TOOLS] [{"type": "function", "function": {"name": "f", ...}}][/AVAILABLE_TOOLS]
//   an assistant message with tool_calls:  [TOOL_CALLS] [{"name": "f", "arguments": {...}, "id": "abc123XYZ"}]</s>
//   a message of role "tool":              [TOOL_RESULTS] {"content": C, "call_id": "abc123XYZ"}[/TOOL_RESULTS]
// JSON is written as Python's json.dumps writes it (", " and ": "), the tool result's content as
// given. Call ids must be 9 letters or digits (the templates refuse others).
//
// Tools in qwen2_5 (Qwen2.5-Instruct's template; Hermes-style XML tags):
//   the specs go into the system message, after its text and a blank line:
//       # Tools\n\nYou may call one or more functions ... <tools>\n{spec}\n{spec}\n</tools>\n\nFor each
//       function call, return a json object ... </tool_call>
//   an assistant message with tool_calls:  <|im_start|>assistant[\ncontent]\n<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>...<|im_end|>\n
//   consecutive messages of role "tool":   <|im_start|>user\n<tool_response>\nC\n</tool_response>...<|im_end|>\n
// Call ids are not written (the format has none).
//
// Tools in llama3_1 (Llama 3.1 / 3.2 / 3.3 templates, custom tools in the first user message):
//   the system header gains "Environment: ipython\n"; the first message after the system one
//   becomes a user turn of the instructions, each spec as JSON indented by 4, and its content:
//       Given the following functions, please respond with a JSON for a function call ...{spec}\n\nU
//   an assistant message with one tool call:  {"name": "f", "parameters": {...}}<|eot_id|>
//   a message of role "tool" or "ipython":    <|start_header_id|>ipython<|end_header_id|>\n\n"C"<|eot_id|>
//   (the content as a JSON string, quoted: the template's tojson applies to any string). The
//   templates take one call per assistant message; more are refused.
//
// Tools in mistral_v7 (Mistral Small 3.x; mistral-common's tokenizer v7, tekken spacing):
//   chat_options::tools before the last user message, the list as json.dumps writes it:
//       [AVAILABLE_TOOLS][{"type": "function", "function": {...}}][/AVAILABLE_TOOLS]
//   an assistant message: its content (may be empty), then, with tool_calls,
//       [TOOL_CALLS][{"name": "f", "arguments": {...}, "id": "abc123XYZ"}], then </s>
//   a message of role "tool":  [TOOL_RESULTS]abc123XYZ[TOOL_CONTENT]C[/TOOL_RESULTS]
//   (call ids 9 letters or digits, as for v3)
//
// Specs are OpenAI style {"type":"function","function":{...}}; a bare function object is taken as
// its "function". The other families reject tools and tool_calls (errc::invalid_argument)
// rather than drop them silently.
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/core/parse_json.hpp"
#include "chorus/gguf/file.hpp"

namespace chorus::inline CHORUS_ABI::tokenizer {

// One call an assistant message makes (the Mistral v3 formats write them; see below).
struct chat_tool_call {
  std::string id;         // Mistral: exactly 9 letters or digits
  std::string name;       // the function's name
  std::string arguments;  // the arguments object as JSON text, e.g. {"city": "Paris"}
};

struct chat_message {
  std::string role;     // "system", "user", "assistant" (others: see above)
  std::string content;  // UTF-8
  // An assistant message that calls tools (its content is then not written, as the templates do).
  std::vector<chat_tool_call> tool_calls = {};
  // Role "tool": the id of the call this message answers.
  std::string tool_call_id = {};
};

enum class chat_template_kind {
  chatml,
  qwen2_5,
  llama2,
  llama3,
  llama3_1,
  mistral_v1,
  mistral_v3,
  mistral_v3_tekken,
  mistral_v7,
  phi3,
  gemma,
  unknown,  // only from detect_chat_template: nothing matched
};

inline constexpr chat_template_kind default_chat_template = chat_template_kind::chatml;

namespace detail {
struct chat_template_name {
  chat_template_kind kind;
  std::string_view name;
};
inline constexpr std::array<chat_template_name, 11> chat_template_names{{
    {chat_template_kind::chatml, "chatml"},
    {chat_template_kind::qwen2_5, "qwen2.5"},
    {chat_template_kind::llama2, "llama2"},
    {chat_template_kind::llama3, "llama3"},
    {chat_template_kind::llama3_1, "llama3.1"},
    {chat_template_kind::mistral_v1, "mistral-v1"},
    {chat_template_kind::mistral_v3, "mistral-v3"},
    {chat_template_kind::mistral_v3_tekken, "mistral-v3-tekken"},
    {chat_template_kind::mistral_v7, "mistral-v7"},
    {chat_template_kind::phi3, "phi3"},
    {chat_template_kind::gemma, "gemma"},
}};
}  // namespace detail

// The name used by chat_template_from_name ("chatml", "mistral-v7", ...); "unknown" for unknown.
constexpr std::string_view to_string(chat_template_kind kind) noexcept {
  for (const auto& entry : detail::chat_template_names) {
    if (entry.kind == kind) return entry.name;
  }
  return "unknown";
}

// The valid names, comma-separated, for messages and --help texts.
inline std::string chat_template_names() {
  std::string names;
  for (const auto& entry : detail::chat_template_names) {
    if (!names.empty()) names += ", ";
    names += entry.name;
  }
  return names;
}

// Explicit choice by name. Accepts the names above, case-insensitively, with '_' for '-', and a
// few aliases used by other tools ("qwen2", "smollm" -> chatml; "qwen-2.5", "qwen25" -> qwen2.5; "mistral" -> mistral-v1,
// "mistral-v7-tekken" -> mistral-v7, "phi-3" -> phi3, "gemma2"/"gemma3" -> gemma, "llama-2", "llama-3",
// "llama-3.1", "llama3.2", "llama-3.2", "llama3.3", "llama-3.3" -> llama3.1).
// An unknown name is errc::invalid_argument listing the valid ones.
inline chat_template_kind chat_template_from_name(std::string_view name) {
  std::string key;
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    key += c == '_' ? '-' : c;
  }
  for (const auto& entry : detail::chat_template_names) {
    if (entry.name == key) return entry.kind;
  }
  struct alias {
    std::string_view name;
    chat_template_kind kind;
  };
  static constexpr alias aliases[] = {
      {"qwen2", chat_template_kind::chatml},          {"smollm", chat_template_kind::chatml},
      {"qwen-2.5", chat_template_kind::qwen2_5},      {"qwen25", chat_template_kind::qwen2_5},
      {"llama-2", chat_template_kind::llama2},        {"llama-3", chat_template_kind::llama3},
      {"llama-3.1", chat_template_kind::llama3_1},    {"llama3.2", chat_template_kind::llama3_1},
      {"llama-3.2", chat_template_kind::llama3_1},    {"llama3.3", chat_template_kind::llama3_1},
      {"llama-3.3", chat_template_kind::llama3_1},
      {"mistral", chat_template_kind::mistral_v1},    {"mistral-v7-tekken", chat_template_kind::mistral_v7},
      {"phi-3", chat_template_kind::phi3},            {"gemma2", chat_template_kind::gemma},
      {"gemma3", chat_template_kind::gemma},
  };
  for (const auto& a : aliases) {
    if (a.name == key) return a.kind;
  }
  fail(errc::invalid_argument, "chat template: unknown name '", name, "' (valid: ", chat_template_names(), ")");
}

// Recognises a Jinja chat template by the markers that distinguish the families. Returns
// chat_template_kind::unknown when none matches (including an empty source).
inline chat_template_kind detect_chat_template(std::string_view jinja) noexcept {
  const auto has = [jinja](std::string_view marker) { return jinja.find(marker) != std::string_view::npos; };
  if (jinja.empty()) return chat_template_kind::unknown;
  if (has("<|im_start|>")) {
    const bool qwen2_5 = has("You are Qwen, created by Alibaba Cloud") && has("<tool_call>");
    return qwen2_5 ? chat_template_kind::qwen2_5 : chat_template_kind::chatml;
  }
  if (has("<|start_header_id|>")) {
    return has("Cutting Knowledge Date") ? chat_template_kind::llama3_1 : chat_template_kind::llama3;
  }
  if (has("<start_of_turn>")) return chat_template_kind::gemma;
  if (has("<|user|>") && has("<|end|>")) return chat_template_kind::phi3;
  if (has("[INST]")) {
    if (has("[SYSTEM_PROMPT]")) return chat_template_kind::mistral_v7;
    if (has("<<SYS>>")) return chat_template_kind::llama2;
    // The spacing around the markers is what tells the [INST] generations apart:
    // v1 writes "[INST] " ... " [/INST]", v3 "[INST] " ... "[/INST]", v3-tekken "[INST]" ... "[/INST]".
    if (has(" [/INST]")) return chat_template_kind::mistral_v1;
    if (has("[INST] ")) return chat_template_kind::mistral_v3;
    return chat_template_kind::mistral_v3_tekken;
  }
  return chat_template_kind::unknown;
}

// The outcome of choosing a format for a model: the family, and whether it was a fallback.
struct chat_template_choice {
  chat_template_kind kind = default_chat_template;
  bool fell_back = false;  // the template was absent or not recognised: `kind` is the default
  std::string warning;     // why it fell back (empty when it did not), for the caller to log
};

// Detects the family of a Jinja template, falling back to ChatML (with a warning) when the
// template is empty or unrecognised. Never throws for any input.
inline chat_template_choice choose_chat_template(std::string_view jinja) {
  chat_template_choice choice;
  const auto kind = detect_chat_template(jinja);
  if (kind != chat_template_kind::unknown) {
    choice.kind = kind;
    return choice;
  }
  choice.fell_back = true;
  choice.warning = jinja.empty() ? "chat template: the model has no chat template; using chatml"
                                 : "chat template: not recognised; using chatml (choose one by name to override)";
  return choice;
}

// The same for a model file: reads `tokenizer.chat_template` (absent -> fallback).
inline chat_template_choice choose_chat_template(const gguf::file& model) {
  const auto source = model.find<std::string_view>("tokenizer.chat_template");
  return choose_chat_template(source ? *source : std::string_view{});
}

struct chat_options {
  bool add_generation_prompt = true;  // end with the opening of an assistant turn
  bool add_bos = false;               // start with the family's BOS text (see the top of this file)
  std::vector<nlohmann::ordered_json> tools = {};  // function specs the model may call (mistral_v3 formats, mistral_v7, qwen2_5, llama3_1)
  std::string date = "26 Jul 2024";     // llama3_1's "Today Date" (the templates' default)
};

namespace detail {

// Bytes that are not UTF-8 become U+FFFD rather than an exception: a message's content is
// whatever the caller (or a model) wrote.
inline constexpr auto json_invalid_utf8 = nlohmann::ordered_json::error_handler_t::replace;

// `s` as a JSON string literal, as Python's json.dumps(s, ensure_ascii=False) writes it.
inline void write_json_string(std::string& out, std::string_view s) {
  out += nlohmann::ordered_json(s).dump(-1, ' ', false, json_invalid_utf8);
}

inline void write_python_json(std::string& out, const nlohmann::ordered_json& v) {
  if (v.is_array()) {
    out += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i > 0) out += ", ";
      write_python_json(out, v[i]);
    }
    out += ']';
  } else if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [key, item] : v.items()) {
      if (!first) out += ", ";
      first = false;
      write_json_string(out, key);
      out += ": ";
      write_python_json(out, item);
    }
    out += '}';
  } else {
    out += v.dump(-1, ' ', false, json_invalid_utf8);  // scalars are written alike
  }
}

}  // namespace detail

// `v` on one line with ", " and ": " between items, as Python's json.dumps(v, ensure_ascii=False)
// writes it, and so the Jinja chat templates' tojson, whose output some prompt formats embed
// (nlohmann's dump writes "," and ":"). Members in their order; numbers as nlohmann writes
// them, which is Python's repr except for magnitudes in [1e15, 1e16) (Python: 1000000000000000.0,
// nlohmann: 1e+15) and NaN or infinity (Python: NaN, nlohmann: null).
inline std::string dump_as_python(const nlohmann::ordered_json& v) {
  std::string out;
  detail::write_python_json(out, v);
  return out;
}

namespace detail {

inline std::string_view strip(std::string_view s) noexcept {
  constexpr std::string_view space = " \t\n\r\f\v";
  const auto first = s.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(space) - first + 1);
}

inline std::string_view bos_text(chat_template_kind kind) noexcept {
  switch (kind) {
    case chat_template_kind::llama3:
    case chat_template_kind::llama3_1: return "<|begin_of_text|>";
    case chat_template_kind::gemma: return "<bos>";
    case chat_template_kind::chatml:
    case chat_template_kind::qwen2_5: return "";  // ChatML models (Qwen2, SmolLM) use no BOS in their prompts
    default: return "<s>";
  }
}

[[noreturn]] inline void unsupported_role(chat_template_kind kind, const chat_message& m, std::size_t index) {
  fail(errc::invalid_argument, "chat template ", to_string(kind), ": message ", index, " has role '", m.role,
       "' (supported: system, user, assistant)");
}

inline void check_role(chat_template_kind kind, const chat_message& m, std::size_t index) {
  if (m.role != "system" && m.role != "user" && m.role != "assistant") unsupported_role(kind, m, index);
}

// Families that fold the system message into a user turn accept it only first.
inline void check_system_first(chat_template_kind kind, std::span<const chat_message> messages) {
  for (std::size_t i = 1; i < messages.size(); ++i) {
    if (messages[i].role == "system") {
      fail(errc::invalid_argument, "chat template ", to_string(kind), ": message ", i,
           " is a system message; this format takes one, as the first message");
    }
  }
}

inline void write_chatml_turn(std::string& out, std::string_view role, std::string_view content) {
  out += "<|im_start|>";
  out += role;
  out += '\n';
  out += content;
  out += "<|im_end|>\n";
}

inline void apply_chatml(std::string& out, std::span<const chat_message> messages, bool generation_prompt) {
  for (const auto& m : messages) write_chatml_turn(out, m.role, m.content);
  if (generation_prompt) out += "<|im_start|>assistant\n";
}

// A tool spec's function object: the spec's "function", or the spec itself when it is the bare
// function object.
inline const nlohmann::ordered_json& tool_function(const nlohmann::ordered_json& spec, std::size_t index) {
  const auto function = spec.is_object() ? spec.find("function") : spec.end();
  const nlohmann::ordered_json& f = function != spec.end() ? *function : spec;
  if (!f.is_object()) {
    fail(errc::invalid_argument, "chat template: tool ", index, " is not a JSON object with the function's name, description and parameters");
  }
  return f;
}

// A tool call's arguments, parsed (they must be a JSON text).
inline nlohmann::ordered_json tool_arguments(chat_template_kind kind, const chat_tool_call& call, std::size_t index) {
  try {
    return parse_json(call.arguments);
  } catch (const error& e) {
    fail(errc::invalid_argument, "chat template ", to_string(kind), ": message ", index, ", tool call '", call.name,
         "': arguments are not valid JSON (", e.what(), ")");
  }
}

// A tool spec as the templates see it: {"type": "function", "function": {...}}, wrapping a bare
// function object.
inline nlohmann::ordered_json wrapped_tool(const nlohmann::ordered_json& spec, std::size_t index) {
  const nlohmann::ordered_json& function = tool_function(spec, index);
  if (&function != &spec) return spec;
  return {{"type", "function"}, {"function", function}};
}

inline void apply_qwen2_5(std::string& out, std::span<const chat_message> messages, std::span<const nlohmann::ordered_json> tools,
                          bool generation_prompt) {
  const bool system_first = !messages.empty() && messages[0].role == "system";
  out += "<|im_start|>system\n";
  out += system_first ? std::string_view(messages[0].content)
                      : std::string_view("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  if (!tools.empty()) {
    out += "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
           "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
    for (std::size_t t = 0; t < tools.size(); ++t) {
      out += '\n';
      write_python_json(out, wrapped_tool(tools[t], t));
    }
    out += "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
           "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
           "<args-json-object>}\n</tool_call>";
  }
  out += "<|im_end|>\n";
  for (std::size_t i = system_first ? 1 : 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (m.role == "tool") {
      if (i == 0 || messages[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n";
      out += m.content;
      out += "\n</tool_response>";
      if (i + 1 == messages.size() || messages[i + 1].role != "tool") out += "<|im_end|>\n";
    } else if (!m.tool_calls.empty()) {
      out += "<|im_start|>assistant";
      if (!m.content.empty()) {
        out += '\n';
        out += m.content;
      }
      for (const auto& call : m.tool_calls) {
        out += "\n<tool_call>\n{\"name\": \"";
        out += call.name;
        out += "\", \"arguments\": ";
        write_python_json(out, tool_arguments(chat_template_kind::qwen2_5, call, i));
        out += "}\n</tool_call>";
      }
      out += "<|im_end|>\n";
    } else {
      write_chatml_turn(out, m.role, m.content);
    }
  }
  if (generation_prompt) out += "<|im_start|>assistant\n";
}

// A turn of the Llama 3 formats, its content stripped as their templates do.
inline void write_llama3_turn(std::string& out, std::string_view role, std::string_view content) {
  out += "<|start_header_id|>";
  out += role;
  out += "<|end_header_id|>\n\n";
  out += strip(content);
  out += "<|eot_id|>";
}

inline void apply_llama3_1(std::string& out, std::span<const chat_message> messages, const chat_options& options) {
  std::string_view system;
  std::size_t next = 0;
  if (!messages.empty() && messages[0].role == "system") {
    system = strip(messages[0].content);
    next = 1;
  }
  out += "<|start_header_id|>system<|end_header_id|>\n\n";
  if (!options.tools.empty()) out += "Environment: ipython\n";
  out += "Cutting Knowledge Date: December 2023\nToday Date: ";
  out += options.date;
  out += "\n\n";
  out += system;
  out += "<|eot_id|>";
  if (!options.tools.empty()) {
    if (next == messages.size()) {
      fail(errc::invalid_argument, "chat template llama3.1: tools go into the first user message, and there is none");
    }
    out += "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON for a "
           "function call with its proper arguments that best answers the given prompt.\n\nRespond in the format "
           "{\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n";
    for (std::size_t t = 0; t < options.tools.size(); ++t) {
      out += wrapped_tool(options.tools[t], t).dump(4, ' ', false, json_invalid_utf8);  // json.dumps(indent=4)
      out += "\n\n";
    }
    out += strip(messages[next].content);
    out += "<|eot_id|>";
    ++next;
  }
  for (std::size_t i = next; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (!m.tool_calls.empty()) {
      if (m.tool_calls.size() != 1) {
        fail(errc::invalid_argument, "chat template llama3.1: message ", i, " has ", m.tool_calls.size(),
             " tool calls; this format takes one per message");
      }
      const auto& call = m.tool_calls[0];
      out += "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"";
      out += call.name;
      out += "\", \"parameters\": ";
      write_python_json(out, tool_arguments(chat_template_kind::llama3_1, call, i));
      out += "}<|eot_id|>";
    } else if (m.role == "tool" || m.role == "ipython") {
      out += "<|start_header_id|>ipython<|end_header_id|>\n\n";
      write_json_string(out, m.content);
      out += "<|eot_id|>";
    } else {
      write_llama3_turn(out, m.role, m.content);
    }
  }
  if (options.add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
}

inline void apply_llama3(std::string& out, std::span<const chat_message> messages, bool generation_prompt) {
  for (const auto& m : messages) write_llama3_turn(out, m.role, m.content);
  if (generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
}

inline void apply_llama2(std::string& out, std::span<const chat_message> messages) {
  std::string_view system;
  if (!messages.empty() && messages[0].role == "system") {
    system = messages[0].content;
    messages = messages.subspan(1);
  }
  bool first_turn = true;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (m.role == "user") {
      if (!first_turn) out += "<s>";  // the first BOS is the tokenizer's (or add_bos)
      std::string content;
      if (first_turn && !system.empty()) {
        content = "<<SYS>>\n";
        content += system;
        content += "\n<</SYS>>\n\n";
      }
      content += m.content;
      out += "[INST] ";
      out += strip(content);
      out += " [/INST]";
    } else {
      out += ' ';
      out += strip(m.content);
      out += " </s>";
    }
    first_turn = false;
  }
}

// mistral_v1, mistral_v3, mistral_v3_tekken: [INST] turns, system folded into a user message.
inline void check_call_id(chat_template_kind kind, std::string_view id, std::size_t index) {
  bool ok = id.size() == 9;
  for (const char c : id) ok = ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
  if (!ok) {
    fail(errc::invalid_argument, "chat template ", to_string(kind), ": message ", index, " has tool call id '", id,
         "' (this format needs exactly 9 letters or digits)");
  }
}

inline void write_tool_calls(std::string& out, chat_template_kind kind, std::string_view gap, const chat_message& m,
                             std::size_t index) {
  out += "[TOOL_CALLS]";
  out += gap;
  out += '[';
  for (std::size_t c = 0; c < m.tool_calls.size(); ++c) {
    const auto& call = m.tool_calls[c];
    check_call_id(kind, call.id, index);
    const nlohmann::ordered_json arguments = tool_arguments(kind, call, index);
    if (c > 0) out += ", ";
    out += "{\"name\": ";
    write_json_string(out, call.name);
    out += ", \"arguments\": ";
    write_python_json(out, arguments);
    out += ", \"id\": \"";
    out += call.id;
    out += "\"}";
  }
  out += "]</s>";
}

// Each spec's function object with string values written raw and the others as JSON, as the
// templates do.
inline void write_available_tools(std::string& out, std::string_view gap, std::span<const nlohmann::ordered_json> tools) {
  out += "[AVAILABLE_TOOLS]";
  out += gap;
  out += '[';
  for (std::size_t t = 0; t < tools.size(); ++t) {
    const nlohmann::ordered_json& spec = tool_function(tools[t], t);
    if (t > 0) out += ", ";
    out += "{\"type\": \"function\", \"function\": {";
    bool first = true;
    for (const auto& [key, item] : spec.items()) {
      if (key == "return") continue;
      if (!first) out += ", ";
      first = false;
      out += '"';
      out += key;
      out += "\": ";
      if (item.is_string()) {
        out += '"';
        out += item.get_ref<const std::string&>();
        out += '"';
      } else {
        write_python_json(out, item);
      }
    }
    out += "}}";
  }
  out += "][/AVAILABLE_TOOLS]";
}

inline void apply_mistral_inst(std::string& out, chat_template_kind kind, std::span<const chat_message> messages,
                               std::span<const nlohmann::ordered_json> tools) {
  std::string_view system;
  std::size_t skipped = 0;  // messages[i] is message i + skipped of the caller's list (for errors)
  if (!messages.empty() && messages[0].role == "system") {
    system = messages[0].content;
    messages = messages.subspan(1);
    skipped = 1;
  }
  const bool v1 = kind == chat_template_kind::mistral_v1;
  const std::string_view open = kind == chat_template_kind::mistral_v3_tekken ? "[INST]" : "[INST] ";
  const std::string_view close = v1 ? " [/INST]" : "[/INST]";
  const std::string_view before_answer = kind == chat_template_kind::mistral_v3 ? " " : "";
  // v1 puts the system message in the first user message, v3 and v3-tekken in the last one.
  std::size_t system_target = messages.size();
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != "user") continue;
    system_target = i;
    if (v1) break;
  }
  // The spaces after the tool markers are v3's; tekken writes none.
  const std::string_view gap = kind == chat_template_kind::mistral_v3 ? " " : "";
  std::size_t last_user = messages.size();
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role == "user") last_user = i;
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (m.role == "user") {
      if (i == last_user && !tools.empty()) write_available_tools(out, gap, tools);
      out += open;
      if (i == system_target && !system.empty()) {
        out += system;
        out += "\n\n";
      }
      out += m.content;
      out += close;
    } else if (!m.tool_calls.empty()) {
      write_tool_calls(out, kind, gap, m, i + skipped);
    } else if (m.role == "tool") {
      check_call_id(kind, m.tool_call_id, i + skipped);
      out += "[TOOL_RESULTS]";
      out += gap;
      out += "{\"content\": ";
      out += m.content;
      out += ", \"call_id\": \"";
      out += m.tool_call_id;
      out += "\"}[/TOOL_RESULTS]";
    } else {
      out += before_answer;
      out += m.content;
      out += "</s>";
    }
  }
  // A system message with no user message to carry it still reaches the model.
  if (system_target == messages.size() && !system.empty()) {
    out += open;
    out += system;
    out += close;
  }
}

// Mistral Small 3.x (tokenizer v7, as mistral-common's InstructTokenizerV7 encodes it): system
// messages in place between [SYSTEM_PROMPT] markers; the tool specs, as json.dumps writes the
// list, before the last user message; an assistant message writes its content, then its calls
// after [TOOL_CALLS], then </s>; a tool result is [TOOL_RESULTS]call_id[TOOL_CONTENT]content[/TOOL_RESULTS].
inline void apply_mistral_v7(std::string& out, std::span<const chat_message> messages, std::span<const nlohmann::ordered_json> tools) {
  std::size_t last_user = messages.size();
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role == "user") last_user = i;
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (m.role == "system") {
      out += "[SYSTEM_PROMPT]";
      out += m.content;
      out += "[/SYSTEM_PROMPT]";
    } else if (m.role == "user") {
      if (i == last_user && !tools.empty()) {
        out += "[AVAILABLE_TOOLS][";
        for (std::size_t t = 0; t < tools.size(); ++t) {
          if (t > 0) out += ", ";
          out += dump_as_python(wrapped_tool(tools[t], t));
        }
        out += "][/AVAILABLE_TOOLS]";
      }
      out += "[INST]";
      out += m.content;
      out += "[/INST]";
    } else if (m.role == "tool") {
      check_call_id(chat_template_kind::mistral_v7, m.tool_call_id, i);
      out += "[TOOL_RESULTS]";
      out += m.tool_call_id;
      out += "[TOOL_CONTENT]";
      out += m.content;
      out += "[/TOOL_RESULTS]";
    } else {
      out += m.content;
      if (!m.tool_calls.empty()) {
        out += "[TOOL_CALLS][";
        for (std::size_t c = 0; c < m.tool_calls.size(); ++c) {
          const auto& call = m.tool_calls[c];
          check_call_id(chat_template_kind::mistral_v7, call.id, i);
          const nlohmann::ordered_json arguments = tool_arguments(chat_template_kind::mistral_v7, call, i);
          if (c > 0) out += ", ";
          out += "{\"name\": ";
          write_json_string(out, call.name);
          out += ", \"arguments\": ";
          out += dump_as_python(arguments);
          out += ", \"id\": \"";
          out += call.id;
          out += "\"}";
        }
        out += ']';
      }
      out += "</s>";
    }
  }
}

inline void apply_phi3(std::string& out, std::span<const chat_message> messages, bool generation_prompt) {
  for (const auto& m : messages) {
    out += "<|";
    out += m.role;
    out += "|>\n";
    out += m.content;
    out += "<|end|>\n";
  }
  if (generation_prompt) out += "<|assistant|>\n";
}

inline void apply_gemma(std::string& out, std::span<const chat_message> messages, bool generation_prompt) {
  std::string_view system;
  if (!messages.empty() && messages[0].role == "system") {
    system = messages[0].content;
    messages = messages.subspan(1);
  }
  bool system_pending = !system.empty();
  for (const auto& m : messages) {
    out += "<start_of_turn>";
    out += m.role == "assistant" ? std::string_view("model") : std::string_view(m.role);
    out += '\n';
    if (system_pending && m.role == "user") {
      out += system;
      out += "\n\n";
      system_pending = false;
    }
    out += strip(m.content);
    out += "<end_of_turn>\n";
  }
  if (system_pending) {  // a system message and no user turn: give it a user turn of its own
    out += "<start_of_turn>user\n";
    out += system;
    out += "<end_of_turn>\n";
  }
  if (generation_prompt) out += "<start_of_turn>model\n";
}

}  // namespace detail

// The prompt text for `messages` in the format `kind`. Throws errc::invalid_argument for
// kind == unknown, a role the format does not have, or a misplaced system message.
inline std::string apply_chat_template(chat_template_kind kind, std::span<const chat_message> messages,
                                       const chat_options& options = {}) {
  if (kind == chat_template_kind::unknown) {
    fail(errc::invalid_argument, "chat template: no format chosen (kind unknown; valid: ", chat_template_names(), ")");
  }
  const bool any_role = kind == chat_template_kind::chatml || kind == chat_template_kind::llama3 ||
                        kind == chat_template_kind::llama3_1;
  const bool takes_tools = kind == chat_template_kind::mistral_v3 || kind == chat_template_kind::mistral_v3_tekken ||
                           kind == chat_template_kind::mistral_v7 || kind == chat_template_kind::qwen2_5 ||
                           kind == chat_template_kind::llama3_1;
  if (!takes_tools && !options.tools.empty()) {
    fail(errc::invalid_argument, "chat template ", to_string(kind),
         ": tool specs given, but only mistral-v3, mistral-v3-tekken, mistral-v7, qwen2.5 and llama3.1 write them here");
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (m.role.empty()) detail::unsupported_role(kind, m, i);
    if (!m.tool_calls.empty() && (!takes_tools || m.role != "assistant")) {
      fail(errc::invalid_argument, "chat template ", to_string(kind), ": message ", i, " (role '", m.role,
           "') has tool calls; only assistant messages of mistral-v3, mistral-v3-tekken, mistral-v7, qwen2.5 and llama3.1 take them here");
    }
    if (takes_tools && m.role == "tool") continue;
    if (!any_role) detail::check_role(kind, m, i);
  }
  std::string out;
  std::size_t reserve = 64;
  for (const auto& m : messages) reserve += m.content.size() + 32;
  out.reserve(reserve);
  if (options.add_bos) out += detail::bos_text(kind);
  switch (kind) {
    case chat_template_kind::chatml: detail::apply_chatml(out, messages, options.add_generation_prompt); break;
    case chat_template_kind::qwen2_5: detail::apply_qwen2_5(out, messages, options.tools, options.add_generation_prompt); break;
    case chat_template_kind::llama3: detail::apply_llama3(out, messages, options.add_generation_prompt); break;
    case chat_template_kind::llama3_1: detail::apply_llama3_1(out, messages, options); break;
    case chat_template_kind::llama2:
      detail::check_system_first(kind, messages);
      detail::apply_llama2(out, messages);
      break;
    case chat_template_kind::mistral_v1:
    case chat_template_kind::mistral_v3:
    case chat_template_kind::mistral_v3_tekken:
      detail::check_system_first(kind, messages);
      detail::apply_mistral_inst(out, kind, messages, options.tools);
      break;
    case chat_template_kind::mistral_v7: detail::apply_mistral_v7(out, messages, options.tools); break;
    case chat_template_kind::phi3: detail::apply_phi3(out, messages, options.add_generation_prompt); break;
    case chat_template_kind::gemma:
      detail::check_system_first(kind, messages);
      detail::apply_gemma(out, messages, options.add_generation_prompt);
      break;
    case chat_template_kind::unknown: break;
  }
  return out;
}

inline std::string apply_chat_template(chat_template_kind kind, std::initializer_list<chat_message> messages,
                                       const chat_options& options = {}) {
  return apply_chat_template(kind, std::span<const chat_message>(messages.begin(), messages.size()), options);
}

}  // namespace chorus::inline CHORUS_ABI::tokenizer
