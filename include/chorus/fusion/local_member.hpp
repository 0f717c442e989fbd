// chorus — fusion members backed by models on this machine.
//
// A local_model is one loaded model with its batcher (generate/batcher.hpp): every member on it
// (other seeds, temperatures, system prompts, the n samples of a request, a judge) submits its
// sequence there, so the members of one model form one batched panel: the shared prompt is
// evaluated once and shared copy-on-write, and each step is one forward pass over every live
// sequence. Generation runs on the batcher's thread, never on the I/O thread; cancellation from
// the pool stops a sequence between tokens without stalling the others.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>

#include "chorus/config.hpp"
#include "chorus/core/thread_pool.hpp"
#include "chorus/fusion/concepts.hpp"
#include "chorus/fusion/request.hpp"
#include "chorus/generate/batcher.hpp"
#include "chorus/generate/language_model.hpp"
#include "chorus/sample/grammar_constraint.hpp"
#include "chorus/sample/json_schema.hpp"
#include "chorus/sample/tool_choice.hpp"
#include "chorus/tokenizer/tool_calls.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

struct local_model_options {
  std::uint32_t n_ctx = 1024;   // positions per sequence
  std::uint32_t parallel = 8;   // sequences decoded together (more wait for a free slot)
  thread_pool* pool = nullptr;  // the matrix threads; share one between the models of a machine
  std::size_t threads = 0;      // without a pool: threads of its own (0: one per physical core)
};

class local_model {
 public:
  local_model(std::shared_ptr<const generate::language_model> m, local_model_options o = {})
      : model_(m),
        batcher_(std::move(m), {.engine = {.n_ctx = o.n_ctx, .n_seq = o.parallel, .threads = o.threads, .pool = o.pool},
                                .max_queued = 1024}) {}

  const generate::language_model& model() const noexcept { return *model_; }
  const std::shared_ptr<const generate::language_model>& shared_model() const noexcept { return model_; }
  generate::batcher& batch() noexcept { return batcher_; }

  // The constraint of a grammar, compiled once per distinct key (a schema's text, a tool set
  // with its choice) for every member and request on this model: building the token index walks
  // the whole vocabulary, and a panel asks with the same schema again and again. Each sequence
  // takes its own fresh() state from it (the engine does), so sharing is safe.
  template <class MakeGrammar>
  std::shared_ptr<const sample::grammar_constraint> constraint(const std::string& key, MakeGrammar&& make) {
    std::lock_guard guard(constraints_lock_);
    if (auto it = constraints_.find(key); it != constraints_.end()) return it->second;
    if (!index_) index_ = std::make_shared<const sample::token_index>(model_->tokens());
    auto grammar = std::make_shared<const sample::grammar>(make());
    auto c = std::make_shared<const sample::grammar_constraint>(std::move(grammar), index_, model_->tokens());
    if (constraints_.size() >= 64) constraints_.clear();  // a bound for servers that see many schemas
    return constraints_.emplace(key, std::move(c)).first->second;
  }

 private:
  std::shared_ptr<const generate::language_model> model_;
  generate::batcher batcher_;
  std::mutex constraints_lock_;
  std::shared_ptr<const sample::token_index> index_;
  std::map<std::string, std::shared_ptr<const sample::grammar_constraint>> constraints_;
};

// How a member's prompt is written: through the model's chat format (instruct models), or as
// plain text (a model that names no chat template: story and task models).
enum class prompt_path { automatic, chat, completion };

struct local_member_options {
  std::string name;                 // shown in the report; default: file name + seed
  generate::options generation;     // this member's sampling (seed, temperature, ...), max tokens, stops
  std::string system_prompt;        // this member's instructions, before the request's own
  prompt_path path = prompt_path::automatic;
  // The chat format to write (and to read tool calls in); default: the one the model's template names.
  std::optional<tokenizer::chat_template_kind> chat_format;
};

namespace detail {

// A sequence awaited on an executor, while the batcher thread runs it. Everything that refers
// to the awaiting side's executor (the handler, that executor, the token sink with its timers)
// lives here and dies on an I/O thread: asio requires an executor and its I/O objects not to
// outlive their context, and the batcher thread cannot know when that context goes away (a
// strand that died last on the batcher thread, after its io_context, read freed memory).
template <class Handler>
struct awaited_sequence {
  Handler handler;
  asio::any_io_executor home;
  asio::io_context* context = nullptr;  // home's context when it is an io_context
  std::shared_ptr<void> keep;
  generate::result out;
  std::exception_ptr failure;

