// chorus — Q8_K (GGUF type 15): the activation format of the K-quants: 256 int8 quants, a
// float scale, and the sums of each group of 16 quants (which carry the weights' minimums).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "chorus/config.hpp"
#include "chorus/quant/rounding.hpp"

namespace chorus::inline CHORUS_ABI::quant {

struct block_q8_k {
  float d;
  std::int8_t qs[256];
  std::int16_t bsums[16];
};
static_assert(sizeof(block_q8_k) == 292 && alignof(block_q8_k) == 4);

// The value of largest magnitude maps to -127 (its sign kept in d), as in the reference.
inline void quantize_q8_k(const float* in, block_q8_k* out, std::size_t n) noexcept {
  for (std::size_t b = 0; b < n / 256; ++b) {
    const float* x = in + b * 256;
    float amax = 0.0f;
    float max = 0.0f;
    for (int i = 0; i < 256; ++i) {
      if (std::fabs(x[i]) > amax) {
        amax = std::fabs(x[i]);
        max = x[i];
      }
    }
    block_q8_k& y = out[b];
    if (amax == 0.0f) {
      y.d = 0.0f;
      for (auto& q : y.qs) q = 0;
      for (auto& s : y.bsums) s = 0;
      continue;
    }
    const float iscale = -127.0f / max;
    for (int i = 0; i < 256; ++i) {
      const int v = nearest_even(iscale * x[i]);
      y.qs[i] = static_cast<std::int8_t>(v < 127 ? v : 127);
    }
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += y.qs[g * 16 + i];
      y.bsums[g] = static_cast<std::int16_t>(sum);
    }
    y.d = 1.0f / iscale;
  }
}

}  // namespace chorus::inline CHORUS_ABI::quant
