// chorus — every request a judge or a debate round sends to a model, in one place. Each is a
// chat request (a system instruction, then the user content), so that an instruct judge reads
// it in its own chat format; a model without one reads the two as plain text.
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

inline request ask(std::string system, std::string user, std::int32_t max_tokens) {
  request r = request::from_prompt(std::move(user), std::move(system), max_tokens);
  return r;
}

// The shape of the best-of judge's reply: an object with one {"score": 1..10, "reason": "..."}
// per label. A local judge generates under it (the reply always parses); a remote one is asked
// for it as the response format.
inline json best_of_schema(std::size_t n) {
  json properties = json::object();
  json required = json::array();
  for (std::size_t k = 0; k < n; ++k) {
    properties[label(k)] = {{"type", "object"},
                            {"properties", {{"score", {{"type", "integer"}, {"minimum", 1}, {"maximum", 10}}},
                                            {"reason", {{"type", "string"}, {"maxLength", 48}}}}},
                            {"required", {"score", "reason"}}};
    required.push_back(label(k));
  }
  return {{"type", "object"}, {"properties", std::move(properties)}, {"required", std::move(required)}};
}

// Room for the structured reply: the JSON around each candidate's score and reason, at worst a
// character a token for the reason.
inline std::int32_t best_of_tokens(std::size_t n) { return static_cast<std::int32_t>(16 + 64 * n); }

inline request best_of(const request& r, std::span<const candidate> candidates, std::span<const std::size_t> order,
                       std::int32_t max_tokens, bool structured = true) {
  std::string labels;
  for (std::size_t k = 0; k < order.size(); ++k) labels += (k ? ", " : "") + label(k);
  const std::string form = structured ? "Reply in JSON, one entry per candidate:\n{\"A\": {\"score\": 7, \"reason\": \"one short reason\"}}\n"
                                      : "Reply with exactly one line per candidate, in this form:\nA: 7 - one-line reason\n";
  request ask_r = ask("You are judging answers to a question. Score each candidate from 1 (poor) to 10 (excellent) for "
                      "correctness and helpfulness.",
                      "Question:\n" + r.question() + "\n\n" + candidate_list(candidates, order) + "Score each candidate (" + labels +
                          "). " + form,
                      max_tokens);
  if (structured) ask_r.format = response_format{"json_schema", "scores", best_of_schema(order.size())};
  return ask_r;
}

// The merge judge's reply: its analysis of the candidates (the fields OpenRouter's fusion judge
// returns) and the merged answer.
inline json merge_schema() {
  auto text = [](int max) { return json{{"type", "string"}, {"maxLength", max}}; };
  return {{"type", "object"},
          {"properties",
           {{"consensus", text(80)}, {"contradictions", text(80)}, {"unique_points", text(80)}, {"blind_spots", text(80)},
            {"answer", {{"type", "string"}, {"minLength", 1}, {"maxLength", 480}}}}},
          {"required", {"consensus", "contradictions", "unique_points", "blind_spots", "answer"}}};
}

inline request merge(const request& r, std::span<const candidate> candidates, std::span<const std::size_t> order,
                     std::int32_t max_tokens, bool structured = true) {
  const std::string form = structured ? "Reply in JSON: {\"consensus\": what they agree on, \"contradictions\": where they "
                                        "disagree, \"unique_points\": what only one says, \"blind_spots\": what all miss, "
                                        "\"answer\": the merged answer}\n"
                                      : "Answer:\n";
  request ask_r = ask("Several assistants answered the same question. Write one answer that combines their correct and "
                      "complementary points, drops what is wrong, and does not mention the candidates.",
                      "Question:\n" + r.question() + "\n\n" + candidate_list(candidates, order) + form, max_tokens);
  if (structured) ask_r.format = response_format{"json_schema", "merge", merge_schema()};
  return ask_r;
}

// A debate round keeps the member's own conversation and adds the others' answers to it.
inline request debate_round(const request& r, const candidate& own, std::span<const candidate> others) {
  request next = r;
  std::string user = "Question:\n" + r.question() + "\n\nYour previous answer:\n" + own.text + "\n\nOther answers:\n";
  for (const auto& o : others) user += "- " + o.text + "\n";
  user += "\nConsider the other answers. Point out any mistake, then give your revised answer.\n\nRevised answer:\n";
  if (!next.messages.empty() && next.messages.back().role == "user") next.messages.back().content = std::move(user);
  else next.messages.push_back({"user", std::move(user)});
  return next;
}

}  // namespace chorus::inline CHORUS_ABI::fusion::prompts