  // Called on the batcher thread; afterwards that thread holds nothing of the awaiting side.
  static void resume(std::shared_ptr<awaited_sequence> s) {
    if (auto* context = s->context) {
      // The hop goes through the io_context's plain executor, whose copies own nothing; the
      // strand is copied and released on the I/O thread.
      asio::post(context->get_executor(), [s = std::move(s)]() mutable {
        auto home = s->home;
        asio::dispatch(home, [s = std::move(s)]() mutable { s->finish(); });
      });
    } else {
      // Another kind of context (a thread pool): it must outlive the batcher's work, as asio asks.
      auto home = s->home;
      asio::post(home, [s = std::move(s)]() mutable { s->finish(); });
    }
  }

  void finish() {
    auto h = std::move(handler);
    auto sink = std::move(keep);
    std::move(h)(failure, std::move(out));
  }
};

// The io_context under an io_context's executor or a strand of one (what co_spawn hands a
// coroutine); null for other executors.
inline asio::io_context* io_context_of(const asio::any_io_executor& ex) {
  if (const auto* e = ex.target<asio::io_context::executor_type>()) return &e->context();
  if (const auto* e = ex.target<asio::strand<asio::io_context::executor_type>>()) return &e->get_inner_executor().context();
  return nullptr;
}

// Awaits a batcher sequence: submits it and completes on the awaiting coroutine's executor when
// the batcher thread reports the result. No cancellation handler is installed here: the caller's
// (a stop_source the sequence sees between tokens) stays in charge.
// `keep` (the sequence's token sink, say) lives until the batcher is done with the sequence.
inline auto submit_and_wait(generate::batcher& b, generate::sequence_request r, std::shared_ptr<void> keep) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, generate::result)>(
      [&b, keep = std::move(keep)](auto handler, generate::sequence_request request) mutable {
        using state = awaited_sequence<decltype(handler)>;
        auto home = asio::get_associated_executor(handler);
        auto* context = io_context_of(home);
        // std::function needs a copyable callable; the handler is move-only.
        auto s = std::make_shared<state>(state{std::move(handler), std::move(home), context, std::move(keep), {}, {}});
        try {
          b.submit(std::move(request), [s](generate::result out) mutable {
            auto mine = std::move(s);  // the batcher's copy of this callable keeps nothing
            mine->out = std::move(out);
            state::resume(std::move(mine));
          });
        } catch (...) {
          s->failure = std::current_exception();
          state::resume(std::move(s));
        }
      },
      asio::use_awaitable, std::move(r));
}

// Per-token stream of one member call: forwards the engine's events to the request's stream.
struct stream_relay {
  token_stream stream;
  std::string member;
  std::size_t sample = 0;
  bool operator()(const generate::token_event& e) const {
    stream(member, sample, e);
    return true;
  }
};

}  // namespace detail

class local_member {
 public:
  local_member(std::shared_ptr<local_model> model, local_member_options options)
      : model_(std::move(model)), options_(std::move(options)) {
    options_.generation.sampling.validate();
    if (options_.name.empty()) {
      options_.name = model_->model().path().stem().string() + "#seed" + std::to_string(options_.generation.sampling.seed);
    }
    if (options_.path == prompt_path::automatic) {
      options_.path = model_->model().has_chat_template() || options_.chat_format ? prompt_path::chat : prompt_path::completion;
    }
    if (options_.chat_format == tokenizer::chat_template_kind::unknown) {
      fail(errc::invalid_argument, "fusion: member ", options_.name, ": 'unknown' is not a chat format");
    }
  }

  tokenizer::chat_template_kind chat_format() const noexcept { return options_.chat_format.value_or(model().chat_format().kind); }

  std::string name() const { return options_.name; }
  const generate::language_model& model() const noexcept { return model_->model(); }
  prompt_path path() const noexcept { return options_.path; }

