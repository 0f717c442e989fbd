// chorus — when a fusion stops waiting for its members. A policy is a small callable over the
// panel so far (the answers in, the members still running, the time spent) that says "keep
// waiting" or "stop, because ..."; the members still running are then cancelled (or time out,
// past the policy's deadline). all / first-k / deadline / minimum, and adaptive
// self-consistency, are built from it; users write their own the same way.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/fusion/extract.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

// What a policy sees: one entry per member call (member x sample), in order.
struct panel {
  std::span<const candidate> answers;  // an entry is meaningful once finished[i]
  std::span<const bool> finished;
  std::chrono::milliseconds elapsed{0};

  std::size_t running() const noexcept {
    return static_cast<std::size_t>(std::count(finished.begin(), finished.end(), false));
  }
  std::size_t answered() const noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < answers.size(); ++i) n += finished[i] && answers[i].status == member_status::ok;
    return n;
  }
  std::size_t size() const noexcept { return answers.size(); }
};

struct policy {
  // Asked after every answer (and at the deadline): nullopt to keep waiting, or why to stop.
  // Whatever it says, the wait ends when every member has finished.
  using rule = std::function<std::optional<std::string>(const panel&)>;
  rule stop_when = [](const panel&) -> std::optional<std::string> { return std::nullopt; };
  // Members still running at this time are stopped as timed out (the rule is asked then too).
  std::optional<std::chrono::milliseconds> deadline;
  std::size_t minimum = 1;  // fewer successful answers than this fail the request

  // Wait for every member.
  static policy all() { return {}; }
  // Stop once k members answered; fewer than k fail the request.
  static policy first(std::size_t k) {
    policy p;
    p.stop_when = [k](const panel& s) -> std::optional<std::string> {
      if (s.answered() >= k) return std::to_string(k) + " answered (first " + std::to_string(k) + ")";
      return std::nullopt;
    };
    p.minimum = std::max<std::size_t>(1, k);
    return p;
  }
  // Stop waiting after d; late members time out.
  static policy within(std::chrono::milliseconds d) {
    policy p;
    p.deadline = d;
    return p;
  }
  // Any rule of the user's: f(const panel&) -> std::optional<std::string>.
  static policy when(rule f, std::size_t minimum = 1) {
    policy p;
    p.stop_when = std::move(f);
    p.minimum = minimum;
    return p;
  }

  // The same policy, failing below `m` answers.
  policy at_least(std::size_t m) const {
    policy p = *this;
    p.minimum = m;
    return p;
  }
  // Stops when either says so; the earlier deadline and the larger minimum.
  friend policy operator||(policy a, policy b) {
    policy p;
    p.stop_when = [x = std::move(a.stop_when), y = std::move(b.stop_when)](const panel& s) -> std::optional<std::string> {
      if (auto why = x(s)) return why;
      return y(s);
    };
    if (a.deadline && b.deadline) p.deadline = std::min(*a.deadline, *b.deadline);
    else p.deadline = a.deadline ? a.deadline : b.deadline;
    p.minimum = std::max(a.minimum, b.minimum);
    return p;
  }
};

// Adaptive self-consistency: stop sampling as soon as the leading extracted answer can no longer
// be overtaken by the samples still running (or holds `share` of all samples, when share > 0).
// Extractor: as the vote judge takes (extract_answer).
template <class Extractor>
policy adaptive_consistency(Extractor extract, double share = 0.0) {
  return policy::when([extract, share](const panel& s) -> std::optional<std::string> {
    std::map<std::string, std::size_t> votes;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (!s.finished[i] || s.answers[i].status != member_status::ok) continue;
      if (auto a = extract_answer(extract, s.answers[i])) ++votes[*a];
    }
    if (votes.empty()) return std::nullopt;
    std::size_t first = 0, second = 0;
    std::string leader;
    for (const auto& [answer, n] : votes) {
      if (n > first) {
        second = first;
        first = n;
        leader = answer;
      } else if (n > second) {
        second = n;
      }
    }
    const std::size_t running = s.running();
    if (running == 0) return std::nullopt;  // nothing left to save
    if (first > second + running) {
      return std::to_string(first) + " samples agree on '" + leader + "'; the " + std::to_string(running) +
             " still running cannot change the majority";
    }
    if (share > 0.0 && static_cast<double>(first) >= share * static_cast<double>(s.size())) {
      return std::to_string(first) + " of " + std::to_string(s.size()) + " samples agree on '" + leader + "'";
    }
    return std::nullopt;
  });
}

// Agreement on an answer (or an action: extract::tool_calls): stops as soon as k answers agree
// ("k agree on X"), or as soon as k can no longer agree, because the answers still to come could
// not lift any answer to k ("k cannot agree"), cancelling the rest either way. With k = 0 every
// call must agree (unanimity): the first dissent stops the panel. Pair it with a vote judge of the
// same requirement (vote_judge::required_agreement / unanimous) so that no agreement decides nothing.
template <class Extractor>
policy until_agreement(Extractor extract, std::size_t k = 0) {
  return policy::when([extract, k](const panel& s) -> std::optional<std::string> {
    const std::size_t needed = k == 0 ? s.size() : k;
    std::map<std::string, std::size_t> votes;
    std::size_t best = 0;
    std::string leader;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (!s.finished[i]) continue;
      const auto a = s.answers[i].status == member_status::ok ? extract_answer(extract, s.answers[i]) : std::nullopt;
      if (!a) continue;
      if (const auto n = ++votes[*a]; n > best) {
        best = n;
        leader = *a;
      }
    }
    if (best >= needed) return std::to_string(best) + " agree on '" + leader + "'";
    // a call that failed or gave no answer cannot vote; those still running might
    if (best + s.running() < needed) {
      return std::to_string(needed) + " cannot agree (" + std::to_string(best) + " at most so far, " + std::to_string(s.running()) +
             " still running)";
    }
    return std::nullopt;
  });
}

}  // namespace chorus::inline CHORUS_ABI::fusion
