// chorus — grammars for constrained decoding: a context-free grammar over Unicode code points
// (plus special tokens), built in code (grammar_builder) or read from a small GBNF-like text
// form (parse_grammar; docs/structured-output.md), and flattened into the element array that
// the token-mask constraint (sample/grammar_constraint.hpp) walks.
//
// A grammar is a list of rules; a rule is a list of alternatives; an alternative is a sequence
// of symbols, each one of
//   chars    a set of code points (char_class) repeated min..max times (max may be unbounded)
//   rule     a rule, repeated min..max times (a repetition with counts: `item{0,5}` does not
//            copy `item` five times, and `item*` does not grow the parser's stack)
//   special  a special token named by its text (e.g. "[TOOL_CALLS]"): the vocabulary's control
//            token of that text when it has one, else the text itself as bytes
// Literal strings are sequences of one-code-point classes.
//
// The rules a grammar must follow (checked by grammar_builder::build, errors name the rule):
// every rule referenced is defined, a root is given, no rule is left-recursive (A ::= A "x"),
// and repetition bounds are ordered (min <= max).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"

namespace chorus::inline CHORUS_ABI::sample {

inline constexpr std::uint32_t unbounded = std::numeric_limits<std::uint32_t>::max();
inline constexpr char32_t max_code_point = 0x10FFFF;

// A set of code points as sorted, disjoint, non-adjacent inclusive ranges. Surrogates
// (U+D800..U+DFFF) are never members: they are not characters and UTF-8 cannot carry them.
class char_class {
 public:
  using range = std::pair<char32_t, char32_t>;

  char_class() = default;
  static char_class of(char32_t c) { return between(c, c); }
  static char_class between(char32_t lo, char32_t hi) {
    char_class c;
    c.add(lo, hi);
    return c;
  }
  static char_class any() { return between(0, max_code_point); }

  void add(char32_t lo, char32_t hi) {
    if (lo > hi) std::swap(lo, hi);
    if (hi > max_code_point) hi = max_code_point;
    if (lo > max_code_point) return;
    ranges_.emplace_back(lo, hi);
    normalise();
  }
  void add(const char_class& other) {
    ranges_.insert(ranges_.end(), other.ranges_.begin(), other.ranges_.end());
    normalise();
  }
  char_class negated() const {
    char_class out;
    char32_t next = 0;
    for (const auto& [lo, hi] : ranges_) {
      if (lo > next) out.ranges_.emplace_back(next, lo - 1);
      next = hi + 1;
    }
    if (next <= max_code_point) out.ranges_.emplace_back(next, max_code_point);
    out.normalise();
    return out;
  }

  bool empty() const noexcept { return ranges_.empty(); }
  const std::vector<range>& ranges() const noexcept { return ranges_; }
  bool contains(char32_t c) const noexcept {
    if (c < 128) return (ascii_[c >> 6] >> (c & 63)) & 1u;
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), c, [](char32_t v, const range& r) { return v < r.first; });
    return it != ranges_.begin() && std::prev(it)->second >= c;
  }
  // Whether some member lies in [lo, hi].
  bool intersects(char32_t lo, char32_t hi) const noexcept {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), hi, [](char32_t v, const range& r) { return v < r.first; });
    return it != ranges_.begin() && std::prev(it)->second >= lo;
  }
  // Whether every member of `other` is a member of this class.
  bool includes(const char_class& other) const noexcept {
    for (const auto& [lo, hi] : other.ranges_) {
      auto it = std::upper_bound(ranges_.begin(), ranges_.end(), lo, [](char32_t v, const range& r) { return v < r.first; });
      if (it == ranges_.begin() || std::prev(it)->second < hi) return false;
    }
    return true;
  }
  std::size_t count() const noexcept {
    std::size_t n = 0;
    for (const auto& [lo, hi] : ranges_) n += hi - lo + 1;
    return n;
  }
  friend bool operator==(const char_class& a, const char_class& b) noexcept { return a.ranges_ == b.ranges_; }

 private:
  void normalise() {
    // drop the surrogates, sort, merge overlapping and adjacent ranges
    std::vector<range> split;
    split.reserve(ranges_.size() + 1);
    for (const auto& [lo, hi] : ranges_) {
      if (hi < 0xD800 || lo > 0xDFFF) {
        split.emplace_back(lo, hi);
        continue;
      }
      if (lo < 0xD800) split.emplace_back(lo, 0xD7FF);
      if (hi > 0xDFFF) split.emplace_back(0xE000, hi);
    }
    std::sort(split.begin(), split.end());
    ranges_.clear();
    for (const auto& r : split) {
      if (!ranges_.empty() && r.first <= ranges_.back().second + 1) {
        ranges_.back().second = std::max(ranges_.back().second, r.second);
      } else {
        ranges_.push_back(r);
      }
    }
    ascii_[0] = ascii_[1] = 0;
    for (const auto& [lo, hi] : ranges_) {
      for (char32_t c = lo; c <= hi && c < 128; ++c) ascii_[c >> 6] |= std::uint64_t{1} << (c & 63);
    }
  }

  std::vector<range> ranges_;
  std::uint64_t ascii_[2] = {0, 0};
};

