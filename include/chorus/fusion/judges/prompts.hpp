// chorus — every prompt a judge or a debate round sends to a model, in one place.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion::prompts {

inline std::string label(std::size_t i) { return std::string(1, static_cast<char>('A' + i % 26)) + (i >= 26 ? std::to_string(i / 26) : ""); }

// The candidates, anonymised as A, B, ... in the given order.
inline std::string candidate_list(std::span<const candidate> candidates, std::span<const std::size_t> order) {
  std::string out;
  for (std::size_t k = 0; k < order.size(); ++k) {
    out += "Candidate " + label(k) + ":\n" + candidates[order[k]].text + "\n\n";
  }
  return out;
}

inline std::string best_of(const request& r, std::span<const candidate> candidates, std::span<const std::size_t> order) {
  std::string labels;
  for (std::size_t k = 0; k < order.size(); ++k) labels += (k ? ", " : "") + label(k);
  return "You are judging answers to a question.\n\nQuestion:\n" + r.prompt + "\n\n" + candidate_list(candidates, order) +
         "Score each candidate (" + labels + ") from 1 (poor) to 10 (excellent) for correctness and helpfulness.\n"
         "Reply with exactly one line per candidate, in this form:\n"
         "A: 7 - one-line reason\n";
}

inline std::string merge(const request& r, std::span<const candidate> candidates, std::span<const std::size_t> order) {
  return "Several assistants answered the same question.\n\nQuestion:\n" + r.prompt + "\n\n" +
         candidate_list(candidates, order) +
         "Write one answer that combines their correct and complementary points, drops what is wrong, and does not "
         "mention the candidates.\n\nAnswer:\n";
}

inline std::string debate_round(const request& r, const candidate& own, std::span<const candidate> others) {
  std::string out = "Question:\n" + r.prompt + "\n\nYour previous answer:\n" + own.text + "\n\nOther answers:\n";
  for (std::size_t i = 0; i < others.size(); ++i) out += "- " + others[i].text + "\n";
  return out + "\nConsider the other answers. Point out any mistake, then give your revised answer.\n\nRevised answer:\n";
}

}  // namespace chorus::inline CHORUS_ABI::fusion::prompts
