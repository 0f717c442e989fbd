// chorus — fan-out: every member answers concurrently; the policy says when to stop waiting;
// members no longer needed are cancelled through their Asio cancellation slots. A member that
// throws, times out or is cancelled leaves a degraded panel, recorded in its candidate.
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

// Asks every member (member i gets requests[i], or requests[0] when only one is given) and
// returns one candidate per member, in member order. Run on a single-threaded executor (an
// io_context run by one thread, or a strand): the bookkeeping is not locked.
inline asio::awaitable<std::vector<candidate>> gather(std::span<const any_member> members,
                                                      std::span<const request> requests, policy rule) {
  if (members.empty()) fail(errc::invalid_argument, "fusion: no members");
  if (requests.empty() || (requests.size() != 1 && requests.size() != members.size())) {
    fail(errc::invalid_argument, "fusion: give one request, or one per member");
  }
  const auto ex = co_await asio::this_coro::executor;
  struct state {
    explicit state(asio::any_io_executor ex, std::size_t n) : wake(ex), signals(n), results(n), done(n, false) {}
    asio::steady_timer wake;
    std::vector<asio::cancellation_signal> signals;
    std::vector<candidate> results;
    std::vector<bool> done;
    std::size_t finished = 0;
    std::size_t succeeded = 0;
  };
  const std::size_t n = members.size();
  auto st = std::make_shared<state>(ex, n);
  const auto start = clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    st->results[i].member = members[i].name();
    const request& r = requests.size() == 1 ? requests[0] : requests[i];
    asio::co_spawn(ex, members[i].answer(r),
                   asio::bind_cancellation_slot(st->signals[i].slot(), [st, i, start](std::exception_ptr e, candidate c) {
                     candidate& slot = st->results[i];
                     const member_status preset = slot.status;  // timed_out / cancelled set by the pool
                     const std::string preset_error = slot.error;
                     if (e) {
                       try {
                         std::rethrow_exception(e);
                       } catch (const std::exception& ex) {
                         slot.error = ex.what();
                       } catch (...) {
                         slot.error = "unknown exception";
                       }
                       slot.status = preset == member_status::ok ? member_status::failed : preset;
                     } else {
                       const std::string name = slot.member;
                       slot = std::move(c);
                       slot.member = name;
                       if (preset != member_status::ok) {
                         slot.status = preset;
                         slot.error = preset_error;
                       }
                     }
                     slot.latency_ms = elapsed_ms(start);
                     if (slot.status == member_status::ok) ++st->succeeded;
                     st->done[i] = true;
                     ++st->finished;
                     st->wake.cancel();
                   }));
  }
  const auto deadline = rule.deadline ? start + *rule.deadline : clock::time_point::max();
  auto wait = [&](clock::time_point until) -> asio::awaitable<void> {
    boost::system::error_code ec;
    st->wake.expires_at(until);
    co_await st->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  };
  const std::size_t quorum = rule.quorum == 0 ? n : rule.quorum;
  while (st->finished < n && st->succeeded < quorum && clock::now() < deadline) co_await wait(deadline);

  // Stop whoever is still working: they see it between tokens and return what they have.
  const bool timed_out = st->finished < n && clock::now() >= deadline;
  for (std::size_t i = 0; i < n; ++i) {
    if (st->done[i]) continue;
    st->results[i].status = timed_out ? member_status::timed_out : member_status::cancelled;
    st->results[i].error = timed_out ? "the deadline passed" : "not needed: the quorum was reached";
    st->signals[i].emit(asio::cancellation_type::terminal);
  }
  while (st->finished < n) co_await wait(clock::time_point::max());

  if (st->succeeded < rule.minimum) {
    std::string why;
    for (const auto& c : st->results) {
      if (c.status != member_status::ok) why += "; " + c.member + ": " + std::string(to_string(c.status)) + " (" + c.error + ")";
    }
    fail(errc::not_enough_answers, "fusion: ", st->succeeded, " of ", n, " members answered, the policy needs ",
         rule.minimum, why);
  }
  co_return std::move(st->results);
}

}  // namespace chorus::inline CHORUS_ABI::fusion
