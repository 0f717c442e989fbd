// chorus — the verifier judge (Cobbe et al. 2021): a judge model reads the question and one
// candidate in a template and the candidate's score is the probability it gives its "yes" token
// against its "no" token at the end. Prompt evaluation only: each ask generates one token at most
// (greedy, with its top alternatives), and a local judge evaluates the asks as one batch of
// sequences sharing the question's prefix. Alone it picks the highest score; with an extractor
// it can also add the scores of the candidates that agree (a vote weighted by the verifier), and
// weigh each candidate's score by its member's self-consistency on the question (SLM-MUX's
// confidence, judges/agreement.hpp): "verifier-agreement", the best mode on the task models.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/fusion/concepts.hpp"
#include "chorus/fusion/decision.hpp"
#include "chorus/fusion/extract.hpp"
#include "chorus/fusion/gather.hpp"
#include "chorus/fusion/judges/agreement.hpp"
#include "chorus/fusion/judges/confidence.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

struct verifier_template {
  // {question}: the request's last user message; {answer}: the candidate's text.
  std::string text = "{question}{answer}\nCorrect?";  // the task verifier's format (../shared/models/task)
  std::string system;                                 // for an instruct judge: e.g. "Answer yes or no."
  std::string yes = " yes";                           // the token texts whose probabilities are compared
  std::string no = " no";

  // For an instruct model that was not trained as a verifier.
  static verifier_template instruct() {
    return {"Question:\n{question}\n\nAnswer:\n{answer}\n\nIs this answer correct? Answer yes or no.",
            "You check answers. Reply with one word: yes or no.", "yes", "no"};
  }

  std::string fill(std::string_view question, std::string_view answer) const {
    std::string out;
    out.reserve(text.size() + question.size() + answer.size());
    for (std::size_t i = 0; i < text.size();) {
      if (text.compare(i, 10, "{question}") == 0) {
        out += question;
        i += 10;
      } else if (text.compare(i, 8, "{answer}") == 0) {
        out += answer;
        i += 8;
      } else {
        out += text[i++];
      }
    }
    return out;
  }
};

// Extractor: std::optional<std::string>(std::string_view), as the vote judge takes; with
// `weighted_vote`, candidates whose extracted answers agree add their scores, the best group wins.
// scores: per candidate P(yes) / (P(yes) + P(no)); details: "p_yes" (over the whole vocabulary),
// "p_no", and with weighted_vote "groups".
template <class Extractor = std::optional<std::string> (*)(std::string_view)>
struct verifier_judge {
  any_member model;
  verifier_template prompt = {};
  bool weighted_vote = false;
  Extractor extractor = &extract::normalised_text;
  std::int32_t alternatives = 20;  // top alternatives read for the yes/no tokens
  bool agreement_weighted = false;  // with weighted_vote: scores times the member's self-consistency

  std::string name() const {
    if (!weighted_vote) return "verifier";
    return agreement_weighted ? "verifier-agreement" : "verifier-vote";
  }

  // Each candidate's verifier score times the share of its member's samples that agree with the
  // member's own most frequent answer (agreement_judge's confidence): a member that keeps
  // changing its answer counts for less. The verifier's own scores stay in details "verifier".
  static void weigh_by_agreement(std::span<const candidate> candidates, const Extractor& extractor, decision& d) {
    const decision mux = agreement_judge<Extractor>{extractor}.pick(candidates);
    d.details["verifier"] = d.scores;
    d.details["members"] = mux.details["members"];
    for (std::size_t i = 0; i < d.scores.size() && i < mux.scores.size(); ++i) d.scores[i] *= mux.scores[i];
  }

