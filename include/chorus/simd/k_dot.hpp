// chorus — fused K-quant x Q8_K dot kernels (x86 AVX2, AVX-512 VNNI): unpack and multiply in
// registers, without the scratch round-trip of the generic unpack + int8-dot path.
//
// Every K format is handled in the same shape. A super-block is 8 chunks of 32 weights; each
// chunk unpacks to 32 *unsigned* bytes u (Q2_K 0..3, Q3_K 0..7, Q4_K 0..15, Q5_K 0..31,
// Q6_K 0..63) that meet the signed activation bytes in maddubs (u8 x s8 -> pairs of int16, no
// saturation: 2 * 63 * 127 < 2^15). The pairs are multiplied by the integer sub-block scales
// and summed to int32 (madd, or VNNI dpwssd which also accumulates). The formats whose quants
// are signed (Q3_K: u - 4, Q6_K: u - 32) subtract offset * scale * bsum per 16-element group,
// and the minimums of Q2_K/Q4_K/Q5_K go through the bsums as in the reference. The result is
// therefore the reference's integers exactly, and the per-block float expression is the
// reference's: SIMD equals dot_reference up to the compiler's FMA contraction of that
// expression (tested at a few 1e-7 of the sum of per-block magnitudes).
#pragma once

#include <cstdint>
#include <cstring>

#include "chorus/config.hpp"
#include "chorus/quant/q2_k.hpp"
#include "chorus/quant/q3_k.hpp"
#include "chorus/quant/q4_k.hpp"
#include "chorus/quant/q5_k.hpp"
#include "chorus/quant/q6_k.hpp"
#include "chorus/quant/q8_k.hpp"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace chorus::inline CHORUS_ABI::simd::kq {

#if defined(__AVX2__)
#define CHORUS_HAVE_FUSED_K_DOT 1

// acc += pairs (16 x int16) * scales (16 x int16), adjacent products summed into int32 lanes.
CHORUS_ALWAYS_INLINE __m256i scaled_add(__m256i acc, __m256i pairs, __m256i scales) noexcept {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpwssd_epi32(acc, pairs, scales);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, scales));
#endif
}

CHORUS_ALWAYS_INLINE std::int32_t hsum(__m256i v) noexcept {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// Sub-block scales arranged for one in-lane word shuffle per chunk (see chunk_scales).
// 16 scales of 16 elements (signed bytes): even scales in the low 128 bits, odd in the high.
CHORUS_ALWAYS_INLINE __m256i spread_16_scales(__m128i bytes) noexcept {
  const __m128i even_odd = _mm_shuffle_epi8(bytes, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
  return _mm256_cvtepi8_epi16(even_odd);
}
// 8 scales of 32 elements (bytes 0..7, unsigned): the same 8 words in both halves.
CHORUS_ALWAYS_INLINE __m256i spread_8_scales(__m128i bytes) noexcept {
  return _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(bytes));
}
// Word c of each 128-bit half broadcast over that half: for 16-element sub-blocks, scale 2c
// for the chunk's first 16 bytes and 2c + 1 for the next 16; for 32-element ones, scale c.
CHORUS_ALWAYS_INLINE __m256i chunk_scales(__m256i spread, int c) noexcept {
  return _mm256_shuffle_epi8(spread, _mm256_set1_epi16(static_cast<short>(0x0100 + 0x0202 * c)));
}

CHORUS_ALWAYS_INLINE __m256i load(const void* p) noexcept { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// One chunk's contribution: maddubs of the unsigned quants with the activation bytes, scaled.
CHORUS_ALWAYS_INLINE __m256i chunk(__m256i acc, __m256i u, const std::int8_t* a, __m256i spread, int c) noexcept {
  return scaled_add(acc, _mm256_maddubs_epi16(u, load(a + 32 * c)), chunk_scales(spread, c));
}

CHORUS_ALWAYS_INLINE __m256i bsums(const quant::block_q8_k& a) noexcept { return load(a.bsums); }

// Q4_K and Q5_K: eight 6-bit scales and minimums from the 12-byte packing (see q4_k.hpp),
// four at a time in 32-bit words.
CHORUS_ALWAYS_INLINE void scales_6bit(const std::uint8_t* s, __m128i& scales, __m128i& mins) noexcept {
  std::uint32_t w[3];
  std::memcpy(w, s, 12);
  const std::uint32_t scales_lo = w[0] & 0x3F3F3F3Fu;
  const std::uint32_t mins_lo = w[1] & 0x3F3F3F3Fu;
  const std::uint32_t scales_hi = (w[2] & 0x0F0F0F0Fu) | (((w[0] >> 6) & 0x03030303u) << 4);
  const std::uint32_t mins_hi = ((w[2] >> 4) & 0x0F0F0F0Fu) | (((w[1] >> 6) & 0x03030303u) << 4);
  scales = _mm_setr_epi32(static_cast<int>(scales_lo), static_cast<int>(scales_hi), 0, 0);
  mins = _mm_setr_epi32(static_cast<int>(mins_lo), static_cast<int>(mins_hi), 0, 0);
}

// sum over sub-blocks of 32 of min[j] * (bsum[2j] + bsum[2j + 1])
CHORUS_ALWAYS_INLINE std::int32_t mins_32(__m128i mins, const quant::block_q8_k& a) noexcept {
  return hsum(_mm256_madd_epi16(bsums(a), _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins, mins))));
}

