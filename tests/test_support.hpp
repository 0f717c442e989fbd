// Shared helpers for the chorus tests: where the models and goldens live, error expectations.
#pragma once

#include <gtest/gtest.h>

#include <chorus/chorus.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace chorus_test {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool sanitized_build = true;
#else
inline constexpr bool sanitized_build = false;
#endif

// The randomized generation tests run a quarter of their seeds under the sanitizers: the code is
// the same for every seed, and it is 13-18x slower there (Zen 3, ASan + UBSan: the two largest
// took 353 s and 372 s against 28 s and 20 s in release, near ctest's 600 s limit). The release
// build runs them all.
inline int seeds_for_this_build(int seeds) { return sanitized_build ? (seeds + 3) / 4 : seeds; }

inline std::filesystem::path shared_dir() { return std::filesystem::path(CHORUS_SHARED_DIR); }
inline std::filesystem::path models_dir() { return shared_dir() / "models"; }
inline std::filesystem::path golden_dir() { return shared_dir() / "golden"; }
inline std::filesystem::path model_path(const std::string& file) { return models_dir() / file; }
inline std::filesystem::path test_data_dir() { return std::filesystem::path(CHORUS_TEST_DATA_DIR); }

// The model in ../shared/models/`file`, loaded once per test program (tests share it).
inline std::shared_ptr<const chorus::generate::language_model> load(const std::string& file) {
  static std::mutex lock;
  static std::map<std::string, std::shared_ptr<const chorus::generate::language_model>> cache;
  std::lock_guard guard(lock);
  auto& m = cache[file];
  if (!m) m = chorus::generate::language_model::load(model_path(file));
  return m;
}
inline std::shared_ptr<const chorus::generate::language_model> stories() { return load("stories260K.gguf"); }

// n draws of N(0, stddev), the same for one seed
inline std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// ||a - b|| / ||b||
inline double relative_rms(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, ref = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    err += d * d;
    ref += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(err / ref);
}

template <class Block>
std::vector<float> dequantized(const Block* blocks, std::size_t n) {
  std::vector<float> out(n);
  chorus::quant::block_traits<Block>::dequantize(blocks, out.data(), n);
  return out;
}

// token ids of a golden JSON array
inline std::vector<std::int32_t> ids_of(const nlohmann::json& array) {
  std::vector<std::int32_t> ids;
  for (const auto& v : array) ids.push_back(static_cast<std::int32_t>(v.get<std::int64_t>()));
  return ids;
}

// A fresh, empty directory under the build tree for files a test writes. It is the running
// test's own: ctest -j runs tests in parallel processes, and two of them sharing one directory
// removed each other's files.
inline std::filesystem::path scratch_dir(const std::string& name) {
  std::string owner = "outside-tests";
  if (const auto* t = ::testing::UnitTest::GetInstance()->current_test_info()) {
    owner = std::string(t->test_suite_name()) + "." + t->name();
    for (char& c : owner) {
      if (c == '/') c = '_';
    }
  }
  auto dir = std::filesystem::path(CHORUS_BINARY_DIR) / "test-scratch" / name / owner;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Runs `body`, expecting a chorus::error of `kind` whose message contains `fragment`.
template <class Body>
void expect_error(chorus::errc kind, std::string_view fragment, Body&& body) {
  try {
    body();
    ADD_FAILURE() << "no error; expected one containing '" << fragment << "'";
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// `CHORUS_TEST_IF_COMPILED(Block) { ... }` in a template (a typed test, a template lambda): the
// block runs if Block is in this build's list of formats (quant::compiled_formats; CI builds the
// tests with a two-format list too), else the test is skipped and the block not even instantiated.
#define CHORUS_TEST_IF_COMPILED(Block)                         \
  if constexpr (!chorus::quant::compiled_formats::has<Block>) { \
    GTEST_SKIP() << "format not compiled into this build";    \
  } else

// Runs body(level, kernels) for every instruction-set level this build has and this CPU runs
// (so a test of the kernels covers scalar, SSE4.1 and AVX2 on an AVX-512 machine too), with the
// level's name in any failure message.
template <class Body>
void for_each_level(Body&& body) {
  for (const auto level : chorus::simd::all_isas) {
    if (!chorus::simd::isa_usable(level)) continue;
    SCOPED_TRACE(std::string("level ") + std::string(chorus::simd::isa_name(level)));
    body(level, chorus::simd::kernels_for(level));
  }
}

}  // namespace chorus_test
