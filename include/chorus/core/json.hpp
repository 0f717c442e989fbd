// chorus — a small, strict JSON reader and writer (RFC 8259): the report of a fusion, the
// CLI's --json output, OpenAI-compatible payloads and the golden test files. Malformed input
// gives a chorus::error(errc::bad_format, "JSON: <what> at line L column C"), never a crash.
//
// Reading:  json::value v = json::parse(text);  v["n_vocab"].as_int();  v.find("opt") (nullptr)
// Writing:  json::value o;  o.set("k", 1);  o.set("list", json::array{1, "two", nullptr});
//           json::dump(o) (compact)  json::dump(o, 2) (pretty)
//
// Choices (all deliberate, all tested):
// - Strict: no comments, no trailing commas, no leading zeros, no NaN/Infinity, no control
//   characters inside strings, no lone surrogates in \u escapes, strings must be valid UTF-8
//   (no overlong forms, no encoded surrogates), nesting at most 512 deep, no byte order mark.
// - Numbers: an integer literal that fits int64 stays int64; anything else (a fraction, an
//   exponent, a bigger integer, and "-0" so that its sign survives) is a double parsed exactly
//   (std::from_chars, correctly rounded). A literal whose magnitude overflows double (1e400) is
//   an error; one that underflows (1e-400) becomes 0 with its sign, as strtod would.
// - Objects keep insertion order (a vector of pairs; lookup is linear, objects here are small).
//   Duplicate keys are kept as written; lookup returns the first.
// - Values have value semantics: copying a value copies its array/object (deep).
// - Column numbers count bytes from 1.
#pragma once

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"

namespace chorus::inline CHORUS_ABI::json {

class value;
using array = std::vector<value>;
using member = std::pair<std::string, value>;
using object = std::vector<member>;  // keeps insertion order

class value {
 public:
  value() noexcept = default;
  value(std::nullptr_t) noexcept {}
  value(bool b) noexcept : data_(b) {}
  // Any integer type. Unsigned values above INT64_MAX become doubles (JSON has one number type).
  template <std::integral I>
    requires(!std::same_as<I, bool> && !std::same_as<I, char>)
  value(I i) noexcept {
    if constexpr (std::is_unsigned_v<I> && sizeof(I) >= sizeof(std::int64_t)) {
      if (i > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        data_ = static_cast<double>(i);
        return;
      }
    }
    data_ = static_cast<std::int64_t>(i);
  }
  value(double d) noexcept : data_(d) {}
  value(float f) noexcept : data_(static_cast<double>(f)) {}
  value(const char* s) : data_(std::string(s)) {}
  value(std::string s) noexcept : data_(std::move(s)) {}
  value(std::string_view s) : data_(std::string(s)) {}
  value(array a) noexcept : data_(std::move(a)) {}
  value(object o) noexcept : data_(std::move(o)) {}

  bool is_null() const noexcept { return data_.index() == 0; }
  bool is_bool() const noexcept { return data_.index() == 1; }
  bool is_int() const noexcept { return data_.index() == 2; }     // an integer kept as int64
  bool is_double() const noexcept { return data_.index() == 3; }  // a number kept as double
  bool is_number() const noexcept { return data_.index() == 2 || data_.index() == 3; }
  bool is_string() const noexcept { return data_.index() == 4; }
  bool is_array() const noexcept { return data_.index() == 5; }
  bool is_object() const noexcept { return data_.index() == 6; }

