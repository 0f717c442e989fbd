// chorus — a fusion as data: its members, the judge model (for the modes that need one), the
// mode, the samples per member and the policy. One run() for every caller that holds a fusion by
// name (`chorus serve`'s fusion/NAME, a request's own panel) instead of one switch per caller.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/fusion/concepts.hpp"
#include "chorus/fusion/fuse.hpp"
#include "chorus/fusion/judges/best_of.hpp"
#include "chorus/fusion/judges/confidence.hpp"
#include "chorus/fusion/judges/debate.hpp"
#include "chorus/fusion/judges/merge.hpp"
#include "chorus/fusion/judges/vote.hpp"
#include "chorus/fusion/policy.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

enum class fusion_mode { best_of, merge, debate, vote, confidence };

inline fusion_mode fusion_mode_from(std::string_view name) {
  if (name == "best-of" || name == "best_of") return fusion_mode::best_of;
  if (name == "merge") return fusion_mode::merge;
  if (name == "debate") return fusion_mode::debate;
  if (name == "vote") return fusion_mode::vote;
  if (name == "confidence") return fusion_mode::confidence;
  fail(errc::invalid_argument, "fusion mode '", name, "' is not best-of, merge, debate, vote or confidence");
}

constexpr bool needs_judge(fusion_mode m) noexcept {
  return m == fusion_mode::best_of || m == fusion_mode::merge || m == fusion_mode::debate;
}

using extractor_fn = std::optional<std::string> (*)(std::string_view);

inline extractor_fn extractor_from(std::string_view name) {
  if (name == "number") return &extract::number;
  if (name == "letter") return &extract::letter;
  if (name == "text") return &extract::normalised_text;
  fail(errc::invalid_argument, "vote extractor '", name, "' is not number, letter or text");
}

struct plan {
  std::vector<any_member> members;
  std::optional<any_member> judge_model;  // best-of, merge, debate
  fusion_mode mode = fusion_mode::confidence;
  std::size_t samples = 1;                // per member (the request's n, when it gives none)
  std::size_t quorum = 0;                 // first k answers (0: all)
  std::optional<std::chrono::milliseconds> deadline;
  extractor_fn vote_extractor = &extract::normalised_text;  // a request with tools votes on its calls
  std::size_t agree = 0;                  // vote: calls that must agree (0: a plurality decides)
  bool unanimous = false;                 // vote: every call must agree
  int rounds = 2;                         // debate

  // Refuses a plan that cannot run, naming why.
  void validate() const {
    if (members.empty()) fail(errc::invalid_argument, "fusion: no members");
    if (needs_judge(mode) && !judge_model) fail(errc::invalid_argument, "fusion: mode ", name_of(mode), " needs a judge model");
    if (samples == 0 || samples > 64) fail(errc::invalid_argument, "fusion: samples must be between 1 and 64");
    if (mode == fusion_mode::debate && samples > 1) fail(errc::invalid_argument, "fusion: debate takes one sample per member");
    if (quorum > members.size() * samples) fail(errc::invalid_argument, "fusion: quorum ", quorum, " is larger than the ", members.size() * samples, " member calls");
    if ((agree > 0 || unanimous) && mode != fusion_mode::vote) fail(errc::invalid_argument, "fusion: agree is for mode vote");
    if (agree > members.size() * samples) fail(errc::invalid_argument, "fusion: agree ", agree, " is larger than the ", members.size() * samples, " member calls");
  }

  // Whether a request's answers are tool calls (then the vote compares the calls).
  static bool votes_on_calls(const request& r) noexcept { return !r.tools.empty() && r.tool_choice != "none"; }

  static std::string_view name_of(fusion_mode m) noexcept {
    switch (m) {
      case fusion_mode::best_of: return "best-of";
      case fusion_mode::merge: return "merge";
      case fusion_mode::debate: return "debate";
      case fusion_mode::vote: return "vote";
      case fusion_mode::confidence: return "confidence";
    }
    return "unknown";
  }

  policy rule(const request& r = {}) const {
    policy p = policy::all();
    if (quorum > 0) p = policy::first(quorum);
    if (deadline) p = p || policy::within(*deadline);
    if (agree > 0 || unanimous) {
      using call_extractor = std::optional<std::string> (*)(const candidate&);
      p = p || (votes_on_calls(r) ? until_agreement<call_extractor>(&extract::tool_calls, agree) : until_agreement(vote_extractor, agree));
    }
    return p;
  }
};

// Runs the plan on `r` (r.n samples per member when the request sets more than 1, else the
// plan's). Run on a single-threaded executor, as fuse() asks.
inline asio::awaitable<report> run(const plan& p, request r) {
  p.validate();
  if (r.n <= 1) r.n = p.samples;
  const policy rule = p.rule(r);
  report out;
  switch (p.mode) {
    case fusion_mode::best_of: {
      best_of_judge j{*p.judge_model};
      out = co_await fuse(p.members, j, std::move(r), rule);
      break;
    }
    case fusion_mode::merge: {
      merge_judge j{*p.judge_model};
      out = co_await fuse(p.members, j, std::move(r), rule);
      break;
    }
    case fusion_mode::debate: {
      debate_judge<best_of_judge> j{p.members, best_of_judge{*p.judge_model}, p.rounds};
      out = co_await fuse(p.members, j, std::move(r), rule);
      break;
    }
    case fusion_mode::vote: {
      if (plan::votes_on_calls(r)) {
        vote_judge<std::optional<std::string> (*)(const candidate&)> j{&extract::tool_calls, {}, p.agree, p.unanimous};
        out = co_await fuse(p.members, j, std::move(r), rule);
      } else {
        vote_judge<extractor_fn> j{p.vote_extractor, {}, p.agree, p.unanimous};
        out = co_await fuse(p.members, j, std::move(r), rule);
      }
      break;
    }
    case fusion_mode::confidence: {
      confidence_judge j;
      out = co_await fuse(p.members, j, std::move(r), rule);
      break;
    }
  }
  co_return out;
}

}  // namespace chorus::inline CHORUS_ABI::fusion
