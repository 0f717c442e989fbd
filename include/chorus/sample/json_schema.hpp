// chorus — JSON Schema to grammar (sample/grammar.hpp), and a validator for the same subset.
//
// The subset (docs/structured-output.md): type (one or a list), properties / required
// (properties are written in the schema's order; the ones not required may be left out),
// additionalProperties (false, also the default: no other keys), items / minItems / maxItems,
// minLength / maxLength (code points; an escape counts as one), minimum / maximum (integers:
// any bounds; numbers: integer bounds, and then no exponent), enum / const (any JSON values,
// checked against the rest of the schema), anyOf, $ref to a JSON pointer within the same
// document ("#/$defs/x", "#/definitions/x", "#/properties/a", recursion allowed), and the
// empty schema (any JSON value). Annotations (title, description, default, examples, $comment,
// $schema, deprecated, readOnly, writeOnly, $defs, definitions) are ignored. Any other keyword
// (pattern, format, oneOf, allOf, not, exclusiveMinimum, prefixItems, ...) is refused with
// errc::unsupported naming the keyword and its JSON pointer: a constraint that is silently
// dropped would let through outputs the caller believes impossible.
//
// The output is JSON without whitespace except, by default, an optional single space after
// ',' and ':' (json_separators::flexible; compact: none; spaced: always one, as Python's
// json.dumps writes). Strings are written with raw UTF-8 or escapes (\uXXXX never a lone
// surrogate, so that every output parses).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/sample/grammar.hpp"

namespace chorus::inline CHORUS_ABI::sample {

using ordered_json = nlohmann::ordered_json;

enum class json_separators { flexible, compact, spaced };

struct json_schema_options {
  json_separators separators = json_separators::flexible;
  // Digits of a number's integer and fraction parts (0: unbounded). A bound keeps a model that
  // never stops writing digits inside a finite output.
  std::uint32_t max_integer_digits = 0;
  std::uint32_t max_fraction_digits = 0;
  std::uint32_t max_schema_depth = 64;  // nesting of the schema document itself
};

namespace detail {

inline std::string pointer_token(std::string_view key) {
  std::string out;
  for (const char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

inline bool is_annotation(std::string_view key) {
  static constexpr std::string_view names[] = {"title",    "description", "default",   "examples", "$comment", "$schema",
                                               "deprecated", "readOnly",  "writeOnly", "$defs",    "definitions", "$id"};
  for (const auto n : names) {
    if (key == n) return true;
  }
  return false;
}

// The family of a type-specific keyword ("" for the others).
inline std::string_view keyword_family(std::string_view key) {
  if (key == "properties" || key == "required" || key == "additionalProperties") return "object";
  if (key == "items" || key == "minItems" || key == "maxItems") return "array";
  if (key == "minLength" || key == "maxLength") return "string";
  if (key == "minimum" || key == "maximum") return "number";
  return "";
}

inline const ordered_json* resolve_pointer(const ordered_json& document, std::string_view ref) {
  if (ref.empty() || ref[0] != '#') return nullptr;
  std::string_view rest = ref.substr(1);
  const ordered_json* at = &document;
  while (!rest.empty()) {
    if (rest[0] != '/') return nullptr;
    rest.remove_prefix(1);
    const auto slash = rest.find('/');
    std::string token;
    const std::string_view raw = rest.substr(0, slash);
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '~' && i + 1 < raw.size() && (raw[i + 1] == '0' || raw[i + 1] == '1')) {
        token += raw[i + 1] == '0' ? '~' : '/';
        ++i;
      } else if (raw[i] == '%' && i + 2 < raw.size()) {  // URI fragment escapes, e.g. %25
        token += static_cast<char>(std::stoi(std::string(raw.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        token += raw[i];
      }
    }
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
    if (at->is_object()) {
      const auto it = at->find(token);
      if (it == at->end()) return nullptr;
      at = &*it;
    } else if (at->is_array()) {
      std::size_t index = 0;
      for (const char c : token) {
        if (c < '0' || c > '9') return nullptr;
        index = index * 10 + static_cast<std::size_t>(c - '0');
      }
      if (token.empty() || index >= at->size()) return nullptr;
      at = &(*at)[index];
    } else {
      return nullptr;
    }
  }
  return at;
}

inline bool json_type_is(const ordered_json& v, std::string_view type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  if (type == "number") return v.is_number();
  if (type == "integer") {
    if (v.is_number_integer()) return true;
    if (v.is_number_float()) {
      const double d = v.get<double>();
      return std::isfinite(d) && d == std::floor(d);
    }
    return false;
  }
  return false;
}

inline std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s) n += (static_cast<std::uint8_t>(c) >> 6) != 2;
  return n;
}

}  // namespace detail

// Validates `value` against `schema` (the subset above; the same refusals for keywords outside
// it). Returns the first violation ("/items/2: 7 is above the maximum 5"), or nothing.
class json_schema_validator {
 public:
  explicit json_schema_validator(const ordered_json& schema) : root_(schema) {}

  std::optional<std::string> check(const ordered_json& value) const { return check(root_, value, "#", "", 0); }

