// chorus — reading a judge model's output robustly: scores per candidate label, tolerant of
// extra text, markdown and "Candidate A" prefixes; anything unusable yields nothing.
#pragma once

#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chorus/config.hpp"
#include "chorus/fusion/judges/prompts.hpp"

namespace chorus::inline CHORUS_ABI::fusion::parse {

struct score_line {
  double score = 0.0;
  std::string reason;
};

// Scores for labels A.. (n of them) from lines like "A: 7 - reason", "Candidate B = 8/10",
// "**C**: 6". Returns nothing unless every label got a score in [1, 10].
inline std::optional<std::vector<score_line>> scores(std::string_view text, std::size_t n) {
  std::vector<std::optional<score_line>> found(n);
  std::size_t line_start = 0;
  while (line_start <= text.size()) {
    std::size_t line_end = text.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = text.size();
    std::string_view line = text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    // skip decoration and an optional "Candidate" word
    std::size_t i = 0;
    auto skip = [&](auto pred) {
      while (i < line.size() && pred(static_cast<unsigned char>(line[i]))) ++i;
    };
    skip([](unsigned char c) { return std::isspace(c) || c == '*' || c == '-' || c == '#' || c == '['; });
    if (line.substr(i, 9) == "Candidate" || line.substr(i, 9) == "candidate") i += 9;
    skip([](unsigned char c) { return std::isspace(c) || c == '*'; });
    if (i >= line.size() || line[i] < 'A' || line[i] >= 'A' + static_cast<char>(std::min<std::size_t>(n, 26))) continue;
    const std::size_t index = static_cast<std::size_t>(line[i] - 'A');
    ++i;
    if (i < line.size() && std::isalnum(static_cast<unsigned char>(line[i]))) continue;  // a word, not a label
    skip([](unsigned char c) { return std::isspace(c) || c == '*' || c == ']' || c == ':' || c == '=' || c == ')'; });
    std::size_t digits = i;
    while (digits < line.size() && std::isdigit(static_cast<unsigned char>(line[digits]))) ++digits;
    if (digits == i || digits - i > 2) continue;
    const int value = std::stoi(std::string(line.substr(i, digits - i)));
    if (value < 1 || value > 10) continue;
    i = digits;
    if (line.substr(i, 3) == "/10") i += 3;
    skip([](unsigned char c) { return std::isspace(c) || c == '-' || c == ':' || c == '.' || c == ','; });
    if (!found[index]) found[index] = score_line{static_cast<double>(value), std::string(line.substr(i))};
    if (line_end == text.size()) break;
  }
  std::vector<score_line> out;
  for (auto& f : found) {
    if (!f) return std::nullopt;
    out.push_back(std::move(*f));
  }
  return out;
}

// The JSON object in a judge's reply (prompts::best_of_schema, merge_schema): the whole reply,
// or the first {...} in it (a remote judge may wrap it in prose or a code fence).
inline std::optional<nlohmann::json> json_object(std::string_view text) {
  auto parsed = nlohmann::json::parse(text, nullptr, false);
  if (parsed.is_discarded()) {
    const auto open = text.find('{');
    const auto close = text.rfind('}');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open) return std::nullopt;
    parsed = nlohmann::json::parse(text.substr(open, close - open + 1), nullptr, false);
  }
  if (parsed.is_discarded() || !parsed.is_object()) return std::nullopt;
  return parsed;
}

// Scores from a reply in the best-of schema, {"A": {"score": 7, "reason": "..."}, ...}; nothing
// unless every label has a score in [1, 10]. Falls back to the line form (scores()) for a judge
// that wrote lines instead.
inline std::optional<std::vector<score_line>> structured_scores(std::string_view text, std::size_t n) {
  if (const auto j = json_object(text)) {
    std::vector<score_line> out;
    for (std::size_t k = 0; k < n; ++k) {
      const auto entry = j->find(prompts::label(k));
      if (entry == j->end() || !entry->is_object()) break;
      const auto score = entry->find("score");
      if (score == entry->end() || !score->is_number()) break;
      const double value = score->get<double>();
      if (value < 1 || value > 10) break;
      const auto reason = entry->find("reason");
      out.push_back({value, reason != entry->end() && reason->is_string() ? reason->get<std::string>() : std::string()});
    }
    if (out.size() == n) return out;
  }
  return scores(text, n);
}

// A merged answer is usable when it has some words and does not just echo the labels.
inline bool usable_answer(std::string_view text) {
  std::size_t letters = 0;
  for (const char c : text) letters += std::isalpha(static_cast<unsigned char>(c)) ? 1 : 0;
  return letters >= 3;
}

}  // namespace chorus::inline CHORUS_ABI::fusion::parse
