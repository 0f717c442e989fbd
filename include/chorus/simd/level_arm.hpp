// chorus — the AArch64 levels: NEON (armv8-a, always present) and NEON with the dot-product
// extension (armv8.2-a sdot, most phones since 2018). The vocabulary of level_scalar.hpp over
// arm_neon.h; 32-byte values are pairs of 128-bit registers.
//
// The int8 multiply-accumulate:
//   neon     smull / smull2 (int8 x int8 -> int16) and two pairwise widening adds (-> int32)
//   dotprod  sdot (four int8 products summed into each int32 lane, one instruction)
// Both are exact for any int8 inputs; unsigned weights below 128 are the same bytes as signed.
#pragma once

#include "chorus/simd/isa.hpp"

#if CHORUS_ARCH_ARM64

#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "chorus/config.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/simd/target.hpp"

namespace chorus::inline CHORUS_ABI::simd {

struct neon_level {
  static constexpr isa level = isa::neon;
  struct bytes {
    int8x16_t lo, hi;
  };
  struct ints {
    int32x4_t lo, hi;
  };
  struct floats {
    float32x4_t lo, hi;
  };
  struct scales16 {
    int8x16_t v;
  };
  struct scale_lanes {
    std::int8_t v[16];  // the multiply-accumulate takes each scale as a scalar
  };
  static constexpr std::size_t fwidth = 4;
  // activation rows per gemm register tile (4 q registers of accumulators each, of 32)
  static constexpr std::size_t tile_cols = 4;
  // activation rows one K-quant weight row meets per pass of gemm_k's few-rows path (dot_rows):
  // 8 is measured faster only on x86 (docs/perf.md, 2026-12-08); not measured on ARM hardware
  static constexpr std::size_t k_rows_per_pass = 4;
  struct fvec {
    float32x4_t v;
  };

  static inline int8x16_t bit_bytes16(std::uint16_t bits, std::uint8_t value) noexcept {
    static constexpr std::uint8_t index[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    static constexpr std::uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t spread = vqtbl1q_u8(vreinterpretq_u8_u16(vdupq_n_u16(bits)), vld1q_u8(index));
    return vreinterpretq_s8_u8(vandq_u8(vtstq_u8(spread, vld1q_u8(bit)), vdupq_n_u8(value)));
  }
  // the sums of bytes 4k..4k+3 of w * a, without the dot-product instruction
  static inline int32x4_t dot16_widening(int8x16_t w, int8x16_t a) noexcept {
    const int16x8_t p0 = vmull_s8(vget_low_s8(w), vget_low_s8(a));
    const int16x8_t p1 = vmull_high_s8(w, a);
    return vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1));
  }