 private:
  std::optional<std::string> check(const ordered_json& schema, const ordered_json& value, const std::string& schema_ptr,
                                   const std::string& value_ptr, int depth) const {
    if (depth > 256) fail(errc::out_of_range, "json schema: validation nested deeper than 256 (a $ref cycle?) at ", schema_ptr);
    auto where = [&]() { return value_ptr.empty() ? std::string("/") : value_ptr; };
    if (schema.is_boolean()) {
      if (schema.get<bool>()) return std::nullopt;
      return where() + ": the schema 'false' accepts nothing";
    }
    if (!schema.is_object()) fail(errc::invalid_argument, "json schema: ", schema_ptr, " is not a schema (an object or a boolean)");
    for (const auto& [key, item] : schema.items()) {
      if (detail::is_annotation(key) || !detail::keyword_family(key).empty()) continue;
      if (key == "type" || key == "enum" || key == "const" || key == "anyOf" || key == "$ref") continue;
      fail(errc::unsupported, "json schema: keyword '", key, "' at ", schema_ptr, " is not supported");
    }
    if (const auto ref = schema.find("$ref"); ref != schema.end()) {
      const auto* target = ref->is_string() ? detail::resolve_pointer(root_, ref->get<std::string>()) : nullptr;
      if (!target) fail(errc::invalid_argument, "json schema: $ref at ", schema_ptr, " does not point into the schema");
      if (auto e = check(*target, value, ref->get<std::string>(), value_ptr, depth + 1)) return e;
    }
    if (const auto any = schema.find("anyOf"); any != schema.end()) {
      if (!any->is_array() || any->empty()) fail(errc::invalid_argument, "json schema: anyOf at ", schema_ptr, " must be a non-empty array");
      bool matched = false;
      std::string reasons;
      for (std::size_t i = 0; i < any->size() && !matched; ++i) {
        auto e = check((*any)[i], value, schema_ptr + "/anyOf/" + std::to_string(i), value_ptr, depth + 1);
        if (!e) matched = true;
        else reasons += (reasons.empty() ? "" : "; ") + *e;
      }
      if (!matched) return where() + ": matches no anyOf alternative (" + reasons + ")";
    }
    if (const auto c = schema.find("const"); c != schema.end() && *c != value) {
      return where() + ": " + value.dump() + " is not the const " + c->dump();
    }
    if (const auto e = schema.find("enum"); e != schema.end()) {
      if (!e->is_array()) fail(errc::invalid_argument, "json schema: enum at ", schema_ptr, " must be an array");
      if (std::find(e->begin(), e->end(), value) == e->end()) return where() + ": " + value.dump() + " is not one of the enum " + e->dump();
    }
    if (const auto t = schema.find("type"); t != schema.end()) {
      bool ok = false;
      if (t->is_string()) {
        ok = detail::json_type_is(value, t->get<std::string>());
      } else if (t->is_array()) {
        for (const auto& x : *t) ok = ok || (x.is_string() && detail::json_type_is(value, x.get<std::string>()));
      }
      if (!ok) return where() + ": " + value.dump() + " is not of type " + t->dump();
    }
    // keyword values of the wrong kind are the schema's mistake, named as such
    auto count = [&](const char* key) -> std::optional<std::uint64_t> {
      const auto m = schema.find(key);
      if (m == schema.end()) return std::nullopt;
      if (!m->is_number_integer() || m->get<std::int64_t>() < 0) fail(errc::invalid_argument, "json schema: ", key, " at ", schema_ptr, " must be a non-negative integer");
      return m->get<std::uint64_t>();
    };
    auto limit = [&](const char* key) -> std::optional<double> {
      const auto m = schema.find(key);
      if (m == schema.end()) return std::nullopt;
      if (!m->is_number()) fail(errc::invalid_argument, "json schema: ", key, " at ", schema_ptr, " must be a number");
      return m->get<double>();
    };
    const auto min_length = count("minLength"), max_length = count("maxLength"), min_items = count("minItems"), max_items = count("maxItems");
    const auto minimum = limit("minimum"), maximum = limit("maximum");
    if (value.is_string()) {
      const std::size_t n = detail::utf8_length(value.get_ref<const std::string&>());
      if (min_length && n < *min_length) {
        return where() + ": the string has " + std::to_string(n) + " characters, fewer than minLength " + std::to_string(*min_length);
      }
      if (max_length && n > *max_length) {
        return where() + ": the string has " + std::to_string(n) + " characters, more than maxLength " + std::to_string(*max_length);
      }
    }
    if (value.is_number()) {
      const double v = value.get<double>();
      if (minimum && v < *minimum) return where() + ": " + value.dump() + " is below the minimum " + schema["minimum"].dump();
      if (maximum && v > *maximum) return where() + ": " + value.dump() + " is above the maximum " + schema["maximum"].dump();
    }
    if (value.is_array()) {
      if (min_items && value.size() < *min_items) {
        return where() + ": " + std::to_string(value.size()) + " items, fewer than minItems " + std::to_string(*min_items);
      }
      if (max_items && value.size() > *max_items) {
        return where() + ": " + std::to_string(value.size()) + " items, more than maxItems " + std::to_string(*max_items);
      }
      if (const auto items = schema.find("items"); items != schema.end()) {
        for (std::size_t i = 0; i < value.size(); ++i) {
          if (auto e = check(*items, value[i], schema_ptr + "/items", value_ptr + "/" + std::to_string(i), depth + 1)) return e;
        }
      }
    }
    if (value.is_object()) {
      const auto props = schema.find("properties");
      bool typed_object = props != schema.end() || schema.contains("required") || schema.contains("additionalProperties");
      if (const auto t = schema.find("type"); t != schema.end()) {
        typed_object = typed_object || *t == "object" || (t->is_array() && std::find(t->begin(), t->end(), "object") != t->end());
      }
      if (const auto req = schema.find("required"); req != schema.end()) {
        if (!req->is_array()) fail(errc::invalid_argument, "json schema: required at ", schema_ptr, " must be an array of names");
        for (const auto& name : *req) {
          if (!name.is_string()) fail(errc::invalid_argument, "json schema: required at ", schema_ptr, " must be an array of names");
          if (!value.contains(name.get<std::string>())) return where() + ": the required property " + name.dump() + " is missing";
        }
      }
      if (props != schema.end() && !props->is_object()) fail(errc::invalid_argument, "json schema: properties at ", schema_ptr, " must be an object");
      for (const auto& [key, item] : value.items()) {
        const std::string at = value_ptr + "/" + detail::pointer_token(key);
        if (props != schema.end() && props->contains(key)) {
          if (auto e = check((*props)[key], item, schema_ptr + "/properties/" + detail::pointer_token(key), at, depth + 1)) return e;
        } else if (typed_object) {
          const auto extra = schema.find("additionalProperties");
          if (extra == schema.end() || *extra == false) return where() + ": property \"" + key + "\" is not allowed (additionalProperties false)";
        }
      }
    }
    return std::nullopt;
  }

