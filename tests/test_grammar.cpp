// Grammars, the JSON Schema compiler and the token-mask constraint: the text form, the
// language a grammar accepts, the mask against a token-by-token oracle (the trie walk and the
// slices must give exactly the tokens whose bytes can follow), UTF-8 split across tokens,
// end of generation, schema corner cases and refusals, and generations on random-weight
// models that must all parse and validate.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace chorus;
using chorus_test::expect_error;
using sample::ordered_json;

const tokenizer::tokenizer& vocabulary(const std::string& name) {
  static std::map<std::string, std::unique_ptr<tokenizer::tokenizer>> cache;
  auto& slot = cache[name];
  if (!slot) {
    slot = std::make_unique<tokenizer::tokenizer>(tokenizer::tokenizer::from_gguf(
        gguf::file::open(chorus_test::golden_dir() / "tokenizer" / ("ggml-vocab-" + name + ".gguf"))));
  }
  return *slot;
}
std::shared_ptr<const sample::token_index> index_of(const std::string& name) {
  static std::map<std::string, std::shared_ptr<const sample::token_index>> cache;
  auto& slot = cache[name];
  if (!slot) slot = std::make_shared<const sample::token_index>(vocabulary(name));
  return slot;
}

std::shared_ptr<sample::grammar_constraint> constraint_for(const sample::grammar& g, const std::string& vocab) {
  return std::make_shared<sample::grammar_constraint>(std::make_shared<const sample::grammar>(g), index_of(vocab), vocabulary(vocab));
}

// The oracle: a token may come next when its bytes can (control tokens: never, except the
// end of generation when the output is complete).
void expect_mask_matches_oracle(sample::grammar_constraint& c, const std::string& where) {
  const auto& index = c.index();
  const auto mask = c.allowed();
  std::vector<std::uint64_t> copy(mask.begin(), mask.end());
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < index.size(); ++i) {
    const auto id = static_cast<sample::token_id>(i);
    bool expected;
    if (index.is_end_of_generation(id)) expected = c.accepting();
    else if (index.bytes(id).empty()) expected = false;
    else expected = c.accepts(index.bytes(id));
    if (sample::token_bit(copy, id) != expected && ++mismatches <= 5) {
      ADD_FAILURE() << where << ": token " << id << " '" << index.bytes(id) << "' masked " << !sample::token_bit(copy, id)
                    << ", the oracle says allowed " << expected;
    }
  }
  EXPECT_EQ(mismatches, 0u) << where;
}

TEST(GrammarText, ParsesPrintsAndReparses) {
  const auto g = sample::parse_grammar(R"(
    # a comment
    root   ::= "{" pair ("," " "? pair)* "}"
    pair   ::= key ":" value
    key    ::= "\"" [a-z_]{1,8} "\""
    value  ::= [0-9]+ | "true" | "false" | @"<|special|>" | "é\u00e8\x41"
  )");
  const std::string text = g.to_text();
  EXPECT_NE(text.find("root ::="), std::string::npos) << text;
  EXPECT_NE(text.find("[_a-z]{1,8}"), std::string::npos) << text;
  EXPECT_NE(text.find("@\"<|special|>\""), std::string::npos) << text;
  const auto again = sample::parse_grammar(text);
  EXPECT_EQ(again.to_text(), text);  // printing is a fixed point
  EXPECT_EQ(g.specials().size(), 1u);
}