  // The weighted vote over a decision's scores: candidates whose extracted answers agree add
  // their scores; the best group's best-scored candidate is chosen. Usable on the scores of an
  // earlier verifier decision (the verifier need not run twice).
  static void vote_by_scores(std::span<const candidate> candidates, const Extractor& extractor, decision& d) {
    std::map<std::string, std::pair<double, std::size_t>> groups;  // answer -> (score sum, best candidate)
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].status != member_status::ok) continue;
      const auto a = extract_answer(extractor, candidates[i]);
      if (!a) continue;
      auto [it, fresh] = groups.try_emplace(*a, 0.0, i);
      it->second.first += d.scores[i];
      if (d.scores[i] > d.scores[it->second.second]) it->second.second = i;
    }
    const std::pair<const std::string, std::pair<double, std::size_t>>* best = nullptr;
    json g = json::object();
    for (const auto& entry : groups) {
      g[entry.first] = entry.second.first;
      if (!best || entry.second.first > best->second.first) best = &entry;
    }
    d.details["groups"] = std::move(g);
    if (!best) return;
    d.chosen = best->second.second;
    d.answer = candidates[*d.chosen].text;
    d.tool_calls = candidates[*d.chosen].tool_calls;
    char line[200];
    std::snprintf(line, sizeof line, "answer '%s' has the highest summed verifier score (%.2f)", best->first.c_str(),
                  best->second.first);
    d.rationale = line;
  }

  asio::awaitable<decision> decide(const request& r, std::span<const candidate> candidates) {
    const auto start = clock::now();
    std::vector<std::size_t> ok;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].status == member_status::ok) ok.push_back(i);
    }
    decision d;
    d.method = name();
    if (ok.empty()) {
      d = confidence_judge::pick(candidates);
      d.method = name();
      d.judge_ms = elapsed_ms(start);
      co_return d;
    }
    std::vector<request> asks;
    asks.reserve(ok.size());
    const std::string question = r.question();
    for (const auto i : ok) {
      request ask = request::from_prompt(prompt.fill(question, candidates[i].text), prompt.system, 1);
      ask.generation.temperature = 0.0f;
      ask.generation.top_logprobs = alternatives;
      asks.push_back(std::move(ask));
    }
    std::vector<any_member> judges(ok.size(), model);  // one call per candidate, all at once
    gathered replies = co_await gather(judges, asks, policy::all().at_least(0));
    d.scores.assign(candidates.size(), 0.0);
    json p_yes = json::array(), p_no = json::array();
    std::vector<double> raw_yes(candidates.size(), 0.0), raw_no(candidates.size(), 0.0);
    std::size_t unusable = 0;
    for (std::size_t k = 0; k < ok.size(); ++k) {
      const auto& reply = replies.candidates[k];
      const std::size_t i = ok[k];
      if (reply.status != member_status::ok || reply.logprobs.empty()) {
        ++unusable;
        continue;
      }
      // Tokens outside the alternatives shown are less likely than the last one shown.
      const auto& alts = reply.logprobs.front().top;
      const double floor = alts.empty() ? -1e9 : alts.back().logprob;
      double lyes = floor, lno = floor;
      for (const auto& a : alts) {
        if (a.token == prompt.yes) lyes = std::max<double>(lyes, a.logprob);
        if (a.token == prompt.no) lno = std::max<double>(lno, a.logprob);
      }
      raw_yes[i] = std::exp(lyes);
      raw_no[i] = std::exp(lno);
      d.scores[i] = raw_yes[i] + raw_no[i] > 0 ? raw_yes[i] / (raw_yes[i] + raw_no[i]) : 0.0;
    }
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      p_yes.push_back(raw_yes[i]);
      p_no.push_back(raw_no[i]);
    }
    d.details["p_yes"] = std::move(p_yes);
    d.details["p_no"] = std::move(p_no);
    if (unusable == ok.size()) {
      decision fallback = confidence_judge::pick(candidates);
      fallback.method = name();
      fallback.fell_back = true;
      fallback.rationale = "the verifier gave no usable answer; fell back to confidence: " + fallback.rationale;
      fallback.judge_ms = elapsed_ms(start);
      co_return fallback;
    }
    if (weighted_vote && agreement_weighted) weigh_by_agreement(candidates, extractor, d);
    if (weighted_vote) vote_by_scores(candidates, extractor, d);
    if (!d.chosen) {
      for (const auto i : ok) {
        if (!d.chosen || d.scores[i] > d.scores[*d.chosen] ||
            (d.scores[i] == d.scores[*d.chosen] && candidates[i].mean_logprob > candidates[*d.chosen].mean_logprob)) {
          d.chosen = i;
        }
      }
      char line[160];
      std::snprintf(line, sizeof line, "the verifier's highest P(yes) (%.3f)", d.scores[*d.chosen]);
      d.rationale = line;
    }
    d.answer = candidates[*d.chosen].text;
    d.tool_calls = candidates[*d.chosen].tool_calls;
    d.judge_ms = elapsed_ms(start);
    co_return d;
  }
};

}  // namespace chorus::inline CHORUS_ABI::fusion
