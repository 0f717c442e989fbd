// chorus — the best-of judge: a judge model scores every (anonymised) candidate from 1 to 10,
// twice with the presentation order reversed to cancel position bias; the best mean score
// wins, ties going to the more confident member. Malformed judge output is retried once, then
// the confidence judge decides (reported as a fallback).
#pragma once

#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <cstdio>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/fusion/concepts.hpp"
#include "chorus/fusion/decision.hpp"
#include "chorus/fusion/gather.hpp"
#include "chorus/fusion/judges/confidence.hpp"
#include "chorus/fusion/judges/parse.hpp"
#include "chorus/fusion/judges/prompts.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

struct best_of_judge {
  any_member model;           // the judge model: the prompt goes in, its text comes out
  std::uint64_t seed = 0;     // shuffles the presentation order per call
  std::int32_t max_tokens = 0;  // 0: room for the structured reply of every candidate
  bool structured = true;       // the reply is generated under a JSON schema (prompts::best_of_schema)
  // details: "reasons" (per candidate, the judge's line) and "judge_outputs" (its raw replies).

  std::string name() const { return "best_of"; }

  asio::awaitable<decision> decide(const request& r, std::span<const candidate> candidates) {
    const auto start = clock::now();
    std::vector<std::size_t> ok;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].status == member_status::ok) ok.push_back(i);
    }
    decision d;
    if (ok.size() < 2) {  // nothing to compare
      d = confidence_judge::pick(candidates);
      d.method = "best_of";
      d.rationale = "only one answer: " + d.rationale;
      d.judge_ms = elapsed_ms(start);
      co_return d;
    }
    std::mt19937_64 rng(seed ^ std::hash<std::string>{}(r.question()));
    ++seed;
    std::shuffle(ok.begin(), ok.end(), rng);
    std::vector<double> total(candidates.size(), 0.0);
    std::vector<std::string> reasons(candidates.size());
    json outputs = json::array();
    for (int pass = 0; pass < 2; ++pass) {
      std::vector<std::size_t> order = ok;
      if (pass == 1) std::reverse(order.begin(), order.end());
      std::optional<std::vector<parse::score_line>> parsed;
      for (int attempt = 0; attempt < 2 && !parsed; ++attempt) {
        const std::int32_t budget = max_tokens > 0 ? max_tokens : prompts::best_of_tokens(order.size());
        const request ask = prompts::best_of(r, candidates, order, budget, structured);
        const candidate reply = co_await model.answer(ask);
        outputs.push_back(reply.status == member_status::ok ? reply.text : "(" + reply.error + ")");
        if (reply.status == member_status::ok) parsed = parse::structured_scores(reply.text, order.size());
      }
      if (!parsed) {
        decision fallback = confidence_judge::pick(candidates);
        fallback.method = "best_of";
        fallback.fell_back = true;
        fallback.rationale = "the judge's output had no usable scores (after one retry); fell back to confidence: " +
                             fallback.rationale;
        fallback.details["judge_outputs"] = std::move(outputs);
        fallback.judge_ms = elapsed_ms(start);
        co_return fallback;
      }
      for (std::size_t k = 0; k < order.size(); ++k) {
        total[order[k]] += (*parsed)[k].score;
        if (reasons[order[k]].empty()) reasons[order[k]] = (*parsed)[k].reason;
      }
    }
    d.method = "best_of";
    d.scores.assign(candidates.size(), 0.0);
    for (const auto i : ok) d.scores[i] = total[i] / 2.0;
    d.details["reasons"] = reasons;
    d.details["judge_outputs"] = std::move(outputs);
    for (const auto i : ok) {
      if (!d.chosen || d.scores[i] > d.scores[*d.chosen] ||
          (d.scores[i] == d.scores[*d.chosen] && candidates[i].mean_logprob > candidates[*d.chosen].mean_logprob)) {
        d.chosen = i;
      }
    }
    d.answer = candidates[*d.chosen].text;
    d.tool_calls = candidates[*d.chosen].tool_calls;
    char line[200];
    std::snprintf(line, sizeof line, "highest judge score %.1f/10 (mean of two passes in opposite orders)", d.scores[*d.chosen]);
    d.rationale = line;
    d.judge_ms = elapsed_ms(start);
    co_return d;
  }
};

static_assert(judge<best_of_judge>);

}  // namespace chorus::inline CHORUS_ABI::fusion