  bool as_bool() const { return get<bool>("a bool"); }
  // An int64, or a double with an integral value inside the int64 range (1e3, 2.0);
  // anything else (2.5, 1e300, a string) is errc::type_mismatch.
  std::int64_t as_int() const {
    if (is_int()) return std::get<std::int64_t>(data_);
    if (is_double()) {
      const double d = std::get<double>(data_);
      // 2^63 is exactly representable; the int64 range is [-2^63, 2^63).
      if (std::floor(d) == d && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
        return static_cast<std::int64_t>(d);
      }
      fail(errc::type_mismatch, "JSON: expected an integer, found the non-integral number ", d);
    }
    fail(errc::type_mismatch, "JSON: expected an integer, found ", kind());
  }
  double as_double() const {
    if (is_int()) return static_cast<double>(std::get<std::int64_t>(data_));
    return get<double>("a number");
  }
  const std::string& as_string() const { return get<std::string>("a string"); }
  const array& as_array() const { return get<array>("an array"); }
  const object& as_object() const { return get<object>("an object"); }
  array& as_array() { return get<array>("an array"); }
  object& as_object() { return get<object>("an object"); }

  // Object lookup: nullptr when this is not an object or the key is absent.
  const value* find(std::string_view key) const noexcept {
    if (const object* o = std::get_if<object>(&data_)) {
      for (const auto& [k, v] : *o) {
        if (k == key) return &v;
      }
    }
    return nullptr;
  }
  value* find(std::string_view key) noexcept {
    return const_cast<value*>(static_cast<const value&>(*this).find(key));
  }
  bool contains(std::string_view key) const noexcept { return find(key) != nullptr; }

  // Object lookup that must succeed: errc::not_found naming the key (type_mismatch if not an object).
  const value& operator[](std::string_view key) const {
    if (const value* v = find(key)) return *v;
    if (!is_object()) fail(errc::type_mismatch, "JSON: expected an object with key '", key, "', found ", kind());
    fail(errc::not_found, "JSON: key '", key, "' is missing");
  }
  const value& operator[](const char* key) const { return (*this)[std::string_view(key)]; }
  // Array element: errc::out_of_range past the end (type_mismatch if not an array).
  template <std::integral I>
    requires(!std::same_as<I, bool>)
  const value& operator[](I index) const {
    const auto& a = as_array();
    if (std::cmp_less(index, 0) || std::cmp_greater_equal(index, a.size())) {
      fail(errc::out_of_range, "JSON: index ", static_cast<long long>(index), " is outside an array of ", a.size());
    }
    return a[static_cast<std::size_t>(index)];
  }
  // Elements of an array or members of an object; 0 for anything else.
  std::size_t size() const noexcept {
    if (const array* a = std::get_if<array>(&data_)) return a->size();
    if (const object* o = std::get_if<object>(&data_)) return o->size();
    return 0;
  }

  // Building. A null value becomes an object on set() and an array on push_back().
  // set(): replaces the value of an existing key, else appends; returns the stored value.
  value& set(std::string_view key, value v) {
    if (is_null()) data_ = object{};
    if (value* existing = find(key)) return *existing = std::move(v);
    auto& o = as_object();
    o.emplace_back(std::string(key), std::move(v));
    return o.back().second;
  }
  value& insert(std::string_view key, value v) { return set(key, std::move(v)); }
  value& push_back(value v) {
    if (is_null()) data_ = array{};
    auto& a = as_array();
    a.push_back(std::move(v));
    return a.back();
  }

  // "null", "a bool", "an integer", "a number", "a string", "an array", "an object".
  std::string_view kind() const noexcept {
    constexpr std::string_view names[] = {"null", "a bool", "an integer", "a number", "a string", "an array", "an object"};
    return names[data_.index()];
  }

  // Structural equality; 1 (int) and 1.0 (double) differ, object member order matters.
  friend bool operator==(const value& a, const value& b) { return a.data_ == b.data_; }

 private:
  template <class T>
  const T& get(std::string_view wanted) const {
    if (const T* p = std::get_if<T>(&data_)) return *p;
    fail(errc::type_mismatch, "JSON: expected ", wanted, ", found ", kind());
  }
  template <class T>
  T& get(std::string_view wanted) {
    if (T* p = std::get_if<T>(&data_)) return *p;
    fail(errc::type_mismatch, "JSON: expected ", wanted, ", found ", kind());
  }

