// chorus — the record of one fusion: each member's answer and timings, the judge's decision
// and reasons, the wall time and what orchestration added to it; also as JSON.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/json.hpp"
#include "chorus/fusion/decision.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

struct report {
  std::string mode;
  request asked;
  std::vector<candidate> members;
  decision verdict;
  double wall_ms = 0.0;
  double overhead_ms = 0.0;  // wall time minus the critical path (slowest member + judge)

  std::size_t answered() const {
    return static_cast<std::size_t>(std::count_if(members.begin(), members.end(), [](const candidate& c) {
      return c.status == member_status::ok;
    }));
  }

  json::value to_json() const {
    auto candidate_json = [](const candidate& c) {
      json::value m;
      m.set("name", c.member);
      m.set("status", std::string(to_string(c.status)));
      if (!c.error.empty()) m.set("error", c.error);
      m.set("latency_ms", c.latency_ms);
      m.set("compute_ms", c.compute_ms);
      m.set("prompt_tokens", static_cast<std::int64_t>(c.prompt_tokens));
      m.set("generated_tokens", static_cast<std::int64_t>(c.generated_tokens));
      m.set("tokens_per_second", c.tokens_per_second());
      m.set("mean_logprob", c.mean_logprob);
      m.set("text", c.text);
      return m;
    };
    json::value out;
    out.set("mode", mode);
    out.set("prompt", asked.prompt);
    json::array members_json;
    for (const auto& c : members) members_json.push_back(candidate_json(c));
    out.set("members", std::move(members_json));
    json::value v;
    v.set("method", verdict.method);
    v.set("answer", verdict.answer);
    if (verdict.chosen) v.set("chosen", members.at(*verdict.chosen).member);
    else v.set("chosen", nullptr);
    json::array scores, reasons, contributors, outputs, rounds;
    for (double s : verdict.scores) scores.emplace_back(s);
    for (const auto& r : verdict.reasons) reasons.emplace_back(r);
    for (auto i : verdict.contributors) contributors.emplace_back(members.at(i).member);
    for (const auto& o : verdict.judge_outputs) outputs.emplace_back(o);
    for (const auto& round : verdict.rounds) {
      json::array answers;
      for (const auto& c : round) answers.push_back(candidate_json(c));
      rounds.emplace_back(std::move(answers));
    }
    v.set("scores", std::move(scores));
    v.set("reasons", std::move(reasons));
    v.set("contributors", std::move(contributors));
    v.set("rationale", verdict.rationale);
    v.set("fell_back", verdict.fell_back);
    v.set("judge_outputs", std::move(outputs));
    v.set("rounds", std::move(rounds));
    v.set("judge_ms", verdict.judge_ms);
    out.set("decision", std::move(v));
    out.set("wall_ms", wall_ms);
    out.set("overhead_ms", overhead_ms);
    return out;
  }
};

}  // namespace chorus::inline CHORUS_ABI::fusion
