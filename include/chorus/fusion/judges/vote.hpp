// chorus — the vote judge (self-consistency): extract each candidate's final answer, take the
// majority; ties go to the most confident group. No judge model. Over actions (tool calls) the
// answer is the call itself, canonicalised, and a caller can demand that k members (or all)
// agree before anything is acted on.
#pragma once

#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "chorus/config.hpp"
#include "chorus/fusion/decision.hpp"
#include "chorus/fusion/extract.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

// Extractor: see extract_answer (e.g. extract::number, or extract::tool_calls to vote on actions).
// Each answer counts its member's weight (1 unless `weights` names the member). With
// `required_agreement` k > 0 (or `unanimous`), fewer than k agreeing answers (or any dissent)
// decide nothing: no candidate is chosen and the rationale says so, for a caller that must
// not act without agreement. details: each candidate's extracted answer ("answers"), the
// answers outside the winning group ("dissent": member, sample, answer), "agreed" (bool).
template <class Extractor = std::optional<std::string> (*)(std::string_view)>
struct vote_judge {
  Extractor extractor = &extract::normalised_text;
  std::map<std::string, double, std::less<>> weights = {};  // member name -> weight of its answers
  std::size_t required_agreement = 0;  // answers that must agree (0: a plurality is enough)
  bool unanimous = false;              // every call must agree (one that failed or gave no answer dissents)

  std::string name() const { return "vote"; }

  double weight_of(std::string_view member) const {
    const auto it = weights.find(member);
    return it == weights.end() ? 1.0 : it->second;
  }

  decision pick(std::span<const candidate> candidates) const {
    decision d;
    d.method = "vote";
    struct group {
      double votes = 0.0;
      std::size_t count = 0;
      double confidence = -1e300;  // best mean log-probability in the group
      std::size_t best = 0;
    };
    std::map<std::string, group> groups;
    std::vector<std::optional<std::string>> answers(candidates.size());
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].status != member_status::ok) continue;
      answers[i] = extract_answer(extractor, candidates[i]);
      if (!answers[i]) continue;
      auto& g = groups[*answers[i]];
      g.votes += weight_of(candidates[i].member);
      ++g.count;
      if (candidates[i].mean_logprob > g.confidence) {
        g.confidence = candidates[i].mean_logprob;
        g.best = i;
      }
    }
    d.scores.assign(candidates.size(), 0.0);
    json extracted = json::array();
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      extracted.push_back(answers[i] ? json(*answers[i]) : json(nullptr));
      if (answers[i]) d.scores[i] = groups[*answers[i]].votes;
    }
    d.details["answers"] = std::move(extracted);
    const std::pair<const std::string, group>* winner = nullptr;
    for (const auto& entry : groups) {
      if (!winner || entry.second.votes > winner->second.votes ||
          (entry.second.votes == winner->second.votes && entry.second.confidence > winner->second.confidence)) {
        winner = &entry;
      }
    }
    if (!winner) {
      d.rationale = "no candidate had an extractable answer";
      d.details["agreed"] = false;
      return d;
    }
    std::size_t voters = 0, answered = 0;
    json dissent = json::array();
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].status != member_status::ok) {
        // a call that failed or was cancelled did not agree: it counts against unanimity
        if (unanimous) {
          dissent.push_back({{"member", candidates[i].member}, {"sample", candidates[i].sample}, {"answer", nullptr},
                             {"status", std::string(to_string(candidates[i].status))}});
        }
        continue;
      }
      ++answered;
      voters += answers[i].has_value();
      if (answers[i] != winner->first) {
        dissent.push_back({{"member", candidates[i].member}, {"sample", candidates[i].sample},
                           {"answer", answers[i] ? json(*answers[i]) : json(nullptr)}});
      }
    }
    const std::string agree = std::to_string(winner->second.count) + " of " + std::to_string(answered) + " answers agree on '" +
                              winner->first + "'";
    // unanimity counts every call of the panel: a member that failed cannot be taken to agree
    const std::size_t needed = unanimous ? candidates.size() : required_agreement;
    const bool agreed = winner->second.count >= needed;
    d.details["dissent"] = std::move(dissent);
    d.details["agreed"] = agreed;
    if (!agreed) {
      d.rationale = "no agreement: " + agree + ", " + (unanimous ? "all" : std::to_string(needed)) + " required";
      return d;
    }
    d.chosen = winner->second.best;
    d.answer = candidates[*d.chosen].text;
    d.tool_calls = candidates[*d.chosen].tool_calls;
    d.rationale = agree;
    if (voters < answered) d.rationale += " (" + std::to_string(answered - voters) + " gave no answer)";
    if (!weights.empty()) d.rationale += " (weighted votes " + std::to_string(winner->second.votes).substr(0, 6) + ")";
    return d;
  }

  boost::asio::awaitable<decision> decide(const request&, std::span<const candidate> candidates) const {
    co_return pick(candidates);
  }
};

}  // namespace chorus::inline CHORUS_ABI::fusion