TEST(GrammarText, MistakesNameWhereAndWhat) {
  expect_error(errc::invalid_argument, "rule 'value' is used but never defined", [] { (void)sample::parse_grammar("root ::= value"); });
  expect_error(errc::invalid_argument, "no rule named 'root'", [] { (void)sample::parse_grammar("start ::= \"a\""); });
  expect_error(errc::invalid_argument, "rule 'list' is left-recursive (list -> list)",
               [] { (void)sample::parse_grammar("root ::= list\nlist ::= list \",\" \"x\" | \"x\""); });
  expect_error(errc::invalid_argument, "line 2, column 14: unterminated string literal",
               [] { (void)sample::parse_grammar("root ::= a\na ::= \"x\" \"yz"); });
  expect_error(errc::invalid_argument, "unknown escape '\\q'", [] { (void)sample::parse_grammar(R"(root ::= "\q")"); });
  expect_error(errc::invalid_argument, "repetition {3,1} has min > max", [] { (void)sample::parse_grammar(R"(root ::= "a"{3,1})"); });
  expect_error(errc::invalid_argument, "rule 'root' is defined twice", [] { (void)sample::parse_grammar("root ::= \"a\"\nroot ::= \"b\""); });
  expect_error(errc::invalid_argument, "empty character class", [] { (void)sample::parse_grammar("root ::= []"); });
  expect_error(errc::invalid_argument, "the grammar is empty", [] { (void)sample::parse_grammar("  # nothing\n"); });
}

TEST(GrammarConstraint, AcceptsExactlyTheLanguage) {
  const auto g = sample::parse_grammar(R"(
    root ::= "a" [0-9]{2,3} ("," item)* | "b"? "c"
    item ::= "x" | "yy" | ()
  )");
  auto c = constraint_for(g, "gpt-2");
  for (const std::string in : {"a12", "a123", "a12,x", "a12,,yy,", "c", "bc"}) EXPECT_TRUE(c->completes(in)) << in;
  for (const std::string prefix : {"a", "a1", "b", "a12,y"}) {
    EXPECT_TRUE(c->accepts(prefix)) << prefix;
    EXPECT_FALSE(c->completes(prefix)) << prefix;
  }
  for (const std::string out : {"a1234", "aa", "d", "a12,xy", "bb", "cc", "a12 "}) EXPECT_FALSE(c->accepts(out)) << out;
  EXPECT_TRUE(c->accept_bytes("a1"));
  EXPECT_FALSE(c->accept_bytes("x"));  // refused, and the state is unchanged
  EXPECT_TRUE(c->accept_bytes("2"));
  EXPECT_TRUE(c->accepting());
}

TEST(GrammarConstraint, RepetitionOfSomethingEmptyTerminates) {
  // (x?)* and (y*)* have empty bodies; the parser must neither loop nor refuse them
  const auto g = sample::parse_grammar(R"(root ::= ("x"?)* ("y"*)* "z")");
  auto c = constraint_for(g, "gpt-2");
  EXPECT_TRUE(c->completes("z"));
  EXPECT_TRUE(c->completes("xxyyz"));
  EXPECT_FALSE(c->accepts("zx"));
}

TEST(GrammarConstraint, MaskMatchesTheOracle) {
  // Every kind of state: structure, unbounded strings (slice), bounded strings with little and
  // much room (slice by length; 50 and 60 characters left are more than the 32 with a mask of
  // their own, and the vocabularies have tokens of 64), escapes, partial UTF-8, digits, accepting.
  const auto g = sample::parse_grammar(R"(
    root  ::= "{\"s\": " str ", \"m\": " mid ", \"b\": " short ", \"n\": " num ", \"k\": \"" [a-z]{1,40} "\"}"
    str   ::= "\"" char* "\""
    mid   ::= "\"" char{0,70} "\""
    short ::= "\"" char{0,3} "\""
    char  ::= [^"\\\x00-\x1f] | "\\" ["\\/bfnrt]
    num   ::= "-"? [0-9]+ ("." [0-9]{1,3})?
  )");
  for (const std::string vocab : {"gpt-2", "llama-spm", "deepseek-llm"}) {
    auto c = constraint_for(g, vocab);
    std::string at;
    const std::vector<std::string> steps = {"", "{", "\"s\": ", "\"", "some text ", "\xC3", "\xA9", "\\", "n", "\"", ", \"m\": \"", "0123456789", "0123456789", "\"", ", \"b\": \"", "a",
                                            "\xE2\x82", "\xAC", "b", "\", \"n\": ", "-", "12", ".", "5", ", \"k\": \"", "abc"};
    for (const auto& s : steps) {
      ASSERT_TRUE(c->accept_bytes(s)) << vocab << " after '" << at << "' refused '" << s << "'";
      at += s;
      expect_mask_matches_oracle(*c, vocab + " after '" + at + "'");
    }
  }
}

