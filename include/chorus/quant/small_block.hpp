// chorus — what the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL) share: each
// block unpacks to 32 int8 quants q, with value = d * q (symmetric) or d * q + m (affine).
// Dequantize and the reference dot are written once here over that unpacking.
//
// Each format's traits give two decoders of the same block:
//   unpack(block, int8_t q[32])        the scalar decoder: the test oracle and the reference path
//   quants<Level>(block) -> bytes      the vector decoder over a level's vocabulary (simd/level_*.hpp):
//                                      the same 32 quants in one vector, for the kernels of simd/
// plus `unsigned_quants` (the affine formats' quants are 0..31, which the u8 x s8 instructions
// take as they are; the others are signed) and, for signed quants of few bits, `quant_offset`
// (q + quant_offset is the stored unsigned value, which the gemm takes as the unsigned operand).
#pragma once

#include <cstddef>
#include <cmath>
#include <cstdint>

#include "chorus/config.hpp"
#include "chorus/quant/q8_0.hpp"
#include "chorus/quant/q8_1.hpp"
#include "chorus/quant/traits.hpp"

namespace chorus::inline CHORUS_ABI::quant::small_block {

template <class Block>
void dequantize(const Block* in, float* out, std::size_t n) noexcept {
  using traits = block_traits<Block>;
  std::int8_t q[32];
  for (std::size_t b = 0; b < n / 32; ++b) {
    traits::unpack(in[b], q);
    const float d = in[b].d.to_float();
    if constexpr (traits::kind == block_kind::affine) {
      const float m = in[b].m.to_float();
      for (int i = 0; i < 32; ++i) out[b * 32 + i] = d * static_cast<float>(q[i]) + m;
    } else {
      for (int i = 0; i < 32; ++i) out[b * 32 + i] = d * static_cast<float>(q[i]);
    }
  }
}

// Integer dot per block, scaled in float: the same arithmetic as the reference implementation.
template <class Block>
float dot_reference(const Block* w, const typename block_traits<Block>::activation* a, std::size_t n_blocks) noexcept {
  using traits = block_traits<Block>;
  std::int8_t q[32];
  float sum = 0.0f;
  for (std::size_t b = 0; b < n_blocks; ++b) {
    traits::unpack(w[b], q);
    int sumi = 0;
    for (int i = 0; i < 32; ++i) sumi += q[i] * a[b].qs[i];
    if constexpr (traits::kind == block_kind::affine) {
      sum += static_cast<float>(sumi) * (w[b].d.to_float() * a[b].d.to_float()) + w[b].m.to_float() * a[b].s.to_float();
    } else {
      sum += static_cast<float>(sumi) * (w[b].d.to_float() * a[b].d.to_float());
    }
  }
  return sum;
}

// Low nibbles hold elements 0..15, high nibbles 16..31.
inline void pack_nibbles(const std::uint8_t* q, std::uint8_t* qs) noexcept {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<std::uint8_t>((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
}
inline void unpack_nibbles(const std::uint8_t* qs, std::int8_t* q, int offset) noexcept {
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<std::int8_t>((qs[j] & 0x0F) - offset);
    q[j + 16] = static_cast<std::int8_t>((qs[j] >> 4) - offset);
  }
}

// Symmetric quantizer of the Q4_0/Q5_0 kind: the value of largest magnitude maps to -levels/2.
template <int Levels>
float quantize_symmetric(const float* x, std::uint8_t* q) noexcept {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < 32; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  const float d = max / -static_cast<float>(Levels / 2);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < 32; ++i) {
    const int v = static_cast<int>(x[i] * id + static_cast<float>(Levels / 2) + 0.5f);
    q[i] = static_cast<std::uint8_t>(std::min(Levels - 1, std::max(0, v)));
  }
  return d;
}

// Affine quantizer of the Q4_1/Q5_1 kind: [min, max] maps to [0, levels - 1].
template <int Levels>
void quantize_affine(const float* x, std::uint8_t* q, float& d, float& m) noexcept {
  float min = x[0];
  float max = x[0];
  for (int i = 1; i < 32; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
  }
  d = (max - min) / static_cast<float>(Levels - 1);
  m = min;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < 32; ++i) {
    const int v = static_cast<int>((x[i] - min) * id + 0.5f);
    q[i] = static_cast<std::uint8_t>(std::min(Levels - 1, std::max(0, v)));
  }
}

}  // namespace chorus::inline CHORUS_ABI::quant::small_block
