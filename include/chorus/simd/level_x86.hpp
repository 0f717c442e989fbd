// chorus — the x86 levels: SSE4.1, AVX2 + FMA, AVX-512 (F/BW/VL/DQ + VNNI). Each is the
// vocabulary of level_scalar.hpp over intrinsics, every operation compiled for its level with
// a target attribute (target.hpp), so all three exist in a baseline x86-64 build.
//
// The int8 multiply-accumulate is the one place the levels differ in kind:
//   sse4, avx2  pmaddubsw (u8 x s8 -> pairs of int16) then pmaddwd (-> int32 lanes)
//   avx512      vpdpbusd (u8 x s8 -> int32 lanes in one instruction) and vpdpwssd (int16 pairs
//               times int16 scales, accumulated)
// Signed weights take their sign onto the activations first (psignb), so that |w| is the
// unsigned operand: exact as long as the activations avoid -128 (quantizers give [-127, 127]);
// pairs of products stay below 2^15 (2 * 128 * 127) so pmaddubsw never saturates.
#pragma once

#include "chorus/simd/isa.hpp"

#if CHORUS_HAVE_X86_LEVELS

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "chorus/config.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/simd/level_scalar.hpp"
#include "chorus/simd/target.hpp"

CHORUS_KERNELS_BEGIN

namespace chorus::inline CHORUS_ABI::simd {

namespace x86 {
// Byte j of the result: `value` where bit j of `bits` is set (no AVX-512 mask registers).
CHORUS_TARGET_AVX2 inline __m256i bit_bytes_avx2(std::uint32_t bits, std::uint8_t value) noexcept {
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(bits)),
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(static_cast<char>(value)));
}
CHORUS_TARGET_SSE4 inline __m128i bit_bytes_sse4(std::uint16_t bits, std::uint8_t value) noexcept {
  const __m128i spread = _mm_shuffle_epi8(_mm_set1_epi16(static_cast<short>(bits)),
                                          _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
  const __m128i bit = _mm_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  return _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(spread, bit), bit), _mm_set1_epi8(static_cast<char>(value)));
}
CHORUS_TARGET_SSE4 inline std::int32_t hsum_epi32(__m128i v) noexcept {
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(v);
}
CHORUS_TARGET_SSE4 inline float hsum_ps(__m128 v) noexcept {
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  v = _mm_add_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}
CHORUS_TARGET_SSE4 inline float hmax_ps(__m128 v) noexcept {
  v = _mm_max_ps(v, _mm_movehl_ps(v, v));
  v = _mm_max_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}
// The word of each 128-bit lane that broadcasts over it: word k -> bytes 2k, 2k + 1.
constexpr short word_index(int k) noexcept { return static_cast<short>(0x0100 + 0x0202 * k); }
}  // namespace x86

// ------------------------------------------------------------------------------------------
struct sse4_level {
  static constexpr isa level = isa::sse4;
  struct bytes {
    __m128i lo, hi;
  };
  struct ints {
    __m128i lo, hi;
  };
  struct floats {
    __m128 lo, hi;
  };
  struct scales16 {
    __m128i v;
  };
  struct scale_lanes {
    __m128i first, second;  // scales 0..7 and 8..15 as int16
  };
  static constexpr std::size_t fwidth = 4;
  // activation rows per gemm register tile (16 xmm registers, two per vector)
  static constexpr std::size_t tile_cols = 2;
  // activation rows one K-quant weight row meets per pass of gemm_k's few-rows path (dot_rows):
  // 4, with 16 registers; 8 was not measured at this level
  static constexpr std::size_t k_rows_per_pass = 4;
  struct fvec {
    __m128 v;
  };