  const ordered_json& root_;
};

// Compiles schemas into rules of a grammar_builder. One compiler per schema document (its $refs
// resolve within it); several documents can share a builder (the tool-call grammars do).
class json_schema_compiler {
 public:
  json_schema_compiler(grammar_builder& builder, const ordered_json& document, json_schema_options options = {},
                       std::string prefix = "")
      : b_(builder), document_(document), options_(options), prefix_(std::move(prefix)) {}

  // A rule matching the JSON texts of the values the schema accepts.
  std::uint32_t compile() { return value_rule(document_, "#", 0); }

  // Shared pieces other grammars reuse: the separators after ',' and ':' and a JSON string
  // rule for any string.
  sequence comma() { return seq_of({sym(','), ws_symbol()}); }
  sequence colon() { return seq_of({sym(':'), ws_symbol()}); }
  sequence ws() {
    if (options_.separators == json_separators::compact) return {};
    return {ws_symbol()};
  }
  std::uint32_t any_string() { return string_rule(0, unbounded); }
  // A JSON text equal to `value` (objects in its key order), with the separators' spacing.
  sequence literal_value(const ordered_json& value) {
    sequence out;
    write_literal(out, value);
    return out;
  }

 private:
  symbol sym(char32_t c) { return b_.chars(char_class::of(c)); }
  static sequence seq_of(std::initializer_list<symbol> items) { return sequence(items); }
  std::string name(std::string_view what) const { return prefix_.empty() ? std::string(what) : prefix_ + "-" + std::string(what); }

  // " "? (flexible), " " (spaced); compact writes no symbol (the callers check ws()).
  symbol ws_symbol() {
    if (options_.separators == json_separators::spaced) return sym(' ');
    if (options_.separators == json_separators::compact) return b_.chars(char_class::of(' '), 0, 0);
    return b_.chars(char_class::of(' '), 0, 1);
  }

  [[noreturn]] void unsupported(std::string_view keyword, const std::string& ptr, std::string_view why = "") const {
    fail(errc::unsupported, "json schema: keyword '", keyword, "' at ", ptr, " is not supported", why.empty() ? "" : " (", why,
         why.empty() ? "" : ")");
  }
  [[noreturn]] void invalid(const std::string& ptr, std::string_view what) const {
    fail(errc::invalid_argument, "json schema: ", ptr, ": ", what);
  }

