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
#include "chorus/core/json.hpp"
#include "chorus/core/thread_pool.hpp"
#include "chorus/generate/stop_strings.hpp"
#include "chorus/model/model.hpp"
#include "chorus/sample/sampler.hpp"
#include "chorus/tokenizer/chat_template.hpp"
#include "chorus/tokenizer/tokenizer.hpp"

namespace chorus::inline CHORUS_ABI::generate {

// A model together with its tokenizer: what a session runs. Immutable, shared by sessions.
class language_model {
 public:
  static std::shared_ptr<const language_model> load(const std::filesystem::path& path) {
    const auto start = std::chrono::steady_clock::now();
    auto m = std::shared_ptr<language_model>(new language_model(path));
    m->load_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return m;
  }

  const model::model& network() const noexcept { return model_; }
  const tokenizer::tokenizer& tokens() const noexcept { return tokenizer_; }
  const std::filesystem::path& path() const noexcept { return path_; }
  double load_ms() const noexcept { return load_ms_; }
  // The conversation format recognised from the file's tokenizer.chat_template (ChatML, with
  // fell_back and a warning, when it has none or an unknown one).
  const tokenizer::chat_template_choice& chat_format() const noexcept { return chat_format_; }

 private:
  explicit language_model(const std::filesystem::path& path)
      : model_(path),
        tokenizer_(tokenizer::tokenizer::from_gguf(model_.file())),
        chat_format_(tokenizer::choose_chat_template(model_.file())),
        path_(path) {}

