// Tests of core/json.hpp: the strict JSON reader and writer.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace chorus;

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string from_hex(std::string_view hex) {
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  }
  return bytes;
}

// Parses `text`, expecting a bad_format error whose message contains `what` and the position.
void expect_parse_error(std::string_view text, std::string_view what, int line, int column) {
  try {
    (void)json::parse(text);
    ADD_FAILURE() << "parsed without error: " << text;
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), errc::bad_format) << text;
    const std::string message = e.what();
    EXPECT_NE(message.find(what), std::string::npos) << "input: " << text << "\nmessage: " << message;
    const std::string position = "at line " + std::to_string(line) + " column " + std::to_string(column);
    EXPECT_NE(message.find(position), std::string::npos) << "input: " << text << "\nmessage: " << message;
  }
}

using chorus_test::expect_error;

constexpr std::string_view sample_document = R"({
  "schema": "chorus-test/1",
  "n": 42,
  "neg": -7,
  "pi": 3.141592653589793,
  "small": 1.5e-300,
  "flags": [true, false, null],
  "text": "caf\u00e9 \"quoted\" \\ tab\t \ud83d\ude00 日本",
  "nested": {"empty_array": [], "empty_object": {}, "deep": [[1, [2, [3]]]]},
  "last": "end"
})";

TEST(Json, ParsesAllKinds) {
  const auto v = json::parse(sample_document);
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.size(), 9u);
  EXPECT_EQ(v["schema"].as_string(), "chorus-test/1");
  EXPECT_TRUE(v["n"].is_int());
  EXPECT_EQ(v["n"].as_int(), 42);
  EXPECT_EQ(v["neg"].as_int(), -7);
  EXPECT_TRUE(v["pi"].is_double());
  EXPECT_EQ(v["pi"].as_double(), 3.141592653589793);
  EXPECT_EQ(v["small"].as_double(), 1.5e-300);
  EXPECT_TRUE(v["flags"][0].as_bool());
  EXPECT_FALSE(v["flags"][1].as_bool());
  EXPECT_TRUE(v["flags"][2].is_null());
  EXPECT_EQ(v["text"].as_string(), "caf\xC3\xA9 \"quoted\" \\ tab\t \xF0\x9F\x98\x80 日本");
  EXPECT_TRUE(v["nested"]["empty_array"].is_array());
  EXPECT_EQ(v["nested"]["empty_array"].size(), 0u);
  EXPECT_TRUE(v["nested"]["empty_object"].is_object());
  EXPECT_EQ(v["nested"]["deep"][0][1][1][0].as_int(), 3);
  // Insertion order is kept.
  const auto& members = v.as_object();
  EXPECT_EQ(members.front().first, "schema");
  EXPECT_EQ(members.back().first, "last");
}

TEST(Json, RoundTripsCompactAndPretty) {
  const auto v = json::parse(sample_document);
  const std::string compact = json::dump(v);
  EXPECT_EQ(compact.find('\n'), std::string::npos);
  EXPECT_EQ(json::parse(compact), v);
  EXPECT_EQ(json::dump(json::parse(compact)), compact);
  const std::string pretty = json::dump(v, 2);
  EXPECT_NE(pretty.find("\n  \"n\": 42,\n"), std::string::npos) << pretty;
  EXPECT_EQ(json::parse(pretty), v);
  EXPECT_EQ(json::dump(json::parse(pretty), 2), pretty);
  EXPECT_EQ(json::dump(json::parse("{}"), 2), "{}");
  EXPECT_EQ(json::dump(json::parse(" [ ] "), 2), "[]");
}