  std::uint32_t value_rule(const ordered_json& schema, const std::string& ptr, std::uint32_t depth) {
    if (depth > options_.max_schema_depth) {
      fail(errc::out_of_range, "json schema: nested deeper than ", options_.max_schema_depth, " levels at ", ptr);
    }
    if (schema.is_boolean()) {
      if (!schema.get<bool>()) unsupported("false", ptr, "a schema that accepts nothing");
      return any_value_rule();
    }
    if (!schema.is_object()) invalid(ptr, "a schema must be an object or a boolean");

    // Refuse what the subset does not have, before anything is compiled.
    std::vector<std::string> families;
    bool has_ref = false, has_any_of = false, has_enum = false;
    for (const auto& [key, item] : schema.items()) {
      if (detail::is_annotation(key)) {
        if (key == "$id" && ptr != "#") unsupported(key, ptr, "only at the root of the document");
        continue;
      }
      const auto family = detail::keyword_family(key);
      if (!family.empty()) {
        if (std::find(families.begin(), families.end(), family) == families.end()) families.emplace_back(family);
        continue;
      }
      if (key == "type") continue;
      if (key == "$ref") has_ref = true;
      else if (key == "anyOf") has_any_of = true;
      else if (key == "enum" || key == "const") has_enum = true;
      else unsupported(key, ptr);
    }
    if (has_ref || has_any_of) {
      for (const auto& [key, item] : schema.items()) {
        if (detail::is_annotation(key) || key == "$ref" || key == "anyOf") continue;
        unsupported(key, ptr, has_ref ? "beside $ref" : "beside anyOf");
      }
      if (has_ref && has_any_of) unsupported("anyOf", ptr, "beside $ref");
    }
    if (has_ref) return ref_rule(schema["$ref"], ptr, depth);
    if (has_any_of) {
      const auto& alts = schema["anyOf"];
      if (!alts.is_array() || alts.empty()) invalid(ptr + "/anyOf", "anyOf must be a non-empty array of schemas");
      std::vector<sequence> out;
      for (std::size_t i = 0; i < alts.size(); ++i) out.push_back({b_.ref(value_rule(alts[i], ptr + "/anyOf/" + std::to_string(i), depth + 1))});
      const auto id = b_.add_rule(name("any-of"));
      b_.define(id, std::move(out));
      return id;
    }

    // The types the value may have.
    std::vector<std::string> types;
    if (const auto t = schema.find("type"); t != schema.end()) {
      auto add = [&](const ordered_json& x) {
        static constexpr std::string_view known[] = {"object", "array", "string", "number", "integer", "boolean", "null"};
        if (!x.is_string() || std::find(std::begin(known), std::end(known), x.get<std::string>()) == std::end(known)) {
          invalid(ptr + "/type", "unknown type " + x.dump());
        }
        if (std::find(types.begin(), types.end(), x.get<std::string>()) == types.end()) types.push_back(x.get<std::string>());
      };
      if (t->is_array()) {
        if (t->empty()) invalid(ptr + "/type", "an empty list of types");
        for (const auto& x : *t) add(x);
      } else {
        add(*t);
      }
      for (const auto& family : families) {
        const bool applies = std::any_of(types.begin(), types.end(), [&](const std::string& type) {
          return type == family || (family == "number" && type == "integer");
        });
        if (!applies) {
          std::string keyword;
          for (const auto& [key, item] : schema.items()) {
            if (detail::keyword_family(key) == family) keyword = key;
          }
          unsupported(keyword, ptr, "it applies to " + family + " values and the type is " + schema["type"].dump());
        }
      }
    } else if (!families.empty()) {
      if (families.size() > 1) {
        unsupported(families[1] == "object" ? "properties" : std::string(families[1]), ptr,
                    "keywords of several types without a 'type' to say which");
      }
      types.push_back(families[0]);
    }

    if (has_enum) return enum_rule(schema, types, ptr);
    if (types.empty()) return any_value_rule();
    std::vector<sequence> alts;
    for (const auto& type : types) alts.push_back({b_.ref(typed_rule(schema, type, ptr, depth))});
    if (alts.size() == 1) return alts[0][0].index;
    const auto id = b_.add_rule(name("types"));
    b_.define(id, std::move(alts));
    return id;
  }

  std::uint32_t ref_rule(const ordered_json& ref, const std::string& ptr, std::uint32_t depth) {
    if (!ref.is_string()) invalid(ptr + "/$ref", "$ref must be a string");
    const std::string target = ref.get<std::string>();
    if (target.empty() || target[0] != '#') unsupported("$ref", ptr, "only references within the schema ('#/...') are supported, not '" + target + "'");
    if (const auto it = refs_.find(target); it != refs_.end()) return it->second;
    const ordered_json* schema = detail::resolve_pointer(document_, target);
    if (!schema) invalid(ptr + "/$ref", "'" + target + "' points to nothing in the schema");
    // Declared before its body is compiled, so that a recursive schema refers to itself.
    const auto id = b_.add_rule(name("ref"));
    refs_.emplace(target, id);
    b_.define(id, {{b_.ref(value_rule(*schema, target, depth + 1))}});
    return id;
  }

  std::uint32_t enum_rule(const ordered_json& schema, const std::vector<std::string>& types, const std::string& ptr) {
    std::vector<ordered_json> values;
    if (const auto c = schema.find("const"); c != schema.end()) values.push_back(*c);
    if (const auto e = schema.find("enum"); e != schema.end()) {
      if (!e->is_array() || e->empty()) invalid(ptr + "/enum", "enum must be a non-empty array");
      if (schema.contains("const")) {
        // both: the const, if the enum has it
        if (std::find(e->begin(), e->end(), values[0]) == e->end()) values.clear();
      } else {
        values.assign(e->begin(), e->end());
      }
    }
    // Keep the values the rest of the schema accepts (type, lengths, bounds...).
    ordered_json rest = ordered_json::object();
    for (const auto& [key, item] : schema.items()) {
      if (key != "enum" && key != "const" && !detail::is_annotation(key)) rest[key] = item;
    }
    (void)types;
    const json_schema_validator validator(rest);
    std::vector<sequence> alts;
    for (const auto& v : values) {
      if (validator.check(v)) continue;
      alts.push_back(literal_value(v));
    }
    if (alts.empty()) invalid(ptr, "no enum/const value satisfies the rest of the schema");
    const auto id = b_.add_rule(name("enum"));
    b_.define(id, std::move(alts));
    return id;
  }

