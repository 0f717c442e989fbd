// chorus — debate: for R rounds every member sees the others' latest answers and revises its
// own; then a final judge (best-of or merge) decides. The decision keeps every round.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <span>
#include <string>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/fusion/concepts.hpp"
#include "chorus/fusion/decision.hpp"
#include "chorus/fusion/gather.hpp"
#include "chorus/fusion/judges/prompts.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

template <judge Final>
struct debate_judge {
  std::vector<any_member> members;  // the same members that gave the first answers (one sample each)
  // details: "rounds", every round's answers (the first answers included).
  Final final_judge;
  int rounds = 2;

  std::string name() const { return "debate"; }

  asio::awaitable<decision> decide(const request& r, std::span<const candidate> first) {
    const auto start = clock::now();
    if (first.size() != members.size()) {
      fail(errc::invalid_argument, "debate: ", first.size(), " first answers for ", members.size(),
           " members; a debate takes one sample per member (n = 1)");
    }
    std::vector<std::vector<candidate>> history;
    history.emplace_back(first.begin(), first.end());
    for (int round = 0; round < rounds; ++round) {
      const auto& previous = history.back();
      std::vector<candidate> answered;
      for (const auto& c : previous) {
        if (c.status == member_status::ok) answered.push_back(c);
      }
      if (answered.size() < 2) break;  // nobody to debate with
      std::vector<request> asks;
      for (std::size_t i = 0; i < members.size(); ++i) {
        std::vector<candidate> others;
        for (std::size_t j = 0; j < previous.size(); ++j) {
          if (j != i && previous[j].status == member_status::ok) others.push_back(previous[j]);
        }
        request ask = prompts::debate_round(r, previous[i], others);
        ask.n = 1;
        asks.push_back(std::move(ask));
      }
      auto next = co_await gather(members, asks, policy::all());
      history.push_back(std::move(next.candidates));
    }
    decision d = co_await final_judge.decide(r, history.back());
    d.method = "debate+" + final_judge.name();
    d.rationale = std::to_string(history.size() - 1) + " debate round(s), then " + d.rationale;
    json rounds = json::array();
    for (const auto& round : history) {
      json answers = json::array();
      for (const auto& c : round) answers.push_back(to_json(c));
      rounds.push_back(std::move(answers));
    }
    d.details["rounds"] = std::move(rounds);
    d.judge_ms = elapsed_ms(start);
    co_return d;
  }
};

}  // namespace chorus::inline CHORUS_ABI::fusion