  CHORUS_TARGET_SSE4 static inline bytes load(const void* p) noexcept {
    const auto* q = static_cast<const __m128i*>(p);
    return {_mm_loadu_si128(q), _mm_loadu_si128(q + 1)};
  }
  CHORUS_TARGET_SSE4 static inline void store(void* p, bytes a) noexcept {
    auto* q = static_cast<__m128i*>(p);
    _mm_storeu_si128(q, a.lo);
    _mm_storeu_si128(q + 1, a.hi);
  }
  CHORUS_TARGET_SSE4 static inline bytes nibbles(const std::uint8_t* p) noexcept {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i m = _mm_set1_epi8(0x0F);
    return {_mm_and_si128(b, m), _mm_and_si128(_mm_srli_epi16(b, 4), m)};
  }
  CHORUS_TARGET_SSE4 static inline bytes bit_bytes(std::uint32_t bits, std::uint8_t value) noexcept {
    return {x86::bit_bytes_sse4(static_cast<std::uint16_t>(bits), value),
            x86::bit_bytes_sse4(static_cast<std::uint16_t>(bits >> 16), value)};
  }
  CHORUS_TARGET_SSE4 static inline bytes broadcast4(const void* p) noexcept {
    std::int32_t v;
    std::memcpy(&v, p, 4);
    const __m128i b = _mm_set1_epi32(v);
    return {b, b};
  }
  CHORUS_TARGET_SSE4 static inline bytes splat(std::int8_t x) noexcept {
    const __m128i v = _mm_set1_epi8(x);
    return {v, v};
  }
  CHORUS_TARGET_SSE4 static inline bytes and_(bytes a, bytes b) noexcept { return {_mm_and_si128(a.lo, b.lo), _mm_and_si128(a.hi, b.hi)}; }
  CHORUS_TARGET_SSE4 static inline bytes or_(bytes a, bytes b) noexcept { return {_mm_or_si128(a.lo, b.lo), _mm_or_si128(a.hi, b.hi)}; }
  CHORUS_TARGET_SSE4 static inline bytes sub(bytes a, bytes b) noexcept { return {_mm_sub_epi8(a.lo, b.lo), _mm_sub_epi8(a.hi, b.hi)}; }
  template <int N>
  CHORUS_TARGET_SSE4 static inline bytes shr(bytes a, std::uint8_t mask) noexcept {
    const __m128i m = _mm_set1_epi8(static_cast<char>(mask));
    return {_mm_and_si128(_mm_srli_epi16(a.lo, N), m), _mm_and_si128(_mm_srli_epi16(a.hi, N), m)};
  }
  template <int N>
  CHORUS_TARGET_SSE4 static inline bytes shl(bytes a, std::uint8_t mask) noexcept {
    const __m128i m = _mm_set1_epi8(static_cast<char>(mask));
    return {_mm_and_si128(_mm_slli_epi16(a.lo, N), m), _mm_and_si128(_mm_slli_epi16(a.hi, N), m)};
  }
  CHORUS_TARGET_SSE4 static inline bytes lookup16(const std::int8_t* table, bytes idx) noexcept {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(table));
    return {_mm_shuffle_epi8(t, idx.lo), _mm_shuffle_epi8(t, idx.hi)};
  }

  CHORUS_TARGET_SSE4 static inline __m128i pairs_to_ints(__m128i pairs) noexcept { return _mm_madd_epi16(pairs, _mm_set1_epi16(1)); }
  CHORUS_TARGET_SSE4 static inline ints dot_s8(bytes w, bytes a) noexcept {
    return {pairs_to_ints(_mm_maddubs_epi16(_mm_sign_epi8(w.lo, w.lo), _mm_sign_epi8(a.lo, w.lo))),
            pairs_to_ints(_mm_maddubs_epi16(_mm_sign_epi8(w.hi, w.hi), _mm_sign_epi8(a.hi, w.hi)))};
  }
  CHORUS_TARGET_SSE4 static inline ints dot_u8(bytes w, bytes a) noexcept {
    return {pairs_to_ints(_mm_maddubs_epi16(w.lo, a.lo)), pairs_to_ints(_mm_maddubs_epi16(w.hi, a.hi))};
  }
  CHORUS_TARGET_SSE4 static inline ints zero_ints() noexcept { return {_mm_setzero_si128(), _mm_setzero_si128()}; }
  CHORUS_TARGET_SSE4 static inline ints splat_ints(std::int32_t x) noexcept { return {_mm_set1_epi32(x), _mm_set1_epi32(x)}; }
  CHORUS_TARGET_SSE4 static inline __m128i reduce4(const ints* v) noexcept {
    const __m128i s0 = _mm_add_epi32(v[0].lo, v[0].hi), s1 = _mm_add_epi32(v[1].lo, v[1].hi);
    const __m128i s2 = _mm_add_epi32(v[2].lo, v[2].hi), s3 = _mm_add_epi32(v[3].lo, v[3].hi);
    return _mm_hadd_epi32(_mm_hadd_epi32(s0, s1), _mm_hadd_epi32(s2, s3));
  }
  CHORUS_TARGET_SSE4 static inline ints reduce8(const ints* v) noexcept { return {reduce4(v), reduce4(v + 4)}; }
  CHORUS_TARGET_SSE4 static inline ints load_ints(const std::int32_t* p) noexcept {
    const auto* q = reinterpret_cast<const __m128i*>(p);
    return {_mm_loadu_si128(q), _mm_loadu_si128(q + 1)};
  }
  CHORUS_TARGET_SSE4 static inline ints mul_ints(ints a, ints b) noexcept { return {_mm_mullo_epi32(a.lo, b.lo), _mm_mullo_epi32(a.hi, b.hi)}; }
  CHORUS_TARGET_SSE4 static inline ints dot_i16_acc(ints acc, bytes a, bytes b) noexcept {
    return {_mm_add_epi32(acc.lo, _mm_madd_epi16(a.lo, b.lo)), _mm_add_epi32(acc.hi, _mm_madd_epi16(a.hi, b.hi))};
  }
  CHORUS_TARGET_SSE4 static inline ints add(ints a, ints b) noexcept { return {_mm_add_epi32(a.lo, b.lo), _mm_add_epi32(a.hi, b.hi)}; }
  CHORUS_TARGET_SSE4 static inline std::int32_t hsum(ints a) noexcept { return x86::hsum_epi32(_mm_add_epi32(a.lo, a.hi)); }

  CHORUS_TARGET_SSE4 static inline scales16 load_scales(const void* p) noexcept { return {_mm_loadu_si128(static_cast<const __m128i*>(p))}; }
  CHORUS_TARGET_SSE4 static inline void store_scales(void* p, scales16 s) noexcept { _mm_storeu_si128(static_cast<__m128i*>(p), s.v); }
  CHORUS_TARGET_SSE4 static inline scales16 scales_from_words(std::uint32_t w0, std::uint32_t w1, std::uint32_t w2, std::uint32_t w3) noexcept {
    return {_mm_setr_epi32(static_cast<int>(w0), static_cast<int>(w1), static_cast<int>(w2), static_cast<int>(w3))};
  }
  CHORUS_TARGET_SSE4 static inline scales16 sub(scales16 s, std::int8_t x) noexcept { return {_mm_sub_epi8(s.v, _mm_set1_epi8(x))}; }
  CHORUS_TARGET_SSE4 static inline scales16 widen_pairs(scales16 s) noexcept { return {_mm_unpacklo_epi8(s.v, s.v)}; }
  CHORUS_TARGET_SSE4 static inline scale_lanes prepare(scales16 s) noexcept {
    return {_mm_cvtepi8_epi16(s.v), _mm_cvtepi8_epi16(_mm_srli_si128(s.v, 8))};
  }
  template <int G, bool Signed>
  CHORUS_TARGET_SSE4 static inline ints dot_scaled(ints acc, bytes w, bytes a, const scale_lanes& s) noexcept {
    const __m128i words = G < 4 ? s.first : s.second;
    constexpr int k = (2 * G) % 8;
    const __m128i s_lo = _mm_shuffle_epi8(words, _mm_set1_epi16(x86::word_index(k)));
    const __m128i s_hi = _mm_shuffle_epi8(words, _mm_set1_epi16(x86::word_index(k + 1)));
    __m128i p_lo, p_hi;
    if constexpr (Signed) {
      p_lo = _mm_maddubs_epi16(_mm_sign_epi8(w.lo, w.lo), _mm_sign_epi8(a.lo, w.lo));
      p_hi = _mm_maddubs_epi16(_mm_sign_epi8(w.hi, w.hi), _mm_sign_epi8(a.hi, w.hi));
    } else {
      p_lo = _mm_maddubs_epi16(w.lo, a.lo);
      p_hi = _mm_maddubs_epi16(w.hi, a.hi);
    }
    return {_mm_add_epi32(acc.lo, _mm_madd_epi16(p_lo, s_lo)), _mm_add_epi32(acc.hi, _mm_madd_epi16(p_hi, s_hi))};
  }
  CHORUS_TARGET_SSE4 static inline std::int32_t dot_bsums(const std::int16_t* bsums, scales16 s) noexcept {
    const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums));
    const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums + 8));
    return x86::hsum_epi32(_mm_add_epi32(_mm_madd_epi16(b0, _mm_cvtepi8_epi16(s.v)),
                                         _mm_madd_epi16(b1, _mm_cvtepi8_epi16(_mm_srli_si128(s.v, 8)))));
  }

  CHORUS_TARGET_SSE4 static inline floats to_floats(ints a) noexcept { return {_mm_cvtepi32_ps(a.lo), _mm_cvtepi32_ps(a.hi)}; }
  CHORUS_TARGET_SSE4 static inline floats splatf(float x) noexcept {
    const __m128 v = _mm_set1_ps(x);
    return {v, v};
  }
  CHORUS_TARGET_SSE4 static inline floats zerof() noexcept { return {_mm_setzero_ps(), _mm_setzero_ps()}; }
  // Two roundings, always: the empty asm keeps GCC (in a build with FMA enabled) from fusing the
  // multiply and the add here in some inlined contexts and not in others, which would make dot(),
  // gemv and gemm of one row differ in the last bit.
  CHORUS_TARGET_SSE4 static inline floats fma(floats a, floats b, floats c) noexcept {
    __m128 lo = _mm_mul_ps(a.lo, b.lo), hi = _mm_mul_ps(a.hi, b.hi);
    __asm__("" : "+x"(lo), "+x"(hi), "+x"(c.lo), "+x"(c.hi));
    return {_mm_add_ps(lo, c.lo), _mm_add_ps(hi, c.hi)};
  }
  CHORUS_TARGET_SSE4 static inline floats add(floats a, floats b) noexcept { return {_mm_add_ps(a.lo, b.lo), _mm_add_ps(a.hi, b.hi)}; }
  CHORUS_TARGET_SSE4 static inline floats mul(floats a, floats b) noexcept { return {_mm_mul_ps(a.lo, b.lo), _mm_mul_ps(a.hi, b.hi)}; }
  CHORUS_TARGET_SSE4 static inline floats load_floats(const float* p) noexcept { return {_mm_loadu_ps(p), _mm_loadu_ps(p + 4)}; }
  CHORUS_TARGET_SSE4 static inline float first(floats a) noexcept { return _mm_cvtss_f32(a.lo); }
  CHORUS_TARGET_SSE4 static inline floats set_floats(float f0, float f1, float f2, float f3, float f4, float f5, float f6, float f7) noexcept {
    return {_mm_setr_ps(f0, f1, f2, f3), _mm_setr_ps(f4, f5, f6, f7)};
  }
  CHORUS_TARGET_SSE4 static inline floats set_halves(std::uint16_t h0, std::uint16_t h1, std::uint16_t h2, std::uint16_t h3,
                                                     std::uint16_t h4, std::uint16_t h5, std::uint16_t h6, std::uint16_t h7) noexcept {
    return set_floats(half(h0), half(h1), half(h2), half(h3), half(h4), half(h5), half(h6), half(h7));
  }
  CHORUS_TARGET_SSE4 static inline void store_floats(float* p, floats a) noexcept {
    _mm_storeu_ps(p, a.lo);
    _mm_storeu_ps(p + 4, a.hi);
  }
  CHORUS_TARGET_SSE4 static inline float hsum(floats a) noexcept { return x86::hsum_ps(_mm_add_ps(a.lo, a.hi)); }
  static inline float half(std::uint16_t bits) noexcept { return half_to_float_fast(bits); }

  CHORUS_TARGET_SSE4 static inline fvec loadf(const float* p) noexcept { return {_mm_loadu_ps(p)}; }
  CHORUS_TARGET_SSE4 static inline void storef(float* p, fvec a) noexcept { _mm_storeu_ps(p, a.v); }
  CHORUS_TARGET_SSE4 static inline fvec splatv(float x) noexcept { return {_mm_set1_ps(x)}; }
  CHORUS_TARGET_SSE4 static inline fvec addv(fvec a, fvec b) noexcept { return {_mm_add_ps(a.v, b.v)}; }
  CHORUS_TARGET_SSE4 static inline fvec subv(fvec a, fvec b) noexcept { return {_mm_sub_ps(a.v, b.v)}; }
  CHORUS_TARGET_SSE4 static inline fvec mulv(fvec a, fvec b) noexcept { return {_mm_mul_ps(a.v, b.v)}; }
  CHORUS_TARGET_SSE4 static inline fvec divv(fvec a, fvec b) noexcept { return {_mm_div_ps(a.v, b.v)}; }
  CHORUS_TARGET_SSE4 static inline fvec maxv(fvec a, fvec b) noexcept { return {_mm_max_ps(a.v, b.v)}; }
  CHORUS_TARGET_SSE4 static inline fvec minv(fvec a, fvec b) noexcept { return {_mm_min_ps(a.v, b.v)}; }
  CHORUS_TARGET_SSE4 static inline fvec select_less(fvec a, fvec b, fvec if_less, fvec otherwise) noexcept {
    return {_mm_blendv_ps(otherwise.v, if_less.v, _mm_cmplt_ps(a.v, b.v))};
  }
  CHORUS_TARGET_SSE4 static inline fvec fmav(fvec a, fvec b, fvec c) noexcept { return {_mm_add_ps(_mm_mul_ps(a.v, b.v), c.v)}; }
  CHORUS_TARGET_SSE4 static inline fvec roundv(fvec a) noexcept { return {_mm_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  CHORUS_TARGET_SSE4 static inline fvec pow2v(fvec n) noexcept {
    return {_mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(_mm_cvtps_epi32(n.v), _mm_set1_epi32(127)), 23))};
  }
  CHORUS_TARGET_SSE4 static inline float hsumv(fvec a) noexcept { return x86::hsum_ps(a.v); }
  CHORUS_TARGET_SSE4 static inline float hmaxv(fvec a) noexcept { return x86::hmax_ps(a.v); }
  CHORUS_TARGET_SSE4 static inline fvec absv(fvec a) noexcept { return {_mm_andnot_ps(_mm_set1_ps(-0.0f), a.v)}; }
  // fwidth floats that hold integers in [-128, 127] stored as int8
  CHORUS_TARGET_SSE4 static inline void store_int8s(std::int8_t* p, fvec a) noexcept {
    const __m128i i16 = _mm_packs_epi32(_mm_cvttps_epi32(a.v), _mm_setzero_si128());
    const std::int32_t packed = _mm_cvtsi128_si32(_mm_packs_epi16(i16, _mm_setzero_si128()));
    std::memcpy(p, &packed, 4);
  }
  // Without F16C: half_to_float_fast in four lanes (exponent and mantissa moved into place and
  // rebiased by one multiplication; infinities and NaNs selected apart), bit-exact.
  CHORUS_TARGET_SSE4 static inline fvec load_halves(const fp16* p) noexcept {
    const __m128i h = _mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    const __m128i magnitude = _mm_and_si128(h, _mm_set1_epi32(0x7fff));
    const __m128i sign = _mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x8000)), 16);
    const __m128 finite = _mm_mul_ps(_mm_castsi128_ps(_mm_slli_epi32(magnitude, 13)), _mm_set1_ps(0x1p112f));
    const __m128i special = _mm_or_si128(_mm_set1_epi32(0x7f800000), _mm_slli_epi32(_mm_and_si128(magnitude, _mm_set1_epi32(0x3ff)), 13));
    const __m128 is_special = _mm_castsi128_ps(_mm_cmpgt_epi32(magnitude, _mm_set1_epi32(0x7bff)));
    return {_mm_or_ps(_mm_blendv_ps(finite, _mm_castsi128_ps(special), is_special), _mm_castsi128_ps(sign))};
  }
  static inline void store_halves(fp16* p, fvec a) noexcept {
    alignas(16) float f[4];
    storef(f, a);
    for (int k = 0; k < 4; ++k) p[k] = fp16(f[k]);
  }
  CHORUS_TARGET_SSE4 static inline fvec load_bf16s(const bf16* p) noexcept {
    const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return {_mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(h), 16))};
  }
};