  std::uint32_t typed_rule(const ordered_json& schema, const std::string& type, const std::string& ptr, std::uint32_t depth) {
    if (type == "object") return object_rule(schema, ptr, depth);
    if (type == "array") return array_rule(schema, ptr, depth);
    if (type == "string") {
      const auto min = count_keyword(schema, "minLength", ptr).value_or(0);
      const auto max = count_keyword(schema, "maxLength", ptr).value_or(unbounded);
      if (min > max) invalid(ptr, "minLength is above maxLength");
      return string_rule(min, max);
    }
    if (type == "boolean") return literal_rule("boolean", {"true", "false"});
    if (type == "null") return literal_rule("null", {"null"});
    return number_rule(schema, type == "integer", ptr);
  }

  std::optional<std::uint32_t> count_keyword(const ordered_json& schema, const char* key, const std::string& ptr) const {
    const auto it = schema.find(key);
    if (it == schema.end()) return std::nullopt;
    if (!it->is_number_integer() || it->get<std::int64_t>() < 0 || it->get<std::int64_t>() > 100000) {
      invalid(ptr + "/" + key, std::string(key) + " must be an integer in [0, 100000]");
    }
    return static_cast<std::uint32_t>(it->get<std::int64_t>());
  }

  std::uint32_t literal_rule(std::string_view what, std::initializer_list<std::string_view> texts) {
    const std::string key(what);
    if (const auto it = shared_.find(key); it != shared_.end()) return it->second;
    std::vector<sequence> alts;
    for (const auto t : texts) alts.push_back(b_.literal(t));
    const auto id = b_.add_rule(name(what));
    b_.define(id, std::move(alts));
    shared_.emplace(key, id);
    return id;
  }

  // ---- objects ----
  std::uint32_t object_rule(const ordered_json& schema, const std::string& ptr, std::uint32_t depth) {
    if (const auto extra = schema.find("additionalProperties"); extra != schema.end() && *extra != false) {
      unsupported("additionalProperties", ptr, "only false (the default) is supported");
    }
    struct property {
      std::string key;
      std::uint32_t value;
      bool required;
    };
    std::vector<property> props;
    const auto p = schema.find("properties");
    if (p != schema.end()) {
      if (!p->is_object()) invalid(ptr + "/properties", "properties must be an object");
      for (const auto& [key, item] : p->items()) {
        props.push_back({key, value_rule(item, ptr + "/properties/" + detail::pointer_token(key), depth + 1), false});
      }
    }
    if (const auto r = schema.find("required"); r != schema.end()) {
      if (!r->is_array()) invalid(ptr + "/required", "required must be an array of names");
      for (const auto& name_json : *r) {
        if (!name_json.is_string()) invalid(ptr + "/required", "required must be an array of names");
        const std::string key = name_json.get<std::string>();
        auto it = std::find_if(props.begin(), props.end(), [&](const property& x) { return x.key == key; });
        if (it == props.end()) {
          invalid(ptr + "/required", "property '" + key + "' is required but has no schema in properties (and no other keys are allowed)");
        }
        it->required = true;
      }
    }
    // rest[i][e]: properties i.. with e = whether one was written already (it needs a comma first).
    const std::size_t n = props.size();
    std::vector<std::uint32_t> member(n);
    for (std::size_t i = 0; i < n; ++i) {
      sequence kv = b_.literal(ordered_json(props[i].key).dump());
      grammar_builder::append(kv, colon_seq());
      kv.push_back(b_.ref(props[i].value));
      member[i] = b_.add_rule(name("kv"));
      b_.define(member[i], {std::move(kv)});
    }
    std::vector<std::array<std::uint32_t, 2>> rest(n + 1, {unbounded, unbounded});
    auto rule_for = [&](auto&& self, std::size_t i, int written) -> std::uint32_t {
      if (rest[i][written] != unbounded) return rest[i][written];
      const auto id = b_.add_rule(name("props"));
      rest[i][written] = id;
      if (i == n) {
        b_.define(id, {sequence{}});
        return id;
      }
      sequence take;
      if (written) grammar_builder::append(take, comma_seq());
      take.push_back(b_.ref(member[i]));
      take.push_back(b_.ref(self(self, i + 1, 1)));
      std::vector<sequence> alts{std::move(take)};
      if (!props[i].required) alts.push_back({b_.ref(self(self, i + 1, written))});
      b_.define(id, std::move(alts));
      return id;
    };
    sequence body{sym('{')};
    if (n > 0) body.push_back(b_.ref(rule_for(rule_for, 0, 0)));
    body.push_back(sym('}'));
    const auto id = b_.add_rule(name("object"));
    b_.define(id, {std::move(body)});
    return id;
  }

  sequence comma_seq() {
    sequence s{sym(',')};
    grammar_builder::append(s, ws());
    return s;
  }
  sequence colon_seq() {
    sequence s{sym(':')};
    grammar_builder::append(s, ws());
    return s;
  }

