// chorus — what a generation is asked (options) and what it gives back (token events as they
// are made, then a result), shared by sessions, the batched engine and everything above them.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "chorus/config.hpp"
#include "chorus/sample/grammar_constraint.hpp"
#include "chorus/sample/sampler.hpp"

namespace chorus::inline CHORUS_ABI::generate {

enum class stop_reason { end_of_text, stop_string, max_tokens, context_full, cancelled, error };

constexpr std::string_view to_string(stop_reason r) noexcept {
  switch (r) {
    case stop_reason::end_of_text: return "end_of_text";
    case stop_reason::stop_string: return "stop_string";
    case stop_reason::max_tokens: return "max_tokens";
    case stop_reason::context_full: return "context_full";
    case stop_reason::cancelled: return "cancelled";
    case stop_reason::error: return "error";
  }
  return "unknown";
}

struct timings {
  double prompt_ms = 0.0;
  double generation_ms = 0.0;
  double time_to_first_token_ms = 0.0;
  std::size_t prompt_tokens = 0;     // tokens evaluated (a cached prefix is not counted)
  std::size_t generated_tokens = 0;
  double prompt_tokens_per_second() const noexcept { return prompt_ms > 0 ? 1000.0 * prompt_tokens / prompt_ms : 0.0; }
  double generation_tokens_per_second() const noexcept {
    return generation_ms > 0 ? 1000.0 * generated_tokens / generation_ms : 0.0;
  }
};

struct options {
  std::int32_t max_tokens = 128;
  sample::sampling_params sampling;
  std::vector<std::string> stop;  // stop strings (not included in the text)
  bool add_special = true;        // BOS as the vocabulary asks
  bool parse_special = false;     // special-token text in the prompt becomes the tokens
  // chat(): function specs the model may call, written into the prompt by the formats that have
  // tools (tokenizer/chat_template.hpp; the others refuse them).
  std::vector<nlohmann::ordered_json> tools = {};
  // Constrained decoding: only tokens the grammar allows are sampled (sample/grammar_constraint.hpp).
  // Each generation starts from a fresh copy of it (its own state; the grammar and the token
  // index are shared), so one set of options serves any number of sequences at once. The
  // generation ends (end_of_text) when the grammar's output is complete and nothing can follow.
  std::shared_ptr<const sample::grammar_constraint> constraint = {};
};

struct token_event {
  std::int32_t id;        // -1 for the text released at the end (held back by a stop string or UTF-8)
  std::string_view text;  // the complete text this token made visible (may be empty)
  float logprob;
  std::span<const sample::token_logprob> top = {};  // the best alternatives, when asked for
};

// Where a sequence's tokens go as they are made: a function pointer and its context, so that
// streaming costs no allocation and no std::function per token. Returning false stops the
// sequence (reason: cancelled). Called on the thread that generates.
struct token_sink {
  bool (*call)(void* context, const token_event&) = nullptr;
  void* context = nullptr;

  bool operator()(const token_event& e) const { return call == nullptr || call(context, e); }
  explicit operator bool() const noexcept { return call != nullptr; }

  // A sink that calls `f(event)` (-> bool, or void for "keep going"); `f` must outlive the sink.
  template <class F>
  static token_sink to(F& f) noexcept {
    return {[](void* c, const token_event& e) -> bool {
              if constexpr (std::is_void_v<decltype((*static_cast<F*>(c))(e))>) {
                (*static_cast<F*>(c))(e);
                return true;
              } else {
                return (*static_cast<F*>(c))(e);
              }
            },
            &f};
  }
};

struct result {
  std::string text;
  std::vector<std::int32_t> prompt_ids;
  std::vector<std::int32_t> ids;
  std::vector<float> logprobs;
  // With sampling.top_logprobs = k: k alternatives per generated token (fewer where the
  // vocabulary is smaller), ids.size() * k entries.
  std::vector<sample::token_logprob> top_logprobs;
  stop_reason reason = stop_reason::max_tokens;
  std::string error;               // why, when reason == error
  std::exception_ptr failure;      // and the exception that said so
  timings time;
  double mean_logprob() const noexcept {
    if (logprobs.empty()) return 0.0;
    double sum = 0.0;
    for (const float l : logprobs) sum += l;
    return sum / static_cast<double>(logprobs.size());
  }
};

}  // namespace chorus::inline CHORUS_ABI::generate
