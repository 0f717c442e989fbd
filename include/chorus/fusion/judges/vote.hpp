// chorus — the vote judge (self-consistency): extract each candidate's final answer, take the
// majority; ties go to the most confident group. No judge model.
#pragma once

#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <cctype>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "chorus/config.hpp"
#include "chorus/fusion/decision.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

namespace extract {

// The last number in the text ("-3", "42", "3.50" -> "3.5"), or nothing.
inline std::optional<std::string> number(std::string_view text) {
  std::optional<std::string> last;
  for (std::size_t i = 0; i < text.size();) {
    const bool minus = text[i] == '-' && i + 1 < text.size() && std::isdigit(static_cast<unsigned char>(text[i + 1]));
    if (!minus && !std::isdigit(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    std::string n;
    if (minus) n += text[i++];
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == ',' || text[i] == '.')) {
      if (text[i] != ',') n += text[i];
      ++i;
    }
    while (!n.empty() && n.back() == '.') n.pop_back();
    if (n.find('.') != std::string::npos) {
      while (n.back() == '0') n.pop_back();
      if (n.back() == '.') n.pop_back();
    }
    last = n;
  }
  return last;
}

// The multiple-choice letter (A-E) the text settles on: after "answer is", else the last
// standalone capital letter A-E.
inline std::optional<std::string> letter(std::string_view text) {
  auto standalone = [&](std::size_t i) {
    const bool left = i == 0 || !std::isalnum(static_cast<unsigned char>(text[i - 1]));
    const bool right = i + 1 >= text.size() || !std::isalnum(static_cast<unsigned char>(text[i + 1]));
    return left && right && text[i] >= 'A' && text[i] <= 'E';
  };
  if (const auto at = text.rfind("answer is"); at != std::string_view::npos) {
    for (std::size_t i = at + 9; i < text.size(); ++i) {
      if (standalone(i)) return std::string(1, text[i]);
    }
  }
  for (std::size_t i = text.size(); i-- > 0;) {
    if (standalone(i)) return std::string(1, text[i]);
  }
  return std::nullopt;
}

// The whole text, lower-cased, whitespace collapsed, surrounding punctuation removed.
inline std::optional<std::string> normalised_text(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  while (!out.empty() && (std::ispunct(static_cast<unsigned char>(out.back())) || out.back() == ' ')) out.pop_back();
  std::size_t start = 0;
  while (start < out.size() && std::ispunct(static_cast<unsigned char>(out[start]))) ++start;
  out.erase(0, start);
  if (out.empty()) return std::nullopt;
  return out;
}

}  // namespace extract

// Extractor: any callable std::optional<std::string>(std::string_view).
template <class Extractor = std::optional<std::string> (*)(std::string_view)>
struct vote_judge {
  Extractor extractor = &extract::normalised_text;

  std::string name() const { return "vote"; }

  decision pick(std::span<const candidate> candidates) const {
    decision d;
    d.method = "vote";
    struct group {
      std::size_t votes = 0;
      double confidence = -1e300;  // best mean log-probability in the group
      std::size_t best = 0;
    };
    std::map<std::string, group> groups;
    std::vector<std::optional<std::string>> answers(candidates.size());
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].status != member_status::ok) continue;
      answers[i] = extractor(candidates[i].text);
      if (!answers[i]) continue;
      auto& g = groups[*answers[i]];
      ++g.votes;
      if (candidates[i].mean_logprob > g.confidence) {
        g.confidence = candidates[i].mean_logprob;
        g.best = i;
      }
    }
    d.scores.assign(candidates.size(), 0.0);
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      d.reasons.push_back(answers[i] ? "answer: " + *answers[i] : "no answer extracted");
      if (answers[i]) d.scores[i] = static_cast<double>(groups[*answers[i]].votes);
    }
    const std::pair<const std::string, group>* winner = nullptr;
    for (const auto& entry : groups) {
      if (!winner || entry.second.votes > winner->second.votes ||
          (entry.second.votes == winner->second.votes && entry.second.confidence > winner->second.confidence)) {
        winner = &entry;
      }
    }
    if (winner) {
      d.chosen = winner->second.best;
      d.answer = candidates[*d.chosen].text;
      std::size_t voters = 0;
      for (const auto& a : answers) voters += a.has_value();
      d.rationale = std::to_string(winner->second.votes) + " of " + std::to_string(voters) + " answers agree on '" +
                    winner->first + "'";
    } else {
      d.rationale = "no candidate had an extractable answer";
    }
    return d;
  }

  boost::asio::awaitable<decision> decide(const request&, std::span<const candidate> candidates) const {
    co_return pick(candidates);
  }
};

}  // namespace chorus::inline CHORUS_ABI::fusion
