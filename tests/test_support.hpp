// Shared helpers for the chorus tests: where the models and goldens live, error expectations.
#pragma once

#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace chorus_test {

inline std::filesystem::path shared_dir() { return std::filesystem::path(CHORUS_SHARED_DIR); }
inline std::filesystem::path models_dir() { return shared_dir() / "models"; }
inline std::filesystem::path golden_dir() { return shared_dir() / "golden"; }
inline std::filesystem::path model_path(const std::string& file) { return models_dir() / file; }
inline std::filesystem::path test_data_dir() { return std::filesystem::path(CHORUS_TEST_DATA_DIR); }

// A fresh, empty directory under the build tree for files a test writes.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::path(CHORUS_BINARY_DIR) / "test-scratch" / name;
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

}  // namespace chorus_test