// The characters of JSON string content that need no escape: anything but '"', '\\' and the
// control characters U+0000..U+001F.
inline char_class json_string_chars() {
  char_class c;
  c.add(0, 0x1F);
  c.add('"', '"');
  c.add('\\', '\\');
  return c.negated();
}

enum class element_kind : std::uint8_t { chars, rule, special, end };

// One flattened symbol. Alternatives are runs of elements closed by an `end` element.
struct element {
  element_kind kind = element_kind::end;
  bool sole = false;          // the only symbol of its alternative (the constraint's string fast path)
  std::uint32_t index = 0;    // chars: class; rule: rule; special: special token; end: unused
  std::uint32_t min = 1;      // repetition bounds (chars, rule)
  std::uint32_t max = 1;      // `unbounded` for no upper bound
  std::uint32_t owner = 0;    // the rule this element belongs to
};

// A symbol as the builder takes it.
struct symbol {
  element_kind kind = element_kind::chars;
  std::uint32_t index = 0;
  std::uint32_t min = 1;
  std::uint32_t max = 1;
};
using sequence = std::vector<symbol>;

// An immutable, validated grammar. Cheap to share (std::shared_ptr<const grammar>) between the
// constraints of several generations.
class grammar {
 public:
  struct rule_info {
    std::string name;
    std::vector<std::uint32_t> alternatives;  // start offsets into elements()
    bool nullable = false;                    // can match the empty string
  };

  const std::vector<element>& elements() const noexcept { return elements_; }
  const std::vector<rule_info>& rules() const noexcept { return rules_; }
  const std::vector<char_class>& classes() const noexcept { return classes_; }
  const std::vector<std::string>& specials() const noexcept { return specials_; }
  // For special token k, the rule that spells its text as characters: what the constraint
  // matches when the vocabulary has no control token of that text.
  std::uint32_t special_fallback(std::uint32_t k) const noexcept { return special_fallbacks_[k]; }
  std::uint32_t root() const noexcept { return root_; }

  // The grammar in the text form parse_grammar reads (rules in definition order, root first).
  std::string to_text() const;

 private:
  friend class grammar_builder;
  std::vector<element> elements_;
  std::vector<rule_info> rules_;
  std::vector<char_class> classes_;
  std::vector<std::string> specials_;
  std::vector<std::uint32_t> special_fallbacks_;
  std::uint32_t root_ = 0;
};

