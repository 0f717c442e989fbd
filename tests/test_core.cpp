// Tests of core/: errors, memory mapping, fp16/bf16, UTF-8 encoding, JSON input.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>

#include <sched.h>

#include "test_support.hpp"

namespace {

TEST(Error, CarriesCodeAndMessage) {
  try {
    chorus::fail(chorus::errc::bad_format, "tensor '", std::string("blk.0.attn_q.weight"), "' at offset ", 4096u);
    FAIL() << "fail() returned";
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), chorus::errc::bad_format);
    EXPECT_EQ(e.code(), chorus::errc::bad_format);
    EXPECT_STREQ(e.what(), "tensor 'blk.0.attn_q.weight' at offset 4096");
    EXPECT_EQ(e.code().category().name(), std::string("chorus"));
    EXPECT_EQ(e.code().message(), "bad format");
  }
}

TEST(Error, EveryCodeHasAMessage) {
  for (int code = 0; code <= static_cast<int>(chorus::errc::not_enough_answers); ++code) {
    EXPECT_NE(chorus::error_category().message(code), "unknown chorus error") << code;
  }
  EXPECT_EQ(chorus::error_category().message(9999), "unknown chorus error");
}

TEST(MappedFile, MapsARealModel) {
  const auto path = chorus_test::model_path("stories260K.gguf");
  chorus::mapped_file file(path);
  ASSERT_TRUE(file.is_open());
  EXPECT_EQ(file.size(), std::filesystem::file_size(path));
  const auto bytes = file.bytes();
  ASSERT_GE(bytes.size(), 4u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.data()), 4), "GGUF");
}

TEST(MappedFile, MoveTransfersOwnership) {
  chorus::mapped_file a(chorus_test::model_path("stories260K.gguf"));
  const auto* data = a.data();
  chorus::mapped_file b(std::move(a));
  EXPECT_FALSE(a.is_open());
  EXPECT_EQ(b.data(), data);
  chorus::mapped_file c;
  c = std::move(b);
  EXPECT_EQ(c.data(), data);
  EXPECT_FALSE(b.is_open());
}

TEST(MappedFile, MissingFileNamesThePath) {
  try {
    chorus::mapped_file file("/nonexistent/dir/model.gguf");
    FAIL();
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), chorus::errc::file_not_found);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/model.gguf"), std::string::npos) << e.what();
  }
}

TEST(MappedFile, EmptyFileIsAnError) {
  const auto dir = chorus_test::scratch_dir("mapped_file_empty");
  const auto path = dir / "empty.gguf";
  std::ofstream(path).close();
  try {
    chorus::mapped_file file(path);
    FAIL();
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), chorus::errc::file_empty);
    EXPECT_NE(std::string(e.what()).find("empty.gguf"), std::string::npos) << e.what();
  }
}

TEST(MappedFile, DirectoryIsUnreadable) {
  const auto dir = chorus_test::scratch_dir("mapped_file_dir");
  try {
    chorus::mapped_file file(dir);
    FAIL();
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), chorus::errc::file_unreadable);
  }
}

TEST(Fp16, RoundTripsEveryHalf) {
  for (std::uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const auto h = static_cast<std::uint16_t>(bits);
    const float f = chorus::fp16_bits_to_float(h);
    if (std::isnan(f)) continue;
    EXPECT_EQ(chorus::float_to_fp16_bits(f), h) << std::hex << bits;
  }
}

