// chorus — generation: a prompt in, tokens streamed out as text (never half a UTF-8
// character), until end of text, a stop string, the token budget, a full context or a
// cancellation from another thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/core/thread_pool.hpp"
#include "chorus/generate/engine.hpp"
#include "chorus/generate/language_model.hpp"
#include "chorus/generate/options.hpp"
#include "chorus/model/model.hpp"
#include "chorus/sample/sampler.hpp"
#include "chorus/tokenizer/chat_template.hpp"
#include "chorus/tokenizer/tokenizer.hpp"

namespace chorus::inline CHORUS_ABI::generate {

struct session_config {
  std::uint32_t n_ctx = 0;      // 0: the model's training context, at most 4096
  std::size_t threads = 0;      // 0: one per physical core (ignored with a shared pool)
  thread_pool* pool = nullptr;  // share one pool between sessions on one machine
};

/// One conversation over a shared model: an engine with a single sequence. Not thread-safe; use
/// one session per thread. A new prompt that extends the previous one reuses the cached prefix
/// (an identical prompt is not evaluated again). The KV cache stores fp16 (`session`) or float
/// (`basic_session<float>`; see model.hpp).
template <class KvElement = fp16>
class basic_session {
 public:
  explicit basic_session(std::shared_ptr<const language_model> m, session_config config = {})
      : engine_(std::move(m), {.n_ctx = config.n_ctx, .n_seq = 1, .threads = config.threads, .pool = config.pool}),
        chat_format_(engine_.model().chat_format().kind) {}

  const language_model& model() const noexcept { return engine_.model(); }
  model::basic_context<KvElement>& context() noexcept { return engine_.context(); }
  basic_engine<KvElement>& engine() noexcept { return engine_; }

  /// The conversation format chat() uses: the model's (chat_format()) unless chosen here.
  tokenizer::chat_template_kind chat_format() const noexcept { return chat_format_; }
  void set_chat_format(tokenizer::chat_template_kind kind) {
    if (kind == tokenizer::chat_template_kind::unknown) fail(errc::invalid_argument, "generate: 'unknown' is not a chat format");
    chat_format_ = kind;
  }

  /// Answers the last message of a conversation as the assistant: the messages are written in
  /// the chat format (their special tokens parsed as such) and generation stops at the format's
  /// end of turn. A conversation that grows turn by turn reuses the cached prefix of the last one.
  template <class OnToken = bool (*)(const token_event&)>
  result chat(std::span<const tokenizer::chat_message> messages, const options& opts, OnToken&& on_token = nullptr,
              std::stop_token stop = {}) {
    const std::string prompt = chat_prompt(messages, opts);
    return complete(prompt, chat_options(opts), std::forward<OnToken>(on_token), std::move(stop));
  }

  /// Evaluates `prompt` into the KV cache without generating, calling on_progress(done, total)
  /// (tokens of this call's evaluation) after each step of prefill_step tokens. What it is for:
  /// a progress bar over a long prompt, or a system prompt evaluated ahead of time (while a level
  /// loads). A complete() whose prompt starts with this one then evaluates only the rest (the same
  /// prompt: nothing). Returns the number of tokens evaluated: those past the part already cached.
  static constexpr std::size_t prefill_step = 128;
  template <class OnProgress = void (*)(std::size_t, std::size_t)>
  std::size_t prefill(std::string_view prompt, const options& opts, OnProgress&& on_progress = nullptr) {
    const auto ids = model().tokens().encode(prompt, opts.add_special, opts.parse_special);
    const std::size_t common = engine_.cached_prefix(ids);
    const std::size_t total = ids.size() - common;
    // Each step is a sequence of no tokens over a longer prefix: the engine evaluates only what
    // its cache lacks, and keeps the last prefix's logits.
    std::size_t done = 0;
    while (done < total) {
      const std::size_t end = common + std::min(done + prefill_step, total);
      options step = opts;
      step.max_tokens = 0;
      const auto h = engine_.start({std::vector<std::int32_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(end)), step});
      engine_.run(h);
      const result r = engine_.take(h);
      if (r.reason == stop_reason::error) std::rethrow_exception(r.failure);
      done = end - common;
      using callback = std::decay_t<OnProgress>;
      if constexpr (std::is_pointer_v<callback>) {
        if (on_progress != nullptr) on_progress(done, total);
      } else if constexpr (!std::is_null_pointer_v<callback>) {
        on_progress(done, total);
      }
    }
    return total;
  }
  /// The same for the prompt that chat(messages, opts) would evaluate.
  template <class OnProgress = void (*)(std::size_t, std::size_t)>
  std::size_t prefill_chat(std::span<const tokenizer::chat_message> messages, const options& opts,
                           OnProgress&& on_progress = nullptr) {
    return prefill(chat_prompt(messages, opts), chat_options(opts), std::forward<OnProgress>(on_progress));
  }

  /// Generates a continuation of `prompt`. on_token(const token_event&) -> bool is called for
  /// every generated token; returning false stops generation (reason: cancelled). Errors
  /// (a bad argument, a prompt longer than the context) are thrown as chorus::error.
  template <class OnToken = bool (*)(const token_event&)>
  result complete(std::string_view prompt, const options& opts, OnToken&& on_token = nullptr, std::stop_token stop = {}) {
    if (opts.max_tokens < 0) fail(errc::invalid_argument, "generate: max_tokens must be >= 0");
    sequence_request request{model().tokens().encode(prompt, opts.add_special, opts.parse_special), opts, {}, std::move(stop)};
    using callback = std::decay_t<OnToken>;
    if constexpr (std::is_pointer_v<callback>) {
      if (on_token != nullptr) request.on_token = token_sink::to(on_token);
    } else if constexpr (!std::is_null_pointer_v<callback>) {
      request.on_token = token_sink::to(on_token);
    }
    const auto h = engine_.start(std::move(request));
    engine_.run(h);
    result out = engine_.take(h);
    if (out.reason == stop_reason::error) std::rethrow_exception(out.failure);
    return out;
  }

 private:
  std::string chat_prompt(std::span<const tokenizer::chat_message> messages, const options& opts) const {
    if (messages.empty()) fail(errc::invalid_argument, "generate: chat without messages");
    return tokenizer::apply_chat_template(chat_format_, messages, {.add_generation_prompt = true, .tools = opts.tools});
  }
  static options chat_options(options opts) {
    opts.parse_special = true;  // the format's markers are its special tokens
    return opts;
  }

  basic_engine<KvElement> engine_;
  tokenizer::chat_template_kind chat_format_;
};

using session = basic_session<fp16>;

}  // namespace chorus::inline CHORUS_ABI::generate
