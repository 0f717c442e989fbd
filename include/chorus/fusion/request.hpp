// chorus — what a fusion member is asked (a chat request, as OpenAI-compatible servers take
// it) and what it answers (a candidate: text, finish reason, usage, log-probabilities).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chorus/config.hpp"
#include "chorus/generate/options.hpp"
#include "chorus/tokenizer/chat_template.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

using json = nlohmann::ordered_json;
using chat_message = tokenizer::chat_message;
using tool_call = tokenizer::chat_tool_call;

// Generation settings a request may set; what it leaves unset each member takes from its own
// configuration (a member's seed, temperature, ...).
struct generation_options {
  std::optional<std::int32_t> max_tokens;
  std::optional<float> temperature;
  std::optional<float> top_p;
  std::optional<std::int32_t> top_k;
  std::optional<float> min_p;
  std::optional<float> frequency_penalty;
  std::optional<float> presence_penalty;
  std::optional<std::uint64_t> seed;
  std::vector<std::string> stop;
  bool logprobs = false;          // keep each token's log-probability in the candidate
  std::int32_t top_logprobs = 0;  // and this many alternatives per token (implies logprobs)
};

// The shape the answer must take. "text" (default) or "json_schema" with its schema; members
// that cannot honour a schema say so in their candidate (the structured-output layer fills it).
struct response_format {
  std::string type = "text";
  std::string name;
  json schema;
};

// Where members stream their tokens as they are made: a function pointer and its context (no
// allocation per token). Called on the thread that generates, with the member's name and the
// sample index; keep it short and thread-safe.
struct token_stream {
  void (*call)(void* context, std::string_view member, std::size_t sample, const generate::token_event&) = nullptr;
  void* context = nullptr;
  void operator()(std::string_view member, std::size_t sample, const generate::token_event& e) const {
    if (call != nullptr) call(context, member, sample, e);
  }
  explicit operator bool() const noexcept { return call != nullptr; }
};

struct request {
  std::vector<chat_message> messages;  // system / user / assistant (with tool calls) / tool
  std::vector<json> tools;             // function specs the model may call
  std::string tool_choice = "auto";    // auto | none | required | a function's name
  generation_options generation;
  std::size_t n = 1;                   // samples per member
  std::optional<response_format> format;
  std::size_t sample = 0;              // which of the n samples one call is (set by the pool)
  token_stream stream = {};
  // The caller's cancellation (say, a client that went away): members stop as when the pool
  // cancels them (local models between tokens, remote members by closing their connection).
  std::stop_token cancel = {};

  // One user message, optionally after a system message.
  static request from_prompt(std::string prompt, std::string system = {}, std::optional<std::int32_t> max_tokens = {}) {
    request r;
    if (!system.empty()) r.messages.push_back({"system", std::move(system)});
    r.messages.push_back({"user", std::move(prompt)});
    r.generation.max_tokens = max_tokens;
    return r;
  }

  // The content of the last user message: the question judges and extractors look at.
  std::string question() const {
    for (auto m = messages.rbegin(); m != messages.rend(); ++m) {
      if (m->role == "user") return m->content;
    }
    return {};
  }
  // The conversation as plain text, for a model that has no chat format (a story or task model):
  // the contents one after another, separated by blank lines. One user message is passed as is.
  std::string plain_text() const {
    std::string out;
    for (const auto& m : messages) {
      if (m.content.empty()) continue;
      if (!out.empty()) out += "\n\n";
      out += m.content;
    }
    return out;
  }
};

enum class member_status { ok, failed, timed_out, cancelled };

constexpr std::string_view to_string(member_status s) noexcept {
  switch (s) {
    case member_status::ok: return "ok";
    case member_status::failed: return "failed";
    case member_status::timed_out: return "timed out";
    case member_status::cancelled: return "cancelled";
  }
  return "unknown";
}

// Why generation ended, in OpenAI's terms (plus cancelled and error).
enum class finish_reason { stop, length, tool_calls, cancelled, error };

constexpr std::string_view to_string(finish_reason r) noexcept {
  switch (r) {
    case finish_reason::stop: return "stop";
    case finish_reason::length: return "length";
    case finish_reason::tool_calls: return "tool_calls";
    case finish_reason::cancelled: return "cancelled";
    case finish_reason::error: return "error";
  }
  return "unknown";
}

constexpr finish_reason finish_reason_of(generate::stop_reason r) noexcept {
  switch (r) {
    case generate::stop_reason::end_of_text:
    case generate::stop_reason::stop_string: return finish_reason::stop;
    case generate::stop_reason::max_tokens:
    case generate::stop_reason::context_full: return finish_reason::length;
    case generate::stop_reason::cancelled: return finish_reason::cancelled;
    case generate::stop_reason::error: return finish_reason::error;
  }
  return finish_reason::error;
}

struct usage {
  std::size_t prompt_tokens = 0;
  std::size_t completion_tokens = 0;
};

struct token_alternative {
  std::string token;  // the token's text (bytes; may be part of a UTF-8 character)
  float logprob = 0.0f;
};
struct token_logprob {
  std::string token;
  float logprob = 0.0f;
  std::vector<token_alternative> top;  // the best alternatives, when asked for
};

// One member's answer (or why there is none).
struct candidate {
  std::string member;
  std::size_t sample = 0;                // which of the member's n samples
  member_status status = member_status::ok;
  std::string error;                     // why, when not ok
  std::string text;
  std::vector<tool_call> tool_calls;     // parsed calls (the structured-output layer fills them)
  finish_reason finish = finish_reason::stop;
  usage tokens;
  double mean_logprob = 0.0;             // mean log-probability of the generated tokens (confidence)
  std::vector<token_logprob> logprobs;   // per token, when the request asked for them
  std::string path;                      // how the member was prompted: "chat (mistral-v3)", "completion", "remote"
  double latency_ms = 0.0;               // from the request's start to the answer
  double compute_ms = 0.0;               // the member's own prompt + generation time
  double first_token_ms = 0.0;           // of compute_ms, until the first token (prompt evaluation, queueing)
  double tokens_per_second() const noexcept {
    return compute_ms > 0 ? 1000.0 * static_cast<double>(tokens.completion_tokens) / compute_ms : 0.0;
  }
};

}  // namespace chorus::inline CHORUS_ABI::fusion