TEST(GrammarConstraint, Utf8SplitAcrossTokens) {
  const auto g = sample::parse_grammar(R"(root ::= "\"" [^"]* "\"")");
  auto c = constraint_for(g, "llama-spm");
  const auto& tok = vocabulary("llama-spm");
  const auto lead = tok.vocabulary().byte_token(0xC3), tail = tok.vocabulary().byte_token(0xA9), bad = tok.vocabulary().byte_token(0x41);
  ASSERT_GE(lead, 0);
  c->accept(tok.vocabulary().byte_token('"'));
  EXPECT_TRUE(c->allows(lead));
  c->accept(lead);  // half of 'é'
  EXPECT_TRUE(c->allows(tail));
  EXPECT_FALSE(c->allows(bad));  // 'A' cannot finish the character
  EXPECT_FALSE(c->allows(lead));
  expect_error(errc::invalid_argument, "cannot continue the output here", [&] { c->accept(bad); });
  c->accept(tail);
  EXPECT_TRUE(c->allows(bad));
}

TEST(GrammarConstraint, EndOfGenerationExactlyWhenComplete) {
  const auto g = sample::parse_grammar(R"(root ::= "ab" "c"?)");
  auto c = constraint_for(g, "gpt-2");
  const auto eos = *vocabulary("gpt-2").vocabulary().eos();
  EXPECT_FALSE(c->allows(eos));
  expect_error(errc::invalid_argument, "end of generation before the output is complete", [&] { c->accept(eos); });
  c->accept_bytes("ab");
  EXPECT_TRUE(c->allows(eos));
  EXPECT_FALSE(c->finished());
  c->accept_bytes("c");
  EXPECT_TRUE(c->finished());  // nothing can follow
  EXPECT_TRUE(c->allows(eos));
  c->accept(eos);
  EXPECT_TRUE(c->finished());
  expect_error(errc::invalid_argument, "after the end of the output", [&] { c->accept(eos); });
  c->reset();
  EXPECT_FALSE(c->accepting());
  EXPECT_TRUE(c->accepts("abc"));
}

// A vocabulary with control tokens: "[TOOL_CALLS]" is matched only as its token, "<unk>"-like
// control tokens never.
tokenizer::tokenizer control_token_vocab() {
  tokenizer::vocab_data d;
  d.kind = tokenizer::model_kind::spm;
  d.tokens = {"<unk>", "<s>", "</s>", "[TOOL_CALLS]", "[INST]"};
  d.types = {2, 3, 3, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    d.tokens.emplace_back(hex);
    d.types.push_back(6);
  }
  for (const char* piece : {"[", "{\"", "name", "\":", "▁\"", "\"}", "]", "TOOL", "_CALLS"}) {
    d.tokens.emplace_back(piece);
    d.types.push_back(1);
  }
  d.bos = 1;
  d.eos = 2;
  d.unk = 0;
  return tokenizer::tokenizer(tokenizer::vocab(std::move(d)));
}

TEST(GrammarConstraint, SpecialTokensByText) {
  const auto tok = control_token_vocab();
  auto index = std::make_shared<const sample::token_index>(tok);
  auto g = std::make_shared<const sample::grammar>(sample::parse_grammar(R"(root ::= @"[TOOL_CALLS]" "[" "x"* "]" | @"[NOT_A_TOKEN]" "!")"));
  sample::grammar_constraint c(g, index, tok);
  const auto calls = *tok.vocabulary().find("[TOOL_CALLS]");
  const auto inst = *tok.vocabulary().find("[INST]");
  EXPECT_TRUE(c.allows(calls));
  EXPECT_FALSE(c.allows(inst));
  EXPECT_FALSE(c.allows(*tok.vocabulary().find("TOOL")));
  EXPECT_FALSE(c.accepts("[TOOL_CALLS]"));  // the text of a control token is not the token
  EXPECT_TRUE(c.accepts("[NOT_A_TOKEN]!"));  // no such token: its text, spelled
  c.accept(calls);
  EXPECT_TRUE(c.allows(*tok.vocabulary().find("[")));
  EXPECT_FALSE(c.allows(calls));
}

TEST(GrammarConstraint, NestingBeyondTheLimitIsCut) {
  const auto g = sample::parse_grammar(R"(root ::= list
    list ::= "[" list? "]")");
  auto cg = std::make_shared<const sample::grammar>(g);
  sample::grammar_constraint c(cg, index_of("gpt-2"), vocabulary("gpt-2"), {.max_depth = 40});
  std::string deep(30, '[');
  EXPECT_TRUE(c.accepts(deep));
  EXPECT_FALSE(c.accepts(std::string(200, '[')));
  EXPECT_TRUE(c.completes(deep + std::string(30, ']')));
}

// ---- JSON Schema ----

// Random walks over the mask (any allowed token, end when allowed with probability 1/3):
// every output must parse and validate.
void expect_random_walks_validate(const std::string& schema_text, const std::string& vocab, int runs,
                                  const sample::json_schema_options& options = {}) {
  const auto schema = ordered_json::parse(schema_text);
  auto c = constraint_for(sample::compile_json_schema(schema, options), vocab);
  const sample::json_schema_validator validator(schema);
  std::mt19937_64 rng(7);
  const auto& index = c->index();
  std::vector<sample::token_id> ids;
  for (int run = 0; run < runs; ++run) {
    c->reset();
    std::string out;
    for (int n = 0; n < 4000 && !c->finished(); ++n) {
      ids.clear();
      const auto mask = c->allowed();
      for (std::size_t i = 0; i < index.size(); ++i) {
        if (sample::token_bit(mask, static_cast<sample::token_id>(i))) ids.push_back(static_cast<sample::token_id>(i));
      }
      ASSERT_FALSE(ids.empty());
      auto id = ids[rng() % ids.size()];
      if (c->accepting() && rng() % 3 == 0) id = index.end_of_generation().front();
      c->accept(id);
      if (!index.is_end_of_generation(id)) out += index.bytes(id);
    }
    ASSERT_TRUE(c->finished()) << "no end after 4000 tokens: " << out;
    ordered_json value;
    try {
      value = ordered_json::parse(out);
    } catch (const std::exception& e) {
      FAIL() << "not JSON (" << e.what() << "): " << out;
    }
    const auto violation = validator.check(value);
    EXPECT_FALSE(violation) << *violation << ": " << out;
  }
}

const char* weather_schema = R"({
  "type": "object",
  "properties": {
    "location": {"type": "string", "minLength": 1, "maxLength": 24, "description": "city"},
    "unit": {"enum": ["celsius", "fahrenheit"]},
    "days": {"type": "integer", "minimum": 1, "maximum": 14},
    "temp": {"type": "number", "minimum": -40, "maximum": 50},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3},
    "flag": {"type": ["boolean", "null"]},
    "nested": {"$ref": "#/$defs/node"}
  },
  "required": ["location", "days"],
  "$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer", "minimum": -5, "maximum": 1000},
                                                       "next": {"$ref": "#/$defs/node"}}, "required": ["v"]}}
})";