// ------------------------------------------------------------------------------------------
// AVX2 and AVX-512 share the 256-bit integer vocabulary; AVX-512 replaces the multiply-add and
// the bit expansion, and widens the float kernels to 512 bits.
#define CHORUS_X86_256_COMMON(TARGET)                                                                               \
  struct bytes {                                                                                                     \
    __m256i v;                                                                                                       \
  };                                                                                                                 \
  struct ints {                                                                                                      \
    __m256i v;                                                                                                       \
  };                                                                                                                 \
  struct floats {                                                                                                    \
    __m256 v;                                                                                                        \
  };                                                                                                                 \
  struct scales16 {                                                                                                  \
    __m128i v;                                                                                                       \
  };                                                                                                                 \
  /* 16 scales as int16: the even ones in the low 128 bits, the odd ones in the high 128 bits, so that */          \
  /* one in-lane word shuffle per group puts scale 2G over bytes 0..15 and 2G + 1 over 16..31 */                   \
  struct scale_lanes {                                                                                               \
    __m256i v;                                                                                                       \
  };                                                                                                                 \
  TARGET static inline bytes load(const void* p) noexcept { return {_mm256_loadu_si256(static_cast<const __m256i*>(p))}; } \
  TARGET static inline void store(void* p, bytes a) noexcept { _mm256_storeu_si256(static_cast<__m256i*>(p), a.v); } \
  TARGET static inline bytes nibbles(const std::uint8_t* p) noexcept {                                              \
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));                                         \
    const __m128i m = _mm_set1_epi8(0x0F);                                                                           \
    return {_mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m))};                         \
  }                                                                                                                  \
  TARGET static inline bytes splat(std::int8_t x) noexcept { return {_mm256_set1_epi8(x)}; }                        \
  TARGET static inline bytes broadcast4(const void* p) noexcept {                                                    \
    std::int32_t v;                                                                                                  \
    std::memcpy(&v, p, 4);                                                                                           \
    return {_mm256_set1_epi32(v)};                                                                                   \
  }                                                                                                                  \
  TARGET static inline bytes and_(bytes a, bytes b) noexcept { return {_mm256_and_si256(a.v, b.v)}; }               \
  TARGET static inline bytes or_(bytes a, bytes b) noexcept { return {_mm256_or_si256(a.v, b.v)}; }                 \
  TARGET static inline bytes sub(bytes a, bytes b) noexcept { return {_mm256_sub_epi8(a.v, b.v)}; }                 \
  template <int N>                                                                                                   \
  TARGET static inline bytes shr(bytes a, std::uint8_t mask) noexcept {                                              \
    return {_mm256_and_si256(_mm256_srli_epi16(a.v, N), _mm256_set1_epi8(static_cast<char>(mask)))};               \
  }                                                                                                                  \
  template <int N>                                                                                                   \
  TARGET static inline bytes shl(bytes a, std::uint8_t mask) noexcept {                                              \
    return {_mm256_and_si256(_mm256_slli_epi16(a.v, N), _mm256_set1_epi8(static_cast<char>(mask)))};               \
  }                                                                                                                  \
  TARGET static inline bytes lookup16(const std::int8_t* table, bytes idx) noexcept {                               \
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table)));       \
    return {_mm256_shuffle_epi8(t, idx.v)};                                                                          \
  }                                                                                                                  \
  TARGET static inline ints zero_ints() noexcept { return {_mm256_setzero_si256()}; }                               \
  TARGET static inline ints splat_ints(std::int32_t x) noexcept { return {_mm256_set1_epi32(x)}; }                 \
  TARGET static inline ints load_ints(const std::int32_t* p) noexcept {                                              \
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))};                                                \
  }                                                                                                                  \
  TARGET static inline ints mul_ints(ints a, ints b) noexcept { return {_mm256_mullo_epi32(a.v, b.v)}; }           \
  /* lane r: the sum of the lanes of v[r] (pairs, then fours, in each 128-bit half; then the halves) */            \
  TARGET static inline ints reduce8(const ints* v) noexcept {                                                        \
    const __m256i ab = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0].v, v[1].v), _mm256_hadd_epi32(v[2].v, v[3].v));    \
    const __m256i cd = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4].v, v[5].v), _mm256_hadd_epi32(v[6].v, v[7].v));    \
    return {_mm256_add_epi32(_mm256_permute2x128_si256(ab, cd, 0x20), _mm256_permute2x128_si256(ab, cd, 0x31))};   \
  }                                                                                                                  \
  TARGET static inline ints add(ints a, ints b) noexcept { return {_mm256_add_epi32(a.v, b.v)}; }                   \
  TARGET static inline std::int32_t hsum(ints a) noexcept {                                                          \
    return x86::hsum_epi32(_mm_add_epi32(_mm256_castsi256_si128(a.v), _mm256_extracti128_si256(a.v, 1)));          \
  }                                                                                                                  \
  TARGET static inline scales16 load_scales(const void* p) noexcept { return {_mm_loadu_si128(static_cast<const __m128i*>(p))}; } \
  TARGET static inline void store_scales(void* p, scales16 s) noexcept { _mm_storeu_si128(static_cast<__m128i*>(p), s.v); } \
  TARGET static inline scales16 scales_from_words(std::uint32_t w0, std::uint32_t w1, std::uint32_t w2, std::uint32_t w3) noexcept { \
    return {_mm_setr_epi32(static_cast<int>(w0), static_cast<int>(w1), static_cast<int>(w2), static_cast<int>(w3))}; \
  }                                                                                                                  \
  TARGET static inline scales16 sub(scales16 s, std::int8_t x) noexcept { return {_mm_sub_epi8(s.v, _mm_set1_epi8(x))}; } \
  TARGET static inline scales16 widen_pairs(scales16 s) noexcept { return {_mm_unpacklo_epi8(s.v, s.v)}; }          \
  TARGET static inline scale_lanes prepare(scales16 s) noexcept {                                                    \
    const __m128i even_odd = _mm_shuffle_epi8(s.v, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15)); \
    return {_mm256_cvtepi8_epi16(even_odd)};                                                                         \
  }                                                                                                                  \
  template <int G>                                                                                                   \
  TARGET static inline __m256i group_scales(const scale_lanes& s) noexcept {                                        \
    return _mm256_shuffle_epi8(s.v, _mm256_set1_epi16(x86::word_index(G)));                                          \
  }                                                                                                                  \
  /* pmaddubsw pairs: |w| x (a with the sign of w), or w x a for unsigned weights */                                \
  template <bool Signed>                                                                                             \
  TARGET static inline __m256i pairs(bytes w, bytes a) noexcept {                                                    \
    if constexpr (Signed) {                                                                                          \
      return _mm256_maddubs_epi16(_mm256_sign_epi8(w.v, w.v), _mm256_sign_epi8(a.v, w.v));                          \
    } else {                                                                                                         \
      return _mm256_maddubs_epi16(w.v, a.v);                                                                         \
    }                                                                                                                \
  }                                                                                                                  \
  TARGET static inline std::int32_t dot_bsums(const std::int16_t* bsums, scales16 s) noexcept {                     \
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsums));                                  \
    return hsum(ints{_mm256_madd_epi16(b, _mm256_cvtepi8_epi16(s.v))});                                                  \
  }                                                                                                                  \
  TARGET static inline floats to_floats(ints a) noexcept { return {_mm256_cvtepi32_ps(a.v)}; }                      \
  TARGET static inline floats splatf(float x) noexcept { return {_mm256_set1_ps(x)}; }                              \
  TARGET static inline floats zerof() noexcept { return {_mm256_setzero_ps()}; }                                    \
  TARGET static inline floats fma(floats a, floats b, floats c) noexcept { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; } \
  TARGET static inline floats add(floats a, floats b) noexcept { return {_mm256_add_ps(a.v, b.v)}; }                \
  TARGET static inline floats mul(floats a, floats b) noexcept { return {_mm256_mul_ps(a.v, b.v)}; }                \
  TARGET static inline floats load_floats(const float* p) noexcept { return {_mm256_loadu_ps(p)}; }                \
  TARGET static inline void store_floats(float* p, floats a) noexcept { _mm256_storeu_ps(p, a.v); }                \
  TARGET static inline float first(floats a) noexcept { return _mm256_cvtss_f32(a.v); }                            \
  TARGET static inline floats set_floats(float f0, float f1, float f2, float f3, float f4, float f5, float f6,     \
                                         float f7) noexcept {                                                        \
    return {_mm256_setr_ps(f0, f1, f2, f3, f4, f5, f6, f7)};                                                         \
  }                                                                                                                  \
  /* eight half floats from registers into one conversion (F16C) */                                                \
  TARGET static inline floats set_halves(std::uint16_t h0, std::uint16_t h1, std::uint16_t h2, std::uint16_t h3,      \
                                         std::uint16_t h4, std::uint16_t h5, std::uint16_t h6,                        \
                                         std::uint16_t h7) noexcept {                                                 \
    return {_mm256_cvtph_ps(_mm_setr_epi16(static_cast<short>(h0), static_cast<short>(h1), static_cast<short>(h2),    \
                                           static_cast<short>(h3), static_cast<short>(h4), static_cast<short>(h5),    \
                                           static_cast<short>(h6), static_cast<short>(h7)))};                         \
  }                                                                                                                  \
  TARGET static inline float hsum(floats a) noexcept {                                                               \
    return x86::hsum_ps(_mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1)));                    \
  }                                                                                                                  \
  TARGET static inline float half(std::uint16_t bits) noexcept { return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits))); }

