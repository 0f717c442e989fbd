// chorus — reading JSON text that may come from outside the program (a tool call's arguments,
// a request body): nlohmann/json's strict parser, with its failures as chorus::error and the
// nesting bounded. chorus has no JSON code of its own; values are nlohmann::ordered_json,
// whose objects keep their members in the order written (chat templates reproduce Python's
// dicts, which keep insertion order too).
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"

namespace chorus::inline CHORUS_ABI {

/// nlohmann parses any depth without recursion, but dump() and the chat templates' writers
/// recurse once per level: a document of a million '[' would overflow the stack there.
inline constexpr int max_json_depth = 512;

/// Parses one JSON document (RFC 8259: no comments, no trailing commas, strings of valid
/// UTF-8; surrounding whitespace and a UTF-8 byte order mark allowed) with at most
/// max_json_depth nested arrays and objects. Any failure is errc::bad_format with the message
/// "<what>: parse error at line L, column C: <what was wrong>" (nlohmann's, less its
/// "[json.exception...]" tag). The message may quote bytes of the input that are not UTF-8:
/// write it into JSON with error_handler_t::replace.
inline nlohmann::ordered_json parse_json(std::string_view text, std::string_view what = "JSON") {
  using json = nlohmann::ordered_json;
  /// depth = the number of arrays and objects around the one that starts.
  const auto bounded_depth = [what](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::array_start || event == json::parse_event_t::object_start) &&
        depth >= max_json_depth) {
      fail(errc::bad_format, what, ": arrays and objects nested deeper than ", max_json_depth, " levels");
    }
    return true;
  };
  try {
    return json::parse(text, bounded_depth);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e400
    std::string_view message = e.what();
    if (const auto tag_end = message.find("] "); message.starts_with("[json.exception.") && tag_end != message.npos) {
      message.remove_prefix(tag_end + 2);
    }
    fail(errc::bad_format, what, ": ", message);
  }
}

}  // namespace chorus::inline CHORUS_ABI
