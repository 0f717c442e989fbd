// chorus — the OpenAI chat-completions wire format, both ways: a request body as a
// fusion::request (what `chorus serve` reads) and back (what a remote member sends), a candidate
// as a completion's choice (what the server writes) and back (what a remote member reads), and the
// chunks of a streamed completion. Pure JSON: no sockets here, so every mapping is testable alone.
//
// Reading is strict about types and names the field that is wrong ("messages[2].content must be
// a string or an array of text parts"): errors are chorus::error(errc::invalid_argument or
// errc::type_mismatch), which the server answers with 400.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion::openai {

// A chat completion request as the server receives it: the model it names, the request itself,
// how to answer (streamed or not) and an optional panel of its own (the `chorus_fusion` field).
struct chat_completion_request {
  std::string model;
  fusion::request request;
  bool stream = false;
  bool include_usage = false;       // stream_options.include_usage: a last chunk with usage
  std::optional<json> panel;        // "chorus_fusion": {"members": [...], "mode": ..., ...}
};

namespace detail {

inline std::string at(std::string_view path, std::string_view field) {
  std::string out(path);
  if (!out.empty()) out += '.';
  out += field;
  return out;
}

inline const char* type_name(const json& v) { return v.type_name(); }

inline std::string string_field(const json& v, const std::string& where) {
  if (!v.is_string()) fail(errc::type_mismatch, where, " must be a string, not ", type_name(v));
  return v.get<std::string>();
}

inline double number_field(const json& v, const std::string& where, double lo, double hi) {
  if (!v.is_number()) fail(errc::type_mismatch, where, " must be a number, not ", type_name(v));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) fail(errc::invalid_argument, where, " = ", v.dump(), " is outside [", lo, ", ", hi, "]");
  return x;
}

inline std::int64_t integer_field(const json& v, const std::string& where, std::int64_t lo, std::int64_t hi) {
  if (!v.is_number_integer()) fail(errc::type_mismatch, where, " must be an integer, not ", v.is_number() ? v.dump() : type_name(v));
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    fail(errc::invalid_argument, where, " = ", v.dump(), " is outside [", lo, ", ", hi, "]");
  }
  const auto x = v.get<std::int64_t>();
  if (x < lo || x > hi) fail(errc::invalid_argument, where, " = ", x, " is outside [", lo, ", ", hi, "]");
  return x;
}

inline bool bool_field(const json& v, const std::string& where) {
  if (!v.is_boolean()) fail(errc::type_mismatch, where, " must be true or false, not ", type_name(v));
  return v.get<bool>();
}

// Message content: a string, null (an assistant turn that only calls tools), or an array of
// {"type":"text","text":...} parts, joined.
inline std::string content_of(const json& v, const std::string& where) {
  if (v.is_null()) return {};
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_array()) fail(errc::type_mismatch, where, " must be a string or an array of text parts, not ", type_name(v));
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const json& part = v[i];
    const std::string here = where + "[" + std::to_string(i) + "]";
    if (!part.is_object()) fail(errc::type_mismatch, here, " must be an object");
    const auto type = part.find("type");
    if (type == part.end() || !type->is_string() || *type != "text") {
      fail(errc::unsupported, here, ": only text parts ({\"type\":\"text\"}) are supported");
    }
    const auto text = part.find("text");
    if (text == part.end()) fail(errc::invalid_argument, here, ".text is missing");
    out += string_field(*text, here + ".text");
  }
  return out;
}

