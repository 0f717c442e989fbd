// chorus — the integer primitive under every quantized dot product: the sum of 32 int8 x int8
// products. xsimd 8.1 has no widening int8 multiply-add, so the x86 versions use intrinsics
// (AVX-512 VNNI dpbusd, else AVX2 maddubs) beside the portable scalar reference.
#pragma once

#include <cstdint>

#include "chorus/config.hpp"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace chorus::inline CHORUS_ABI::simd {

// The scalar reference and fallback.
inline std::int32_t dot_s8_32_reference(const std::int8_t* a, const std::int8_t* b) noexcept {
  std::int32_t sum = 0;
  for (int i = 0; i < 32; ++i) sum += a[i] * b[i];
  return sum;
}

#if defined(__AVX2__)
// Products of two int8 vectors summed into 8 int32 lanes. The sign of `a` is moved onto `b`
// so that the unsigned x signed instructions apply; |a| <= 127 or b != -128 keeps maddubs
// from saturating (the activations are in [-127, 127]).
CHORUS_ALWAYS_INLINE __m256i dot_s8_lanes(__m256i a, __m256i b) noexcept {
  const __m256i abs_a = _mm256_sign_epi8(a, a);
  const __m256i signed_b = _mm256_sign_epi8(b, a);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), abs_a, signed_b);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(abs_a, signed_b), _mm256_set1_epi16(1));
#endif
}

CHORUS_ALWAYS_INLINE std::int32_t hsum_i32(__m256i v) noexcept {
  __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, _MM_SHUFFLE(1, 0, 3, 2)));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(sum);
}

inline std::int32_t dot_s8_32(const std::int8_t* a, const std::int8_t* b) noexcept {
  const __m256i va = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
  const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
  return hsum_i32(dot_s8_lanes(va, vb));
}
#else
inline std::int32_t dot_s8_32(const std::int8_t* a, const std::int8_t* b) noexcept {
  return dot_s8_32_reference(a, b);
}
#endif

// The sums over bytes 0..15 and 16..31 separately (two K-quant sub-blocks of 16 at once).
#if defined(__AVX2__)
inline void dot_s8_2x16(const std::int8_t* a, const std::int8_t* b, std::int32_t& low, std::int32_t& high) noexcept {
  const __m256i lanes = dot_s8_lanes(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)),
                                     _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)));
  __m128i lo = _mm256_castsi256_si128(lanes);
  __m128i hi = _mm256_extracti128_si256(lanes, 1);
  __m128i both = _mm_hadd_epi32(lo, hi);  // lo0+lo1, lo2+lo3, hi0+hi1, hi2+hi3
  both = _mm_hadd_epi32(both, both);       // lo, hi, lo, hi
  low = _mm_cvtsi128_si32(both);
  high = _mm_extract_epi32(both, 1);
}
#else
inline void dot_s8_2x16(const std::int8_t* a, const std::int8_t* b, std::int32_t& low, std::int32_t& high) noexcept {
  low = 0;
  high = 0;
  for (int i = 0; i < 16; ++i) low += a[i] * b[i];
  for (int i = 16; i < 32; ++i) high += a[i] * b[i];
}
#endif

}  // namespace chorus::inline CHORUS_ABI::simd
