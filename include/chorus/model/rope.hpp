// chorus — the rotary position embedding's per-dimension frequencies, with the context-extension
// scalings a GGUF file can ask for (hparams.hpp: linear, YaRN; Llama 3.1's per-dimension divisors).
// Every scaling is a fixed factor per dimension, so a position's angles are position * frequency.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/model/hparams.hpp"

namespace chorus::inline CHORUS_ABI::model {

// YaRN's correction range: the (fractional) dimensions at which a frequency makes `rotations`
// turns over the original context, floored / ceiled and clamped to [0, n_rot - 1] as in the
// paper's reference implementation.
inline void yarn_correction_range(const hparams& h, double& low, double& high) {
  const auto& rs = h.rope_scale;
  const double n = h.n_rot, base = h.rope_freq_base, context = rs.original_context;
  auto dim = [&](double rotations) { return n * std::log(context / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base)); };
  low = std::max(0.0, std::floor(dim(rs.beta_fast)));
  high = std::min(n - 1.0, std::ceil(dim(rs.beta_slow)));
}

// Angular frequency of each of the n_rot/2 rotated pairs (radians per position), and the factor
// `mscale` by which cos and sin are multiplied (1 except with YaRN). `divisors` (nullable): the
// file's rope_freqs.weight.
inline std::vector<double> rope_frequencies(const hparams& h, const float* divisors, double& mscale) {
  const std::size_t half = h.n_rot / 2;
  std::vector<double> freq(half);
  const double scale = h.rope_freq_scale;
  double low = 0.0, high = 0.0;
  const bool yarn = h.rope_scale.type == rope_scaling::kind::yarn;
  if (yarn) yarn_correction_range(h, low, high);
  for (std::size_t i = 0; i < half; ++i) {
    double extrapolated = std::pow(static_cast<double>(h.rope_freq_base), -2.0 * static_cast<double>(i) / h.n_rot);
    if (divisors != nullptr) extrapolated /= divisors[i];
    if (yarn) {
      // 1 below `low` (high frequencies: kept), 0 above `high` (low frequencies: interpolated)
      const double ramp = 1.0 - std::clamp((static_cast<double>(i) - low) / std::max(0.001, high - low), 0.0, 1.0);
      freq[i] = extrapolated * (scale * (1.0 - ramp) + ramp);
    } else {
      freq[i] = extrapolated * scale;
    }
  }
  mscale = yarn ? h.rope_scale.attn_factor * (1.0 + 0.1 * std::log(1.0 / scale)) : 1.0;
  return freq;
}

}  // namespace chorus::inline CHORUS_ABI::model