CHORUS_ALWAYS_INLINE float finish(const quant::block_q8_k& a, float d, float dmin, std::int32_t sumi, std::int32_t summ) noexcept {
  return a.d * (d * static_cast<float>(sumi) - dmin * static_cast<float>(summ));
}

inline float block_dot(const quant::block_q4_k& b, const quant::block_q8_k& a) noexcept {
  __m128i sc, mn;
  scales_6bit(b.scales, sc, mn);
  const __m256i spread = spread_8_scales(sc);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256i acc = _mm256_setzero_si256();
  for (int k = 0; k < 4; ++k) {
    const __m256i bytes = load(b.qs + 32 * k);
    acc = chunk(acc, _mm256_and_si256(bytes, low4), a.qs, spread, 2 * k);
    acc = chunk(acc, _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4), a.qs, spread, 2 * k + 1);
  }
  return finish(a, b.d.to_float(), b.dmin.to_float(), hsum(acc), mins_32(mn, a));
}

inline float block_dot(const quant::block_q5_k& b, const quant::block_q8_k& a) noexcept {
  __m128i sc, mn;
  scales_6bit(b.scales, sc, mn);
  const __m256i spread = spread_8_scales(sc);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  __m256i qh = load(b.qh);  // bit c of byte l: fifth bit of element 32c + l
  __m256i acc = _mm256_setzero_si256();
  for (int k = 0; k < 4; ++k) {
    const __m256i bytes = load(b.qs + 32 * k);
    const __m256i h0 = _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4);
    const __m256i h1 = _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4);
    qh = _mm256_srli_epi16(qh, 2);
    acc = chunk(acc, _mm256_or_si256(_mm256_and_si256(bytes, low4), h0), a.qs, spread, 2 * k);
    acc = chunk(acc, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4), h1), a.qs, spread, 2 * k + 1);
  }
  return finish(a, b.d.to_float(), b.dmin.to_float(), hsum(acc), mins_32(mn, a));
}

inline float block_dot(const quant::block_q2_k& b, const quant::block_q8_k& a) noexcept {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m256i spread = spread_16_scales(_mm_and_si128(packed, low4));
  const __m128i mins = _mm_and_si128(_mm_srli_epi16(packed, 4), low4);
  const __m256i three = _mm256_set1_epi8(3);
  __m256i acc = _mm256_setzero_si256();
  for (int n = 0; n < 2; ++n) {
    __m256i v = load(b.qs + 32 * n);
    for (int j = 0; j < 4; ++j) {
      acc = chunk(acc, _mm256_and_si256(v, three), a.qs, spread, 4 * n + j);
      v = _mm256_srli_epi16(v, 2);
    }
  }
  const std::int32_t summ = hsum(_mm256_madd_epi16(bsums(a), _mm256_cvtepu8_epi16(mins)));
  return finish(a, b.d.to_float(), b.dmin.to_float(), hsum(acc), summ);
}