struct avx2_level {
  static constexpr isa level = isa::avx2;
  CHORUS_X86_256_COMMON(CHORUS_TARGET_AVX2)

  CHORUS_TARGET_AVX2 static inline bytes bit_bytes(std::uint32_t bits, std::uint8_t value) noexcept {
    return {x86::bit_bytes_avx2(bits, value)};
  }
  CHORUS_TARGET_AVX2 static inline ints dot_s8(bytes w, bytes a) noexcept {
    return {_mm256_madd_epi16(pairs<true>(w, a), _mm256_set1_epi16(1))};
  }
  CHORUS_TARGET_AVX2 static inline ints dot_u8(bytes w, bytes a) noexcept {
    return {_mm256_madd_epi16(pairs<false>(w, a), _mm256_set1_epi16(1))};
  }
  CHORUS_TARGET_AVX2 static inline ints dot_i16_acc(ints acc, bytes a, bytes b) noexcept {
    return {_mm256_add_epi32(acc.v, _mm256_madd_epi16(a.v, b.v))};
  }
  template <int G, bool Signed>
  CHORUS_TARGET_AVX2 static inline ints dot_scaled(ints acc, bytes w, bytes a, const scale_lanes& s) noexcept {
    return {_mm256_add_epi32(acc.v, _mm256_madd_epi16(pairs<Signed>(w, a), group_scales<G>(s)))};
  }