TEST(Json, BuildsValues) {
  json::value o;
  o.set("null", nullptr);
  o.set("yes", true);
  o.set("int", 42);
  o.set("long", std::int64_t{1} << 40);
  o.set("size", std::size_t{7});
  o.set("huge_unsigned", std::numeric_limits<std::uint64_t>::max());
  o.set("half", 0.5);
  o.set("float", 0.25f);
  o.set("c_string", "s");
  o.set("string", std::string("t"));
  o.set("list", json::array{1, "two", nullptr, 2.5});
  o.set("map", json::object{{"k", 1}, {"j", json::array{}}});
  EXPECT_EQ(json::dump(o),
            R"({"null":null,"yes":true,"int":42,"long":1099511627776,"size":7,"huge_unsigned":18446744073709551616.0,)"
            R"("half":0.5,"float":0.25,"c_string":"s","string":"t","list":[1,"two",null,2.5],"map":{"k":1,"j":[]}})");
  // set() replaces an existing key in place; insert() is the same operation.
  o.set("int", 43);
  o.insert("added", "x");
  EXPECT_EQ(o["int"].as_int(), 43);
  EXPECT_EQ(o.as_object()[2].first, "int");
  EXPECT_EQ(o.as_object().back().first, "added");
  json::value a;
  a.push_back(1);
  a.push_back("b");
  EXPECT_EQ(json::dump(a), R"([1,"b"])");
  // Copies are deep: changing the copy leaves the original alone.
  json::value copy = o;
  copy.set("int", 0);
  copy.as_object()[10].second.push_back(3);
  EXPECT_EQ(o["int"].as_int(), 43);
  EXPECT_EQ(o["list"].size(), 4u);
  EXPECT_EQ(copy["list"].size(), 5u);
  EXPECT_NE(copy, o);
}

TEST(Json, AccessorErrorsNameTheProblem) {
  const auto v = json::parse(R"({"a": 1, "s": "x", "f": 2.5, "list": [1, 2]})");
  expect_error(errc::not_found, "'missing'", [&] { (void)v["missing"]; });
  expect_error(errc::type_mismatch, "expected a string, found an integer", [&] { (void)v["a"].as_string(); });
  expect_error(errc::type_mismatch, "expected an integer, found a string", [&] { (void)v["s"].as_int(); });
  expect_error(errc::type_mismatch, "non-integral", [&] { (void)v["f"].as_int(); });
  expect_error(errc::type_mismatch, "expected an array, found an object", [&] { (void)v[0]; });
  expect_error(errc::type_mismatch, "expected an object with key 'k'", [&] { (void)v["list"]["k"]; });
  expect_error(errc::out_of_range, "index 2", [&] { (void)v["list"][2]; });
  expect_error(errc::out_of_range, "index -1", [&] { (void)v["list"][-1]; });
  expect_error(errc::type_mismatch, "expected a bool", [&] { (void)v["a"].as_bool(); });
  EXPECT_EQ(v.find("missing"), nullptr);
  EXPECT_EQ(v["list"].find("a"), nullptr);
  ASSERT_NE(v.find("a"), nullptr);
  EXPECT_EQ(v.find("a")->as_int(), 1);
  EXPECT_TRUE(v.contains("s"));
  EXPECT_EQ(v["s"].size(), 0u);
  EXPECT_EQ(v["a"].as_double(), 1.0);
}

TEST(Json, EveryEscapeDecodes) {
  const auto v = json::parse(R"(["\"", "\\", "\/", "\b", "\f", "\n", "\r", "\t", "\u0041", "\u00e9", "\u20AC", "\uD83D\uDE00", "\u0000"])");
  const std::vector<std::string> expected = {"\"", "\\", "/", "\b", "\f", "\n", "\r", "\t", "A", "\xC3\xA9",
                                             "\xE2\x82\xAC", "\xF0\x9F\x98\x80", std::string(1, '\0')};
  ASSERT_EQ(v.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(v[i].as_string(), expected[i]) << i;
  // Every code point of the BMP outside the surrogates, and a few astral ones, survive
  // \u-decoding and re-encoding.
  for (std::uint32_t cp : {0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xD7FFu, 0xE000u, 0xFFFDu, 0xFFFFu}) {
    char escaped[16];
    std::snprintf(escaped, sizeof escaped, "\"\\u%04x\"", cp);
    const auto s = json::parse(escaped).as_string();
    EXPECT_EQ(json::parse(json::dump(json::value(s))).as_string(), s) << cp;
  }
  EXPECT_EQ(json::parse(R"("\uDBFF\uDFFF")").as_string(), "\xF4\x8F\xBF\xBF");  // U+10FFFF
  EXPECT_EQ(json::parse(R"("\ud800\udc00")").as_string(), "\xF0\x90\x80\x80");  // U+10000
}