  // The member's settings with the request's on top; sample k of n takes seed + k.
  generate::options options_for(const request& r) const {
    generate::options o = options_.generation;
    const auto& g = r.generation;
    if (g.max_tokens) o.max_tokens = *g.max_tokens;
    if (g.temperature) o.sampling.temperature = *g.temperature;
    if (g.top_p) o.sampling.top_p = *g.top_p;
    if (g.top_k) o.sampling.top_k = *g.top_k;
    if (g.min_p) o.sampling.min_p = *g.min_p;
    if (g.frequency_penalty) o.sampling.frequency_penalty = *g.frequency_penalty;
    if (g.presence_penalty) o.sampling.presence_penalty = *g.presence_penalty;
    if (g.seed) o.sampling.seed = *g.seed;
    o.sampling.seed += r.sample;
    if (!g.stop.empty()) o.stop.insert(o.stop.end(), g.stop.begin(), g.stop.end());
    o.sampling.top_logprobs = std::max(o.sampling.top_logprobs, g.top_logprobs);
    o.sampling.validate();
    return o;
  }

  // The prompt as the model will read it, and how it was written ("chat (mistral-v3)", "completion").
  std::pair<std::string, std::string> render(const request& r) const {
    if (options_.path == prompt_path::chat) {
      std::vector<chat_message> messages;
      messages.reserve(r.messages.size() + 1);
      if (!options_.system_prompt.empty()) {
        if (!r.messages.empty() && r.messages.front().role == "system") {
          messages.push_back({"system", options_.system_prompt + "\n\n" + r.messages.front().content});
          messages.insert(messages.end(), r.messages.begin() + 1, r.messages.end());
        } else {
          messages.push_back({"system", options_.system_prompt});
          messages.insert(messages.end(), r.messages.begin(), r.messages.end());
        }
      } else {
        messages = r.messages;
      }
      const auto kind = chat_format();
      tokenizer::chat_options chat;
      if (r.tool_choice != "none") chat.tools = r.tools;
      return {tokenizer::apply_chat_template(kind, messages, chat), "chat (" + std::string(tokenizer::to_string(kind)) + ")"};
    }
    if (!r.tools.empty() && r.tool_choice != "none") {
      fail(errc::invalid_argument, "fusion: member ", options_.name, " has no chat format to write tools into");
    }
    std::string text = r.plain_text();
    if (!options_.system_prompt.empty()) text = options_.system_prompt + "\n\n" + text;
    return {std::move(text), "completion"};
  }

  // The grammar the reply must follow: the request's response format (a JSON schema, or any
  // JSON object), or the call syntax of the model's family when tool_choice demands a call.
  // Nothing when the reply is free.
  std::shared_ptr<const sample::grammar_constraint> constraint_for(const request& r) const {
    const auto choice = sample::tool_choice::parse(r.tool_choice);
    if (choice.constrained() && options_.path == prompt_path::chat) {
      if (r.format && r.format->type != "text") {
        fail(errc::invalid_argument, "fusion: tool_choice '", r.tool_choice, "' constrains the reply already; drop the response format");
      }
      const auto kind = chat_format();
      std::string key = "tools:" + std::string(tokenizer::to_string(kind)) + ":" + r.tool_choice + ":";
      for (const auto& t : r.tools) key += t.dump();
      return model_->constraint(key, [&] { return sample::tool_call_grammar(kind, r.tools, choice); });
    }
    if (choice.constrained()) fail(errc::invalid_argument, "fusion: member ", options_.name, " has no chat format to call tools in");
    if (!r.format || r.format->type == "text") return nullptr;
    if (r.format->type == "json_object") {
      return model_->constraint("schema:{\"type\":\"object\"}", [] { return sample::compile_json_schema(json{{"type", "object"}}); });
    }
    if (r.format->type != "json_schema") fail(errc::invalid_argument, "fusion: response format '", r.format->type, "' is not text, json_object or json_schema");
    return model_->constraint("schema:" + r.format->schema.dump(), [&] { return sample::compile_json_schema(r.format->schema); });
  }