  // ---- arrays ----
  std::uint32_t array_rule(const ordered_json& schema, const std::string& ptr, std::uint32_t depth) {
    const auto min = count_keyword(schema, "minItems", ptr).value_or(0);
    const auto max = count_keyword(schema, "maxItems", ptr).value_or(unbounded);
    if (min > max) invalid(ptr, "minItems is above maxItems");
    std::uint32_t item;
    if (const auto items = schema.find("items"); items != schema.end()) {
      if (items->is_array()) unsupported("items", ptr, "the array form (tuple validation)");
      item = value_rule(*items, ptr + "/items", depth + 1);
    } else {
      item = any_value_rule();
    }
    return array_of(item, min, max);
  }
  std::uint32_t array_of(std::uint32_t item, std::uint32_t min, std::uint32_t max) {
    const auto id = b_.add_rule(name("array"));
    if (max == 0) {
      b_.define(id, {b_.literal("[]")});
      return id;
    }
    sequence tail = comma_seq();
    tail.push_back(b_.ref(item));
    const auto more = b_.add_rule(name("items"));
    b_.define(more, {std::move(tail)});
    const std::uint32_t rest_min = min == 0 ? 0 : min - 1;
    const std::uint32_t rest_max = max == unbounded ? unbounded : max - 1;
    sequence items{b_.ref(item)};
    if (rest_max > 0) items.push_back(b_.ref(more, rest_min, rest_max));
    sequence full{sym('[')};
    if (min == 0) {
      const auto some = b_.add_rule(name("some-items"));
      b_.define(some, {std::move(items)});
      full.push_back(b_.ref(some, 0, 1));
    } else {
      grammar_builder::append(full, items);
    }
    full.push_back(sym(']'));
    b_.define(id, {std::move(full)});
    return id;
  }

  // ---- strings ----
  std::uint32_t char_rule() {
    if (const auto it = shared_.find("char"); it != shared_.end()) return it->second;
    char_class hex = char_class::between('0', '9');
    hex.add('a', 'f');
    hex.add('A', 'F');
    char_class hex_not_d = hex;
    hex_not_d = char_class::between('0', '9');
    hex_not_d.add('a', 'c');
    hex_not_d.add('e', 'f');
    hex_not_d.add('A', 'C');
    hex_not_d.add('E', 'F');
    char_class d;
    d.add('d', 'd');
    d.add('D', 'D');
    char_class simple;
    for (const char c : std::string_view("\"\\/bfnrt")) simple.add(static_cast<char32_t>(c), static_cast<char32_t>(c));
    // \uXXXX outside the surrogates: a lone surrogate escape does not parse
    const auto unicode = b_.add_rule(name("unicode-escape"));
    b_.define(unicode, {{sym('u'), b_.chars(hex_not_d), b_.chars(hex, 3, 3)},
                        {sym('u'), b_.chars(d), b_.chars(char_class::between('0', '7')), b_.chars(hex, 2, 2)}});
    const auto id = b_.add_rule(name("char"));
    b_.define(id, {{b_.chars(json_string_chars())}, {sym('\\'), b_.chars(simple)}, {sym('\\'), b_.ref(unicode)}});
    shared_.emplace("char", id);
    return id;
  }
  std::uint32_t string_rule(std::uint32_t min, std::uint32_t max) {
    const std::string key = "string-" + std::to_string(min) + "-" + std::to_string(max);
    if (const auto it = shared_.find(key); it != shared_.end()) return it->second;
    const auto chr = char_rule();
    const auto id = b_.add_rule(name("string"));
    b_.define(id, {{sym('"'), b_.ref(chr, min, max), sym('"')}});
    shared_.emplace(key, id);
    return id;
  }

  // ---- numbers ----
  symbol digits(std::uint32_t min, std::uint32_t max) { return b_.chars(char_class::between('0', '9'), min, max); }

  // Decimal texts (no leading zeros) of the integers in [lo, hi]; hi = nullopt: unbounded.
  void unsigned_range(std::vector<sequence>& out, std::uint64_t lo, std::optional<std::uint64_t> hi) {
    const std::string a = std::to_string(lo);
    if (!hi) {
      const std::string top(a.size(), '9');
      same_length_range(out, a, top, {});
      // every longer number (bounded by the digit limit, if any)
      const auto limit = options_.max_integer_digits;
      if (limit == 0 || limit > a.size()) {
        const std::uint32_t more_min = static_cast<std::uint32_t>(a.size());
        const std::uint32_t more_max = limit == 0 ? unbounded : limit - 1;
        out.push_back({b_.chars(char_class::between('1', '9')), digits(more_min, more_max)});
      }
      return;
    }
    const std::string b = std::to_string(*hi);
    for (std::size_t len = a.size(); len <= b.size(); ++len) {
      const std::string from = len == a.size() ? a : "1" + std::string(len - 1, '0');
      const std::string to = len == b.size() ? b : std::string(len, '9');
      if (len == 1 && from == "0" && to.size() == 1) {
        out.push_back({b_.chars(char_class::between('0', to[0]))});
        continue;
      }
      same_length_range(out, from, to, {});
    }
  }
  // Texts between a and b (same length, a <= b), each prefixed by `prefix`.
  void same_length_range(std::vector<sequence>& out, const std::string& a, const std::string& b, sequence prefix) {
    const std::size_t n = a.size();
    if (n == 0) {
      out.push_back(prefix);
      return;
    }
    if (a[0] == b[0]) {
      prefix.push_back(sym(static_cast<char32_t>(a[0])));
      same_length_range(out, a.substr(1), b.substr(1), std::move(prefix));
      return;
    }
    const bool a_low = a.find_first_not_of('0', 1) == std::string::npos;  // a = d000...
    const bool b_high = b.find_first_not_of('9', 1) == std::string::npos; // b = d999...
    char first_full = a_low ? a[0] : static_cast<char>(a[0] + 1);
    char last_full = b_high ? b[0] : static_cast<char>(b[0] - 1);
    if (!a_low) {
      sequence p = prefix;
      p.push_back(sym(static_cast<char32_t>(a[0])));
      same_length_range(out, a.substr(1), std::string(n - 1, '9'), std::move(p));
    }
    if (first_full <= last_full) {
      sequence p = prefix;
      p.push_back(b_.chars(char_class::between(static_cast<char32_t>(first_full), static_cast<char32_t>(last_full))));
      if (n > 1) p.push_back(digits(static_cast<std::uint32_t>(n - 1), static_cast<std::uint32_t>(n - 1)));
      out.push_back(std::move(p));
    }
    if (!b_high) {
      sequence p = prefix;
      p.push_back(sym(static_cast<char32_t>(b[0])));
      same_length_range(out, std::string(n - 1, '0'), b.substr(1), std::move(p));
    }
  }