TEST(Json, WritesEscapes) {
  std::string all_controls;
  for (int c = 0; c < 0x20; ++c) all_controls += static_cast<char>(c);
  std::string out;
  json::write_string(out, all_controls);
  EXPECT_EQ(out,
            "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f"
            "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d"
            "\\u001e\\u001f\"");
  EXPECT_EQ(json::parse(out).as_string(), all_controls);
  out.clear();
  json::write_string(out, "a\"b\\c/d\x7F");
  EXPECT_EQ(out, "\"a\\\"b\\\\c/d\\u007f\"");
  // UTF-8 passes through as is.
  out.clear();
  json::write_string(out, "Zürich 東京 😀");
  EXPECT_EQ(out, "\"Zürich 東京 😀\"");
  // Invalid UTF-8 becomes U+FFFD, one per bad byte: the output stays valid JSON.
  out.clear();
  json::write_string(out, std::string_view("a\xFF\xFE" "b\xC3", 5));
  EXPECT_EQ(out, "\"a\xEF\xBF\xBD\xEF\xBF\xBD" "b\xEF\xBF\xBD\"");
  EXPECT_EQ(json::parse(out).as_string(), "a\xEF\xBF\xBD\xEF\xBF\xBD" "b\xEF\xBF\xBD");
  out.clear();
  json::write_string(out, "\xED\xA0\x80");  // an encoded surrogate is not valid UTF-8
  EXPECT_EQ(out, "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST(Json, Numbers) {
  EXPECT_EQ(json::parse("0").as_int(), 0);
  EXPECT_EQ(json::parse("-1").as_int(), -1);
  EXPECT_EQ(json::parse("9223372036854775807").as_int(), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(json::parse("-9223372036854775808").as_int(), std::numeric_limits<std::int64_t>::min());
  // Beyond int64: a double (JSON numbers are not bounded).
  const auto big = json::parse("9223372036854775808");
  EXPECT_TRUE(big.is_double());
  EXPECT_EQ(big.as_double(), 9223372036854775808.0);
  expect_error(errc::type_mismatch, "integer", [&] { (void)big.as_int(); });
  EXPECT_TRUE(json::parse("-9223372036854775809").is_double());
  EXPECT_EQ(json::parse("123456789012345678901234567890").as_double(), 1.2345678901234568e29);
  // Fractions and exponents are doubles; as_int accepts them when integral.
  const auto e3 = json::parse("1e3");
  EXPECT_TRUE(e3.is_double());
  EXPECT_EQ(e3.as_int(), 1000);
  EXPECT_EQ(json::parse("2.0").as_int(), 2);
  EXPECT_EQ(json::parse("1E+2").as_double(), 100.0);
  EXPECT_EQ(json::parse("-2.5e-3").as_double(), -0.0025);
  EXPECT_EQ(json::parse("0.1").as_double(), 0.1);  // correctly rounded
  EXPECT_EQ(json::parse("1.7976931348623157e308").as_double(), std::numeric_limits<double>::max());
  EXPECT_EQ(json::parse("5e-324").as_double(), std::numeric_limits<double>::denorm_min());
  // "-0" keeps its sign (as a double); "0" is an integer.
  const auto minus_zero = json::parse("-0");
  EXPECT_TRUE(minus_zero.is_double());
  EXPECT_TRUE(std::signbit(minus_zero.as_double()));
  EXPECT_EQ(minus_zero.as_int(), 0);
  EXPECT_EQ(json::dump(minus_zero), "-0.0");
  EXPECT_TRUE(std::signbit(json::parse("-0.0e5").as_double()));
  // Overflow is an error; underflow goes to zero, keeping the sign.
  expect_parse_error("1e400", "too large", 1, 1);
  expect_parse_error("[-1e400]", "too large", 1, 2);
  expect_parse_error("[1e99999999999999999999]", "too large", 1, 2);
  EXPECT_EQ(json::parse("1e-400").as_double(), 0.0);
  EXPECT_TRUE(std::signbit(json::parse("-1e-400").as_double()));
  EXPECT_EQ(json::parse("0e999").as_double(), 0.0);
  EXPECT_EQ(json::parse("0.000e-99999999999").as_double(), 0.0);
  // Writing: integers as integers, doubles shortest round-trip, integral doubles with ".0".
  EXPECT_EQ(json::dump(json::value(0.1)), "0.1");
  EXPECT_EQ(json::dump(json::value(1e21)), "1e+21");
  EXPECT_EQ(json::dump(json::value(3.0)), "3.0");
  EXPECT_TRUE(json::parse(json::dump(json::value(3.0))).is_double());
  EXPECT_EQ(json::dump(json::value(-12)), "-12");
  EXPECT_EQ(json::dump(json::value(std::numeric_limits<std::int64_t>::min())), "-9223372036854775808");
  EXPECT_EQ(json::dump(json::value(std::nan(""))), "null");
  EXPECT_EQ(json::dump(json::value(-std::numeric_limits<double>::infinity())), "null");
}

TEST(Json, DoublesRoundTripExactly) {
  std::mt19937_64 bits(20251122);
  int checked = 0;
  for (int i = 0; i < 20000; ++i) {
    const double d = std::bit_cast<double>(bits());
    if (!std::isfinite(d)) continue;
    const auto back = json::parse(json::dump(json::value(d)));
    ASSERT_EQ(std::bit_cast<std::uint64_t>(back.as_double()), std::bit_cast<std::uint64_t>(d)) << json::dump(json::value(d));
    ++checked;
  }
  EXPECT_GT(checked, 19000);
  for (float f : {0.1f, 1e-45f, 3.4028235e38f, -7.25f}) {
    EXPECT_EQ(static_cast<float>(json::parse(json::dump(json::value(f))).as_double()), f);
  }
}

TEST(Json, MalformedInputsReportLineAndColumn) {
  expect_parse_error("", "unexpected end of input", 1, 1);
  expect_parse_error("   \n  ", "unexpected end of input", 2, 3);
  expect_parse_error("[1,]", "trailing comma in an array", 1, 4);
  expect_parse_error("{\"a\":1,}", "trailing comma in an object", 1, 8);
  expect_parse_error("{\n  \"a\": 1,\n  }", "trailing comma in an object", 3, 3);
  expect_parse_error("[1 2]", "expected ',' or ']'", 1, 4);
  expect_parse_error("{\"a\" 1}", "expected ':'", 1, 6);
  expect_parse_error("{\"a\":1 \"b\":2}", "expected ',' or '}'", 1, 8);
  expect_parse_error("{a:1}", "expected a string key", 1, 2);
  expect_parse_error("{1:1}", "expected a string key", 1, 2);
  expect_parse_error("\"abc", "unterminated string", 1, 1);
  expect_parse_error("[\n\"abc\\\"]", "unterminated string", 2, 1);
  expect_parse_error("\"a\\x\"", "invalid escape", 1, 3);
  expect_parse_error("\"a\\u12G4\"", "invalid hex digit", 1, 7);
  expect_parse_error("\"\\u12\"", "invalid hex digit", 1, 6);
  expect_parse_error("\"\\ud800\"", "high surrogate", 1, 2);
  expect_parse_error("\"\\ud800\\u0041\"", "high surrogate", 1, 2);
  expect_parse_error("\"\\ud800x\"", "high surrogate", 1, 2);
  expect_parse_error("\"\\udc00\"", "lone low surrogate", 1, 2);
  expect_parse_error("\"\\ude00\\ud83d\"", "lone low surrogate", 1, 2);
  expect_parse_error("\"tab\there\"", "control character", 1, 5);
  expect_parse_error("\"line\nbreak\"", "control character", 1, 6);
  expect_parse_error(std::string_view("\"nul\0\"", 6), "control character", 1, 5);
  expect_parse_error("\"\xFF\"", "invalid UTF-8", 1, 2);
  expect_parse_error("\"\xC0\xAF\"", "invalid UTF-8", 1, 2);          // overlong '/'
  expect_parse_error("\"\xED\xA0\x80\"", "invalid UTF-8", 1, 2);      // encoded surrogate
  expect_parse_error("\"\xF4\x90\x80\x80\"", "invalid UTF-8", 1, 2);  // above U+10FFFF
  expect_parse_error("\"ab\xE6\x97\"", "invalid UTF-8", 1, 4);        // truncated sequence
  expect_parse_error("01", "leading zero", 1, 1);
  expect_parse_error("[-012]", "leading zero", 1, 3);
  expect_parse_error("1.", "unexpected end of input", 1, 3);
  expect_parse_error("1.e5", "a digit must follow '.'", 1, 3);
  expect_parse_error(".5", "unexpected character", 1, 1);
  expect_parse_error("+1", "unexpected character", 1, 1);
  expect_parse_error("-", "unexpected end of input", 1, 2);
  expect_parse_error("-a", "invalid number", 1, 2);
  expect_parse_error("1e", "unexpected end of input", 1, 3);
  expect_parse_error("1e+x", "a digit must follow the exponent", 1, 4);
  expect_parse_error("0x10", "unexpected text after the document", 1, 2);
  expect_parse_error("NaN", "unexpected character", 1, 1);
  expect_parse_error("[Infinity]", "unexpected character", 1, 2);
  expect_parse_error("tru", "unexpected end of input", 1, 4);
  expect_parse_error("trUe", "invalid literal", 1, 1);
  expect_parse_error("nul", "unexpected end of input", 1, 4);
  expect_parse_error("{} {}", "unexpected text after the document", 1, 4);
  expect_parse_error("[1] x", "unexpected text after the document", 1, 5);
  expect_parse_error("// comment\n1", "unexpected character", 1, 1);
  expect_parse_error("\xEF\xBB\xBF{}", "unexpected character", 1, 1);  // byte order mark
  expect_parse_error("[1,\n2,\n\"x\" \"y\"]", "expected ',' or ']'", 3, 5);
  expect_parse_error("{\"a\":[1,{\"b\":}]}", "unexpected character", 1, 14);
  expect_parse_error("['single']", "unexpected character", 1, 2);
  expect_parse_error("[\v1]", "unexpected character", 1, 2);  // \v is not JSON whitespace
}

TEST(Json, EveryTruncationOfADocumentIsAnError) {
  const std::string document(sample_document);
  for (std::size_t length = 0; length < document.size(); ++length) {
    const std::string_view prefix(document.data(), length);
    try {
      (void)json::parse(prefix);
      ADD_FAILURE() << "a truncated document parsed, length " << length;
    } catch (const chorus::error& e) {
      EXPECT_EQ(e.kind(), errc::bad_format);
      EXPECT_NE(std::string(e.what()).find(" at line "), std::string::npos) << e.what();
    }
  }
  // The message points at the end of the input for most truncations.
  expect_parse_error(std::string_view(document.data(), 30), "unexpected end of input", 2, 29);
}

TEST(Json, NestingDepthIsLimited) {
  const auto nested = [](int depth, char open, char close) {
    std::string s;
    for (int i = 0; i < depth; ++i) s += open == '{' ? std::string("{\"k\":") : std::string(1, open);
    s += "1";
    s += std::string(static_cast<std::size_t>(depth), close);
    return s;
  };
  EXPECT_EQ(json::parse(nested(512, '[', ']')).size(), 1u);
  EXPECT_TRUE(json::parse(nested(512, '{', '}')).is_object());
  expect_parse_error(nested(513, '[', ']'), "nesting deeper than 512", 1, 513);
  expect_parse_error(nested(513, '{', '}'), "nesting deeper than 512", 1, 5 * 512 + 1);
  // Far deeper input fails the same way instead of overflowing the stack.
  expect_parse_error(std::string(1000000, '['), "nesting deeper than 512", 1, 513);
  // A deeply nested value that was built (not parsed) still dumps and destroys fine.
  json::value v = 1;
  for (int i = 0; i < 200; ++i) v = json::array{std::move(v)};
  EXPECT_EQ(json::dump(v).size(), 401u);
}

TEST(Json, DuplicateKeysKeepTheFirstForLookup) {
  const auto v = json::parse(R"({"k": 1, "k": 2})");
  EXPECT_EQ(v.size(), 2u);
  EXPECT_EQ(v["k"].as_int(), 1);
}

std::vector<std::filesystem::path> golden_files(const std::filesystem::path& dir, std::string_view suffix, bool recursive) {
  std::vector<std::filesystem::path> files;
  auto add = [&](const std::filesystem::directory_entry& entry) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.size() >= suffix.size() && name.ends_with(suffix)) files.push_back(entry.path());
  };
  if (recursive) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) add(entry);
  } else {
    for (const auto& entry : std::filesystem::directory_iterator(dir)) add(entry);
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(Json, ParsesEveryGoldenLogitsFile) {
  const auto files = golden_files(chorus_test::golden_dir() / "logits", ".json", true);
  ASSERT_GE(files.size(), 10u);
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    const auto g = json::parse(slurp(path));
    EXPECT_EQ(g["schema"].as_string(), "chorus-golden-logits/1");
    EXPECT_EQ(g["model"].as_string().substr(0, g["model"].as_string().size() - 5), path.parent_path().filename().string());
    EXPECT_EQ(g["prompt_id"].as_string(), path.stem().string());
    // The decoded prompt (with its \u escapes, if any) is exactly the bytes of prompt_hex.
    EXPECT_EQ(g["prompt"].as_string(), from_hex(g["prompt_hex"].as_string()));
    const auto n_vocab = g["n_vocab"].as_int();
    const auto n_prompt = g["n_prompt_tokens"].as_int();
    EXPECT_EQ(static_cast<std::int64_t>(g["tokens"].size()), n_prompt);
    EXPECT_EQ(static_cast<std::int64_t>(g["last_logits"].size()), n_vocab);
    EXPECT_EQ(static_cast<std::int64_t>(g["prompt_top"].size()), n_prompt);
    for (const auto& t : g["tokens"].as_array()) {
      EXPECT_GE(t.as_int(), 0);
      EXPECT_LT(t.as_int(), n_vocab);
    }
    // prompt_top rows: top_k [id, logit] pairs, sorted by logit descending.
    const auto top_k = static_cast<std::size_t>(g["top_k"].as_int());
    const auto& last_row = g["prompt_top"][g["prompt_top"].size() - 1];
    ASSERT_EQ(last_row.size(), top_k);
    for (std::size_t i = 1; i < top_k; ++i) EXPECT_GE(last_row[i - 1][1].as_double(), last_row[i][1].as_double());
    // The last row's best logit is the maximum of last_logits, to the float.
    double max_logit = -std::numeric_limits<double>::infinity();
    for (const auto& l : g["last_logits"].as_array()) max_logit = std::max(max_logit, l.as_double());
    EXPECT_EQ(static_cast<float>(max_logit), static_cast<float>(last_row[0][1].as_double()));
    const auto& generation = g["generation"];
    EXPECT_EQ(generation["tokens"].size(), static_cast<std::size_t>(generation["n"].as_int()));
    EXPECT_EQ(generation["steps"].size(), generation["tokens"].size());
    EXPECT_EQ(generation["steps"][0]["pos"].as_int(), n_prompt - 1);
    EXPECT_TRUE(g["llama_cpp"]["flash_attn"].is_bool());
    // A golden file survives a dump and re-parse unchanged.
    EXPECT_EQ(json::parse(json::dump(g)), g);
  }
}

