// chorus — Q8_1 (GGUF type 9): the activation format of Q4_1 and Q5_1 weights: Q8_0 plus
// s = d * sum(q), which carries the weights' offsets m through the dot product.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "chorus/config.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/gguf/tensor_type.hpp"
#include "chorus/quant/rounding.hpp"
#include "chorus/quant/traits.hpp"

namespace chorus::inline CHORUS_ABI::quant {

struct block_q8_1 {
  fp16 d;
  fp16 s;
  std::int8_t qs[32];
};
static_assert(sizeof(block_q8_1) == 36 && alignof(block_q8_1) == 2);

// Q8_1 exists only as an activation format (no weights are stored in it), so it has no
// block_traits of its own; this is its quantizer.
inline void quantize_q8_1(const float* in, block_q8_1* out, std::size_t n) noexcept {
  for (std::size_t b = 0; b < n / 32; ++b) {
    const float* x = in + b * 32;
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      const int q = nearest_even(x[i] * id);
      out[b].qs[i] = static_cast<std::int8_t>(q);
      sum += q;
    }
    out[b].d = fp16(d);
    out[b].s = fp16(d * static_cast<float>(sum));
  }
}

}  // namespace chorus::inline CHORUS_ABI::quant