inline tool_call tool_call_of(const json& v, const std::string& where) {
  if (!v.is_object()) fail(errc::type_mismatch, where, " must be an object");
  tool_call call;
  if (auto id = v.find("id"); id != v.end()) call.id = string_field(*id, where + ".id");
  const auto fn = v.find("function");
  if (fn == v.end() || !fn->is_object()) fail(errc::invalid_argument, where, ".function must be an object");
  const auto name = fn->find("name");
  if (name == fn->end()) fail(errc::invalid_argument, where, ".function.name is missing");
  call.name = string_field(*name, where + ".function.name");
  if (auto args = fn->find("arguments"); args != fn->end()) {
    // The API sends arguments as JSON text; accept an object too (some clients do).
    call.arguments = args->is_string() ? args->get<std::string>() : args->dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return call;
}

inline chat_message message_of(const json& v, const std::string& where) {
  if (!v.is_object()) fail(errc::type_mismatch, where, " must be an object, not ", type_name(v));
  chat_message m;
  const auto role = v.find("role");
  if (role == v.end()) fail(errc::invalid_argument, where, ".role is missing");
  m.role = string_field(*role, where + ".role");
  if (m.role == "developer") m.role = "system";  // the newer name of the system role
  if (m.role != "system" && m.role != "user" && m.role != "assistant" && m.role != "tool") {
    fail(errc::invalid_argument, where, ".role '", m.role, "' is not system, developer, user, assistant or tool");
  }
  if (auto c = v.find("content"); c != v.end()) m.content = content_of(*c, where + ".content");
  else if (m.role != "assistant") fail(errc::invalid_argument, where, ".content is missing");
  if (auto calls = v.find("tool_calls"); calls != v.end() && !calls->is_null()) {
    if (!calls->is_array()) fail(errc::type_mismatch, where, ".tool_calls must be an array");
    if (m.role != "assistant") fail(errc::invalid_argument, where, ".tool_calls: only assistant messages call tools");
    for (std::size_t i = 0; i < calls->size(); ++i) m.tool_calls.push_back(tool_call_of((*calls)[i], where + ".tool_calls[" + std::to_string(i) + "]"));
  }
  if (m.role == "tool") {
    const auto id = v.find("tool_call_id");
    if (id == v.end()) fail(errc::invalid_argument, where, ".tool_call_id is missing (a tool message answers a call)");
    m.tool_call_id = string_field(*id, where + ".tool_call_id");
  }
  return m;
}

}  // namespace detail

