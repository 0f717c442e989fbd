// chorus — the confidence judge: the candidate whose own tokens were most probable (highest
// mean log-probability) wins. No judge model; also the fallback of the model judges.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdio>
#include <span>
#include <string>

#include "chorus/config.hpp"
#include "chorus/fusion/decision.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

struct confidence_judge {
  std::string name() const { return "confidence"; }

  // The synchronous core, shared with the judges that fall back to it.
  static decision pick(std::span<const candidate> candidates) {
    decision d;
    d.method = "confidence";
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      d.scores.push_back(candidates[i].mean_logprob);
      if (candidates[i].status != member_status::ok) continue;
      if (!d.chosen || candidates[i].mean_logprob > candidates[*d.chosen].mean_logprob) d.chosen = i;
    }
    if (d.chosen) {
      d.answer = candidates[*d.chosen].text;
      d.tool_calls = candidates[*d.chosen].tool_calls;
      char line[160];
      std::snprintf(line, sizeof line, "highest mean token log-probability (%.3f)", candidates[*d.chosen].mean_logprob);
      d.rationale = line;
    } else {
      d.rationale = "no member answered";
    }
    return d;
  }

  boost::asio::awaitable<decision> decide(const request&, std::span<const candidate> candidates) const {
    co_return pick(candidates);
  }
};

}  // namespace chorus::inline CHORUS_ABI::fusion
