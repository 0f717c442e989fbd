// chorus — a small, strict JSON reader and writer (RFC 8259): the report of a fusion, the
// CLI's --json output, OpenAI-compatible payloads and the golden test files. Malformed input
// gives a chorus::error with the line and column, never a crash.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/core/utf8.hpp"

namespace chorus::inline CHORUS_ABI::json {

class value;
using array = std::vector<value>;
using object = std::vector<std::pair<std::string, value>>;  // keeps insertion order

class value {
 public:
  value() = default;
  value(std::nullptr_t) {}
  value(bool b) : data_(b) {}
  value(int i) : data_(static_cast<std::int64_t>(i)) {}
  value(std::int64_t i) : data_(i) {}
  value(std::uint64_t i) : data_(static_cast<std::int64_t>(i)) {}
  value(unsigned u) : data_(static_cast<std::int64_t>(u)) {}
  value(double d) : data_(d) {}
  value(float f) : data_(static_cast<double>(f)) {}
  value(const char* s) : data_(std::string(s)) {}
  value(std::string s) : data_(std::move(s)) {}
  value(std::string_view s) : data_(std::string(s)) {}
  value(array a) : data_(std::make_shared<array>(std::move(a))) {}
  value(object o) : data_(std::make_shared<object>(std::move(o))) {}

  bool is_null() const noexcept { return data_.index() == 0; }
  bool is_bool() const noexcept { return data_.index() == 1; }
  bool is_int() const noexcept { return data_.index() == 2; }
  bool is_number() const noexcept { return data_.index() == 2 || data_.index() == 3; }
  bool is_string() const noexcept { return data_.index() == 4; }
  bool is_array() const noexcept { return data_.index() == 5; }
  bool is_object() const noexcept { return data_.index() == 6; }

  bool as_bool() const { return get<bool>("a bool"); }
  std::int64_t as_int() const {
    if (is_int()) return std::get<std::int64_t>(data_);
    if (data_.index() == 3) {
      const double d = std::get<double>(data_);
      if (std::floor(d) == d && std::fabs(d) < 9.2e18) return static_cast<std::int64_t>(d);
    }
    fail(errc::type_mismatch, "JSON: expected an integer, found ", kind());
  }
  double as_double() const {
    if (is_int()) return static_cast<double>(std::get<std::int64_t>(data_));
    return get<double>("a number");
  }
  const std::string& as_string() const { return get<std::string>("a string"); }
  const array& as_array() const { return *get<std::shared_ptr<array>>("an array"); }
  const object& as_object() const { return *get<std::shared_ptr<object>>("an object"); }
  array& as_array() { return *get<std::shared_ptr<array>>("an array"); }
  object& as_object() { return *get<std::shared_ptr<object>>("an object"); }

  const value* find(std::string_view key) const {
    if (!is_object()) return nullptr;
    for (const auto& [k, v] : as_object()) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  const value& operator[](std::string_view key) const {
    const value* v = find(key);
    if (v == nullptr) {
      if (!is_object()) fail(errc::type_mismatch, "JSON: expected an object with key '", key, "', found ", kind());
      fail(errc::not_found, "JSON: key '", key, "' is missing");
    }
    return *v;
  }
  const value& operator[](std::size_t index) const {
    const auto& a = as_array();
    if (index >= a.size()) fail(errc::out_of_range, "JSON: index ", index, " is past the end of an array of ", a.size());
    return a[index];
  }
  std::size_t size() const { return is_array() ? as_array().size() : is_object() ? as_object().size() : 0; }

  // Building: obj.set("k", v) replaces or appends; arr.push_back(v).
  value& set(std::string_view key, value v) {
    if (is_null()) data_ = std::make_shared<object>();
    for (auto& [k, existing] : as_object()) {
      if (k == key) return existing = std::move(v);
    }
    as_object().emplace_back(std::string(key), std::move(v));
    return as_object().back().second;
  }
  void push_back(value v) {
    if (is_null()) data_ = std::make_shared<array>();
    as_array().push_back(std::move(v));
  }

  std::string_view kind() const noexcept {
    constexpr std::string_view names[] = {"null", "a bool", "an integer", "a number", "a string", "an array", "an object"};
    return names[data_.index()];
  }

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

  std::variant<std::nullptr_t, bool, std::int64_t, double, std::string, std::shared_ptr<array>, std::shared_ptr<object>> data_;
};

namespace detail {

class parser {
 public:
  explicit parser(std::string_view text) : text_(text) {}

  value parse_document() {
    skip_space();
    value v = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) error("unexpected text after the document");
    return v;
  }

 private:
  static constexpr int max_depth = 512;

  [[noreturn]] void error(std::string_view what) const {
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    fail(errc::bad_format, "JSON: ", what, " at line ", line, " column ", column);
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool consume(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect_word(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) error("invalid literal");
    pos_ += word.size();
  }

  value parse_value(int depth) {
    if (depth > max_depth) error("nesting deeper than 512 levels");
    if (pos_ >= text_.size()) error("unexpected end of input");
    switch (text_[pos_]) {
      case '{': return parse_object(depth);
      case '[': return parse_array(depth);
      case '"': return value(parse_string());
      case 't': expect_word("true"); return value(true);
      case 'f': expect_word("false"); return value(false);
      case 'n': expect_word("null"); return value(nullptr);
      default: return parse_number();
    }
  }

  value parse_object(int depth) {
    ++pos_;
    object members;
    skip_space();
    if (consume('}')) return value(std::move(members));
    for (;;) {
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != '"') error("expected a string key");
      std::string key = parse_string();
      skip_space();
      if (!consume(':')) error("expected ':' after a key");
      skip_space();
      members.emplace_back(std::move(key), parse_value(depth + 1));
      skip_space();
      if (consume('}')) return value(std::move(members));
      if (!consume(',')) error("expected ',' or '}' in an object");
    }
  }

