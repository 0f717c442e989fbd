// chorus — one fusion request: the members answer concurrently under a policy, then the judge
// decides; the report says who answered, who failed and why, how long everything took and why
// the answer won.
#pragma once

#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <span>
#include <string>

#include "chorus/config.hpp"
#include "chorus/fusion/concepts.hpp"
#include "chorus/fusion/gather.hpp"
#include "chorus/fusion/policy.hpp"
#include "chorus/fusion/report.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

// `r` is taken by value so that the request outlives the caller's expression. With GCC 12,
// pass a named request (not a temporary built in the co_await expression; see docs/fusion.md).
template <judge J>
asio::awaitable<report> fuse(std::span<const any_member> members, J& judge, request r, policy rule = {}) {
  const auto start = clock::now();
  report out;
  out.mode = judge.name();
  out.asked = r;
  out.asked.stream = {};
  gathered panel = co_await gather(members, std::span(&r, 1), std::move(rule));
  out.members = std::move(panel.candidates);
  out.stopped_because = std::move(panel.stopped_because);
  out.stopped_early = panel.stopped_early;
  if (out.stopped_early > 0) {
    // What the stopped calls would still have made, had they run as long as the finished ones.
    std::size_t finished_tokens = 0, finished = 0, stopped_tokens = 0;
    for (const auto& c : out.members) {
      if (c.status == member_status::ok) {
        finished_tokens += c.tokens.completion_tokens;
        ++finished;
      } else if (c.status == member_status::cancelled || c.status == member_status::timed_out) {
        stopped_tokens += c.tokens.completion_tokens;
      }
    }
    const std::size_t expected = finished ? finished_tokens * out.stopped_early / finished : 0;
    out.tokens_saved = expected > stopped_tokens ? expected - stopped_tokens : 0;
  }
  out.verdict = co_await judge.decide(r, out.members);
  out.wall_ms = elapsed_ms(start);
  double slowest = 0.0;
  for (const auto& c : out.members) slowest = std::max(slowest, c.latency_ms);
  out.overhead_ms = std::max(0.0, out.wall_ms - slowest - out.verdict.judge_ms);
  co_return out;
}

}  // namespace chorus::inline CHORUS_ABI::fusion
