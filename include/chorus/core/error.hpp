// chorus — errors a user can cause, as an error-code category and one exception type.
//
// Every failure that a caller can provoke (a bad file, a wrong argument, an unreachable
// server, malformed JSON) is reported as a chorus::error whose message names what was
// wrong: the file, the tensor, the field, the offset. The library never aborts.
#pragma once

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "chorus/config.hpp"

namespace chorus::inline CHORUS_ABI {

enum class errc : int {
  ok = 0,
  invalid_argument = 1,   // a parameter the caller passed is out of its domain
  file_not_found = 2,     // the path does not exist
  file_unreadable = 3,    // exists but cannot be opened or mapped (permissions, a directory, ...)
  file_empty = 4,         // a zero-byte file where content is required
  bad_format = 5,         // the bytes do not follow the format (bad magic, bad value)
  truncated = 6,          // a length, count or offset points past the end of the data
  unsupported = 7,        // well-formed but not handled (unknown version, format not compiled in)
  out_of_range = 8,       // an index or size exceeds a limit (context full, too many tokens)
  not_found = 9,          // a key, tensor or token the caller asked for is absent
  type_mismatch = 10,     // a value exists but has another type than asked for
  io_error = 11,          // the operating system refused a read/write
  network = 12,           // a remote endpoint could not be reached or dropped the connection
  protocol = 13,          // a remote endpoint answered something we cannot use (HTTP status, JSON)
  timeout = 14,           // a deadline passed
  cancelled = 15,         // the caller cancelled the operation
  not_enough_answers = 16,// a fusion policy's minimum of members was not met
};

namespace detail {
class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "chorus"; }
  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::ok: return "ok";
      case errc::invalid_argument: return "invalid argument";
      case errc::file_not_found: return "file not found";
      case errc::file_unreadable: return "file unreadable";
      case errc::file_empty: return "file is empty";
      case errc::bad_format: return "bad format";
      case errc::truncated: return "truncated data";
      case errc::unsupported: return "unsupported";
      case errc::out_of_range: return "out of range";
      case errc::not_found: return "not found";
      case errc::type_mismatch: return "type mismatch";
      case errc::io_error: return "I/O error";
      case errc::network: return "network error";
      case errc::protocol: return "protocol error";
      case errc::timeout: return "timed out";
      case errc::cancelled: return "cancelled";
      case errc::not_enough_answers: return "not enough answers";
    }
    return "unknown chorus error";
  }
};
}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::error_category_impl category;
  return category;
}

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// The one exception type chorus throws for user-caused failures. what() is the full,
/// human-readable message; code() lets a program branch on the kind of failure.
class error : public std::runtime_error {
 public:
  error(errc code, const std::string& message)
      : std::runtime_error(message), code_(make_error_code(code)) {}
  error(errc code, const char* message) : std::runtime_error(message), code_(make_error_code(code)) {}

  const std::error_code& code() const noexcept { return code_; }
  errc kind() const noexcept { return static_cast<errc>(code_.value()); }

 private:
  std::error_code code_;
};

namespace detail {

/// One piece of an error message: text as it is, a number or a bool written out. fail() turns
/// each of its arguments into one of these and hands the list to one non-template function:
/// so a call site instantiates only the conversions, not a message builder of its own. (With a
/// builder per distinct fail(...) signature, some 200 in a program that runs one generation,
/// those took 31 % of clang 14's optimiser time there; GCC 12 compiles the program 0.5 s, 4 %,
/// faster without them: docs/perf.md.)
class message_part {
 public:
  message_part(std::string_view text) noexcept : text_(text) {}
  message_part(const char* text) noexcept : text_(text) {}
  message_part(const std::string& text) noexcept : text_(text) {}
  message_part(char c) : owned_(1, c), text_(owned_) {}
  message_part(bool b) noexcept : text_(b ? "true" : "false") {}
  template <class Number>
    requires std::is_arithmetic_v<Number>
  message_part(Number n) : owned_(std::to_string(n)), text_(owned_) {}
  /// Anything else that converts to a string (a std::filesystem::path).
  template <class Text>
    requires(std::is_convertible_v<const Text&, std::string> && !std::is_convertible_v<const Text&, std::string_view> &&
             !std::is_arithmetic_v<Text>)
  message_part(const Text& text) : owned_(text), text_(owned_) {}
  /// text_ may point into owned_: a part stays where it was made (in fail()'s list).
  message_part(const message_part&) = delete;
  message_part& operator=(const message_part&) = delete;

  std::string_view text() const noexcept { return text_; }

 private:
  std::string owned_;
  std::string_view text_;
};

[[noreturn]] [[gnu::cold]] [[gnu::noinline]] inline void fail_with(errc code, std::initializer_list<message_part> parts) {
  std::size_t length = 0;
  for (const auto& part : parts) length += part.text().size();
  std::string message;
  message.reserve(length);
  for (const auto& part : parts) message += part.text();
  throw error(code, message);
}

}  // namespace detail

/// Throws chorus::error with a message built from the pieces (strings, string_views, numbers,
/// bools), e.g. fail(errc::bad_format, "tensor '", name, "' at offset ", offset).
template <class... Parts>
[[noreturn]] [[gnu::cold]] inline void fail(errc code, const Parts&... parts) {
  detail::fail_with(code, {parts...});
}

}  // namespace chorus::inline CHORUS_ABI

template <>
struct std::is_error_code_enum<chorus::errc> : std::true_type {};