  value parse_array(int depth) {
    ++pos_;
    array items;
    skip_space();
    if (consume(']')) return value(std::move(items));
    for (;;) {
      skip_space();
      items.push_back(parse_value(depth + 1));
      skip_space();
      if (consume(']')) return value(std::move(items));
      if (!consume(',')) error("expected ',' or ']' in an array");
    }
  }

  unsigned parse_hex4() {
    if (pos_ + 4 > text_.size()) error("truncated \\u escape");
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      code <<= 4;
      if (c >= '0' && c <= '9') code |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') code |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') code |= static_cast<unsigned>(c - 'A' + 10);
      else error("invalid hex digit in a \\u escape");
    }
    return code;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (pos_ >= text_.size()) error("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) error("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) error("unterminated escape");
      switch (text_[pos_++]) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = parse_hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (text_.substr(pos_, 2) != "\\u") error("a high surrogate without its low surrogate");
            pos_ += 2;
            const unsigned low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF) error("a high surrogate without its low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            error("a lone low surrogate");
          }
          chorus::append_utf8(out, cp);
          break;
        }
        default: --pos_; error("invalid escape");
      }
    }
  }

  value parse_number() {
    const std::size_t begin = pos_;
    if (consume('-')) {
    }
    if (pos_ >= text_.size() || !(text_[pos_] >= '0' && text_[pos_] <= '9')) error("invalid value");
    if (text_[pos_] == '0' && pos_ + 1 < text_.size() && text_[pos_ + 1] >= '0' && text_[pos_ + 1] <= '9') {
      error("a number with a leading zero");
    }
    bool integral = true;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    if (consume('.')) {
      integral = false;
      if (pos_ >= text_.size() || !(text_[pos_] >= '0' && text_[pos_] <= '9')) error("a digit must follow '.'");
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (!consume('+')) consume('-');
      if (pos_ >= text_.size() || !(text_[pos_] >= '0' && text_[pos_] <= '9')) error("a digit must follow the exponent");
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    }
    const char* first = text_.data() + begin;
    const char* last = text_.data() + pos_;
    if (integral) {
      std::int64_t i = 0;
      if (auto [p, ec] = std::from_chars(first, last, i); ec == std::errc() && p == last) return value(i);
    }
    double d = 0.0;
    auto [p, ec] = std::from_chars(first, last, d);
    if (ec != std::errc() || p != last || !std::isfinite(d)) {
      pos_ = begin;
      error("a number out of range");
    }
    return value(d);
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace detail

inline value parse(std::string_view text) { return detail::parser(text).parse_document(); }

// Appends `s` as a JSON string literal. Valid UTF-8 passes through; control characters and
// bytes that are not valid UTF-8 are escaped (the latter as \u00XX of the byte value).
inline void write_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      default: break;
    }
    std::size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool valid = length != 0 && i + length <= s.size();
    for (std::size_t k = 1; valid && k < length; ++k) valid = (static_cast<unsigned char>(s[i + k]) >> 6) == 0x2;
    if (c < 0x20 || !valid) {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 0xF];
      continue;
    }
    out.append(s.substr(i, length));
    i += length - 1;
  }
  out += '"';
}

namespace detail {
inline void dump(std::string& out, const value& v, int indent, int level) {
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<std::size_t>(indent * lvl), ' ');
  };
  if (v.is_null()) {
    out += "null";
  } else if (v.is_bool()) {
    out += v.as_bool() ? "true" : "false";
  } else if (v.is_int()) {
    out += std::to_string(v.as_int());
  } else if (v.is_number()) {
    const double d = v.as_double();
    if (!std::isfinite(d)) {
      out += "null";
    } else {
      char buffer[32];
      auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, d);
      out.append(buffer, end);
    }
  } else if (v.is_string()) {
    write_string(out, v.as_string());
  } else if (v.is_array()) {
    out += '[';
    bool first = true;
    for (const auto& item : v.as_array()) {
      if (!first) out += ',';
      first = false;
      newline(level + 1);
      dump(out, item, indent, level + 1);
    }
    if (!first) newline(level);
    out += ']';
  } else {
    out += '{';
    bool first = true;
    for (const auto& [key, item] : v.as_object()) {
      if (!first) out += ',';
      first = false;
      newline(level + 1);
      write_string(out, key);
      out += indent < 0 ? ":" : ": ";
      dump(out, item, indent, level + 1);
    }
    if (!first) newline(level);
    out += '}';
  }
}
}  // namespace detail

// Compact by default; indent >= 0 pretty-prints.
inline std::string dump(const value& v, int indent = -1) {
  std::string out;
  detail::dump(out, v, indent, 0);
  return out;
}

}  // namespace chorus::inline CHORUS_ABI::json