  std::uint32_t number_rule(const ordered_json& schema, bool integer, const std::string& ptr) {
    auto bound = [&](const char* key) -> std::optional<double> {
      const auto it = schema.find(key);
      if (it == schema.end()) return std::nullopt;
      if (!it->is_number()) invalid(ptr + "/" + key, std::string(key) + " must be a number");
      const double v = it->get<double>();
      if (!std::isfinite(v) || std::fabs(v) > 9.0e15) invalid(ptr + "/" + key, std::string(key) + " must be within +-9e15");
      if (!integer && v != std::floor(v)) {
        unsupported(key, ptr, "a number's bounds must be integers (" + it->dump() + " is not); integers take any bounds");
      }
      return v;
    };
    std::optional<std::int64_t> lo, hi;
    if (const auto v = bound("minimum")) lo = static_cast<std::int64_t>(std::ceil(*v));
    if (const auto v = bound("maximum")) hi = static_cast<std::int64_t>(std::floor(*v));
    if (lo && hi && *lo > *hi) invalid(ptr, "no " + std::string(integer ? "integer" : "number") + " lies between minimum and maximum");
    const std::string key = std::string(integer ? "int" : "num") + (lo ? std::to_string(*lo) : "") + ":" + (hi ? std::to_string(*hi) : "");
    if (const auto it = shared_.find(key); it != shared_.end()) return it->second;

    std::vector<sequence> alts;
    const bool bounded = lo || hi;
    auto magnitude = [&](std::uint64_t from, std::optional<std::uint64_t> to, bool fraction) {
      // integer parts in [from, to]; with fraction: any fraction below `to`, only zeros at `to`
      std::vector<sequence> parts;
      if (!fraction) {
        unsigned_range(parts, from, to);
        return parts;
      }
      if (!to) {
        unsigned_range(parts, from, std::nullopt);
        for (auto& p : parts) p.push_back(b_.ref(fraction_rule(), 0, 1));
        return parts;
      }
      if (*to > from) {
        unsigned_range(parts, from, *to - 1);
        for (auto& p : parts) p.push_back(b_.ref(fraction_rule(), 0, 1));
      }
      if (*to >= from) {
        sequence top = b_.literal(std::to_string(*to));
        top.push_back(b_.ref(zero_fraction_rule(), 0, 1));
        parts.push_back(std::move(top));
      }
      return parts;
    };
    if (!bounded) {
      if (integer) {
        alts.push_back({b_.chars(char_class::of('-'), 0, 1), b_.ref(unsigned_integer_rule())});
      } else {
        sequence s{b_.chars(char_class::of('-'), 0, 1), b_.ref(unsigned_integer_rule()), b_.ref(fraction_rule(), 0, 1),
                   b_.ref(exponent_rule(), 0, 1)};
        alts.push_back(std::move(s));
      }
    } else {
      // non-negative values: integer parts in [max(lo, 0), hi]
      if (!hi || *hi >= 0) {
        const std::uint64_t from = lo && *lo > 0 ? static_cast<std::uint64_t>(*lo) : 0;
        const std::optional<std::uint64_t> to = hi ? std::optional<std::uint64_t>(static_cast<std::uint64_t>(*hi)) : std::nullopt;
        for (auto& p : magnitude(from, to, !integer)) alts.push_back(std::move(p));
      }
      // negative values -m: m in [max(-hi, 1 or 0), -lo]
      if (!lo || *lo < 0) {
        std::uint64_t from = hi && *hi < 0 ? static_cast<std::uint64_t>(-*hi) : (integer ? 1 : 0);
        const std::optional<std::uint64_t> to = lo ? std::optional<std::uint64_t>(static_cast<std::uint64_t>(-*lo)) : std::nullopt;
        if (!to || *to >= from) {
          for (auto& p : magnitude(from, to, !integer)) {
            sequence s{sym('-')};
            grammar_builder::append(s, p);
            alts.push_back(std::move(s));
          }
        }
      }
    }
    const auto id = b_.add_rule(name(integer ? "integer" : "number"));
    b_.define(id, std::move(alts));
    shared_.emplace(key, id);
    return id;
  }
  std::uint32_t unsigned_integer_rule() {
    if (const auto it = shared_.find("uint"); it != shared_.end()) return it->second;
    const auto id = b_.add_rule(name("uint"));
    const auto limit = options_.max_integer_digits;
    b_.define(id, {{sym('0')}, {b_.chars(char_class::between('1', '9')), digits(0, limit == 0 ? unbounded : limit - 1)}});
    shared_.emplace("uint", id);
    return id;
  }
  std::uint32_t fraction_rule() {
    if (const auto it = shared_.find("frac"); it != shared_.end()) return it->second;
    const auto id = b_.add_rule(name("fraction"));
    const auto limit = options_.max_fraction_digits;
    b_.define(id, {{sym('.'), digits(1, limit == 0 ? unbounded : limit)}});
    shared_.emplace("frac", id);
    return id;
  }
  std::uint32_t zero_fraction_rule() {
    if (const auto it = shared_.find("zfrac"); it != shared_.end()) return it->second;
    const auto id = b_.add_rule(name("zero-fraction"));
    const auto limit = options_.max_fraction_digits;
    b_.define(id, {{sym('.'), b_.chars(char_class::of('0'), 1, limit == 0 ? unbounded : limit)}});
    shared_.emplace("zfrac", id);
    return id;
  }
  std::uint32_t exponent_rule() {
    if (const auto it = shared_.find("exp"); it != shared_.end()) return it->second;
    const auto id = b_.add_rule(name("exponent"));
    char_class e = char_class::of('e');
    e.add('E', 'E');
    char_class sign = char_class::of('+');
    sign.add('-', '-');
    b_.define(id, {{b_.chars(e), b_.chars(sign, 0, 1), digits(1, 3)}});
    shared_.emplace("exp", id);
    return id;
  }

