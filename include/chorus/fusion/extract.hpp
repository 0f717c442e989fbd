// chorus — extracting the answer a candidate settles on, so that answers can be counted: the
// last number, a multiple-choice letter, normalised text, or the tool calls it makes (canonical
// JSON, so that key order and number formatting do not split a vote). Used by the vote,
// agreement and verifier judges and by the policies that stop when answers agree.
#pragma once

#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "chorus/config.hpp"
#include "chorus/fusion/request.hpp"
#include "chorus/tokenizer/tool_calls.hpp"

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

// A candidate's tool calls as one comparable answer: `name{canonical arguments}` per call, in
// order, joined by "; " (tokenizer::canonical_json: key order, whitespace and 1.0 vs 1 do not
// split a vote; the call id is not part of the action). Nothing when it made no call.
// Arguments that are not JSON compare as their trimmed text.
inline std::optional<std::string> tool_calls(const candidate& c) {
  if (c.tool_calls.empty()) return std::nullopt;
  std::string out;
  for (const auto& call : c.tool_calls) {
    if (!out.empty()) out += "; ";
    out += call.name;
    const auto args = nlohmann::ordered_json::parse(call.arguments, nullptr, false);
    if (args.is_discarded()) {
      std::string_view raw = call.arguments;
      while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.front()))) raw.remove_prefix(1);
      while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.back()))) raw.remove_suffix(1);
      out += "(" + std::string(raw) + ")";
    } else {
      out += tokenizer::canonical_json(args);
    }
  }
  return out;
}

}  // namespace extract

// An extractor reads a candidate's text (std::optional<std::string>(std::string_view)) or, to
// see its tool calls, the whole candidate (std::optional<std::string>(const candidate&)).
template <class Extractor>
std::optional<std::string> extract_answer(const Extractor& extractor, const candidate& c) {
  if constexpr (std::is_invocable_v<const Extractor&, const candidate&>) {
    return extractor(c);
  } else {
    return extractor(std::string_view(c.text));
  }
}

}  // namespace chorus::inline CHORUS_ABI::fusion