class grammar_builder {
 public:
  // A new rule, named `name` (made unique with a numeric suffix when taken).
  std::uint32_t add_rule(std::string_view name) {
    std::string unique(name.empty() ? "rule" : name);
    if (names_taken(unique)) {
      for (std::size_t n = 1;; ++n) {
        std::string candidate = unique + "-" + std::to_string(n);
        if (!names_taken(candidate)) {
          unique = std::move(candidate);
          break;
        }
      }
    }
    rules_.push_back({std::move(unique), {}, false});
    return static_cast<std::uint32_t>(rules_.size() - 1);
  }
  // The rule named `name`, declared on first use (for grammars whose text refers to rules
  // before defining them).
  std::uint32_t rule_named(std::string_view name) {
    for (std::size_t i = 0; i < rules_.size(); ++i) {
      if (rules_[i].name == name) return static_cast<std::uint32_t>(i);
    }
    rules_.push_back({std::string(name), {}, false});
    return static_cast<std::uint32_t>(rules_.size() - 1);
  }
  const std::string& rule_name(std::uint32_t id) const { return rules_.at(id).name; }
  bool defined(std::uint32_t id) const { return rules_.at(id).defined; }
  std::size_t rule_count() const noexcept { return rules_.size(); }

  void define(std::uint32_t id, std::vector<sequence> alternatives) {
    auto& r = rules_.at(id);
    if (r.defined) fail(errc::invalid_argument, "grammar: rule '", r.name, "' is defined twice");
    if (alternatives.empty()) fail(errc::invalid_argument, "grammar: rule '", r.name, "' has no alternative");
    r.alternatives = std::move(alternatives);
    r.defined = true;
  }

  symbol chars(const char_class& c, std::uint32_t min = 1, std::uint32_t max = 1) {
    if (c.empty()) fail(errc::invalid_argument, "grammar: an empty character class matches nothing");
    for (std::size_t i = 0; i < classes_.size(); ++i) {
      if (classes_[i] == c) return {element_kind::chars, static_cast<std::uint32_t>(i), min, max};
    }
    classes_.push_back(c);
    return {element_kind::chars, static_cast<std::uint32_t>(classes_.size() - 1), min, max};
  }
  symbol ref(std::uint32_t rule, std::uint32_t min = 1, std::uint32_t max = 1) const {
    if (rule >= rules_.size()) fail(errc::invalid_argument, "grammar: reference to rule ", rule, ", which does not exist");
    return {element_kind::rule, rule, min, max};
  }
  symbol special(std::string_view text) {
    if (text.empty()) fail(errc::invalid_argument, "grammar: a special token needs its text");
    for (std::size_t i = 0; i < specials_.size(); ++i) {
      if (specials_[i] == text) return {element_kind::special, static_cast<std::uint32_t>(i), 1, 1};
    }
    specials_.emplace_back(text);
    return {element_kind::special, static_cast<std::uint32_t>(specials_.size() - 1), 1, 1};
  }
  // The code points of a UTF-8 literal, one symbol each (invalid UTF-8 is an error).
  sequence literal(std::string_view utf8);
  // Appends `tail` to `head`.
  static void append(sequence& head, const sequence& tail) { head.insert(head.end(), tail.begin(), tail.end()); }

  // Validates and flattens. The builder can be reused afterwards only for reading names.
  grammar build(std::uint32_t root) const;

 private:
  struct pending_rule {
    std::string name;
    std::vector<sequence> alternatives;
    bool defined = false;
  };
  bool names_taken(const std::string& name) const {
    return std::any_of(rules_.begin(), rules_.end(), [&](const pending_rule& r) { return r.name == name; });
  }
  std::vector<pending_rule> rules_;
  std::vector<char_class> classes_;
  std::vector<std::string> specials_;
};

