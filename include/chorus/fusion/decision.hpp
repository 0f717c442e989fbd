// chorus — what a judge decides, and why. The fields every judge fills are typed; what only
// one judge has (best-of's reasons and raw outputs, merge's contributors, debate's rounds, a
// verifier's probabilities) goes into its own small `details` object.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

struct decision {
  std::string method;                  // the judge that decided: best_of, merge, debate+..., vote, confidence, ...
  std::string answer;                  // the fused answer
  std::vector<tool_call> tool_calls;   // the agreed action, when the answer is a tool call
  std::optional<std::size_t> chosen;   // index of the chosen candidate, when one was chosen
  std::vector<double> scores;          // per candidate: what the judge ranked by (votes, score, log-probability)
  std::string rationale;               // one line: why this answer
  bool fell_back = false;              // the judge model's output was unusable; confidence decided
  double judge_ms = 0.0;               // time spent in the judge (model calls included)
  json details = json::object();       // judge-specific: see each judge
};

// A candidate as the report writes it.
inline json to_json(const candidate& c) {
  json m;
  m["name"] = c.member;
  m["sample"] = c.sample;
  m["status"] = std::string(to_string(c.status));
  if (!c.error.empty()) m["error"] = c.error;
  m["path"] = c.path;
  m["finish_reason"] = std::string(to_string(c.finish));
  m["latency_ms"] = c.latency_ms;
  m["compute_ms"] = c.compute_ms;
  m["first_token_ms"] = c.first_token_ms;
  m["prompt_tokens"] = c.tokens.prompt_tokens;
  m["completion_tokens"] = c.tokens.completion_tokens;
  m["tokens_per_second"] = c.tokens_per_second();
  m["mean_logprob"] = c.mean_logprob;
  m["text"] = c.text;
  if (!c.tool_calls.empty()) {
    json calls = json::array();
    for (const auto& t : c.tool_calls) calls.push_back({{"id", t.id}, {"name", t.name}, {"arguments", t.arguments}});
    m["tool_calls"] = std::move(calls);
  }
  if (!c.logprobs.empty()) {
    json tokens = json::array();
    for (const auto& t : c.logprobs) {
      json entry{{"token", t.token}, {"logprob", t.logprob}};
      if (!t.top.empty()) {
        json top = json::array();
        for (const auto& a : t.top) top.push_back({{"token", a.token}, {"logprob", a.logprob}});
        entry["top_logprobs"] = std::move(top);
      }
      tokens.push_back(std::move(entry));
    }
    m["logprobs"] = std::move(tokens);
  }
  return m;
}

}  // namespace chorus::inline CHORUS_ABI::fusion
