// chorus — the record of one fusion: each member's answer and timings, the failed members and
// why, what stopped the wait, the judge's decision and reasons, the wall time and what
// orchestration added to it; also as JSON.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/fusion/decision.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

struct report {
  std::string mode;
  request asked;
  std::vector<candidate> members;  // one per member call (member x sample)
  decision verdict;
  std::string stopped_because;     // the policy's reason, when it cancelled calls still running
  std::size_t stopped_early = 0;   // calls the policy cancelled or timed out
  std::size_t tokens_saved = 0;    // estimate: what the stopped calls would still have generated
  double wall_ms = 0.0;
  double overhead_ms = 0.0;  // wall time minus the critical path (slowest member + judge)

  std::size_t answered() const {
    return static_cast<std::size_t>(std::count_if(members.begin(), members.end(), [](const candidate& c) {
      return c.status == member_status::ok;
    }));
  }
  std::size_t completion_tokens() const {
    std::size_t n = 0;
    for (const auto& c : members) n += c.tokens.completion_tokens;
    return n;
  }

  // Texts are the models' bytes, which need not be UTF-8 (a generation can stop inside a
  // character): dump with nlohmann::ordered_json::error_handler_t::replace.
  json to_json() const {
    json out;
    out["mode"] = mode;
    out["question"] = asked.question();
    out["samples_per_member"] = asked.n;
    json members_json = json::array();
    json failed = json::array();
    for (const auto& c : members) {
      members_json.push_back(fusion::to_json(c));
      if (c.status == member_status::failed) failed.push_back({{"name", c.member}, {"sample", c.sample}, {"error", c.error}});
    }
    out["members"] = std::move(members_json);
    out["failed_members"] = std::move(failed);
    out["answered"] = answered();
    json v;
    v["method"] = verdict.method;
    v["answer"] = verdict.answer;
    if (!verdict.tool_calls.empty()) {
      json calls = json::array();
      for (const auto& t : verdict.tool_calls) calls.push_back({{"id", t.id}, {"name", t.name}, {"arguments", t.arguments}});
      v["tool_calls"] = std::move(calls);
    }
    if (verdict.chosen) {
      v["chosen"] = members.at(*verdict.chosen).member;
      v["chosen_index"] = *verdict.chosen;
    } else {
      v["chosen"] = nullptr;
    }
    v["scores"] = verdict.scores;
    v["rationale"] = verdict.rationale;
    v["fell_back"] = verdict.fell_back;
    v["judge_ms"] = verdict.judge_ms;
    v["details"] = verdict.details;
    out["decision"] = std::move(v);
    if (!stopped_because.empty()) {
      out["stopped"] = {{"because", stopped_because}, {"calls", stopped_early}, {"tokens_saved_estimate", tokens_saved}};
    }
    out["completion_tokens"] = completion_tokens();
    out["wall_ms"] = wall_ms;
    out["overhead_ms"] = overhead_ms;
    return out;
  }
};

}  // namespace chorus::inline CHORUS_ABI::fusion