// Q3_K and Q6_K: sum of scale * (u - offset) * a = sum of scale * u * a - offset * scale * bsum.
CHORUS_ALWAYS_INLINE std::int32_t offset_correction(__m128i signed_scales, const quant::block_q8_k& a) noexcept {
  return hsum(_mm256_madd_epi16(bsums(a), _mm256_cvtepi8_epi16(signed_scales)));
}

// Q3_K's 16 6-bit scales: low nibbles in scales[0..7] (k < 8 low, k >= 8 high nibble of byte
// k % 8), high 2 bits at 2 * (k / 4) of scales[8 + k % 4]; stored with a bias of 32.
CHORUS_ALWAYS_INLINE __m128i q3_k_scales(const std::uint8_t* packed) noexcept {
  std::uint64_t lo;
  std::uint32_t hi;
  std::memcpy(&lo, packed, 8);
  std::memcpy(&hi, packed + 8, 4);
  const __m128i lo_v = _mm_cvtsi64_si128(static_cast<long long>(lo));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m128i nibbles = _mm_unpacklo_epi64(_mm_and_si128(lo_v, low4), _mm_and_si128(_mm_srli_epi16(lo_v, 4), low4));
  const __m128i tops = _mm_and_si128(_mm_setr_epi32(static_cast<int>(hi), static_cast<int>(hi >> 2), static_cast<int>(hi >> 4),
                                                    static_cast<int>(hi >> 6)),
                                     _mm_set1_epi8(3));
  return _mm_sub_epi8(_mm_or_si128(nibbles, _mm_slli_epi16(tops, 4)), _mm_set1_epi8(32));
}

#if defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define CHORUS_K_DOT_512 1
// The 512-bit kernels handle two chunks (64 weights) per instruction. Lane L (of 4 x 128 bits)
// of pair p holds 16 weights of sub-block 4p + L (16-element sub-blocks) or 2p + L / 2
// (32-element ones); the scales are spread once per block so that one byte shuffle per pair
// broadcasts each lane's scale over it.
CHORUS_ALWAYS_INLINE __m512i spread_512(__m256i scale_words, const std::int16_t (&index)[32]) noexcept {
  return _mm512_permutexvar_epi16(_mm512_loadu_si512(index), _mm512_maskz_broadcast_i64x4(0xFF, scale_words));
}
alignas(64) inline constexpr std::int16_t spread_index_16[32] = {0, 4, 8,  12, 0, 0, 0, 0, 1, 5, 9,  13, 0, 0, 0, 0,
                                                                 2, 6, 10, 14, 0, 0, 0, 0, 3, 7, 11, 15, 0, 0, 0, 0};
alignas(64) inline constexpr std::int16_t spread_index_8[32] = {0, 2, 4, 6, 0, 0, 0, 0, 0, 2, 4, 6, 0, 0, 0, 0,
                                                                1, 3, 5, 7, 0, 0, 0, 0, 1, 3, 5, 7, 0, 0, 0, 0};

CHORUS_ALWAYS_INLINE __m512i pair(__m512i acc, __m512i u, const std::int8_t* a, __m512i spread, int p) noexcept {
  const __m512i scales = _mm512_shuffle_epi8(spread, _mm512_set1_epi16(static_cast<short>(0x0100 + 0x0202 * p)));
  return _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(u, _mm512_loadu_si512(a + 64 * p)), scales);
}
// (The maskz / blend forms avoid GCC 12's false -Wuninitialized in the unmasked intrinsics.)
CHORUS_ALWAYS_INLINE __m512i both_halves(const void* p) noexcept { return _mm512_maskz_broadcast_i64x4(0xFF, load(p)); }
// a per-half shift count: `low` for the first 32 bytes, `high` for the next 32
CHORUS_ALWAYS_INLINE __m512i half_counts(short low, short high) noexcept {
  return _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(low), _mm512_set1_epi16(high));
}
CHORUS_ALWAYS_INLINE std::int32_t hsum(__m512i v) noexcept {
  return hsum(_mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xF, v, 0), _mm512_maskz_extracti64x4_epi64(0xF, v, 1)));
}