  static inline bytes load(const void* p) noexcept {
    const auto* q = static_cast<const std::int8_t*>(p);
    return {vld1q_s8(q), vld1q_s8(q + 16)};
  }
  static inline void store(void* p, bytes a) noexcept {
    auto* q = static_cast<std::int8_t*>(p);
    vst1q_s8(q, a.lo);
    vst1q_s8(q + 16, a.hi);
  }
  static inline bytes nibbles(const std::uint8_t* p) noexcept {
    const uint8x16_t b = vld1q_u8(p);
    return {vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x0F))), vreinterpretq_s8_u8(vshrq_n_u8(b, 4))};
  }
  static inline bytes bit_bytes(std::uint32_t bits, std::uint8_t value) noexcept {
    return {bit_bytes16(static_cast<std::uint16_t>(bits), value), bit_bytes16(static_cast<std::uint16_t>(bits >> 16), value)};
  }
  static inline bytes splat(std::int8_t x) noexcept { return {vdupq_n_s8(x), vdupq_n_s8(x)}; }
  static inline bytes broadcast4(const void* p) noexcept {
    std::int32_t v;
    std::memcpy(&v, p, 4);
    const int8x16_t b = vreinterpretq_s8_s32(vdupq_n_s32(v));
    return {b, b};
  }
  static inline bytes and_(bytes a, bytes b) noexcept { return {vandq_s8(a.lo, b.lo), vandq_s8(a.hi, b.hi)}; }
  static inline bytes or_(bytes a, bytes b) noexcept { return {vorrq_s8(a.lo, b.lo), vorrq_s8(a.hi, b.hi)}; }
  static inline bytes sub(bytes a, bytes b) noexcept { return {vsubq_s8(a.lo, b.lo), vsubq_s8(a.hi, b.hi)}; }
  template <int N>
  static inline int8x16_t shr16(int8x16_t a, std::uint8_t mask) noexcept {
    uint8x16_t u = vreinterpretq_u8_s8(a);
    if constexpr (N > 0) u = vshrq_n_u8(u, N);
    return vreinterpretq_s8_u8(vandq_u8(u, vdupq_n_u8(mask)));
  }
  template <int N>
  static inline bytes shr(bytes a, std::uint8_t mask) noexcept {
    return {shr16<N>(a.lo, mask), shr16<N>(a.hi, mask)};
  }
  template <int N>
  static inline bytes shl(bytes a, std::uint8_t mask) noexcept {
    const uint8x16_t m = vdupq_n_u8(mask);
    return {vreinterpretq_s8_u8(vandq_u8(vshlq_n_u8(vreinterpretq_u8_s8(a.lo), N), m)),
            vreinterpretq_s8_u8(vandq_u8(vshlq_n_u8(vreinterpretq_u8_s8(a.hi), N), m))};
  }
  static inline bytes lookup16(const std::int8_t* table, bytes idx) noexcept {
    const int8x16_t t = vld1q_s8(table);
    return {vqtbl1q_s8(t, vreinterpretq_u8_s8(idx.lo)), vqtbl1q_s8(t, vreinterpretq_u8_s8(idx.hi))};
  }

  static inline ints dot_s8(bytes w, bytes a) noexcept { return {dot16_widening(w.lo, a.lo), dot16_widening(w.hi, a.hi)}; }
  static inline ints dot_u8(bytes w, bytes a) noexcept { return dot_s8(w, a); }
  static inline ints zero_ints() noexcept { return {vdupq_n_s32(0), vdupq_n_s32(0)}; }
  static inline ints splat_ints(std::int32_t x) noexcept { return {vdupq_n_s32(x), vdupq_n_s32(x)}; }
  static inline ints load_ints(const std::int32_t* p) noexcept { return {vld1q_s32(p), vld1q_s32(p + 4)}; }
  static inline int32x4_t reduce4(const ints* v) noexcept {
    const int32x4_t p01 = vpaddq_s32(vaddq_s32(v[0].lo, v[0].hi), vaddq_s32(v[1].lo, v[1].hi));
    const int32x4_t p23 = vpaddq_s32(vaddq_s32(v[2].lo, v[2].hi), vaddq_s32(v[3].lo, v[3].hi));
    return vpaddq_s32(p01, p23);
  }
  static inline ints reduce8(const ints* v) noexcept { return {reduce4(v), reduce4(v + 4)}; }
  static inline ints mul_ints(ints a, ints b) noexcept { return {vmulq_s32(a.lo, b.lo), vmulq_s32(a.hi, b.hi)}; }
  static inline int32x4_t dot16_i16(int8x16_t a, int8x16_t b) noexcept {
    const int16x8_t x = vreinterpretq_s16_s8(a), y = vreinterpretq_s16_s8(b);
    return vpaddq_s32(vmull_s16(vget_low_s16(x), vget_low_s16(y)), vmull_high_s16(x, y));
  }
  static inline ints dot_i16_acc(ints acc, bytes a, bytes b) noexcept {
    return {vaddq_s32(acc.lo, dot16_i16(a.lo, b.lo)), vaddq_s32(acc.hi, dot16_i16(a.hi, b.hi))};
  }
  static inline ints add(ints a, ints b) noexcept { return {vaddq_s32(a.lo, b.lo), vaddq_s32(a.hi, b.hi)}; }
  static inline std::int32_t hsum(ints a) noexcept { return vaddvq_s32(vaddq_s32(a.lo, a.hi)); }

  static inline scales16 load_scales(const void* p) noexcept { return {vld1q_s8(static_cast<const std::int8_t*>(p))}; }
  static inline void store_scales(void* p, scales16 s) noexcept { vst1q_s8(static_cast<std::int8_t*>(p), s.v); }
  static inline scales16 scales_from_words(std::uint32_t w0, std::uint32_t w1, std::uint32_t w2, std::uint32_t w3) noexcept {
    const std::uint32_t w[4] = {w0, w1, w2, w3};
    return {vreinterpretq_s8_u32(vld1q_u32(w))};
  }
  static inline scales16 sub(scales16 s, std::int8_t x) noexcept { return {vsubq_s8(s.v, vdupq_n_s8(x))}; }
  static inline scales16 widen_pairs(scales16 s) noexcept { return {vzip1q_s8(s.v, s.v)}; }
  static inline scale_lanes prepare(scales16 s) noexcept {
    scale_lanes r;
    vst1q_s8(r.v, s.v);
    return r;
  }
  template <int G, bool Signed>
  static inline ints dot_scaled(ints acc, bytes w, bytes a, const scale_lanes& s) noexcept {
    return {vmlaq_n_s32(acc.lo, dot16_widening(w.lo, a.lo), s.v[2 * G]),
            vmlaq_n_s32(acc.hi, dot16_widening(w.hi, a.hi), s.v[2 * G + 1])};
  }
  static inline std::int32_t dot_bsums(const std::int16_t* bsums, scales16 s) noexcept {
    const int16x8_t b0 = vld1q_s16(bsums), b1 = vld1q_s16(bsums + 8);
    const int16x8_t s0 = vmovl_s8(vget_low_s8(s.v)), s1 = vmovl_high_s8(s.v);
    int32x4_t acc = vmull_s16(vget_low_s16(b0), vget_low_s16(s0));
    acc = vmlal_high_s16(acc, b0, s0);
    acc = vmlal_s16(acc, vget_low_s16(b1), vget_low_s16(s1));
    acc = vmlal_high_s16(acc, b1, s1);
    return vaddvq_s32(acc);
  }

  static inline floats to_floats(ints a) noexcept { return {vcvtq_f32_s32(a.lo), vcvtq_f32_s32(a.hi)}; }
  static inline floats splatf(float x) noexcept { return {vdupq_n_f32(x), vdupq_n_f32(x)}; }
  static inline floats zerof() noexcept { return splatf(0.0f); }
  static inline floats fma(floats a, floats b, floats c) noexcept { return {vfmaq_f32(c.lo, a.lo, b.lo), vfmaq_f32(c.hi, a.hi, b.hi)}; }
  static inline floats add(floats a, floats b) noexcept { return {vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)}; }
  static inline floats mul(floats a, floats b) noexcept { return {vmulq_f32(a.lo, b.lo), vmulq_f32(a.hi, b.hi)}; }
  static inline floats load_floats(const float* p) noexcept { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
  static inline float first(floats a) noexcept { return vgetq_lane_f32(a.lo, 0); }
  static inline floats set_floats(float f0, float f1, float f2, float f3, float f4, float f5, float f6, float f7) noexcept {
    const float lo[4] = {f0, f1, f2, f3}, hi[4] = {f4, f5, f6, f7};
    return {vld1q_f32(lo), vld1q_f32(hi)};
  }
  static inline void store_floats(float* p, floats a) noexcept {
    vst1q_f32(p, a.lo);
    vst1q_f32(p + 4, a.hi);
  }
  static inline float hsum(floats a) noexcept { return vaddvq_f32(vaddq_f32(a.lo, a.hi)); }
  static inline float half(std::uint16_t bits) noexcept {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(bits))), 0);
  }
  static inline floats set_halves(std::uint16_t h0, std::uint16_t h1, std::uint16_t h2, std::uint16_t h3, std::uint16_t h4,
                                  std::uint16_t h5, std::uint16_t h6, std::uint16_t h7) noexcept {
    const std::uint16_t lo[4] = {h0, h1, h2, h3}, hi[4] = {h4, h5, h6, h7};
    return {vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(lo))), vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(hi)))};
  }

  static inline fvec loadf(const float* p) noexcept { return {vld1q_f32(p)}; }
  static inline void storef(float* p, fvec a) noexcept { vst1q_f32(p, a.v); }
  static inline fvec splatv(float x) noexcept { return {vdupq_n_f32(x)}; }
  static inline fvec addv(fvec a, fvec b) noexcept { return {vaddq_f32(a.v, b.v)}; }
  static inline fvec subv(fvec a, fvec b) noexcept { return {vsubq_f32(a.v, b.v)}; }
  static inline fvec mulv(fvec a, fvec b) noexcept { return {vmulq_f32(a.v, b.v)}; }
  static inline fvec divv(fvec a, fvec b) noexcept { return {vdivq_f32(a.v, b.v)}; }
  static inline fvec maxv(fvec a, fvec b) noexcept { return {vmaxq_f32(a.v, b.v)}; }
  static inline fvec minv(fvec a, fvec b) noexcept { return {vminq_f32(a.v, b.v)}; }
  static inline fvec select_less(fvec a, fvec b, fvec if_less, fvec otherwise) noexcept {
    return {vbslq_f32(vcltq_f32(a.v, b.v), if_less.v, otherwise.v)};
  }
  static inline fvec fmav(fvec a, fvec b, fvec c) noexcept { return {vfmaq_f32(c.v, a.v, b.v)}; }
  static inline fvec roundv(fvec a) noexcept { return {vrndnq_f32(a.v)}; }
  static inline fvec pow2v(fvec n) noexcept {
    return {vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n.v), vdupq_n_s32(127)), 23))};
  }
  static inline float hsumv(fvec a) noexcept { return vaddvq_f32(a.v); }
  static inline float hmaxv(fvec a) noexcept { return vmaxvq_f32(a.v); }
  static inline fvec absv(fvec a) noexcept { return {vabsq_f32(a.v)}; }
  static inline void store_int8s(std::int8_t* p, fvec a) noexcept {
    const int16x4_t i16 = vqmovn_s32(vcvtq_s32_f32(a.v));
    const std::int32_t packed = vget_lane_s32(vreinterpret_s32_s8(vqmovn_s16(vcombine_s16(i16, i16))), 0);
    std::memcpy(p, &packed, 4);
  }
  static inline fvec load_halves(const fp16* p) noexcept {
    return {vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const std::uint16_t*>(p))))};
  }
  static inline void store_halves(fp16* p, fvec a) noexcept {
    vst1_u16(reinterpret_cast<std::uint16_t*>(p), vreinterpret_u16_f16(vcvt_f16_f32(a.v)));
  }
  static inline fvec load_bf16s(const bf16* p) noexcept {
    return {vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const std::uint16_t*>(p)), 16))};
  }
};

