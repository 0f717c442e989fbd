// chorus — what a fusion member is asked and what it answers.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "chorus/config.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

struct request {
  std::string prompt;
  std::string system;          // optional instructions prepended by members that support them
  std::int32_t max_tokens = 128;
};

enum class member_status { ok, failed, timed_out, cancelled };

constexpr std::string_view to_string(member_status s) noexcept {
  switch (s) {
    case member_status::ok: return "ok";
    case member_status::failed: return "failed";
    case member_status::timed_out: return "timed out";
    case member_status::cancelled: return "cancelled";
  }
  return "unknown";
}

// One member's answer (or why there is none).
struct candidate {
  std::string member;
  member_status status = member_status::ok;
  std::string error;          // why, when not ok
  std::string text;
  std::size_t prompt_tokens = 0;
  std::size_t generated_tokens = 0;
  double mean_logprob = 0.0;  // mean log-probability of the generated tokens (confidence)
  double latency_ms = 0.0;    // from the request's start to the answer
  double compute_ms = 0.0;    // the member's own prompt + generation time
  double tokens_per_second() const noexcept { return compute_ms > 0 ? 1000.0 * generated_tokens / compute_ms : 0.0; }
};

}  // namespace chorus::inline CHORUS_ABI::fusion
