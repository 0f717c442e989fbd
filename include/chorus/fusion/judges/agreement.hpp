// chorus — the agreement judge (SLM-MUX, "Orchestrating small language models"): each member
// sampled k answers; a member's confidence is the share of its samples that agree with its own
// most frequent extracted answer, and the most confident member's answer wins (ties: the member
// whose samples had the higher mean log-probability). It picks a model per question rather than
// mixing the models' votes, which is what helps when the models are unequal. No judge model.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdio>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/fusion/decision.hpp"
#include "chorus/fusion/judges/vote.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

// scores: per candidate, its member's confidence; details: "members", one entry per member
// with its top answer, confidence, samples and mean log-probability.
template <class Extractor = std::optional<std::string> (*)(std::string_view)>
struct agreement_judge {
  Extractor extractor = &extract::normalised_text;

  std::string name() const { return "agreement"; }

  decision pick(std::span<const candidate> candidates) const {
    struct member_view {
      std::vector<std::size_t> samples;  // candidate indices that answered
      std::map<std::string, std::size_t> counts;
      double logprob_sum = 0.0;
      std::string top;
      std::size_t top_count = 0;
      double confidence = 0.0;
      double mean_logprob = 0.0;
    };
    std::map<std::string, member_view> by_member;
    std::vector<std::string> order;  // members in the order they first appear
    std::vector<std::optional<std::string>> answers(candidates.size());
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      const auto& c = candidates[i];
      if (!by_member.count(c.member)) order.push_back(c.member);
      auto& m = by_member[c.member];
      if (c.status != member_status::ok) continue;
      answers[i] = extract_answer(extractor, c);
      m.samples.push_back(i);
      m.logprob_sum += c.mean_logprob;
      if (answers[i]) ++m.counts[*answers[i]];
    }
    decision d;
    d.method = "agreement";
    d.scores.assign(candidates.size(), 0.0);
    const member_view* best = nullptr;
    std::string best_name;
    json members = json::array();
    for (const auto& name : order) {
      auto& m = by_member[name];
      if (m.samples.empty()) continue;
      m.mean_logprob = m.logprob_sum / static_cast<double>(m.samples.size());
      for (const auto& [answer, n] : m.counts) {
        // the most frequent answer; among equals the one its most confident sample gave
        if (n > m.top_count) {
          m.top = answer;
          m.top_count = n;
        }
      }
      m.confidence = static_cast<double>(m.top_count) / static_cast<double>(m.samples.size());
      for (const auto i : m.samples) d.scores[i] = m.confidence;
      members.push_back({{"name", name},
                         {"top_answer", m.top_count ? json(m.top) : json(nullptr)},
                         {"confidence", m.confidence},
                         {"samples", m.samples.size()},
                         {"mean_logprob", m.mean_logprob}});
      if (m.top_count == 0) continue;
      if (!best || m.confidence > best->confidence ||
          (m.confidence == best->confidence && m.mean_logprob > best->mean_logprob)) {
        best = &m;
        best_name = name;
      }
    }
    d.details["members"] = std::move(members);
    if (!best) {
      d.rationale = "no member had an extractable answer";
      return d;
    }
    for (const auto i : best->samples) {  // the winner's most confident sample of its top answer
      if (answers[i] != best->top) continue;
      if (!d.chosen || candidates[i].mean_logprob > candidates[*d.chosen].mean_logprob) d.chosen = i;
    }
    d.answer = candidates[*d.chosen].text;
    d.tool_calls = candidates[*d.chosen].tool_calls;
    char line[256];
    std::snprintf(line, sizeof line, "%s is the most self-consistent member: %zu of %zu samples say '%s'",
                  best_name.c_str(), best->top_count, best->samples.size(), best->top.c_str());
    d.rationale = line;
    return d;
  }

  boost::asio::awaitable<decision> decide(const request&, std::span<const candidate> candidates) const {
    co_return pick(candidates);
  }
};

}  // namespace chorus::inline CHORUS_ABI::fusion