namespace detail {

// Decodes one strict UTF-8 code point at `pos` (advancing it), or returns -1 for an invalid
// sequence (overlong, surrogate, out of range, truncated).
inline std::int32_t decode_utf8_strict(std::string_view s, std::size_t& pos) noexcept {
  const auto b0 = static_cast<std::uint8_t>(s[pos]);
  std::size_t len;
  std::uint32_t cp;
  if (b0 < 0x80) {
    ++pos;
    return b0;
  } else if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    return -1;
  }
  if (pos + len > s.size()) return -1;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<std::uint8_t>(s[pos + k]);
    if ((b >> 6) != 2) return -1;
    cp = (cp << 6) | (b & 0x3F);
  }
  static constexpr std::uint32_t minimum[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < minimum[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  pos += len;
  return static_cast<std::int32_t>(cp);
}

inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// A code point as the text form writes it inside "..." or [...].
inline void write_escaped(std::string& out, char32_t c, bool in_class) {
  switch (c) {
    case '\n': out += "\\n"; return;
    case '\r': out += "\\r"; return;
    case '\t': out += "\\t"; return;
    case '\\': out += "\\\\"; return;
    case '"':
      if (!in_class) {
        out += "\\\"";
        return;
      }
      break;
    case ']':
    case '-':
    case '^':
      if (in_class) {
        out += '\\';
        out += static_cast<char>(c);
        return;
      }
      break;
    default: break;
  }
  if (c < 0x20 || c == 0x7F) {
    static constexpr char hex[] = "0123456789ABCDEF";
    out += "\\x";
    out += hex[(c >> 4) & 15];
    out += hex[c & 15];
    return;
  }
  append_utf8(out, c);
}

}  // namespace detail

inline sequence grammar_builder::literal(std::string_view utf8) {
  sequence out;
  for (std::size_t pos = 0; pos < utf8.size();) {
    const std::int32_t cp = detail::decode_utf8_strict(utf8, pos);
    if (cp < 0) fail(errc::invalid_argument, "grammar: literal '", utf8, "' is not valid UTF-8");
    out.push_back(chars(char_class::of(static_cast<char32_t>(cp))));
  }
  return out;
}