TEST(Fp16, RoundsToNearestEven) {
  EXPECT_EQ(chorus::float_to_fp16_bits(1.0f), 0x3c00);
  EXPECT_EQ(chorus::float_to_fp16_bits(1.0f + 1.0f / 2048.0f), 0x3c00);        // tie: to even
  EXPECT_EQ(chorus::float_to_fp16_bits(1.0f + 3.0f / 2048.0f), 0x3c02);        // tie: to even (up)
  EXPECT_EQ(chorus::float_to_fp16_bits(65520.0f), 0x7c00);                     // overflow
  EXPECT_EQ(chorus::float_to_fp16_bits(std::ldexp(1.0f, -25)), 0x0000);        // tie below the smallest subnormal
  EXPECT_EQ(chorus::float_to_fp16_bits(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(chorus::float_to_fp16_bits(-2.0f), 0xc000);
  EXPECT_TRUE(std::isnan(chorus::fp16_bits_to_float(chorus::float_to_fp16_bits(NAN))));
}

TEST(Bf16, RoundTripAndRounding) {
  EXPECT_EQ(chorus::float_to_bf16_bits(1.0f), 0x3f80);
  EXPECT_EQ(chorus::bf16_bits_to_float(0x3f80), 1.0f);
  EXPECT_EQ(chorus::float_to_bf16_bits(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie to even
  EXPECT_EQ(chorus::float_to_bf16_bits(std::bit_cast<float>(0x3f818000u)), 0x3f82);
  EXPECT_TRUE(std::isnan(chorus::bf16_bits_to_float(chorus::float_to_bf16_bits(NAN))));
}

}  // namespace

namespace {

// The default thread count: one per physical core of the affinity mask, so a process pinned to
// one CPU gets one thread and no more than the hardware threads ever.
TEST(Cpu, PhysicalCoresFollowTheAffinityMask) {
  const std::size_t all = chorus::physical_core_count();
  EXPECT_GE(all, 1u);
  EXPECT_LE(all, std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(chorus::thread_pool().size(), all);

  cpu_set_t before;
  ASSERT_EQ(sched_getaffinity(0, sizeof(before), &before), 0);
  int first = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE && first < 0; ++cpu) {
    if (CPU_ISSET(cpu, &before)) first = cpu;
  }
  ASSERT_GE(first, 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  const std::size_t pinned = chorus::physical_core_count();
  ASSERT_EQ(sched_setaffinity(0, sizeof(before), &before), 0);
  EXPECT_EQ(pinned, 1u);
}

// One encoder for the tokenizers and the stream decoder: each length class at both of its ends.
TEST(Utf8, EncodesEveryLengthAtItsBounds) {
  const std::pair<std::uint32_t, std::string_view> cases[] = {
      {0x0, std::string_view("\0", 1)}, {0x7F, "\x7F"},           {0x80, "\xC2\x80"},
      {0x7FF, "\xDF\xBF"},               {0x800, "\xE0\xA0\x80"},   {0xFFFD, "\xEF\xBF\xBD"},
      {0xFFFF, "\xEF\xBF\xBF"},          {0x10000, "\xF0\x90\x80\x80"}, {0x10FFFF, "\xF4\x8F\xBF\xBF"},
  };
  for (const auto& [cp, bytes] : cases) {
    std::string out = "x", expected = "x";
    chorus::append_utf8(out, cp);
    expected += bytes;
    EXPECT_EQ(out, expected) << std::hex << cp;
  }
}

TEST(ParseJson, KeepsMembersInTheirOrder) {
  const auto v = chorus::parse_json(R"( {"z": 1, "a": [true, null, -2.5e3], "m": {"y": "\u00e9\ud83c\udf89"}} )");
  EXPECT_EQ(v.dump(), R"({"z":1,"a":[true,null,-2500.0],"m":{"y":"é🎉"}})");
  EXPECT_EQ(v.at("z").get<int>(), 1);
}

// Text from outside (a model's tool call, a request body) never aborts: each mistake is a
// chorus::error naming the position and what was wrong.
TEST(ParseJson, MalformedTextIsAnErrorNamingWhereAndWhat) {
  using chorus_test::expect_error;
  const auto bad = chorus::errc::bad_format;
  const auto parse = [](std::string_view text) { return [text] { (void)chorus::parse_json(text, "tool arguments"); }; };
  expect_error(bad, "tool arguments: parse error at line 1, column 1: syntax error while parsing value - unexpected end of input", parse(""));
  expect_error(bad, "line 1, column 4: syntax error while parsing value - unexpected ']'", parse("[1,]"));
  expect_error(bad, "line 1, column 8: syntax error while parsing object key - unexpected '}'", parse(R"({"a":1,})"));
  expect_error(bad, "line 1, column 2: syntax error while parsing object key - invalid literal; last read: '{c'", parse("{c: 1}"));
  expect_error(bad, "line 2, column 5: syntax error while parsing value - unexpected '}'", parse("{\"a\":1,\n\"b\":}"));
  expect_error(bad, "ill-formed UTF-8 byte", parse("\"\xFF\""));
  expect_error(bad, "ill-formed UTF-8 byte", parse("\"\xED\xA0\x80\""));  // an encoded surrogate
  expect_error(bad, "ill-formed UTF-8 byte", parse("[\"ab\xE6\x97\"]"));   // a truncated character
  expect_error(bad, "surrogate U+D800..U+DBFF must be followed by U+DC00..U+DFFF", parse(R"("\ud800")"));
  expect_error(bad, "control character U+0009 (HT) must be escaped", parse("\"tab\there\""));
  expect_error(bad, "invalid literal; last read: '/'", parse("// comment\n1"));
  expect_error(bad, "invalid literal; last read: 'N'", parse("NaN"));
  expect_error(bad, "unexpected number literal; expected end of input", parse("01"));
  expect_error(bad, "expected end of input", parse("{} {}"));
  expect_error(bad, "tool arguments: number overflow parsing '1e400'", parse("1e400"));
  // Every cut of a document is an error, never a crash or a value.
  const std::string document = R"({"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2.5e1, -3], "ok": true}})";
  EXPECT_NO_THROW((void)chorus::parse_json(document));
  for (std::size_t length = 0; length < document.size(); ++length) {
    expect_error(bad, "parse error at line 1, column ", parse(std::string_view(document).substr(0, length)));
  }
}

TEST(ParseJson, NestingIsBounded) {
  const auto nested = [](int levels) { return std::string(levels, '[') + std::string(levels, ']'); };
  EXPECT_NO_THROW((void)chorus::parse_json(nested(chorus::max_json_depth)));
  chorus_test::expect_error(chorus::errc::bad_format, "JSON: arrays and objects nested deeper than 512 levels",
                            [&] { (void)chorus::parse_json(nested(chorus::max_json_depth + 1)); });
  // A million levels: refused at level 513, without recursing a million times.
  chorus_test::expect_error(chorus::errc::bad_format, "nested deeper than 512",
                            [&] { (void)chorus::parse_json(std::string(1'000'000, '[')); });
  chorus_test::expect_error(chorus::errc::bad_format, "nested deeper than 512", [&] {
    std::string objects;
    for (int i = 0; i <= chorus::max_json_depth; ++i) objects += R"({"k":)";
    (void)chorus::parse_json(objects);
  });
}

}  // namespace