TEST(JsonSchema, RandomWalksParseAndValidate) {
  sample::json_schema_options options;
  options.max_fraction_digits = 4;
  expect_random_walks_validate(weather_schema, "gpt-2", 60, options);
  expect_random_walks_validate(weather_schema, "llama-spm", 30, options);
  expect_random_walks_validate(R"({"type": "array", "items": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "integer"},
                                  {"const": {"k": [1, 2.5, "\u00e9\n"]}}, {"type": "null"}]}, "maxItems": 4})",
                               "gpt-2", 40, {.max_integer_digits = 6});
}

TEST(JsonSchema, IntegerRangesAreExact) {
  const std::pair<std::int64_t, std::int64_t> ranges[] = {{0, 0}, {1, 14}, {-5, 1000}, {-1000, -7}, {7, 99}, {10, 10}, {0, 1099},
                                                          {-99, 99}, {123, 987}, {-1, 0}};
  for (const auto& [lo, hi] : ranges) {
    auto c = constraint_for(sample::compile_json_schema(ordered_json{{"type", "integer"}, {"minimum", lo}, {"maximum", hi}}), "gpt-2");
    for (std::int64_t v = -1200; v <= 1200; ++v) {
      ASSERT_EQ(c->completes(std::to_string(v)), v >= lo && v <= hi) << v << " in [" << lo << ", " << hi << "]";
    }
    EXPECT_FALSE(c->completes("01"));
    EXPECT_FALSE(c->completes("-0"));
    EXPECT_FALSE(c->completes("1.0"));
  }
  // one-sided
  auto at_least = constraint_for(sample::compile_json_schema(ordered_json{{"type", "integer"}, {"minimum", 42}}), "gpt-2");
  for (std::int64_t v = -100; v <= 5000; ++v) ASSERT_EQ(at_least->completes(std::to_string(v)), v >= 42) << v;
  EXPECT_TRUE(at_least->completes("123456789012345678901234567890"));
  auto at_most = constraint_for(sample::compile_json_schema(ordered_json{{"type", "integer"}, {"maximum", -3}}), "gpt-2");
  for (std::int64_t v = -5000; v <= 100; ++v) ASSERT_EQ(at_most->completes(std::to_string(v)), v <= -3) << v;
}