// Reads a chat completion request body (already parsed JSON). Unknown fields are ignored, as the
// API's servers do; known fields of the wrong type or range are errors naming the field.
inline chat_completion_request parse_chat_completion(const json& body) {
  using namespace detail;
  if (!body.is_object()) fail(errc::type_mismatch, "the request body must be a JSON object, not ", type_name(body));
  chat_completion_request out;
  auto& r = out.request;
  auto& g = r.generation;
  const auto model = body.find("model");
  if (model == body.end()) fail(errc::invalid_argument, "model is missing");
  out.model = string_field(*model, "model");
  const auto messages = body.find("messages");
  if (messages == body.end()) fail(errc::invalid_argument, "messages is missing");
  if (!messages->is_array()) fail(errc::type_mismatch, "messages must be an array, not ", type_name(*messages));
  if (messages->empty()) fail(errc::invalid_argument, "messages is empty");
  for (std::size_t i = 0; i < messages->size(); ++i) {
    r.messages.push_back(message_of((*messages)[i], "messages[" + std::to_string(i) + "]"));
  }
  auto field = [&](std::string_view name) -> const json* {
    const auto it = body.find(name);
    return it == body.end() || it->is_null() ? nullptr : &*it;
  };
  if (auto v = field("max_completion_tokens")) g.max_tokens = static_cast<std::int32_t>(integer_field(*v, "max_completion_tokens", 0, 1 << 24));
  else if (auto v2 = field("max_tokens")) g.max_tokens = static_cast<std::int32_t>(integer_field(*v2, "max_tokens", 0, 1 << 24));
  if (auto v = field("temperature")) g.temperature = static_cast<float>(number_field(*v, "temperature", 0.0, 2.0));
  if (auto v = field("top_p")) {
    g.top_p = static_cast<float>(number_field(*v, "top_p", 0.0, 1.0));
    if (*g.top_p == 0.0f) g.top_p = std::numeric_limits<float>::min();  // "only the top token": the sampler needs > 0
  }
  if (auto v = field("top_k")) g.top_k = static_cast<std::int32_t>(integer_field(*v, "top_k", 0, 1 << 20));
  if (auto v = field("min_p")) g.min_p = static_cast<float>(number_field(*v, "min_p", 0.0, 1.0));
  if (auto v = field("frequency_penalty")) g.frequency_penalty = static_cast<float>(number_field(*v, "frequency_penalty", -2.0, 2.0));
  if (auto v = field("presence_penalty")) g.presence_penalty = static_cast<float>(number_field(*v, "presence_penalty", -2.0, 2.0));
  if (auto v = field("seed")) {
    if (!v->is_number_integer()) fail(errc::type_mismatch, "seed must be an integer, not ", v->is_number() ? v->dump() : type_name(*v));
    g.seed = v->is_number_unsigned() ? v->get<std::uint64_t>() : static_cast<std::uint64_t>(v->get<std::int64_t>());
  }
  if (auto v = field("stop")) {
    if (v->is_string()) {
      g.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      if (v->size() > 16) fail(errc::invalid_argument, "stop has ", v->size(), " strings (at most 16)");
      for (std::size_t i = 0; i < v->size(); ++i) g.stop.push_back(string_field((*v)[i], "stop[" + std::to_string(i) + "]"));
    } else {
      fail(errc::type_mismatch, "stop must be a string or an array of strings, not ", type_name(*v));
    }
    for (const auto& s : g.stop) {
      if (s.empty()) fail(errc::invalid_argument, "stop: a stop string is empty");
    }
  }
  if (auto v = field("n")) r.n = static_cast<std::size_t>(integer_field(*v, "n", 1, 64));
  if (auto v = field("logprobs")) g.logprobs = bool_field(*v, "logprobs");
  if (auto v = field("top_logprobs")) {
    g.top_logprobs = static_cast<std::int32_t>(integer_field(*v, "top_logprobs", 0, 20));
    if (g.top_logprobs > 0 && !g.logprobs) fail(errc::invalid_argument, "top_logprobs needs logprobs: true");
  }
  if (auto v = field("stream")) out.stream = bool_field(*v, "stream");
  if (auto v = field("stream_options")) {
    if (!v->is_object()) fail(errc::type_mismatch, "stream_options must be an object");
    if (auto u = v->find("include_usage"); u != v->end() && !u->is_null()) out.include_usage = bool_field(*u, "stream_options.include_usage");
  }
  if (auto v = field("tools")) {
    if (!v->is_array()) fail(errc::type_mismatch, "tools must be an array, not ", type_name(*v));
    for (std::size_t i = 0; i < v->size(); ++i) {
      const json& t = (*v)[i];
      const std::string where = "tools[" + std::to_string(i) + "]";
      if (!t.is_object()) fail(errc::type_mismatch, where, " must be an object");
      const auto fn = t.find("function");
      if (fn == t.end() || !fn->is_object()) fail(errc::invalid_argument, where, ".function must be an object");
      const auto name = fn->find("name");
      if (name == fn->end()) fail(errc::invalid_argument, where, ".function.name is missing");
      string_field(*name, where + ".function.name");
      r.tools.push_back(t);
    }
  }
  if (auto v = field("tool_choice")) {
    if (v->is_string()) {
      r.tool_choice = v->get<std::string>();
      if (r.tool_choice != "auto" && r.tool_choice != "none" && r.tool_choice != "required") {
        fail(errc::invalid_argument, "tool_choice '", r.tool_choice, "' is not auto, none, required or {\"type\":\"function\",...}");
      }
    } else if (v->is_object()) {
      const auto fn = v->find("function");
      if (fn == v->end() || !fn->is_object() || !fn->contains("name")) fail(errc::invalid_argument, "tool_choice.function.name is missing");
      r.tool_choice = string_field((*fn)["name"], "tool_choice.function.name");
    } else {
      fail(errc::type_mismatch, "tool_choice must be a string or an object, not ", type_name(*v));
    }
    if (r.tool_choice != "auto" && r.tool_choice != "none" && r.tools.empty()) {
      fail(errc::invalid_argument, "tool_choice '", r.tool_choice, "' needs tools");
    }
  }
  if (auto v = field("response_format")) {
    if (!v->is_object()) fail(errc::type_mismatch, "response_format must be an object");
    const auto type = v->find("type");
    if (type == v->end()) fail(errc::invalid_argument, "response_format.type is missing");
    response_format f;
    f.type = string_field(*type, "response_format.type");
    if (f.type == "json_schema") {
      const auto spec = v->find("json_schema");
      if (spec == v->end() || !spec->is_object()) fail(errc::invalid_argument, "response_format.json_schema must be an object");
      if (auto n = spec->find("name"); n != spec->end()) f.name = string_field(*n, "response_format.json_schema.name");
      if (auto s = spec->find("schema"); s != spec->end()) f.schema = *s;
    } else if (f.type != "text" && f.type != "json_object") {
      fail(errc::invalid_argument, "response_format.type '", f.type, "' is not text, json_object or json_schema");
    }
    if (f.type != "text") r.format = std::move(f);
  }
  if (auto v = field("chorus_fusion")) {
    if (!v->is_object()) fail(errc::type_mismatch, "chorus_fusion must be an object");
    out.panel = *v;
  }
  return out;
}