  std::variant<std::nullptr_t, bool, std::int64_t, double, std::string, array, object> data_;
};

namespace detail {

// Length of the valid UTF-8 sequence starting at p (< end), or 0 if it is not valid
// (bad lead byte, truncated, bad continuation, overlong, surrogate, above U+10FFFF).
inline std::size_t utf8_sequence_length(const unsigned char* p, const unsigned char* end) noexcept {
  const unsigned c = p[0];
  if (c < 0x80) return 1;
  auto cont = [&](std::ptrdiff_t k) { return p + k < end && (p[k] & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;  // overlong
    if (c == 0xED && p[1] >= 0xA0) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;  // overlong
    if (c == 0xF4 && p[1] >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    const char b[2] = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    out.append(b, 2);
  } else if (cp < 0x10000) {
    const char b[3] = {static_cast<char>(0xE0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
                       static_cast<char>(0x80 | (cp & 0x3F))};
    out.append(b, 3);
  } else {
    const char b[4] = {static_cast<char>(0xF0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
                       static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
    out.append(b, 4);
  }
}

class parser {
 public:
  static constexpr int max_depth = 512;

  explicit parser(std::string_view text) : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()) {}

  value parse_document() {
    skip_space();
    value v = parse_value(0);
    skip_space();
    if (p_ != end_) error("unexpected text after the document");
    return v;
  }

 private:
  [[noreturn]] void error(std::string_view what) const { error_at(p_, what); }
  [[noreturn]] void error_at(const char* where, std::string_view what) const {
    std::size_t line = 1, column = 1;
    for (const char* q = begin_; q < where && q < end_; ++q) {
      if (*q == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    fail(errc::bad_format, "JSON: ", what, " at line ", line, " column ", column);
  }

  static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
  bool at_digit() const noexcept { return p_ < end_ && is_digit(*p_); }

  void skip_space() noexcept {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool consume(char c) noexcept {
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  void expect_word(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() || std::memcmp(p_, word.data(), word.size()) != 0) {
      if (end_ - p_ < static_cast<std::ptrdiff_t>(word.size()) &&
          std::memcmp(p_, word.data(), static_cast<std::size_t>(end_ - p_)) == 0) {
        p_ = end_;
        error("unexpected end of input");
      }
      error("invalid literal");
    }
    p_ += word.size();
  }

  value parse_value(int depth) {
    if (p_ >= end_) error("unexpected end of input");
    switch (*p_) {
      case '{': return parse_object(depth + 1);
      case '[': return parse_array(depth + 1);
      case '"': return value(parse_string());
      case 't': expect_word("true"); return value(true);
      case 'f': expect_word("false"); return value(false);
      case 'n': expect_word("null"); return value(nullptr);
      default:
        if (*p_ == '-' || is_digit(*p_)) return parse_number();
        error("unexpected character");
    }
  }

  value parse_object(int depth) {
    if (depth > max_depth) error("nesting deeper than 512 levels");
    ++p_;
    object members;
    skip_space();
    if (consume('}')) return value(std::move(members));
    for (;;) {
      skip_space();
      if (p_ >= end_) error("unexpected end of input");
      if (*p_ != '"') error("expected a string key");
      std::string key = parse_string();
      skip_space();
      if (p_ >= end_) error("unexpected end of input");
      if (!consume(':')) error("expected ':' after a key");
      skip_space();
      members.emplace_back(std::move(key), parse_value(depth));
      skip_space();
      if (consume('}')) return value(std::move(members));
      if (p_ >= end_) error("unexpected end of input");
      if (!consume(',')) error("expected ',' or '}' in an object");
      skip_space();
      if (p_ < end_ && *p_ == '}') error("trailing comma in an object");
    }
  }

  value parse_array(int depth) {
    if (depth > max_depth) error("nesting deeper than 512 levels");
    ++p_;
    array items;
    skip_space();
    if (consume(']')) return value(std::move(items));
    for (;;) {
      skip_space();
      items.push_back(parse_value(depth));
      skip_space();
      if (consume(']')) return value(std::move(items));
      if (p_ >= end_) error("unexpected end of input");
      if (!consume(',')) error("expected ',' or ']' in an array");
      skip_space();
      if (p_ < end_ && *p_ == ']') error("trailing comma in an array");
    }
  }

  std::uint32_t parse_hex4() {
    std::uint32_t code = 0;
    for (int i = 0; i < 4; ++i) {
      if (p_ >= end_) error("unterminated \\u escape");
      const char c = *p_;
      code <<= 4;
      if (c >= '0' && c <= '9') code |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') code |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') code |= static_cast<std::uint32_t>(c - 'A' + 10);
      else error("invalid hex digit in a \\u escape");
      ++p_;
    }
    return code;
  }

  std::string parse_string() {
    const char* opening = p_;
    ++p_;
    std::string out;
    for (;;) {
      // Copy the longest run of plain bytes at once: the common case.
      const char* run = p_;
      while (p_ < end_) {
        const auto c = static_cast<unsigned char>(*p_);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++p_;
      }
      out.append(run, static_cast<std::size_t>(p_ - run));
      if (p_ >= end_) error_at(opening, "unterminated string");
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return out;
      }
      if (c < 0x20) error("control character in a string (must be escaped)");
      if (c >= 0x80) {
        const auto length = utf8_sequence_length(reinterpret_cast<const unsigned char*>(p_),
                                                 reinterpret_cast<const unsigned char*>(end_));
        if (length == 0) error("invalid UTF-8 in a string");
        out.append(p_, length);
        p_ += length;
        continue;
      }
      // A backslash escape.
      ++p_;
      if (p_ >= end_) error_at(opening, "unterminated string");
      const char* escape = p_ - 1;
      switch (*p_++) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp = parse_hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') error_at(escape, "a high surrogate without its low surrogate");
            p_ += 2;
            const std::uint32_t low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF) error_at(escape, "a high surrogate without its low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            error_at(escape, "a lone low surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default: error_at(escape, "invalid escape");
      }
    }
  }

  value parse_number() {
    const char* first = p_;
    consume('-');
    if (!at_digit()) error(p_ >= end_ ? "unexpected end of input" : "invalid number");
    const char* int_begin = p_;
    if (*p_ == '0' && p_ + 1 < end_ && is_digit(p_[1])) error("a number with a leading zero");
    while (at_digit()) ++p_;
    const char* int_end = p_;
    bool integral = true;
    if (consume('.')) {
      integral = false;
      if (!at_digit()) error(p_ >= end_ ? "unexpected end of input" : "a digit must follow '.'");
      while (at_digit()) ++p_;
    }
    long long exponent = 0;
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      integral = false;
      ++p_;
      bool negative_exponent = false;
      if (!consume('+')) negative_exponent = consume('-');
      if (!at_digit()) error(p_ >= end_ ? "unexpected end of input" : "a digit must follow the exponent");
      while (at_digit()) {
        if (exponent < 100000) exponent = exponent * 10 + (*p_ - '0');
        ++p_;
      }
      if (negative_exponent) exponent = -exponent;
    }
    const bool negative = *first == '-';
    if (integral && !(negative && int_end - int_begin == 1 && *int_begin == '0')) {  // "-0" stays a double
      std::int64_t i = 0;
      if (auto [q, ec] = std::from_chars(first, p_, i); ec == std::errc() && q == p_) return value(i);
    }
    double d = 0.0;
    auto [q, ec] = std::from_chars(first, p_, d);
    if (ec == std::errc::result_out_of_range) {
      // Overflow or underflow? The decimal magnitude is (integer digits after leading zeros) + exponent.
      const char* significant = int_begin;
      while (significant < int_end && *significant == '0') ++significant;
      const long long magnitude = static_cast<long long>(int_end - significant) + exponent;
      if (magnitude > 0) error_at(first, "a number too large for a double");
      return value(negative ? -0.0 : 0.0);
    }
    if (ec != std::errc() || q != p_ || !std::isfinite(d)) error_at(first, "a number too large for a double");
    return value(d);
  }

  const char* begin_;
  const char* p_;
  const char* end_;
};

}  // namespace detail

// Parses one JSON document (surrounding whitespace allowed). Throws chorus::error(bad_format).
inline value parse(std::string_view text) { return detail::parser(text).parse_document(); }

// Appends `s` as a JSON string literal: '"' and '\\' escaped, \n \r \t \b \f by their short
// escapes, other control characters (and DEL) as \u00XX, valid UTF-8 passed through as is.
// Bytes that are not valid UTF-8 are written as U+FFFD (the replacement character), one per
// byte, so that the output is always valid JSON (a JSON text must be UTF-8).
inline void write_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const auto* run = p;
    while (p < end && *p >= 0x20 && *p < 0x7F && *p != '"' && *p != '\\') ++p;
    out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
    if (p >= end) break;
    const unsigned c = *p;
    switch (c) {
      case '"': out += "\\\""; ++p; continue;
      case '\\': out += "\\\\"; ++p; continue;
      case '\n': out += "\\n"; ++p; continue;
      case '\r': out += "\\r"; ++p; continue;
      case '\t': out += "\\t"; ++p; continue;
      case '\b': out += "\\b"; ++p; continue;
      case '\f': out += "\\f"; ++p; continue;
      default: break;
    }
    if (c < 0x80) {  // other control characters and DEL
      const char escaped[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
      out.append(escaped, 6);
      ++p;
      continue;
    }
    const std::size_t length = detail::utf8_sequence_length(p, end);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      ++p;
    } else {
      out.append(reinterpret_cast<const char*>(p), length);
      p += length;
    }
  }
  out += '"';
}

// Appends a double as the shortest text that reads back to the same double. Integral values
// get a ".0" so that they read back as doubles, not integers. JSON has no NaN or infinity:
// they are written as null (a report with an undefined score stays valid JSON).
inline void write_double(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  char buffer[40];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, d);
  std::string_view text(buffer, static_cast<std::size_t>(end - buffer));
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
}

namespace detail {
inline void dump(std::string& out, const value& v, int indent, int level, bool spaced = false) {
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<std::size_t>(indent) * static_cast<std::size_t>(lvl), ' ');
  };
  if (v.is_null()) {
    out += "null";
  } else if (v.is_bool()) {
    out += v.as_bool() ? "true" : "false";
  } else if (v.is_int()) {
    char buffer[24];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v.as_int());
    out.append(buffer, end);
  } else if (v.is_double()) {
    write_double(out, v.as_double());
  } else if (v.is_string()) {
    write_string(out, v.as_string());
  } else if (v.is_array()) {
    out += '[';
    bool first = true;
    for (const auto& item : v.as_array()) {
      if (!first) out += spaced ? ", " : ",";
      first = false;
      newline(level + 1);
      dump(out, item, indent, level + 1, spaced);
    }
    if (!first) newline(level);
    out += ']';
  } else {
    out += '{';
    bool first = true;
    for (const auto& [key, item] : v.as_object()) {
      if (!first) out += spaced ? ", " : ",";
      first = false;
      newline(level + 1);
      write_string(out, key);
      out += indent < 0 && !spaced ? ":" : ": ";
      dump(out, item, indent, level + 1, spaced);
    }
    if (!first) newline(level);
    out += '}';
  }
}
}  // namespace detail

// Compact by default; indent >= 0 pretty-prints with that many spaces per level.
// dump(parse(dump(v))) == dump(v) for every value (doubles round-trip exactly).
inline std::string dump(const value& v, int indent = -1) {
  std::string out;
  detail::dump(out, v, indent, 0);
  return out;
}

// On one line with ", " and ": " between items, as Python's json.dumps writes it (and so the
// Jinja chat templates' tojson, whose output some prompt formats embed).
inline std::string dump_spaced(const value& v) {
  std::string out;
  detail::dump(out, v, -1, 0, true);
  return out;
}

}  // namespace chorus::inline CHORUS_ABI::json