TEST(Json, ParsesEveryGoldenTokenizerFile) {
  const auto files = golden_files(chorus_test::golden_dir() / "tokenizer", ".extra.json", false);
  ASSERT_GE(files.size(), 5u);
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    const auto g = json::parse(slurp(path));
    EXPECT_EQ(g["schema"].as_string(), "chorus-golden-tokenizer-extra/1");
    EXPECT_EQ(g["vocab"].as_string() + "", path.filename().string().substr(0, path.filename().string().size() - 11) + ".gguf");
    EXPECT_TRUE(g["gguf_add_bos_token"].is_bool() || g["gguf_add_bos_token"].is_null());
    EXPECT_TRUE(g["llama_cpp_adds_bos"].is_bool());
    ASSERT_GT(g["cases"].size(), 10u);
    for (const auto& c : g["cases"].as_array()) {
      SCOPED_TRACE(c["name"].as_string());
      if (c["valid_utf8"].as_bool()) {
        EXPECT_EQ(c["text"].as_string(), from_hex(c["text_hex"].as_string()));
      }
      const auto adds = g["llama_cpp_adds_bos"].as_bool() ? 1u : 0u;
      EXPECT_EQ(c["ids_add_special"].size(), c["ids"].size() + adds);
    }
  }
}

}  // namespace