// The request as a body for another OpenAI-compatible server (a remote member): one sample
// (the pool asks n times), the given model name; unset options are left to the server.
inline json to_json(const request& r, std::string_view model, bool stream) {
  json body;
  body["model"] = std::string(model);
  json messages = json::array();
  for (const auto& m : r.messages) {
    json entry{{"role", m.role}};
    if (m.role == "assistant" && !m.tool_calls.empty() && m.content.empty()) entry["content"] = nullptr;
    else entry["content"] = m.content;
    if (!m.tool_calls.empty()) {
      json calls = json::array();
      for (const auto& t : m.tool_calls) {
        calls.push_back({{"id", t.id}, {"type", "function"}, {"function", {{"name", t.name}, {"arguments", t.arguments}}}});
      }
      entry["tool_calls"] = std::move(calls);
    }
    if (m.role == "tool") entry["tool_call_id"] = m.tool_call_id;
    messages.push_back(std::move(entry));
  }
  body["messages"] = std::move(messages);
  const auto& g = r.generation;
  if (g.max_tokens) body["max_tokens"] = *g.max_tokens;
  if (g.temperature) body["temperature"] = *g.temperature;
  if (g.top_p) body["top_p"] = *g.top_p;
  if (g.top_k) body["top_k"] = *g.top_k;
  if (g.min_p) body["min_p"] = *g.min_p;
  if (g.frequency_penalty) body["frequency_penalty"] = *g.frequency_penalty;
  if (g.presence_penalty) body["presence_penalty"] = *g.presence_penalty;
  if (g.seed) body["seed"] = *g.seed + r.sample;  // sample k of n: seed + k, as local members do
  if (!g.stop.empty()) body["stop"] = g.stop;
  if (g.logprobs || g.top_logprobs > 0) {
    body["logprobs"] = true;
    if (g.top_logprobs > 0) body["top_logprobs"] = g.top_logprobs;
  }
  if (!r.tools.empty()) {
    body["tools"] = r.tools;
    if (r.tool_choice == "auto" || r.tool_choice == "none" || r.tool_choice == "required") body["tool_choice"] = r.tool_choice;
    else body["tool_choice"] = {{"type", "function"}, {"function", {{"name", r.tool_choice}}}};
  }
  if (r.format) {
    if (r.format->type == "json_schema") {
      body["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", r.format->name.empty() ? "answer" : r.format->name}, {"schema", r.format->schema}}}};
    } else {
      body["response_format"] = {{"type", r.format->type}};
    }
  }
  if (stream) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
  }
  return body;
}