  asio::awaitable<candidate> answer(const request& r) {
    const auto start = std::chrono::steady_clock::now();
    auto stop = std::make_shared<std::stop_source>();
    auto state = co_await asio::this_coro::cancellation_state;
    if (state.slot().is_connected()) {
      state.slot().assign([stop](asio::cancellation_type) { stop->request_stop(); });
    }
    // The caller's own cancellation reaches the sequence the same way (called on whichever
    // thread requests the stop; std::stop_source is thread-safe).
    std::optional<std::stop_callback<std::function<void()>>> caller_stop;
    if (r.cancel.stop_possible()) caller_stop.emplace(r.cancel, std::function<void()>([stop] { stop->request_stop(); }));
    candidate c;
    c.member = options_.name;
    c.sample = r.sample;
    generate::sequence_request seq;
    try {
      seq.opts = options_for(r);
      auto [text, path] = render(r);
      c.path = std::move(path);
      seq.opts.parse_special = options_.path == prompt_path::chat;
      if (auto grammar = constraint_for(r)) seq.opts.constraint = std::move(grammar);
      seq.prompt = model().tokens().encode(text, seq.opts.add_special, seq.opts.parse_special);
    } catch (const std::exception& e) {
      c.status = member_status::failed;
      c.finish = finish_reason::error;
      c.error = e.what();
      co_return c;
    }
    seq.stop = stop->get_token();
    auto relay = std::make_shared<detail::stream_relay>(detail::stream_relay{r.stream, options_.name, r.sample});
    if (r.stream) seq.on_token = generate::token_sink::to(*relay);
    // Named, not a temporary inside the co_await expression: GCC 12 destroys such temporaries twice.
    auto waiting = detail::submit_and_wait(model_->batch(), std::move(seq), relay);
    generate::result out = co_await std::move(waiting);
    c.compute_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    // the engine times from the sequence's start; add the time it waited for a slot before that
    c.first_token_ms = std::max(0.0, c.compute_ms - out.time.generation_ms - out.time.prompt_ms) + out.time.time_to_first_token_ms;
    const bool calls_expected = !r.tools.empty() && r.tool_choice != "none" && options_.path == prompt_path::chat;
    fill(c, out, r.generation.logprobs || r.generation.top_logprobs > 0);
    if (calls_expected && c.status == member_status::ok) read_tool_calls(c, out);
    co_return c;
  }

  // The calls in a reply, in the model family's syntax (with special tokens written: Mistral's
  // "[TOOL_CALLS]" is a control token). The text keeps what is not a call; a call that cannot be
  // read leaves the whole reply as the text and says why in the candidate's error.
  void read_tool_calls(candidate& c, const generate::result& out) const {
    const auto reply = tokenizer::parse_tool_calls(chat_format(), model().tokens().decode(out.ids, true));
    if (!reply.malformed.empty()) {
      c.error = "malformed tool call: " + reply.malformed.front().reason;
      return;
    }
    if (reply.calls.empty()) return;
    c.tool_calls = tokenizer::to_chat_tool_calls(reply.calls);
    c.text = reply.content;
    c.finish = finish_reason::tool_calls;
  }

  // A candidate from a generation result.
  void fill(candidate& c, generate::result& out, bool with_logprobs) const {
    c.text = std::move(out.text);
    c.finish = finish_reason_of(out.reason);
    c.tokens = {out.prompt_ids.size(), out.ids.size()};
    c.mean_logprob = out.mean_logprob();
    if (out.reason == generate::stop_reason::cancelled) {
      c.status = member_status::cancelled;
      c.error = "cancelled";
    } else if (out.reason == generate::stop_reason::error) {
      c.status = member_status::failed;
      c.error = out.error;
    }
    if (with_logprobs) {
      const auto& tok = model().tokens();
      const std::size_t k = out.ids.empty() ? 0 : out.top_logprobs.size() / out.ids.size();
      c.logprobs.reserve(out.ids.size());
      for (std::size_t i = 0; i < out.ids.size(); ++i) {
        token_logprob t{std::string(tok.token_to_piece(out.ids[i])), out.logprobs[i], {}};
        for (std::size_t j = 0; j < k; ++j) {
          const auto& alt = out.top_logprobs[i * k + j];
          t.top.push_back({std::string(tok.token_to_piece(alt.id)), alt.logprob});
        }
        c.logprobs.push_back(std::move(t));
      }
    }
  }

 private:
  std::shared_ptr<local_model> model_;
  local_member_options options_;
};

static_assert(member<local_member>);

// A member that could not be set up (a model file that does not load, an endpoint that is
// misconfigured): it answers every request with its reason, so that the panel is degraded,
// not the whole fusion failed.
struct failed_member {
  std::string label;
  std::string reason;
  std::string name() const { return label; }
  asio::awaitable<candidate> answer(const request& r) const {
    candidate c;
    c.member = label;
    c.sample = r.sample;
    c.status = member_status::failed;
    c.finish = finish_reason::error;
    c.error = reason;
    co_return c;
  }
};

static_assert(member<failed_member>);

}  // namespace chorus::inline CHORUS_ABI::fusion