TEST(JsonSchema, NumberBoundsWithFractions) {
  auto c = constraint_for(sample::compile_json_schema(ordered_json{{"type", "number"}, {"minimum", -40}, {"maximum", 50}}), "gpt-2");
  for (const std::string in : {"0", "-0", "50", "50.0", "50.000", "-40", "-40.0", "-39.999", "49.99", "0.5", "-0.5", "12.25"}) {
    EXPECT_TRUE(c->completes(in)) << in;
  }
  for (const std::string out : {"50.01", "51", "-40.5", "-41", "1e2", "01.5", ".5", "5.", "100"}) EXPECT_FALSE(c->completes(out)) << out;
  auto free = constraint_for(sample::compile_json_schema(ordered_json{{"type", "number"}}), "gpt-2");
  for (const std::string in : {"0", "-0.0", "1e5", "1E+5", "-2.5e-3", "123.456"}) EXPECT_TRUE(free->completes(in)) << in;
  for (const std::string out : {"+1", "1.", "1e", "00", "-", "0x10", "NaN"}) EXPECT_FALSE(free->completes(out)) << out;
}

TEST(JsonSchema, StringsEscapesAndUnicode) {
  auto c = constraint_for(sample::compile_json_schema(ordered_json{{"type", "string"}, {"minLength", 2}, {"maxLength", 4}}), "gpt-2");
  for (const std::string in : {R"("ab")", R"("\n\t")", R"("\u00e9x")", "\"é€😀\"", R"("\"\\\/")", R"("\ud7ff!")", R"("abcd")"}) {
    EXPECT_TRUE(c->completes(in)) << in;
  }
  for (const std::string out : {R"("a")", R"("abcde")", R"("\x")", R"("\ud800x")", "\"a\nb\"", "\"\xC3\x28\"", R"("\u12")", "'ab'"}) {
    EXPECT_FALSE(c->completes(out)) << out;
  }
  // what the grammar accepts, nlohmann reads
  for (const std::string in : {R"("\u00e9x")", R"("\"\\\/")", "\"é€😀\""}) EXPECT_NO_THROW(static_cast<void>(ordered_json::parse(in).is_string())) << in;
}