// OpenAI's finish reasons; a cancelled or failed generation that still produced text reads "stop"
// to the client (the error, if any, is reported separately).
inline std::string_view finish_reason_name(const candidate& c) {
  if (!c.tool_calls.empty()) return "tool_calls";
  switch (c.finish) {
    case finish_reason::length: return "length";
    case finish_reason::tool_calls: return "tool_calls";
    default: return "stop";
  }
}

inline json token_bytes(std::string_view s) {
  json bytes = json::array();
  for (const unsigned char b : s) bytes.push_back(static_cast<int>(b));
  return bytes;
}

inline json logprob_entry(const token_logprob& t) {
  json entry{{"token", t.token}, {"logprob", t.logprob}, {"bytes", token_bytes(t.token)}};
  json top = json::array();
  for (const auto& a : t.top) top.push_back({{"token", a.token}, {"logprob", a.logprob}, {"bytes", token_bytes(a.token)}});
  entry["top_logprobs"] = std::move(top);
  return entry;
}

inline json tool_calls_json(std::span<const tool_call> calls) {
  json out = json::array();
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const auto& t = calls[i];
    out.push_back({{"id", t.id.empty() ? "call_" + std::to_string(i) : t.id},
                   {"type", "function"},
                   {"function", {{"name", t.name}, {"arguments", t.arguments}}}});
  }
  return out;
}

// One choice of a (non-streamed) completion.
inline json choice_json(const candidate& c, std::size_t index, bool with_logprobs) {
  json message{{"role", "assistant"}};
  if (c.tool_calls.empty()) {
    message["content"] = c.text;
  } else {
    message["content"] = c.text.empty() ? json(nullptr) : json(c.text);
    message["tool_calls"] = tool_calls_json(c.tool_calls);
  }
  json choice{{"index", index}, {"message", std::move(message)}};
  if (with_logprobs) {
    json content = json::array();
    for (const auto& t : c.logprobs) content.push_back(logprob_entry(t));
    choice["logprobs"] = {{"content", std::move(content)}};
  } else {
    choice["logprobs"] = nullptr;
  }
  choice["finish_reason"] = std::string(finish_reason_name(c));
  return choice;
}

inline json usage_json(std::size_t prompt_tokens, std::size_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens}, {"total_tokens", prompt_tokens + completion_tokens}};
}

// A whole completion: one choice per candidate, usage summed (the prompt counted once: the
// samples share it).
inline json completion_json(std::string_view id, std::int64_t created, std::string_view model,
                            std::span<const candidate> choices, bool with_logprobs) {
  json out{{"id", std::string(id)}, {"object", "chat.completion"}, {"created", created}, {"model", std::string(model)}};
  json list = json::array();
  std::size_t prompt = 0, completion = 0;
  for (std::size_t i = 0; i < choices.size(); ++i) {
    list.push_back(choice_json(choices[i], i, with_logprobs));
    prompt = std::max(prompt, choices[i].tokens.prompt_tokens);
    completion += choices[i].tokens.completion_tokens;
  }
  out["choices"] = std::move(list);
  out["usage"] = usage_json(prompt, completion);
  out["system_fingerprint"] = "chorus";
  return out;
}

// One chunk of a streamed completion (`choices` holds the deltas; empty for the usage chunk).
inline json chunk_json(std::string_view id, std::int64_t created, std::string_view model, json choices) {
  return {{"id", std::string(id)}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", std::string(model)},
          {"system_fingerprint", "chorus"}, {"choices", std::move(choices)}};
}

// An OpenAI-style error body: {"error": {"message", "type", "param", "code"}}.
inline json error_json(std::string_view message, std::string_view type, std::string_view code) {
  return {{"error", {{"message", std::string(message)}, {"type", std::string(type)}, {"param", nullptr}, {"code", std::string(code)}}}};
}

// --- reading answers of other servers (remote members) -----------------------------------