inline grammar grammar_builder::build(std::uint32_t root) const {
  if (root >= rules_.size()) fail(errc::invalid_argument, "grammar: the root rule does not exist");
  for (const auto& r : rules_) {
    if (!r.defined) fail(errc::invalid_argument, "grammar: rule '", r.name, "' is used but never defined");
    for (const auto& alt : r.alternatives) {
      for (const auto& s : alt) {
        if (s.min > s.max) fail(errc::invalid_argument, "grammar: rule '", r.name, "' repeats a symbol {", s.min, ",", s.max, "} (min > max)");
        if (s.kind == element_kind::rule && s.index >= rules_.size()) fail(errc::invalid_argument, "grammar: rule '", r.name, "' refers to a missing rule");
      }
    }
  }
  const std::size_t n = rules_.size();
  // Nullable rules (fixed point): a rule is nullable when some alternative has only symbols
  // that can match nothing.
  std::vector<char> nullable(n, 0);
  auto symbol_nullable = [&](const symbol& s) {
    if (s.max == 0 || s.min == 0) return true;
    return s.kind == element_kind::rule && nullable[s.index];
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (nullable[i]) continue;
      for (const auto& alt : rules_[i].alternatives) {
        if (std::all_of(alt.begin(), alt.end(), symbol_nullable)) {
          nullable[i] = 1;
          changed = true;
          break;
        }
      }
    }
  }
  // Left recursion: rule A reaches A through rules that can start an alternative (only nullable
  // symbols before them). Depth-first search with colours over that graph.
  std::vector<std::vector<std::uint32_t>> starts(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (const auto& alt : rules_[i].alternatives) {
      for (const auto& s : alt) {
        if (s.max == 0) continue;
        if (s.kind == element_kind::rule) starts[i].push_back(s.index);
        if (!symbol_nullable(s)) break;
      }
    }
  }
  std::vector<std::uint8_t> colour(n, 0);
  std::vector<std::uint32_t> path;
  auto visit = [&](auto&& self, std::uint32_t r) -> void {
    colour[r] = 1;
    path.push_back(r);
    for (const auto next : starts[r]) {
      if (colour[next] == 1) {
        std::string cycle;
        bool in = false;
        for (const auto p : path) {
          if (p == next) in = true;
          if (in) cycle += rules_[p].name + " -> ";
        }
        cycle += rules_[next].name;
        fail(errc::invalid_argument, "grammar: rule '", rules_[next].name, "' is left-recursive (", cycle,
             "); write the repetition with * or + instead");
      }
      if (colour[next] == 0) self(self, next);
    }
    path.pop_back();
    colour[r] = 2;
  };
  for (std::uint32_t r = 0; r < n; ++r) {
    if (colour[r] == 0) visit(visit, r);
  }

  grammar g;
  g.classes_ = classes_;
  g.specials_ = specials_;
  g.root_ = root;
  g.rules_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto& out = g.rules_[i];
    out.name = rules_[i].name;
    out.nullable = nullable[i] != 0;
    for (const auto& alt : rules_[i].alternatives) {
      out.alternatives.push_back(static_cast<std::uint32_t>(g.elements_.size()));
      std::size_t kept = 0;
      for (const auto& s : alt) {
        if (s.max == 0) continue;  // x{0}: matches nothing, contributes nothing
        element e;
        e.kind = s.kind;
        e.index = s.index;
        e.min = s.kind == element_kind::special ? 1 : s.min;
        e.max = s.kind == element_kind::special ? 1 : s.max;
        e.owner = static_cast<std::uint32_t>(i);
        g.elements_.push_back(e);
        ++kept;
      }
      if (kept == 1) g.elements_.back().sole = true;
      element end;
      end.kind = element_kind::end;
      end.owner = static_cast<std::uint32_t>(i);
      g.elements_.push_back(end);
    }
  }
  // One rule per special token that spells its text, for vocabularies without the token.
  for (std::size_t k = 0; k < g.specials_.size(); ++k) {
    const std::string_view text = g.specials_[k];
    const auto id = static_cast<std::uint32_t>(g.rules_.size());
    g.rules_.push_back({"special-" + std::to_string(k), {static_cast<std::uint32_t>(g.elements_.size())}, false});
    for (std::size_t pos = 0; pos < text.size();) {
      const std::int32_t cp = detail::decode_utf8_strict(text, pos);
      if (cp < 0) fail(errc::invalid_argument, "grammar: special token text '", text, "' is not valid UTF-8");
      const auto c = char_class::of(static_cast<char32_t>(cp));
      auto it = std::find(g.classes_.begin(), g.classes_.end(), c);
      if (it == g.classes_.end()) it = g.classes_.insert(g.classes_.end(), c);
      element e;
      e.kind = element_kind::chars;
      e.index = static_cast<std::uint32_t>(it - g.classes_.begin());
      e.owner = id;
      g.elements_.push_back(e);
    }
    element end;
    end.kind = element_kind::end;
    end.owner = id;
    g.elements_.push_back(end);
    g.special_fallbacks_.push_back(id);
  }
  return g;
}