  // ---- any value (the empty schema) ----
  std::uint32_t any_value_rule() {
    if (const auto it = shared_.find("value"); it != shared_.end()) return it->second;
    const auto value = b_.add_rule(name("value"));
    shared_.emplace("value", value);
    const auto str = string_rule(0, unbounded);
    const auto member = b_.add_rule(name("member"));
    {
      sequence kv{b_.ref(str)};
      grammar_builder::append(kv, colon_seq());
      kv.push_back(b_.ref(value));
      b_.define(member, {std::move(kv)});
    }
    const auto more_members = b_.add_rule(name("more-members"));
    {
      sequence s = comma_seq();
      s.push_back(b_.ref(member));
      b_.define(more_members, {std::move(s)});
    }
    const auto object = b_.add_rule(name("any-object"));
    b_.define(object, {b_.literal("{}"), {sym('{'), b_.ref(member), b_.ref(more_members, 0, unbounded), sym('}')}});
    const auto more_values = b_.add_rule(name("more-values"));
    {
      sequence s = comma_seq();
      s.push_back(b_.ref(value));
      b_.define(more_values, {std::move(s)});
    }
    const auto array = b_.add_rule(name("any-array"));
    b_.define(array, {b_.literal("[]"), {sym('['), b_.ref(value), b_.ref(more_values, 0, unbounded), sym(']')}});
    ordered_json none = ordered_json::object();
    const auto number = number_rule(none, false, "#");
    b_.define(value, {{b_.ref(object)}, {b_.ref(array)}, {b_.ref(str)}, {b_.ref(number)}, b_.literal("true"), b_.literal("false"),
                      b_.literal("null")});
    return value;
  }

  void write_literal(sequence& out, const ordered_json& v) {
    if (v.is_object()) {
      out.push_back(sym('{'));
      bool first = true;
      for (const auto& [key, item] : v.items()) {
        if (!first) grammar_builder::append(out, comma_seq());
        first = false;
        grammar_builder::append(out, b_.literal(ordered_json(key).dump()));
        grammar_builder::append(out, colon_seq());
        write_literal(out, item);
      }
      out.push_back(sym('}'));
    } else if (v.is_array()) {
      out.push_back(sym('['));
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (i > 0) grammar_builder::append(out, comma_seq());
        write_literal(out, v[i]);
      }
      out.push_back(sym(']'));
    } else {
      grammar_builder::append(out, b_.literal(v.dump()));
    }
  }

  grammar_builder& b_;
  const ordered_json& document_;
  json_schema_options options_;
  std::string prefix_;
  std::map<std::string, std::uint32_t> refs_;
  std::map<std::string, std::uint32_t> shared_;
};

// The grammar of the JSON texts a schema accepts.
inline grammar compile_json_schema(const ordered_json& schema, const json_schema_options& options = {}) {
  grammar_builder b;
  json_schema_compiler compiler(b, schema, options);
  const auto value = compiler.compile();
  const auto root = b.add_rule("root");
  b.define(root, {{b.ref(value)}});
  return b.build(root);
}

// The same from the schema's JSON text (a parse error is errc::invalid_argument).
inline grammar compile_json_schema(std::string_view schema_text, const json_schema_options& options = {}) {
  ordered_json schema;
  try {
    schema = ordered_json::parse(schema_text);
  } catch (const nlohmann::json::exception& e) {
    fail(errc::invalid_argument, "json schema: not valid JSON (", e.what(), ")");
  }
  return compile_json_schema(schema, options);
}
inline grammar compile_json_schema(const char* schema_text, const json_schema_options& options = {}) {
  return compile_json_schema(std::string_view(schema_text), options);
}
inline grammar compile_json_schema(const std::string& schema_text, const json_schema_options& options = {}) {
  return compile_json_schema(std::string_view(schema_text), options);
}

}  // namespace chorus::inline CHORUS_ABI::sample