#if CHORUS_HAVE_DOTPROD_LEVEL
// NEON with sdot: only the multiply-accumulate differs.
struct dotprod_level : neon_level {
  static constexpr isa level = isa::dotprod;
  CHORUS_TARGET_DOTPROD static inline int32x4_t dot16(int8x16_t w, int8x16_t a) noexcept {
    return vdotq_s32(vdupq_n_s32(0), w, a);
  }
  CHORUS_TARGET_DOTPROD static inline ints dot_s8(bytes w, bytes a) noexcept { return {dot16(w.lo, a.lo), dot16(w.hi, a.hi)}; }
  CHORUS_TARGET_DOTPROD static inline ints dot_u8(bytes w, bytes a) noexcept { return dot_s8(w, a); }
  CHORUS_TARGET_DOTPROD static inline ints dot_s8_acc(ints acc, bytes w, bytes a) noexcept {
    return {vdotq_s32(acc.lo, w.lo, a.lo), vdotq_s32(acc.hi, w.hi, a.hi)};
  }
  CHORUS_TARGET_DOTPROD static inline ints dot_u8_acc(ints acc, bytes w, bytes a) noexcept { return dot_s8_acc(acc, w, a); }
  template <int G, bool Signed>
  CHORUS_TARGET_DOTPROD static inline ints dot_scaled(ints acc, bytes w, bytes a, const scale_lanes& s) noexcept {
    return {vmlaq_n_s32(acc.lo, dot16(w.lo, a.lo), s.v[2 * G]), vmlaq_n_s32(acc.hi, dot16(w.hi, a.hi), s.v[2 * G + 1])};
  }
};
#endif

}  // namespace chorus::inline CHORUS_ABI::simd

#endif  // CHORUS_ARCH_ARM64