inline std::string grammar::to_text() const {
  std::string out;
  auto write_rule = [&](std::uint32_t r) {
    const auto& rule = rules_[r];
    out += rule.name;
    out += " ::=";
    for (std::size_t a = 0; a < rule.alternatives.size(); ++a) {
      if (a > 0) out += " |";
      std::size_t pos = rule.alternatives[a];
      if (elements_[pos].kind == element_kind::end) out += " \"\"";
      auto single = [&](const element& e) {
        if (e.kind != element_kind::chars) return false;
        const auto& r = classes_[e.index].ranges();
        return r.size() == 1 && r[0].first == r[0].second;
      };
      for (; elements_[pos].kind != element_kind::end; ++pos) {
        const auto& e = elements_[pos];
        out += ' ';
        if (single(e) && e.min == 1 && e.max == 1) {
          // a run of single characters is written as one literal
          out += '"';
          for (; single(elements_[pos]) && elements_[pos].min == 1 && elements_[pos].max == 1; ++pos) {
            detail::write_escaped(out, classes_[elements_[pos].index].ranges()[0].first, false);
          }
          --pos;
          out += '"';
          continue;
        }
        switch (e.kind) {
          case element_kind::chars: {
            const auto& c = classes_[e.index];
            if (single(e)) {
              out += '"';
              detail::write_escaped(out, c.ranges()[0].first, false);
              out += '"';
            } else {
              // the smaller of the class and its complement
              const auto complement = c.negated();
              const bool negate = complement.ranges().size() < c.ranges().size();
              out += negate ? "[^" : "[";
              for (const auto& [lo, hi] : (negate ? complement : c).ranges()) {
                detail::write_escaped(out, lo, true);
                if (hi != lo) {
                  if (hi > lo + 1) out += '-';
                  detail::write_escaped(out, hi, true);
                }
              }
              out += ']';
            }
            break;
          }
          case element_kind::rule: out += rules_[e.index].name; break;
          case element_kind::special: {
            out += "@\"";
            for (const char ch : specials_[e.index]) detail::write_escaped(out, static_cast<unsigned char>(ch), false);
            out += '"';
            break;
          }
          case element_kind::end: break;
        }
        if (e.kind == element_kind::special) continue;
        if (e.min == 1 && e.max == 1) continue;
        if (e.min == 0 && e.max == 1) out += '?';
        else if (e.min == 0 && e.max == unbounded) out += '*';
        else if (e.min == 1 && e.max == unbounded) out += '+';
        else if (e.max == unbounded) out += "{" + std::to_string(e.min) + ",}";
        else if (e.min == e.max) out += "{" + std::to_string(e.min) + "}";
        else out += "{" + std::to_string(e.min) + "," + std::to_string(e.max) + "}";
      }
    }
    out += '\n';
  };
  write_rule(root_);
  const std::size_t user_rules = rules_.size() - specials_.size();  // not the special-token spellings
  for (std::uint32_t r = 0; r < user_rules; ++r) {
    if (r != root_) write_rule(r);
  }
  return out;
}

// ---- the text form ------------------------------------------------------------------------

namespace detail {

class grammar_text_parser {
 public:
  explicit grammar_text_parser(std::string_view text) : text_(text) {}

  grammar parse() {
    skip_space();
    if (at_end()) error("the grammar is empty (it needs at least 'root ::= ...')");
    while (!at_end()) {
      const std::string name = parse_name();
      skip_space();
      if (!consume("::=")) error("expected '::=' after the rule name '" + name + "'");
      const std::uint32_t id = b_.rule_named(name);
      if (b_.defined(id)) error("rule '" + name + "' is defined twice");
      b_.define(id, parse_alternatives(name, 0));
      skip_space();
    }
    std::uint32_t root = 0;
    bool has_root = false;
    for (std::uint32_t i = 0; i < b_.rule_count(); ++i) {
      if (b_.rule_name(i) == "root") {
        root = i;
        has_root = true;
      }
    }
    if (!has_root) fail(errc::invalid_argument, "grammar: no rule named 'root' (the start symbol)");
    for (std::uint32_t i = 0; i < b_.rule_count(); ++i) {
      if (!b_.defined(i)) fail(errc::invalid_argument, "grammar: rule '", b_.rule_name(i), "' is used but never defined");
    }
    return b_.build(root);
  }

 private:
  static constexpr int max_nesting = 64;