inline float block_dot_512(const quant::block_q4_k& b, const quant::block_q8_k& a) noexcept {
  __m128i sc, mn;
  scales_6bit(b.scales, sc, mn);
  const __m512i spread = spread_512(_mm256_castsi128_si256(_mm_cvtepu8_epi16(sc)), spread_index_8);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i shifts = half_counts(0, 4);
  __m512i acc = _mm512_setzero_si512();
  for (int k = 0; k < 4; ++k) {
    acc = pair(acc, _mm512_and_si512(_mm512_srlv_epi16(both_halves(b.qs + 32 * k), shifts), low4), a.qs, spread, k);
  }
  return finish(a, b.d.to_float(), b.dmin.to_float(), hsum(acc), mins_32(mn, a));
}

inline float block_dot_512(const quant::block_q5_k& b, const quant::block_q8_k& a) noexcept {
  __m128i sc, mn;
  scales_6bit(b.scales, sc, mn);
  const __m512i spread = spread_512(_mm256_castsi128_si256(_mm_cvtepu8_epi16(sc)), spread_index_8);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i bit4 = _mm512_set1_epi8(0x10);
  const __m512i shifts = half_counts(0, 4);
  const __m512i high_shifts = half_counts(4, 3);  // bit 2k to bit 4, bit 2k + 1 to bit 4
  __m512i qh = both_halves(b.qh);
  __m512i acc = _mm512_setzero_si512();
  for (int k = 0; k < 4; ++k) {
    const __m512i low = _mm512_and_si512(_mm512_srlv_epi16(both_halves(b.qs + 32 * k), shifts), low4);
    const __m512i high = _mm512_and_si512(_mm512_sllv_epi16(qh, high_shifts), bit4);
    qh = _mm512_srli_epi16(qh, 2);
    acc = pair(acc, _mm512_or_si512(low, high), a.qs, spread, k);
  }
  return finish(a, b.d.to_float(), b.dmin.to_float(), hsum(acc), mins_32(mn, a));
}

inline float block_dot_512(const quant::block_q2_k& b, const quant::block_q8_k& a) noexcept {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m512i spread = spread_512(_mm256_cvtepi8_epi16(_mm_and_si128(packed, low4)), spread_index_16);
  const __m128i mins = _mm_and_si128(_mm_srli_epi16(packed, 4), low4);
  const __m512i three = _mm512_set1_epi8(3);
  const __m512i shifts = half_counts(0, 2);
  __m512i acc = _mm512_setzero_si512();
  for (int n = 0; n < 2; ++n) {
    __m512i v = both_halves(b.qs + 32 * n);
    for (int m = 0; m < 2; ++m) {
      acc = pair(acc, _mm512_and_si512(_mm512_srlv_epi16(v, shifts), three), a.qs, spread, 2 * n + m);
      v = _mm512_srli_epi16(v, 4);
    }
  }
  const std::int32_t summ = hsum(_mm256_madd_epi16(bsums(a), _mm256_cvtepu8_epi16(mins)));
  return finish(a, b.d.to_float(), b.dmin.to_float(), hsum(acc), summ);
}

inline float block_dot_512(const quant::block_q3_k& b, const quant::block_q8_k& a) noexcept {
  const __m128i scales = q3_k_scales(b.scales);
  const __m512i spread = spread_512(_mm256_cvtepi8_epi16(scales), spread_index_16);
  const __m512i three = _mm512_set1_epi8(3);
  const __m512i bit2 = _mm512_set1_epi8(4);
  const __m512i shifts = half_counts(0, 2);
  const __m512i high_shifts = half_counts(2, 1);  // bit 2m to bit 2, bit 2m + 1 to bit 2
  __m512i hm = both_halves(b.hmask);
  __m512i acc = _mm512_setzero_si512();
  for (int n = 0; n < 2; ++n) {
    __m512i v = both_halves(b.qs + 32 * n);
    for (int m = 0; m < 2; ++m) {
      const __m512i low = _mm512_and_si512(_mm512_srlv_epi16(v, shifts), three);
      const __m512i high = _mm512_and_si512(_mm512_sllv_epi16(hm, high_shifts), bit2);
      acc = pair(acc, _mm512_or_si512(low, high), a.qs, spread, 2 * n + m);
      v = _mm512_srli_epi16(v, 4);
      hm = _mm512_srli_epi16(hm, 2);
    }
  }
  const std::int32_t sumi = hsum(acc) - (offset_correction(scales, a) << 2);
  return finish(a, b.d.to_float(), 0.0f, sumi, 0);
}