TEST(JsonSchema, ObjectsArraysAndEmptyOnes) {
  auto c = constraint_for(sample::compile_json_schema(R"({"type": "object", "properties": {"a": {"type": "integer"},
      "b": {"type": "array", "items": {"type": "object"}}, "c": {"type": "boolean"}}, "required": ["b"]})"), "gpt-2");
  for (const std::string in : {R"({"b":[]})", R"({"a": 1, "b": [{}, {}]})", R"({"b":[{}],"c":true})", R"({"a":-3,"b":[],"c":false})"}) {
    EXPECT_TRUE(c->completes(in)) << in;
  }
  for (const std::string out : {"{}", R"({"a":1})", R"({"b":[],"a":1})", R"({"b":[{"x":1}]})", R"({"b":[],})", R"({"b": [] })",
                                R"({"b":[],"d":1})", R"({ "b":[]})"}) {
    EXPECT_FALSE(c->completes(out)) << out;
  }
  auto bounded = constraint_for(sample::compile_json_schema(R"({"type": "array", "items": {"type": "null"}, "minItems": 1, "maxItems": 2})"), "gpt-2");
  EXPECT_FALSE(bounded->completes("[]"));
  EXPECT_TRUE(bounded->completes("[null]"));
  EXPECT_TRUE(bounded->completes("[null, null]"));
  EXPECT_FALSE(bounded->completes("[null,null,null]"));
  auto empty = constraint_for(sample::compile_json_schema(R"({"type": "object"})"), "gpt-2");
  EXPECT_TRUE(empty->completes("{}"));
  EXPECT_FALSE(empty->completes(R"({"x":1})"));
  auto anything = constraint_for(sample::compile_json_schema(R"({})"), "gpt-2");
  for (const std::string in : {"{}", "[]", R"({"x": [1, {"y": null}], "z": "w"})", "true", "-1.5e3", R"("s")"}) {
    EXPECT_TRUE(anything->completes(in)) << in;
  }
}

TEST(JsonSchema, SeparatorSpacing) {
  const ordered_json schema = ordered_json::parse(R"({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}}, "required": ["a"]})");
  auto compact = constraint_for(sample::compile_json_schema(schema, {.separators = sample::json_separators::compact}), "gpt-2");
  auto spaced = constraint_for(sample::compile_json_schema(schema, {.separators = sample::json_separators::spaced}), "gpt-2");
  EXPECT_TRUE(compact->completes(R"({"a":[1,2]})"));
  EXPECT_FALSE(compact->completes(R"({"a": [1, 2]})"));
  EXPECT_TRUE(spaced->completes(R"({"a": [1, 2]})"));
  EXPECT_FALSE(spaced->completes(R"({"a":[1,2]})"));
}

TEST(JsonSchema, RecursionAndDeepNesting) {
  const char* tree = R"({"$ref": "#/definitions/t", "definitions": {"t": {"type": "object",
      "properties": {"kids": {"type": "array", "items": {"$ref": "#/definitions/t"}}}}}})";
  auto c = constraint_for(sample::compile_json_schema(tree), "gpt-2");
  std::string deep;
  for (int i = 0; i < 20; ++i) deep += R"({"kids":[)";
  deep += "{}";
  for (int i = 0; i < 20; ++i) deep += "]}";
  EXPECT_TRUE(c->completes(deep));
  // the parser's stack limit cuts nesting far beyond that
  std::string too_deep;
  for (int i = 0; i < 400; ++i) too_deep += R"({"kids":[)";
  EXPECT_FALSE(c->accepts(too_deep));
  // a schema document nested deeper than the compiler's limit is refused
  ordered_json nested = {{"type", "integer"}};
  for (int i = 0; i < 80; ++i) nested = {{"type", "array"}, {"items", nested}};
  expect_error(errc::out_of_range, "nested deeper than 64", [&] { (void)sample::compile_json_schema(nested); });
}