  [[noreturn]] void error(const std::string& what) const {
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    fail(errc::invalid_argument, "grammar: line ", line, ", column ", column, ": ", what);
  }
  bool at_end() const noexcept { return pos_ >= text_.size(); }
  char peek(std::size_t ahead = 0) const noexcept { return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0'; }
  bool consume(std::string_view s) {
    if (text_.substr(pos_, s.size()) == s) {
      pos_ += s.size();
      return true;
    }
    return false;
  }
  void skip_space() {
    while (!at_end()) {
      const char c = peek();
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (!at_end() && peek() != '\n') ++pos_;
      } else {
        break;
      }
    }
  }
  static bool name_start(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
  static bool name_char(char c) noexcept { return name_start(c) || (c >= '0' && c <= '9') || c == '-'; }
  std::string parse_name() {
    if (!name_start(peek())) error("expected a rule name");
    const std::size_t begin = pos_;
    while (!at_end() && name_char(peek())) ++pos_;
    return std::string(text_.substr(begin, pos_ - begin));
  }
  // Whether a rule definition starts here (name, spaces, '::='): ends the previous rule.
  bool rule_starts_here() const {
    std::size_t p = pos_;
    if (p >= text_.size() || !name_start(text_[p])) return false;
    while (p < text_.size() && name_char(text_[p])) ++p;
    while (p < text_.size() && (text_[p] == ' ' || text_[p] == '\t' || text_[p] == '\n' || text_[p] == '\r')) ++p;
    return text_.substr(p, 3) == "::=";
  }

  std::vector<sequence> parse_alternatives(const std::string& rule, int depth) {
    if (depth > max_nesting) error("parentheses nested deeper than 64");
    std::vector<sequence> alts;
    alts.push_back(parse_sequence(rule, depth));
    for (;;) {
      skip_space();
      if (peek() != '|') break;
      ++pos_;
      alts.push_back(parse_sequence(rule, depth));
    }
    return alts;
  }

  sequence parse_sequence(const std::string& rule, int depth) {
    sequence seq;
    for (;;) {
      skip_space();
      if (at_end()) break;
      const char c = peek();
      if (c == '|' || c == ')') break;
      if (name_start(c) && rule_starts_here()) break;
      const std::size_t item_begin = seq.size();
      bool single = true;  // the item is one symbol that a quantifier may apply to directly
      if (c == '"') {
        const std::string lit = parse_quoted();
        const sequence s = b_.literal(lit);
        single = s.size() == 1;
        grammar_builder::append(seq, s);
      } else if (c == '[') {
        seq.push_back(b_.chars(parse_class()));
      } else if (c == '.') {
        ++pos_;
        seq.push_back(b_.chars(char_class::any()));
      } else if (c == '@') {
        ++pos_;
        if (peek() != '"') error("expected a quoted token text after '@'");
        seq.push_back(b_.special(parse_quoted()));
      } else if (c == '(') {
        ++pos_;
        auto alts = parse_alternatives(rule, depth + 1);
        skip_space();
        if (peek() != ')') error("expected ')'");
        ++pos_;
        if (alts.size() == 1 && !has_quantifier()) {
          grammar_builder::append(seq, alts[0]);
          continue;
        }
        const std::uint32_t group = b_.add_rule(rule + "-group");
        b_.define(group, std::move(alts));
        seq.push_back(b_.ref(group));
      } else if (name_start(c)) {
        seq.push_back(b_.ref(b_.rule_named(parse_name())));
      } else {
        error(std::string("unexpected character '") + c + "'");
      }
      if (!has_quantifier()) continue;
      auto [min, max] = parse_quantifier();
      if (seq.size() == item_begin) continue;  // "" repeated: still nothing
      if (!single || seq.size() - item_begin != 1) {
        // a multi-symbol literal: repeat it through a rule of its own
        sequence body(seq.begin() + static_cast<std::ptrdiff_t>(item_begin), seq.end());
        seq.resize(item_begin);
        const std::uint32_t group = b_.add_rule(rule + "-literal");
        b_.define(group, {std::move(body)});
        seq.push_back(b_.ref(group));
      }
      auto& s = seq.back();
      if (s.kind == element_kind::special) error("a special token cannot be repeated directly; wrap it in ( )");
      if (s.min != 1 || s.max != 1) {
        // already repeated (x*?): nest it
        const std::uint32_t group = b_.add_rule(rule + "-repeat");
        b_.define(group, {sequence{s}});
        s = b_.ref(group);
      }
      s.min = min;
      s.max = max;
    }
    return seq;
  }

  bool has_quantifier() {
    const char c = peek();
    return c == '*' || c == '+' || c == '?' || (c == '{' && (std::isdigit(static_cast<unsigned char>(peek(1))) || peek(1) == ','));
  }
  std::pair<std::uint32_t, std::uint32_t> parse_quantifier() {
    const char c = peek();
    ++pos_;
    if (c == '*') return {0, unbounded};
    if (c == '+') return {1, unbounded};
    if (c == '?') return {0, 1};
    auto number = [&]() -> std::uint32_t {
      if (!std::isdigit(static_cast<unsigned char>(peek()))) error("expected a number in the repetition {m,n}");
      std::uint64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        v = v * 10 + static_cast<std::uint64_t>(peek() - '0');
        if (v > 100000) error("repetition counts above 100000 are not supported");
        ++pos_;
      }
      return static_cast<std::uint32_t>(v);
    };
    std::uint32_t min = 0, max = 0;
    if (peek() == ',') {
      ++pos_;
      min = 0;
      max = number();
    } else {
      min = number();
      if (peek() == ',') {
        ++pos_;
        max = peek() == '}' ? unbounded : number();
      } else {
        max = min;
      }
    }
    if (peek() != '}') error("expected '}' to close the repetition");
    ++pos_;
    if (min > max) error("repetition {" + std::to_string(min) + "," + std::to_string(max) + "} has min > max");
    return {min, max};
  }