  model::model model_;
  tokenizer::tokenizer tokenizer_;
  tokenizer::chat_template_choice chat_format_;
  std::filesystem::path path_;
  double load_ms_ = 0.0;
};

enum class stop_reason { end_of_text, stop_string, max_tokens, context_full, cancelled };

constexpr std::string_view to_string(stop_reason r) noexcept {
  switch (r) {
    case stop_reason::end_of_text: return "end_of_text";
    case stop_reason::stop_string: return "stop_string";
    case stop_reason::max_tokens: return "max_tokens";
    case stop_reason::context_full: return "context_full";
    case stop_reason::cancelled: return "cancelled";
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
  std::vector<json::value> tools = {};
};

struct token_event {
  std::int32_t id;
  std::string_view text;  // the complete text this token made visible (may be empty)
  float logprob;
};

struct result {
  std::string text;
  std::vector<std::int32_t> prompt_ids;
  std::vector<std::int32_t> ids;
  std::vector<float> logprobs;
  stop_reason reason = stop_reason::max_tokens;
  timings time;
  double mean_logprob() const noexcept {
    if (logprobs.empty()) return 0.0;
    double sum = 0.0;
    for (const float l : logprobs) sum += l;
    return sum / static_cast<double>(logprobs.size());
  }
};

struct session_config {
  std::uint32_t n_ctx = 0;      // 0: the model's training context, at most 4096
  std::size_t threads = 0;      // 0: one per physical core (ignored with a shared pool)
  thread_pool* pool = nullptr;  // share one pool between sessions on one machine
};

// One conversation state (a KV cache) over a shared model. Not thread-safe; use one session
// per thread. A new prompt that extends the previous one reuses the cached prefix. The KV
// cache stores fp16 (`session`) or float (`basic_session<float>`; see model.hpp).
template <class KvElement = fp16>
class basic_session {
 public:
  explicit basic_session(std::shared_ptr<const language_model> m, session_config config = {})
      : model_(std::move(m)),
        context_(model_->network(), {.n_ctx = config.n_ctx, .pool = config.pool, .threads = config.threads}) {
    cached_.reserve(context_.n_ctx());  // the token loop appends to it without reallocating
  }

  const language_model& model() const noexcept { return *model_; }
  model::basic_context<KvElement>& context() noexcept { return context_; }

  // The conversation format chat() uses: the model's (chat_format()) unless chosen here.
  tokenizer::chat_template_kind chat_format() const noexcept { return chat_format_; }
  void set_chat_format(tokenizer::chat_template_kind kind) {
    if (kind == tokenizer::chat_template_kind::unknown) fail(errc::invalid_argument, "generate: 'unknown' is not a chat format");
    chat_format_ = kind;
  }

  // Answers the last message of a conversation as the assistant: the messages are written in
  // the chat format (their special tokens parsed as such) and generation stops at the format's
  // end of turn. A conversation that grows turn by turn reuses the cached prefix of the last one.
  template <class OnToken = bool (*)(const token_event&)>
  result chat(std::span<const tokenizer::chat_message> messages, const options& opts, OnToken&& on_token = nullptr,
              std::stop_token stop = {}) {
    if (messages.empty()) fail(errc::invalid_argument, "generate: chat without messages");
    const std::string prompt = tokenizer::apply_chat_template(chat_format_, messages, {.add_generation_prompt = true, .tools = opts.tools});
    options chat_opts = opts;
    chat_opts.parse_special = true;
    return complete(prompt, chat_opts, std::forward<OnToken>(on_token), std::move(stop));
  }

  // Generates a continuation of `prompt`. on_token(const token_event&) -> bool is called for
  // every generated token; returning false stops generation (reason: cancelled).
  template <class OnToken = bool (*)(const token_event&)>
  result complete(std::string_view prompt, const options& opts, OnToken&& on_token = nullptr, std::stop_token stop = {}) {
    if (opts.max_tokens < 0) fail(errc::invalid_argument, "generate: max_tokens must be >= 0");
    const auto& tok = model_->tokens();
    result out;
    out.prompt_ids = tok.encode(prompt, opts.add_special, opts.parse_special);
    if (out.prompt_ids.empty()) fail(errc::invalid_argument, "generate: the prompt is empty and the model adds no BOS");
    if (out.prompt_ids.size() >= context_.n_ctx()) {
      fail(errc::out_of_range, "generate: the prompt has ", out.prompt_ids.size(), " tokens; the context holds ",
           context_.n_ctx());
    }
    sample::sampler<> sampler(opts.sampling, model_->network().params().n_vocab);

    // Reuse the cached prefix; at least the last prompt token is evaluated for its logits.
    std::size_t common = 0;
    while (common < cached_.size() && common + 1 < out.prompt_ids.size() && cached_[common] == out.prompt_ids[common]) ++common;
    context_.truncate(0, common);
    cached_.assign(out.prompt_ids.begin(), out.prompt_ids.end());

    const auto t0 = std::chrono::steady_clock::now();
    auto logits = context_.decode(std::span(out.prompt_ids).subspan(common));
    const auto t1 = std::chrono::steady_clock::now();
    out.time.prompt_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    out.time.prompt_tokens = out.prompt_ids.size() - common;

    tokenizer::stream_decoder decoder(tok);
    decoder.continue_text();  // a continuation keeps its leading space
    stop_string_filter filter(opts.stop);
    out.ids.reserve(static_cast<std::size_t>(opts.max_tokens));
    out.logprobs.reserve(static_cast<std::size_t>(opts.max_tokens));
    auto emit = [&](std::int32_t id, std::string_view text, float logprob) -> bool {
      using callback = std::decay_t<OnToken>;
      if constexpr (std::is_null_pointer_v<callback>) {
        return true;
      } else if constexpr (std::is_pointer_v<callback>) {
        return on_token == nullptr || on_token(token_event{id, text, logprob});
      } else {
        return on_token(token_event{id, text, logprob});
      }
    };
    out.reason = stop_reason::max_tokens;
    for (std::int32_t n = 0; n < opts.max_tokens; ++n) {
      if (stop.stop_requested()) {
        out.reason = stop_reason::cancelled;
        break;
      }
      const auto pick = sampler.sample(logits, out.ids);
      if (n == 0) {
        out.time.time_to_first_token_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      }
      if (tok.vocabulary().is_end_of_generation(pick.id)) {
        out.reason = stop_reason::end_of_text;
        break;
      }
      out.ids.push_back(pick.id);
      out.logprobs.push_back(pick.logprob);
      const std::string_view piece = decoder.push(pick.id);
      const std::string_view visible = filter.push(piece);
      const bool keep_going = emit(pick.id, visible, pick.logprob);
      if (filter.stopped()) {
        out.reason = stop_reason::stop_string;
        break;
      }
      if (!keep_going) {
        out.reason = stop_reason::cancelled;
        break;
      }
      if (context_.position() + 1 > context_.n_ctx()) {
        out.reason = stop_reason::context_full;
        break;
      }
      if (n + 1 == opts.max_tokens) break;  // no forward pass for a token that will not be sampled
      cached_.push_back(pick.id);
      logits = context_.decode(std::span(&out.ids.back(), 1));
    }
    if (!filter.stopped()) {
      const std::string_view rest = decoder.flush();
      std::string_view tail = filter.push(rest);
      if (filter.stopped()) out.reason = stop_reason::stop_string;
      std::string remaining(tail);
      remaining += filter.flush();
      if (!remaining.empty()) emit(-1, remaining, 0.0f);
    }
    out.text = filter.text();
    const auto t2 = std::chrono::steady_clock::now();
    out.time.generation_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
    out.time.generated_tokens = out.ids.size();
    return out;
  }

 private:
  std::shared_ptr<const language_model> model_;
  model::basic_context<KvElement> context_;
  std::vector<std::int32_t> cached_;  // the tokens whose keys/values sequence 0 holds
  tokenizer::chat_template_kind chat_format_ = model_->chat_format().kind;
};

using session = basic_session<fp16>;

}  // namespace chorus::inline CHORUS_ABI::generate
