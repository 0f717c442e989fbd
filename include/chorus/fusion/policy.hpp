// chorus — when a fusion stops waiting for its members.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

#include "chorus/config.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

struct policy {
  std::size_t quorum = 0;       // stop once this many answered successfully (0: wait for all)
  std::optional<std::chrono::milliseconds> deadline;  // stop waiting then; late members time out
  std::size_t minimum = 1;      // fewer successful answers than this fail the request

  static policy all() { return {}; }
  static policy first(std::size_t k) { return {.quorum = k, .deadline = std::nullopt, .minimum = k}; }
  static policy within(std::chrono::milliseconds d) { return {.quorum = 0, .deadline = d, .minimum = 1}; }
};

}  // namespace chorus::inline CHORUS_ABI::fusion
