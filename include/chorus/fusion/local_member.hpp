// chorus — a fusion member backed by a model on this machine. Its generation runs on the
// compute threads, never on the I/O thread; cancellation from the pool stops it between
// tokens. Members built from one loaded model share its weights (one copy in memory).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <stop_token>
#include <string>

#include "chorus/config.hpp"
#include "chorus/core/thread_pool.hpp"
#include "chorus/fusion/concepts.hpp"
#include "chorus/fusion/request.hpp"
#include "chorus/generate/session.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

// The threads local members compute on: `runners` threads that drive sessions (one per
// concurrently generating member) sharing one pool of `math_threads` for the matrix work,
// so that N members on a 2-core machine do not start 2N spinning workers.
class compute {
 public:
  explicit compute(std::size_t runners = 4, std::size_t math_threads = 0) : runners_(runners), math_(math_threads) {}
  ~compute() { runners_.join(); }
  asio::thread_pool::executor_type executor() noexcept { return runners_.get_executor(); }
  thread_pool& math() noexcept { return math_; }

 private:
  asio::thread_pool runners_;
  thread_pool math_;
};

// Runs fn() on `where` and completes on the awaiting coroutine's executor. It installs no
// cancellation handler, so the caller's own handler (a stop_source) stays in charge.
template <class Fn>
auto run_on(asio::any_io_executor where, Fn fn) {
  using value = decltype(fn());
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, value)>(
      [where](auto handler, Fn work) {
        auto home = asio::get_associated_executor(handler);
        asio::post(where, [handler = std::move(handler), work = std::move(work), home]() mutable {
          std::exception_ptr error;
          value result{};
          try {
            result = work();
          } catch (...) {
            error = std::current_exception();
          }
          asio::dispatch(home, [handler = std::move(handler), error, result = std::move(result)]() mutable {
            std::move(handler)(error, std::move(result));
          });
        });
      },
      asio::use_awaitable, std::move(fn));
}

struct local_member_options {
  std::string name;                 // shown in the report; default: file name + seed
  generate::options generation;     // sampling (seed, temperature, ...), stop strings
  std::string system_prompt;        // prepended to every prompt (plain-text models)
  std::uint32_t n_ctx = 1024;
};

class local_member {
 public:
  local_member(std::shared_ptr<const generate::language_model> model, local_member_options options, compute& where)
      : model_(std::move(model)), options_(std::move(options)), compute_(&where) {
    options_.generation.sampling.validate();
    if (options_.name.empty()) {
      options_.name = model_->path().stem().string() + "#seed" + std::to_string(options_.generation.sampling.seed);
    }
  }

  std::string name() const { return options_.name; }
  const generate::language_model& model() const noexcept { return *model_; }

  asio::awaitable<candidate> answer(const request& r) {
    auto stop = std::make_shared<std::stop_source>();
    auto state = co_await asio::this_coro::cancellation_state;
    if (state.slot().is_connected()) {
      state.slot().assign([stop](asio::cancellation_type) { stop->request_stop(); });
    }
    generate::options opts = options_.generation;
    if (r.max_tokens > 0) opts.max_tokens = r.max_tokens;
    std::string prompt;
    if (!options_.system_prompt.empty()) prompt = options_.system_prompt + "\n\n";
    if (!r.system.empty()) prompt += r.system + "\n\n";
    prompt += r.prompt;
    auto model = model_;
    auto& math = compute_->math();
    const std::uint32_t n_ctx = options_.n_ctx;
    const std::string name = options_.name;
    // Named, not a temporary inside the co_await expression: GCC 12 destroys such temporaries twice.
    auto work = [model, &math, n_ctx, opts, prompt, stop, name]() {
      generate::session session(model, {.n_ctx = n_ctx, .pool = &math});
      const auto result = session.complete(prompt, opts, nullptr, stop->get_token());
      candidate c;
      c.member = name;
      c.text = result.text;
      c.prompt_tokens = result.prompt_ids.size();
      c.generated_tokens = result.ids.size();
      c.mean_logprob = result.mean_logprob();
      c.compute_ms = result.time.prompt_ms + result.time.generation_ms;
      c.status = result.reason == generate::stop_reason::cancelled ? member_status::cancelled : member_status::ok;
      if (c.status == member_status::cancelled) c.error = "cancelled";
      return c;
    };
    const asio::any_io_executor where = compute_->executor();
    candidate answer = co_await run_on(where, std::move(work));
    co_return answer;
  }

 private:
  std::shared_ptr<const generate::language_model> model_;
  local_member_options options_;
  compute* compute_;
};

static_assert(member<local_member>);

}  // namespace chorus::inline CHORUS_ABI::fusion