namespace detail {
inline void read_logprobs(const json& lp, candidate& c) {
  if (!lp.is_object()) return;
  const auto content = lp.find("content");
  if (content == lp.end() || !content->is_array()) return;
  for (const auto& t : *content) {
    if (!t.is_object()) continue;
    token_logprob entry;
    if (auto s = t.find("token"); s != t.end() && s->is_string()) entry.token = s->get<std::string>();
    if (auto l = t.find("logprob"); l != t.end() && l->is_number()) entry.logprob = l->get<float>();
    if (auto top = t.find("top_logprobs"); top != t.end() && top->is_array()) {
      for (const auto& a : *top) {
        if (!a.is_object()) continue;
        token_alternative alt;
        if (auto s = a.find("token"); s != a.end() && s->is_string()) alt.token = s->get<std::string>();
        if (auto l = a.find("logprob"); l != a.end() && l->is_number()) alt.logprob = l->get<float>();
        entry.top.push_back(std::move(alt));
      }
    }
    c.logprobs.push_back(std::move(entry));
  }
}

inline finish_reason finish_of(const json& v) {
  if (!v.is_string()) return finish_reason::stop;
  const auto s = v.get<std::string>();
  if (s == "length") return finish_reason::length;
  if (s == "tool_calls" || s == "function_call") return finish_reason::tool_calls;
  return finish_reason::stop;
}

inline void finish_candidate(candidate& c) {
  if (!c.logprobs.empty()) {
    double sum = 0.0;
    for (const auto& t : c.logprobs) sum += t.logprob;
    c.mean_logprob = sum / static_cast<double>(c.logprobs.size());
  }
}
}  // namespace detail

// The first choice of a completion body as a candidate (text, tool calls, finish reason,
// usage, log-probabilities). A body that is not a completion is errc::protocol, naming why.
inline candidate candidate_from_completion(const json& body) {
  if (!body.is_object()) fail(errc::protocol, "the answer is not a JSON object");
  if (auto e = body.find("error"); e != body.end() && !e->is_null()) {
    const std::string message = e->is_object() && e->contains("message") && (*e)["message"].is_string()
                                    ? (*e)["message"].get<std::string>() : e->dump(-1, ' ', false, json::error_handler_t::replace);
    fail(errc::protocol, "the server answered an error: ", message);
  }
  const auto choices = body.find("choices");
  if (choices == body.end() || !choices->is_array() || choices->empty() || !(*choices)[0].is_object()) {
    fail(errc::protocol, "the answer has no choices");
  }
  const json& choice = (*choices)[0];
  const auto message = choice.find("message");
  if (message == choice.end() || !message->is_object()) fail(errc::protocol, "choices[0] has no message");
  candidate c;
  c.path = "remote";
  if (auto content = message->find("content"); content != message->end()) {
    if (content->is_string()) c.text = content->get<std::string>();
    else if (!content->is_null()) fail(errc::protocol, "choices[0].message.content is ", content->type_name(), ", not a string");
  }
  if (auto calls = message->find("tool_calls"); calls != message->end() && calls->is_array()) {
    for (std::size_t i = 0; i < calls->size(); ++i) {
      try {
        c.tool_calls.push_back(detail::tool_call_of((*calls)[i], "choices[0].message.tool_calls[" + std::to_string(i) + "]"));
      } catch (const chorus::error& e) {
        fail(errc::protocol, e.what());
      }
    }
  }
  if (auto f = choice.find("finish_reason"); f != choice.end()) c.finish = detail::finish_of(*f);
  if (auto lp = choice.find("logprobs"); lp != choice.end()) detail::read_logprobs(*lp, c);
  if (auto u = body.find("usage"); u != body.end() && u->is_object()) {
    if (auto p = u->find("prompt_tokens"); p != u->end() && p->is_number_unsigned()) c.tokens.prompt_tokens = p->get<std::size_t>();
    if (auto p = u->find("completion_tokens"); p != u->end() && p->is_number_unsigned()) c.tokens.completion_tokens = p->get<std::size_t>();
  }
  detail::finish_candidate(c);
  return c;
}