  static constexpr std::size_t fwidth = 8;
  // activation rows per gemm register tile (2 accumulators each, of 16 ymm registers)
  static constexpr std::size_t tile_cols = 4;
  // activation rows one K-quant weight row meets per pass of gemm_k's few-rows path (dot_rows):
  // 8 rather than 4: at 8 rows 1.00-1.04x in the kernel (Q6_K, Q4_K) and 1.01-1.23x end to end
  // (Q4_K) on a Xeon
  // (docs/perf.md, 2026-12-08)
  static constexpr std::size_t k_rows_per_pass = 8;
  struct fvec {
    __m256 v;
  };
  CHORUS_TARGET_AVX2 static inline fvec loadf(const float* p) noexcept { return {_mm256_loadu_ps(p)}; }
  CHORUS_TARGET_AVX2 static inline void storef(float* p, fvec a) noexcept { _mm256_storeu_ps(p, a.v); }
  CHORUS_TARGET_AVX2 static inline fvec splatv(float x) noexcept { return {_mm256_set1_ps(x)}; }
  CHORUS_TARGET_AVX2 static inline fvec addv(fvec a, fvec b) noexcept { return {_mm256_add_ps(a.v, b.v)}; }
  CHORUS_TARGET_AVX2 static inline fvec subv(fvec a, fvec b) noexcept { return {_mm256_sub_ps(a.v, b.v)}; }
  CHORUS_TARGET_AVX2 static inline fvec mulv(fvec a, fvec b) noexcept { return {_mm256_mul_ps(a.v, b.v)}; }
  CHORUS_TARGET_AVX2 static inline fvec divv(fvec a, fvec b) noexcept { return {_mm256_div_ps(a.v, b.v)}; }
  CHORUS_TARGET_AVX2 static inline fvec maxv(fvec a, fvec b) noexcept { return {_mm256_max_ps(a.v, b.v)}; }
  CHORUS_TARGET_AVX2 static inline fvec minv(fvec a, fvec b) noexcept { return {_mm256_min_ps(a.v, b.v)}; }
  CHORUS_TARGET_AVX2 static inline fvec select_less(fvec a, fvec b, fvec if_less, fvec otherwise) noexcept {
    return {_mm256_blendv_ps(otherwise.v, if_less.v, _mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ))};
  }
  CHORUS_TARGET_AVX2 static inline fvec fmav(fvec a, fvec b, fvec c) noexcept { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  CHORUS_TARGET_AVX2 static inline fvec roundv(fvec a) noexcept { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  CHORUS_TARGET_AVX2 static inline fvec pow2v(fvec n) noexcept {
    return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127)), 23))};
  }
  CHORUS_TARGET_AVX2 static inline float hsumv(fvec a) noexcept { return hsum(floats{a.v}); }
  CHORUS_TARGET_AVX2 static inline float hmaxv(fvec a) noexcept {
    return x86::hmax_ps(_mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1)));
  }
  CHORUS_TARGET_AVX2 static inline fvec absv(fvec a) noexcept { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
  CHORUS_TARGET_AVX2 static inline void store_int8s(std::int8_t* p, fvec a) noexcept {
    const __m256i i32 = _mm256_cvttps_epi32(a.v);
    const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi16(i16, i16));
  }
  CHORUS_TARGET_AVX2 static inline fvec load_halves(const fp16* p) noexcept {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
  }
  CHORUS_TARGET_AVX2 static inline void store_halves(fp16* p, fvec a) noexcept {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(a.v, _MM_FROUND_TO_NEAREST_INT));
  }
  CHORUS_TARGET_AVX2 static inline fvec load_bf16s(const bf16* p) noexcept {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))};
  }
};

