// chorus — fused dot kernels for the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) with
// their 8-bit activations (x86 AVX2, AVX-512 VNNI/BW where present): unpack in registers, no
// scratch round-trip, no horizontal sum per block.
//
// Per block b: the 32 weight quants q (one __m256i; unsigned for the affine formats, signed
// for the others) meet the activation bytes in dpbusd / maddubs, giving the reference's
// integer sumi_b exactly, spread over 8 int32 lanes. Those lanes are converted to float
// (exact: |lane| < 2^24) and multiplied by the reference's scale d_w * d_a in a float vector
// accumulator; the affine formats' m_w * s_a term goes to a scalar accumulator. So each
// per-block term is the reference's, and only the order of the float additions differs.
// Both sums are at most n_blocks / 2 + 5 (SIMD) and n_blocks (reference) rounding steps deep,
// each step erring by at most eps / 2 of the magnitudes summed, so
//   |dot - dot_reference| <= eps * (n_blocks + 8) * M,
//   M = sum_b (|d_w * d_a| * sum_i |q_i * a_i| + |m_w * s_a|)
// (M counts element magnitudes, not |sumi_b|: the 8 lanes of one block may cancel).
// tests/test_simd.cpp checks exactly this bound.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "chorus/config.hpp"
#include "chorus/quant/q4_0.hpp"
#include "chorus/quant/q4_1.hpp"
#include "chorus/quant/q5_0.hpp"
#include "chorus/quant/q5_1.hpp"
#include "chorus/quant/q8_0.hpp"
#include "chorus/simd/int8_dot.hpp"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace chorus::inline CHORUS_ABI::simd::sb {

#if defined(__AVX2__) && defined(__FMA__)
#define CHORUS_HAVE_FUSED_SMALL_DOT 1

// Low nibbles -> bytes 0..15 (elements 0..15), high nibbles -> bytes 16..31.
CHORUS_ALWAYS_INLINE __m256i nibbles(const std::uint8_t* qs) noexcept {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4), _mm_and_si128(bytes, low4));
}

// 0x10 in byte j where bit j of the little-endian 32-bit qh is set (the fifth bit of Q5_x).
CHORUS_ALWAYS_INLINE __m256i fifth_bits(const std::uint8_t* qh) noexcept {
  std::uint32_t high;
  std::memcpy(&high, qh, 4);
#if defined(__AVX512BW__) && defined(__AVX512VL__)
  return _mm256_maskz_mov_epi8(static_cast<__mmask32>(high), _mm256_set1_epi8(0x10));
#else
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(high)),
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
#endif
}

// The 32 quants of a block in element order, as the traits' unpack() gives them.
CHORUS_ALWAYS_INLINE __m256i quants(const quant::block_q8_0& b) noexcept {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
}
CHORUS_ALWAYS_INLINE __m256i quants(const quant::block_q4_0& b) noexcept {
  return _mm256_sub_epi8(nibbles(b.qs), _mm256_set1_epi8(8));
}
CHORUS_ALWAYS_INLINE __m256i quants(const quant::block_q4_1& b) noexcept { return nibbles(b.qs); }
CHORUS_ALWAYS_INLINE __m256i quants(const quant::block_q5_0& b) noexcept {
  return _mm256_sub_epi8(_mm256_or_si256(nibbles(b.qs), fifth_bits(b.qh)), _mm256_set1_epi8(16));
}
CHORUS_ALWAYS_INLINE __m256i quants(const quant::block_q5_1& b) noexcept {
  return _mm256_or_si256(nibbles(b.qs), fifth_bits(b.qh));
}

// sumi over 8 int32 lanes. The affine formats' quants are unsigned (0..31): they go straight
// into the u8 x s8 instructions; signed quants move their sign onto the activations first.
template <bool UnsignedWeights>
CHORUS_ALWAYS_INLINE __m256i lanes(__m256i w, __m256i a) noexcept {
  if constexpr (UnsignedWeights) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, a);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), _mm256_set1_epi16(1));  // 2 * 31 * 127 < 2^15
#endif
  } else {
    return dot_s8_lanes(w, a);
  }
}

CHORUS_ALWAYS_INLINE float hsum(__m256 v) noexcept {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One unpacked weight block: quants, scale, offset (0 for the symmetric formats).
struct unpacked {
  __m256i q;
  float d;
  float m;
};

// The kernel, over a source of unpacked blocks: src(b) for b in [0, n). dot() unpacks from the
// blocks; gemm unpacks a tile once and reads it back for many activation rows. Both go through
// here, so they add in the same order. Two accumulators alternate between even and odd blocks.
template <class Block, class Source>
CHORUS_ALWAYS_INLINE float dot_source(Source&& src, const typename quant::block_traits<Block>::activation* a,
                                      std::size_t n) noexcept {
  constexpr bool affine = quant::block_traits<Block>::kind == quant::block_kind::affine;
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  float offset[2] = {0.0f, 0.0f};
  auto step = [&](std::size_t b, int k) {
    const unpacked u = src(b);
    const __m256i sumi = lanes<affine>(u.q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs)));
    acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(u.d * a[b].d.to_float()), acc[k]);
    if constexpr (affine) offset[k] += u.m * a[b].s.to_float();
  };
  std::size_t b = 0;
  for (; b + 2 <= n; b += 2) {
    step(b, 0);
    step(b + 1, 1);
  }
  if (b < n) step(b, 0);
  return hsum(_mm256_add_ps(acc[0], acc[1])) + (offset[0] + offset[1]);
}

template <class Block>
CHORUS_ALWAYS_INLINE unpacked unpack(const Block& b) noexcept {
  if constexpr (quant::block_traits<Block>::kind == quant::block_kind::affine) {
    return {quants(b), b.d.to_float(), b.m.to_float()};
  } else {
    return {quants(b), b.d.to_float(), 0.0f};
  }
}

template <class Block>
float dot(const Block* w, const typename quant::block_traits<Block>::activation* a, std::size_t n_blocks) noexcept {
  return dot_source<Block>([w](std::size_t b) { return unpack(w[b]); }, a, n_blocks);
}

#endif  // __AVX2__ && __FMA__

}  // namespace chorus::inline CHORUS_ABI::simd::sb
