// chorus — fan-out: every member answers concurrently (n times when the request asks for n
// samples); the policy says when to stop waiting; members no longer needed are cancelled
// through their Asio cancellation slots. A member that throws, times out or is cancelled leaves
// a degraded panel, recorded in its candidate; the request fails only below the policy's
// minimum, with every member's reason.
#pragma once

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/fusion/concepts.hpp"
#include "chorus/fusion/policy.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

using clock = std::chrono::steady_clock;

inline double elapsed_ms(clock::time_point since) {
  return std::chrono::duration<double, std::milli>(clock::now() - since).count();
}

struct gathered {
  std::vector<candidate> candidates;  // member-major: member 0's samples, then member 1's, ...
  std::string stopped_because;        // the policy's reason, when it stopped the wait early
  std::size_t stopped_early = 0;      // calls cancelled or timed out by the policy
};

// Asks every member (member i gets requests[i], or requests[0] when only one is given), each
// request.n times (sample 0..n-1), and returns one candidate per call. Run on a single-threaded
// executor (an io_context run by one thread, or a strand): the bookkeeping is not locked.
inline asio::awaitable<gathered> gather(std::span<const any_member> members, std::span<const request> requests,
                                        policy rule) {
  if (members.empty()) fail(errc::invalid_argument, "fusion: no members");
  if (requests.empty() || (requests.size() != 1 && requests.size() != members.size())) {
    fail(errc::invalid_argument, "fusion: give one request, or one per member");
  }
  for (const auto& r : requests) {
    if (r.n == 0) fail(errc::invalid_argument, "fusion: n (samples per member) must be at least 1");
    if (r.n > 64) fail(errc::invalid_argument, "fusion: n = ", r.n, " samples per member (at most 64)");
  }
  const auto ex = co_await asio::this_coro::executor;
  struct state {
    explicit state(asio::any_io_executor ex, std::size_t n) : wake(ex), signals(n), results(n), done(new bool[n]()) {}
    asio::steady_timer wake;
    std::vector<asio::cancellation_signal> signals;
    std::vector<candidate> results;
    std::unique_ptr<bool[]> done;  // a span<const bool> for the policy (vector<bool> has none)
    std::vector<request> asks;  // one per call; members read them until they finish
    std::size_t finished = 0;
    std::size_t succeeded = 0;
    bool changed = false;
  };
  std::size_t calls = 0;
  for (std::size_t i = 0; i < members.size(); ++i) calls += (requests.size() == 1 ? requests[0] : requests[i]).n;
  auto st = std::make_shared<state>(ex, calls);
  st->asks.reserve(calls);
  for (std::size_t i = 0; i < members.size(); ++i) {
    const request& r = requests.size() == 1 ? requests[0] : requests[i];
    for (std::size_t k = 0; k < r.n; ++k) {
      request& ask = st->asks.emplace_back(r);
      ask.n = 1;
      ask.sample = k;
      candidate& c = st->results[st->asks.size() - 1];
      c.member = members[i].name();
      c.sample = k;
    }
  }
  const auto start = clock::now();
  std::size_t call = 0;
  for (std::size_t i = 0; i < members.size(); ++i) {
    const std::size_t n = (requests.size() == 1 ? requests[0] : requests[i]).n;
    for (std::size_t k = 0; k < n; ++k, ++call) {
      auto handler = [st, call, start](std::exception_ptr e, candidate c) {
        candidate& slot = st->results[call];
        const member_status preset = slot.status;  // timed_out / cancelled set by the pool
        const std::string preset_error = slot.error;
        const std::string name = slot.member;
        const std::size_t sample = slot.sample;
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            slot.error = ex.what();
          } catch (...) {
            slot.error = "unknown exception";
          }
          slot.status = preset == member_status::ok ? member_status::failed : preset;
          slot.finish = finish_reason::error;
        } else {
          slot = std::move(c);
          slot.member = name;
          slot.sample = sample;
          if (preset != member_status::ok) {
            slot.status = preset;
            slot.error = preset_error;
          }
        }
        slot.latency_ms = elapsed_ms(start);
        if (slot.status == member_status::ok) ++st->succeeded;
        st->done[call] = true;
        ++st->finished;
        st->changed = true;
        st->wake.cancel();
      };
      asio::co_spawn(ex, members[i].answer(st->asks[call]), asio::bind_cancellation_slot(st->signals[call].slot(), std::move(handler)));
    }
  }

  const auto deadline = rule.deadline ? start + *rule.deadline : clock::time_point::max();
  auto wait = [&](clock::time_point until) -> asio::awaitable<void> {
    boost::system::error_code ec;
    st->wake.expires_at(until);
    co_await st->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  };
  auto ask_rule = [&]() -> std::optional<std::string> {
    const panel view{st->results, std::span<const bool>(st->done.get(), calls),
                     std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start)};
    return rule.stop_when(view);
  };
  gathered out;
  std::optional<std::string> why;
  // Answers arrive while this coroutine waits (their handlers run on this executor), so the rule
  // is asked each time the wait ends with something new.
  while (st->finished < calls && clock::now() < deadline) {
    if (st->changed) {
      st->changed = false;
      if ((why = ask_rule())) break;
    }
    co_await wait(deadline);
  }
  const bool timed_out = !why && st->finished < calls && clock::now() >= deadline;
  if (timed_out) why = ask_rule();  // a rule may still have an opinion at the deadline
  const bool late = timed_out && !why;

  // Stop whoever is still working: they see it between tokens and return what they have.
  for (std::size_t c = 0; c < calls; ++c) {
    if (st->done[c]) continue;
    st->results[c].status = late ? member_status::timed_out : member_status::cancelled;
    st->results[c].error = late ? "the deadline passed" : "not needed: " + *why;
    st->signals[c].emit(asio::cancellation_type::terminal);
    ++out.stopped_early;
  }
  if (late) out.stopped_because = "the deadline passed";
  else if (why && out.stopped_early > 0) out.stopped_because = *why;
  while (st->finished < calls) co_await wait(clock::time_point::max());

  if (st->succeeded < rule.minimum) {
    std::string reasons;
    for (const auto& c : st->results) {
      if (c.status != member_status::ok) {
        reasons += "; " + c.member + (c.sample > 0 ? "/" + std::to_string(c.sample) : "") + ": " +
                   std::string(to_string(c.status)) + " (" + c.error + ")";
      }
    }
    fail(errc::not_enough_answers, "fusion: ", st->succeeded, " of ", calls, " answers, the policy needs ", rule.minimum,
         reasons);
  }
  out.candidates = std::move(st->results);
  co_return out;
}

}  // namespace chorus::inline CHORUS_ABI::fusion