  std::uint32_t hex_digits(int n) {
    std::uint32_t v = 0;
    for (int i = 0; i < n; ++i) {
      const char h = peek();
      int d;
      if (h >= '0' && h <= '9') d = h - '0';
      else if (h >= 'a' && h <= 'f') d = h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') d = h - 'A' + 10;
      else error("expected a hexadecimal digit in an escape");
      v = v * 16 + static_cast<std::uint32_t>(d);
      ++pos_;
    }
    return v;
  }
  // One character of a literal or class, escapes decoded; returns a code point.
  char32_t parse_char() {
    if (at_end()) error("unterminated literal or class");
    const char c = peek();
    if (c == '\\') {
      ++pos_;
      const char e = peek();
      ++pos_;
      switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case '0': return 0;
        case '\\': return '\\';
        case '"': return '"';
        case '\'': return '\'';
        case '[': return '[';
        case ']': return ']';
        case '-': return '-';
        case '^': return '^';
        case '/': return '/';
        case 'x': return hex_digits(2);
        case 'u': {
          const auto v = hex_digits(4);
          if (v >= 0xD800 && v <= 0xDFFF) error("\\u escape of a surrogate");
          return v;
        }
        case 'U': {
          const auto v = hex_digits(8);
          if (v > max_code_point || (v >= 0xD800 && v <= 0xDFFF)) error("\\U escape outside Unicode");
          return v;
        }
        default: error(std::string("unknown escape '\\") + e + "'");
      }
    }
    std::size_t p = pos_;
    const std::int32_t cp = decode_utf8_strict(text_, p);
    if (cp < 0) error("invalid UTF-8");
    pos_ = p;
    return static_cast<char32_t>(cp);
  }
  std::string parse_quoted() {
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) error("unterminated string literal");
      if (peek() == '"') {
        ++pos_;
        return out;
      }
      if (peek() == '\n') error("newline inside a string literal (write \\n)");
      append_utf8(out, parse_char());
    }
  }
  char_class parse_class() {
    ++pos_;  // '['
    bool negate = false;
    if (peek() == '^') {
      negate = true;
      ++pos_;
    }
    char_class c;
    bool any = false;
    while (peek() != ']') {
      if (at_end()) error("unterminated character class");
      const char32_t lo = parse_char();
      char32_t hi = lo;
      if (peek() == '-' && peek(1) != ']') {
        ++pos_;
        hi = parse_char();
        if (hi < lo) error("character range with its ends reversed");
      }
      c.add(lo, hi);
      any = true;
    }
    ++pos_;
    if (!any && !negate) error("empty character class []");
    if (negate) c = c.negated();
    if (c.empty()) error("the character class matches nothing");
    return c;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  grammar_builder b_;
};

}  // namespace detail

// Reads the GBNF-like text form (docs/structured-output.md). Errors name the line and column.
inline grammar parse_grammar(std::string_view text) { return detail::grammar_text_parser(text).parse(); }

}  // namespace chorus::inline CHORUS_ABI::sample
