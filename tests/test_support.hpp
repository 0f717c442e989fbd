// Shared helpers for the chorus tests: where the models and goldens live.
#pragma once

#include <filesystem>
#include <string>

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

}  // namespace chorus_test
