// Tests of core/: errors, memory mapping, fp16/bf16.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <cmath>
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

}  // namespace