TEST(JsonSchema, RefusesWhatItDoesNotSupport) {
  expect_error(errc::unsupported, "keyword 'pattern' at #/properties/name is not supported",
               [] { (void)sample::compile_json_schema(R"({"type":"object","properties":{"name":{"type":"string","pattern":"^a"}}})"); });
  expect_error(errc::unsupported, "keyword 'format' at #/items is not supported",
               [] { (void)sample::compile_json_schema(R"({"type":"array","items":{"type":"string","format":"date"}})"); });
  expect_error(errc::unsupported, "keyword 'oneOf' at # is not supported", [] { (void)sample::compile_json_schema(R"({"oneOf":[{}]})"); });
  expect_error(errc::unsupported, "keyword 'additionalProperties' at # is not supported",
               [] { (void)sample::compile_json_schema(R"({"type":"object","additionalProperties":true})"); });
  expect_error(errc::unsupported, "keyword 'exclusiveMinimum' at #/$defs/x is not supported",
               [] { (void)sample::compile_json_schema(R"({"$ref":"#/$defs/x","$defs":{"x":{"type":"number","exclusiveMinimum":0}}})"); });
  expect_error(errc::unsupported, "keyword 'minimum' at # is not supported (a number's bounds must be integers",
               [] { (void)sample::compile_json_schema(R"({"type":"number","minimum":0.5})"); });
  expect_error(errc::unsupported, "keyword 'minLength' at # is not supported (it applies to string values",
               [] { (void)sample::compile_json_schema(R"({"type":"integer","minLength":2})"); });
  expect_error(errc::unsupported, "keyword 'type' at # is not supported (beside $ref)",
               [] { (void)sample::compile_json_schema(R"({"$ref":"#/$defs/a","type":"object","$defs":{"a":{}}})"); });
  expect_error(errc::unsupported, "'$ref' at # is not supported (only references within the schema",
               [] { (void)sample::compile_json_schema(R"({"$ref":"http://example.com/s.json"})"); });
  expect_error(errc::invalid_argument, "'#/$defs/missing' points to nothing", [] { (void)sample::compile_json_schema(R"({"$ref":"#/$defs/missing"})"); });
  expect_error(errc::invalid_argument, "property 'b' is required but has no schema",
               [] { (void)sample::compile_json_schema(R"({"type":"object","properties":{"a":{}},"required":["b"]})"); });
  expect_error(errc::invalid_argument, "no enum/const value satisfies", [] { (void)sample::compile_json_schema(R"({"type":"string","enum":[1,2]})"); });
  expect_error(errc::invalid_argument, "not valid JSON", [] { (void)sample::compile_json_schema(std::string_view("{")); });
  expect_error(errc::invalid_argument, "unknown type \"text\"", [] { (void)sample::compile_json_schema(R"({"type":"text"})"); });
}

TEST(JsonSchema, ValidatorNamesTheViolation) {
  const auto schema = ordered_json::parse(weather_schema);
  const sample::json_schema_validator v(schema);
  EXPECT_FALSE(v.check(ordered_json::parse(R"({"location": "Paris", "days": 3})")));
  EXPECT_EQ(*v.check(ordered_json::parse(R"({"location": "Paris"})")), "/: the required property \"days\" is missing");
  EXPECT_EQ(*v.check(ordered_json::parse(R"({"location": "Paris", "days": 15})")), "/days: 15 is above the maximum 14");
  EXPECT_EQ(*v.check(ordered_json::parse(R"({"location": "", "days": 1})")), "/location: the string has 0 characters, fewer than minLength 1");
  EXPECT_EQ(*v.check(ordered_json::parse(R"({"location": "x", "days": 1, "nested": {"v": 1, "next": {"v": 2000}}})")),
            "/nested/next/v: 2000 is above the maximum 1000");
  EXPECT_EQ(*v.check(ordered_json::parse(R"({"location": "x", "days": 1, "extra": 0})")),
            "/: property \"extra\" is not allowed (additionalProperties false)");
  EXPECT_EQ(*v.check(ordered_json::parse(R"({"location": "x", "days": 1.5})")), "/days: 1.5 is not of type \"integer\"");
}

// Generations by random-weight models (they want to emit anything) under a schema: all parse
// as JSON and validate. Strings, numbers and arrays are bounded so that every output ends well
// within the token budget.
void expect_model_generations_validate(const std::string& model_file, int seeds, int max_tokens) {
  const char* schema_text = R"({
    "type": "object",
    "properties": {
      "name": {"type": "string", "maxLength": 16},
      "unit": {"enum": ["celsius", "fahrenheit", "kelvin"]},
      "days": {"type": "integer", "minimum": 1, "maximum": 14},
      "score": {"type": "number", "minimum": -1, "maximum": 1},
      "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3},
      "ok": {"type": "boolean"},
      "where": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"lat": {"type": "integer", "minimum": -90, "maximum": 90}},
                                                 "required": ["lat"]}]}
    },
    "required": ["name", "days", "ok"]
  })";
  const auto schema = ordered_json::parse(schema_text);
  const auto model = generate::language_model::load(chorus_test::model_path(model_file));
  auto grammar = std::make_shared<const sample::grammar>(sample::compile_json_schema(schema, {.max_fraction_digits = 3}));
  auto index = std::make_shared<const sample::token_index>(model->tokens());
  generate::session session(model, {.n_ctx = 512, .threads = 2});
  generate::options opts;
  opts.max_tokens = max_tokens;
  opts.sampling.temperature = 1.0f;
  opts.sampling.top_k = 0;
  opts.sampling.top_p = 1.0f;
  opts.sampling.min_p = 0.0f;
  opts.constraint = std::make_shared<sample::grammar_constraint>(grammar, index, model->tokens());
  const sample::json_schema_validator validator(schema);
  seeds = chorus_test::seeds_for_this_build(seeds);
  int valid = 0;
  for (int seed = 0; seed < seeds; ++seed) {
    opts.sampling.seed = static_cast<std::uint64_t>(seed);
    const auto result = session.complete("Reply in JSON:", opts);
    EXPECT_EQ(result.reason, generate::stop_reason::end_of_text) << result.text;
    try {
      const auto value = ordered_json::parse(result.text);
      const auto violation = validator.check(value);
      if (!violation) ++valid;
      else ADD_FAILURE() << model_file << " seed " << seed << ": " << *violation << ": " << result.text;
    } catch (const std::exception& e) {
      ADD_FAILURE() << model_file << " seed " << seed << ": not JSON (" << e.what() << "): " << result.text;
    }
    // the log-probabilities are those of the constrained distribution: finite (a masked
    // token would have -inf)
    for (const float lp : result.logprobs) ASSERT_TRUE(std::isfinite(lp) && lp <= 0.0f);
  }
  EXPECT_EQ(valid, seeds) << model_file;
}

TEST(JsonSchemaGeneration, RandomModelsAlwaysProduceValidJson) {
  expect_model_generations_validate("tiny-mistral-Q8_0.gguf", 100, 400);          // 512 SentencePiece tokens
  expect_model_generations_validate("tiny-llama-bpe-Q8_0.gguf", 100, 400);        // 50257 byte-level BPE tokens
  expect_model_generations_validate("tiny-llama-spm-Q4_K_M.gguf", 100, 400);      // 32000 SentencePiece tokens
}

}  // namespace