// (The zero-masking forms of some AVX-512 intrinsics avoid GCC 12's false -Wuninitialized in
// the unmasked ones, which start from an undefined vector.)
struct avx512_level {
  static constexpr isa level = isa::avx512;
  CHORUS_X86_256_COMMON(CHORUS_TARGET_AVX512)

  CHORUS_TARGET_AVX512 static inline bytes bit_bytes(std::uint32_t bits, std::uint8_t value) noexcept {
    return {_mm256_maskz_mov_epi8(static_cast<__mmask32>(bits), _mm256_set1_epi8(static_cast<char>(value)))};
  }
  CHORUS_TARGET_AVX512 static inline ints dot_s8(bytes w, bytes a) noexcept {
    return {_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w.v, w.v), _mm256_sign_epi8(a.v, w.v))};
  }
  CHORUS_TARGET_AVX512 static inline ints dot_u8(bytes w, bytes a) noexcept {
    return {_mm256_dpbusd_epi32(_mm256_setzero_si256(), w.v, a.v)};
  }
  CHORUS_TARGET_AVX512 static inline ints dot_u8_acc(ints acc, bytes w, bytes a) noexcept { return {_mm256_dpbusd_epi32(acc.v, w.v, a.v)}; }
  CHORUS_TARGET_AVX512 static inline ints dot_i16_acc(ints acc, bytes a, bytes b) noexcept { return {_mm256_dpwssd_epi32(acc.v, a.v, b.v)}; }
  CHORUS_TARGET_AVX512 static inline ints dot_s8_acc(ints acc, bytes w, bytes a) noexcept {
    return {_mm256_dpbusd_epi32(acc.v, _mm256_sign_epi8(w.v, w.v), _mm256_sign_epi8(a.v, w.v))};
  }
  template <int G, bool Signed>
  CHORUS_TARGET_AVX512 static inline ints dot_scaled(ints acc, bytes w, bytes a, const scale_lanes& s) noexcept {
    return {_mm256_dpwssd_epi32(acc.v, pairs<Signed>(w, a), group_scales<G>(s))};
  }

  static constexpr std::size_t fwidth = 16;
  // activation rows per gemm register tile (2 accumulators each, of 32 ymm registers)
  static constexpr std::size_t tile_cols = 8;
  // activation rows one K-quant weight row meets per pass of gemm_k's few-rows path (dot_rows)
  static constexpr std::size_t k_rows_per_pass = 8;
  struct fvec {
    __m512 v;
  };
  CHORUS_TARGET_AVX512 static inline fvec loadf(const float* p) noexcept { return {_mm512_loadu_ps(p)}; }
  CHORUS_TARGET_AVX512 static inline void storef(float* p, fvec a) noexcept { _mm512_storeu_ps(p, a.v); }
  CHORUS_TARGET_AVX512 static inline fvec splatv(float x) noexcept { return {_mm512_set1_ps(x)}; }
  CHORUS_TARGET_AVX512 static inline fvec addv(fvec a, fvec b) noexcept { return {_mm512_add_ps(a.v, b.v)}; }
  CHORUS_TARGET_AVX512 static inline fvec subv(fvec a, fvec b) noexcept { return {_mm512_sub_ps(a.v, b.v)}; }
  CHORUS_TARGET_AVX512 static inline fvec mulv(fvec a, fvec b) noexcept { return {_mm512_mul_ps(a.v, b.v)}; }
  CHORUS_TARGET_AVX512 static inline fvec divv(fvec a, fvec b) noexcept { return {_mm512_div_ps(a.v, b.v)}; }
  CHORUS_TARGET_AVX512 static inline fvec maxv(fvec a, fvec b) noexcept { return {_mm512_maskz_max_ps(0xFFFF, a.v, b.v)}; }
  CHORUS_TARGET_AVX512 static inline fvec minv(fvec a, fvec b) noexcept { return {_mm512_maskz_min_ps(0xFFFF, a.v, b.v)}; }
  CHORUS_TARGET_AVX512 static inline fvec select_less(fvec a, fvec b, fvec if_less, fvec otherwise) noexcept {
    return {_mm512_mask_blend_ps(_mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ), otherwise.v, if_less.v)};
  }
  CHORUS_TARGET_AVX512 static inline fvec fmav(fvec a, fvec b, fvec c) noexcept { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  CHORUS_TARGET_AVX512 static inline fvec roundv(fvec a) noexcept {
    return {_mm512_maskz_roundscale_ps(0xFFFF, a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
  }
  CHORUS_TARGET_AVX512 static inline fvec pow2v(fvec n) noexcept {
    const __m512i e = _mm512_add_epi32(_mm512_maskz_cvtps_epi32(0xFFFF, n.v), _mm512_set1_epi32(127));
    return {_mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, e, 23))};
  }
  template <int Half>
  CHORUS_TARGET_AVX512 static inline __m256 half_of(__m512 v) noexcept {
    return _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, _mm512_castps_pd(v), Half));
  }
  CHORUS_TARGET_AVX512 static inline float hsumv(fvec a) noexcept {
    return hsum(floats{_mm256_add_ps(half_of<0>(a.v), half_of<1>(a.v))});
  }
  CHORUS_TARGET_AVX512 static inline float hmaxv(fvec a) noexcept {
    const __m256 m = _mm256_max_ps(half_of<0>(a.v), half_of<1>(a.v));
    return x86::hmax_ps(_mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1)));
  }
  CHORUS_TARGET_AVX512 static inline fvec absv(fvec a) noexcept {
    return {_mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a.v), _mm512_set1_epi32(0x7fffffff)))};
  }
  CHORUS_TARGET_AVX512 static inline void store_int8s(std::int8_t* p, fvec a) noexcept {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_maskz_cvtsepi32_epi8(0xFFFF, _mm512_maskz_cvttps_epi32(0xFFFF, a.v)));
  }
  CHORUS_TARGET_AVX512 static inline fvec load_halves(const fp16* p) noexcept {
    return {_mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
  }
  CHORUS_TARGET_AVX512 static inline void store_halves(fp16* p, fvec a) noexcept {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_maskz_cvtps_ph(0xFFFF, a.v, _MM_FROUND_TO_NEAREST_INT));
  }
  CHORUS_TARGET_AVX512 static inline fvec load_bf16s(const bf16* p) noexcept {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return {_mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16))};
  }
};

#undef CHORUS_X86_256_COMMON

}  // namespace chorus::inline CHORUS_ABI::simd

CHORUS_KERNELS_END

#endif  // CHORUS_HAVE_X86_LEVELS
