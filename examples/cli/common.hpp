// chorus CLI — options shared by the generating commands.
#pragma once

#include <chorus/chorus.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "command.hpp"

namespace chorus_cli {

// JSON output of the commands: members in the order set. Model text need not be UTF-8 (a
// generation can stop inside a character); such bytes are written as U+FFFD.
using json = nlohmann::ordered_json;
inline std::string dump(const json& value, int indent = -1) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

// A vocabulary whose tokenizer.ggml.pre chorus does not know is split with the default BPE
// patterns; ids may then differ from the model's training tokenizer, so say it once on stderr.
inline void warn_about(const chorus::tokenizer::vocab& vocab, std::string_view model_path) {
  if (vocab.pre_tokenizer_is_fallback()) {
    std::fprintf(stderr, "warning: %.*s: unknown pre-tokenizer '%s'; splitting with the default BPE patterns\n",
                 static_cast<int>(model_path.size()), model_path.data(), vocab.pre_tokenizer().c_str());
  }
}

inline chorus::sample::sampling_params sampling_from(const arguments& a) {
  chorus::sample::sampling_params p;
  p.temperature = a.number<float>("temp", p.temperature);
  p.top_k = a.number<std::int32_t>("top-k", p.top_k);
  p.top_p = a.number<float>("top-p", p.top_p);
  p.min_p = a.number<float>("min-p", p.min_p);
  p.repeat_penalty = a.number<float>("repeat-penalty", p.repeat_penalty);
  p.seed = a.number<std::uint64_t>("seed", p.seed);
  p.validate();
  return p;
}

// --kv f16|f32: the element type of the KV cache (a compile-time type in the library), passed
// to `body` as a value of that type, e.g. with_kv_type(a, [&](auto element) { ... decltype(element) ... }).
template <class Body>
decltype(auto) with_kv_type(const arguments& a, Body&& body) {
  const auto kv = a.get("kv").value_or("f16");
  if (kv == "f16") return body(chorus::fp16{});
  if (kv == "f32") return body(float{});
  throw usage_error("--kv expects f16 or f32, got '" + kv + "'");
}

inline std::string read_text_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) chorus::fail(chorus::errc::file_not_found, what, " '", path, "' cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// --tools FILE: an array of OpenAI tool specs ({"type": "function", "function": {...}}), or one.
inline std::vector<json> read_tool_specs(const std::string& path) {
  const std::string text = read_text_file(path, "--tools");
  json all;
  try {
    all = json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    chorus::fail(chorus::errc::invalid_argument, "--tools '", path, "': not valid JSON (", e.what(), ")");
  }
  if (!all.is_array()) all = json::array({all});
  std::vector<json> specs(all.begin(), all.end());
  for (std::size_t i = 0; i < specs.size(); ++i) chorus::sample::tool_function_of(specs[i], i);  // each names a function
  return specs;
}

}  // namespace chorus_cli