// Assembles a streamed completion chunk by chunk (the `data:` payloads of the server-sent
// events), keeping choice 0. push() returns the text the chunk added (for the token stream).
class stream_assembler {
 public:
  std::string push(const json& chunk) {
    if (!chunk.is_object()) fail(errc::protocol, "a stream chunk is not a JSON object");
    if (auto e = chunk.find("error"); e != chunk.end() && !e->is_null()) {
      const std::string message = e->is_object() && e->contains("message") && (*e)["message"].is_string()
                                      ? (*e)["message"].get<std::string>() : e->dump(-1, ' ', false, json::error_handler_t::replace);
      fail(errc::protocol, "the server sent an error in the stream: ", message);
    }
    ++chunks_;
    if (auto u = chunk.find("usage"); u != chunk.end() && u->is_object()) {
      if (auto p = u->find("prompt_tokens"); p != u->end() && p->is_number_unsigned()) c_.tokens.prompt_tokens = p->get<std::size_t>();
      if (auto p = u->find("completion_tokens"); p != u->end() && p->is_number_unsigned()) {
        c_.tokens.completion_tokens = p->get<std::size_t>();
        usage_seen_ = true;
      }
    }
    std::string added;
    const auto choices = chunk.find("choices");
    if (choices == chunk.end() || !choices->is_array()) return added;
    for (const auto& choice : *choices) {
      if (!choice.is_object()) fail(errc::protocol, "a stream chunk's choice is not an object");
      if (auto i = choice.find("index"); i != choice.end() && i->is_number_integer() && i->get<std::int64_t>() != 0) continue;
      if (auto d = choice.find("delta"); d != choice.end() && d->is_object()) {
        if (auto content = d->find("content"); content != d->end() && content->is_string()) added += content->get<std::string>();
        if (auto calls = d->find("tool_calls"); calls != d->end() && calls->is_array()) {
          for (const auto& call : *calls) merge_tool_call(call);
        }
      }
      if (auto lp = choice.find("logprobs"); lp != choice.end()) detail::read_logprobs(*lp, c_);
      if (auto f = choice.find("finish_reason"); f != choice.end() && !f->is_null()) {
        c_.finish = detail::finish_of(*f);
        finished_ = true;
      }
    }
    c_.text += added;
    if (!added.empty()) ++pieces_;
    return added;
  }

  bool finished() const noexcept { return finished_; }
  std::size_t chunks() const noexcept { return chunks_; }
  std::size_t pieces() const noexcept { return pieces_; }
  candidate take() {
    c_.path = "remote (stream)";
    if (!usage_seen_ && c_.tokens.completion_tokens == 0) c_.tokens.completion_tokens = c_.logprobs.empty() ? pieces_ : c_.logprobs.size();
    detail::finish_candidate(c_);
    return std::move(c_);
  }

 private:
  // Tool calls arrive in pieces: {"index": i, "id", "function": {"name", "arguments" (a part)}}.
  void merge_tool_call(const json& call) {
    if (!call.is_object()) return;
    std::size_t index = c_.tool_calls.size();
    if (auto i = call.find("index"); i != call.end() && i->is_number_unsigned()) index = i->get<std::size_t>();
    if (index > 64) fail(errc::protocol, "a stream chunk's tool call index ", index, " is out of range");
    if (c_.tool_calls.size() <= index) c_.tool_calls.resize(index + 1);
    auto& t = c_.tool_calls[index];
    if (auto id = call.find("id"); id != call.end() && id->is_string()) t.id = id->get<std::string>();
    if (auto fn = call.find("function"); fn != call.end() && fn->is_object()) {
      if (auto n = fn->find("name"); n != fn->end() && n->is_string()) t.name += n->get<std::string>();
      if (auto a = fn->find("arguments"); a != fn->end() && a->is_string()) t.arguments += a->get<std::string>();
    }
  }

  candidate c_;
  std::size_t chunks_ = 0, pieces_ = 0;
  bool finished_ = false, usage_seen_ = false;
};

}  // namespace chorus::inline CHORUS_ABI::fusion::openai
