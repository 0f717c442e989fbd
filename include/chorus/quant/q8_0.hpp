// chorus — Q8_0 (GGUF type 8): 32 int8 quants with one fp16 scale. Also the activation
// format that Q4_0, Q5_0 and Q8_0 weights are multiplied with.
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

struct block_q8_0 {
  fp16 d;
  std::int8_t qs[32];
};
static_assert(sizeof(block_q8_0) == 34 && alignof(block_q8_0) == 2);

// The small-block formats share one shape: 32 weights that unpack to int8 quants q with
// value = d * q (symmetric) or value = d * q + m (affine), dotted with 8-bit activations.
enum class block_kind { symmetric, affine };

template <>
struct block_traits<block_q8_0> {
  static constexpr gguf::tensor_type type = gguf::tensor_type::q8_0;
  static constexpr std::size_t block_elements = 32;
  static constexpr std::size_t block_bytes = sizeof(block_q8_0);
  static constexpr block_kind kind = block_kind::symmetric;
  using activation = block_q8_0;

  static constexpr bool unsigned_quants = false;

  static void unpack(const block_q8_0& b, std::int8_t* q) noexcept { std::copy_n(b.qs, 32, q); }
  template <class L>
  CHORUS_ALWAYS_INLINE static typename L::bytes quants(const block_q8_0& b) noexcept {
    return L::load(b.qs);
  }
  static float scale(const block_q8_0& b) noexcept { return b.d.to_float(); }

  static void dequantize(const block_q8_0* in, float* out, std::size_t n) noexcept {
    for (std::size_t b = 0; b < n / 32; ++b) {
      const float d = in[b].d.to_float();
      for (int i = 0; i < 32; ++i) out[b * 32 + i] = d * static_cast<float>(in[b].qs[i]);
    }
  }

  // d = max|x| / 127, q = round(x * 127 / max|x|) with ties to even: the activation rounding
  // of the reference implementation's vector path, so that both see the same integers.
  static void quantize(const float* in, block_q8_0* out, std::size_t n) noexcept {
    for (std::size_t b = 0; b < n / 32; ++b) {
      const float* x = in + b * 32;
      float amax = 0.0f;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
      const float d = amax / 127.0f;
      const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
      out[b].d = fp16(d);
      for (int i = 0; i < 32; ++i) out[b].qs[i] = static_cast<std::int8_t>(nearest_even(x[i] * id));
    }
  }

  static float dot_reference(const block_q8_0* w, const block_q8_0* a, std::size_t n_blocks) noexcept {
    float sum = 0.0f;
    for (std::size_t b = 0; b < n_blocks; ++b) {
      int sumi = 0;
      for (int i = 0; i < 32; ++i) sumi += w[b].qs[i] * a[b].qs[i];
      sum += static_cast<float>(sumi) * (w[b].d.to_float() * a[b].d.to_float());
    }
    return sum;
  }
};

static_assert(block_format<block_q8_0>);

}  // namespace chorus::inline CHORUS_ABI::quant
