// chorus CLI — options shared by the generating commands.
#pragma once

#include <chorus/chorus.hpp>

#include "command.hpp"

namespace chorus_cli {

inline chorus::sample::sampling_params sampling_from(const arguments& a) {
  chorus::sample::sampling_params p;
  p.temperature = a.number<float>("temp", p.temperature);
  p.top_k = a.number<std::int32_t>("top-k", p.top_k);
  p.top_p = a.number<float>("top-p", p.top_p);
  p.min_p = a.number<float>("min-p", p.min_p);
  p.repeat_penalty = a.number<float>("repeat-penalty", p.repeat_penalty);
  p.seed = a.number<std::uint64_t>("seed", p.seed);
  p.validate();
  return p;
}

}  // namespace chorus_cli