inline float block_dot_512(const quant::block_q6_k& b, const quant::block_q8_k& a) noexcept {
  const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
  const __m512i spread = spread_512(_mm256_cvtepi8_epi16(scales), spread_index_16);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i high2 = _mm512_set1_epi8(0x30);
  const __m512i up = half_counts(4, 2);    // qh bits 0-1 / 2-3 to bits 4-5
  const __m512i down = half_counts(0, 2);  // qh bits 4-5 / 6-7 to bits 4-5
  __m512i acc = _mm512_setzero_si512();
  for (int n = 0; n < 2; ++n) {
    const __m512i ql = _mm512_loadu_si512(b.ql + 64 * n);  // ql0 | ql1
    const __m512i qh = both_halves(b.qh + 32 * n);
    acc = pair(acc, _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_and_si512(_mm512_sllv_epi16(qh, up), high2)), a.qs,
               spread, 2 * n);
    acc = pair(acc,
               _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4), _mm512_and_si512(_mm512_srlv_epi16(qh, down), high2)),
               a.qs, spread, 2 * n + 1);
  }
  const std::int32_t sumi = hsum(acc) - (offset_correction(scales, a) << 5);
  return finish(a, b.d.to_float(), 0.0f, sumi, 0);
}
#else
#define CHORUS_K_DOT_512 0
#endif

inline float block_dot(const quant::block_q3_k& b, const quant::block_q8_k& a) noexcept {
  const __m128i scales = q3_k_scales(b.scales);
  const __m256i spread = spread_16_scales(scales);
  const __m256i three = _mm256_set1_epi8(3);
  const __m256i bit2 = _mm256_set1_epi8(4);
  __m256i hm = load(b.hmask);  // bit 4n + j of byte l: high bit of element 128n + 32j + l
  __m256i acc = _mm256_setzero_si256();
  for (int n = 0; n < 2; ++n) {
    __m256i v = load(b.qs + 32 * n);
    for (int j = 0; j < 4; ++j) {
      const __m256i u = _mm256_or_si256(_mm256_and_si256(v, three), _mm256_and_si256(_mm256_slli_epi16(hm, 2), bit2));
      acc = chunk(acc, u, a.qs, spread, 4 * n + j);
      v = _mm256_srli_epi16(v, 2);
      hm = _mm256_srli_epi16(hm, 1);
    }
  }
  return finish(a, b.d.to_float(), 0.0f, hsum(acc) - (offset_correction(scales, a) << 2), 0);
}

inline float block_dot(const quant::block_q6_k& b, const quant::block_q8_k& a) noexcept {
  const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
  const __m256i spread = spread_16_scales(scales);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i high2 = _mm256_set1_epi8(0x30);
  __m256i acc = _mm256_setzero_si256();
  for (int n = 0; n < 2; ++n) {
    const __m256i ql0 = load(b.ql + 64 * n);
    const __m256i ql1 = load(b.ql + 64 * n + 32);
    const __m256i qh = load(b.qh + 32 * n);
    acc = chunk(acc, _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), high2)), a.qs,
                spread, 4 * n);
    acc = chunk(acc, _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), high2)), a.qs,
                spread, 4 * n + 1);
    acc = chunk(acc, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, high2)), a.qs,
                spread, 4 * n + 2);
    acc = chunk(acc,
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                _mm256_and_si256(_mm256_srli_epi16(qh, 2), high2)),
                a.qs, spread, 4 * n + 3);
  }
  return finish(a, b.d.to_float(), 0.0f, hsum(acc) - (offset_correction(scales, a) << 5), 0);
}

// A row of n_blocks super-blocks against as many activation blocks, summed block by block in
// order (the reference's summation order).
template <class Block>
float dot(const Block* w, const quant::block_q8_k* a, std::size_t n_blocks) noexcept {
  float sum = 0.0f;
#if CHORUS_K_DOT_512
  for (std::size_t b = 0; b < n_blocks; ++b) sum += block_dot_512(w[b], a[b]);
#else
  for (std::size_t b = 0; b < n_blocks; ++b) sum += block_dot(w[b], a[b]);
#endif
  return sum;
}

#else
#define CHORUS_HAVE_FUSED_K_DOT 0
#endif

}  // namespace chorus::inline CHORUS_ABI::simd::kq
