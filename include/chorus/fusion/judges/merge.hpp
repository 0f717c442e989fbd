// chorus — the merge judge: a judge model writes one answer from the anonymised candidates,
// with its analysis of them (consensus, contradictions, unique points, blind spots), under a JSON
// schema so that a small judge's reply always parses; the report lists the candidates whose
// content words the answer uses.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cctype>
#include <numeric>
#include <set>
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

namespace detail {
// Lower-cased words of at least four letters: the "content" a merged answer can take over.
inline std::set<std::string> content_words(std::string_view text) {
  std::set<std::string> words;
  std::string word;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    const char c = i < text.size() ? text[i] : ' ';
    if (std::isalnum(static_cast<unsigned char>(c))) {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      if (word.size() >= 4) words.insert(word);
      word.clear();
    }
  }
  return words;
}
}  // namespace detail

struct merge_judge {
  any_member model;
  std::int32_t max_tokens = 512;
  bool structured = true;  // the reply is generated under prompts::merge_schema()
  double contribution_threshold = 0.3;  // share of a candidate's content words found in the answer
  // scores: each candidate's share of content words found in the answer; details:
  // "contributors" (member names), "analysis" (the judge's consensus, contradictions,
  // unique_points, blind_spots) and "judge_outputs" (the raw replies).

  std::string name() const { return "merge"; }

  asio::awaitable<decision> decide(const request& r, std::span<const candidate> candidates) {
    const auto start = clock::now();
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].status == member_status::ok) order.push_back(i);
    }
    decision d;
    d.method = "merge";
    std::optional<std::string> merged;
    json outputs = json::array();
    json analysis = json::object();
    for (int attempt = 0; attempt < 2 && !merged && !order.empty(); ++attempt) {
      const request ask = prompts::merge(r, candidates, order, max_tokens, structured);
      const candidate reply = co_await model.answer(ask);
      outputs.push_back(reply.status == member_status::ok ? reply.text : "(" + reply.error + ")");
      if (reply.status != member_status::ok) continue;
      std::string answer = reply.text;
      if (structured) {
        // a judge that ignored the format (a remote one) still gives its text as the answer
        if (const auto j = parse::json_object(reply.text); j && j->contains("answer") && (*j)["answer"].is_string()) {
          answer = (*j)["answer"].get<std::string>();
          for (const char* field : {"consensus", "contradictions", "unique_points", "blind_spots"}) {
            if (j->contains(field)) analysis[field] = (*j)[field];
          }
        }
      }
      if (parse::usable_answer(answer)) merged = std::move(answer);
    }
    if (!merged) {
      decision fallback = confidence_judge::pick(candidates);
      fallback.method = "merge";
      fallback.fell_back = true;
      fallback.rationale = "the judge wrote no usable answer (after one retry); fell back to confidence: " + fallback.rationale;
      fallback.details["judge_outputs"] = std::move(outputs);
      fallback.judge_ms = elapsed_ms(start);
      co_return fallback;
    }
    d.answer = *merged;
    const auto answer_words = detail::content_words(*merged);
    d.scores.assign(candidates.size(), 0.0);
    json contributors = json::array();
    std::size_t contributed = 0;
    for (const auto i : order) {
      const auto words = detail::content_words(candidates[i].text);
      std::size_t shared = 0;
      for (const auto& w : words) shared += answer_words.count(w);
      d.scores[i] = words.empty() ? 0.0 : static_cast<double>(shared) / static_cast<double>(words.size());
      if (d.scores[i] >= contribution_threshold) {
        contributors.push_back(candidates[i].member + (candidates[i].sample > 0 ? "/" + std::to_string(candidates[i].sample) : ""));
        ++contributed;
      }
    }
    d.details["contributors"] = std::move(contributors);
    if (!analysis.empty()) d.details["analysis"] = std::move(analysis);
    d.details["judge_outputs"] = std::move(outputs);
    d.rationale = "merged by the judge model; " + std::to_string(contributed) + " of " +
                  std::to_string(order.size()) + " candidates contributed";
    d.judge_ms = elapsed_ms(start);
    co_return d;
  }
};

static_assert(judge<merge_judge>);

}  // namespace chorus::inline CHORUS_ABI::fusion
