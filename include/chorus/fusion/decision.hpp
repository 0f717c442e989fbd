// chorus — what a judge decides, and why.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

struct decision {
  std::string method;                  // the judge that decided: best_of, merge, debate, vote, confidence
  std::string answer;                  // the fused answer
  std::optional<std::size_t> chosen;   // index of the chosen candidate, when one was chosen
  std::vector<double> scores;          // per candidate: judge score, votes or mean log-probability
  std::vector<std::string> reasons;    // per candidate, when the judge gave one
  std::vector<std::size_t> contributors;  // merge: candidates whose content the answer uses
  std::string rationale;               // one line: why this answer
  bool fell_back = false;              // the judge model's output was unusable; confidence decided
  std::vector<std::vector<candidate>> rounds;  // debate: every round's answers
  std::vector<std::string> judge_outputs;      // the judge model's raw outputs
  double judge_ms = 0.0;               // time spent in the judge (model calls included)
};

}  // namespace chorus::inline CHORUS_ABI::fusion
