// chorus — the scalar level: the vocabulary every level provides (see level_x86.hpp for the
// vector ones), in portable C++ over small arrays. It is the fallback on every architecture and
// documents what each operation means; the compiler vectorizes what it can for the baseline.
//
// The vocabulary:
//   bytes        32 lanes of 8 bits: the quants of one group of 32 weights, or 32 activations
//   ints         8 int32 lanes; lane k sums the products of bytes 4k..4k+3
//   floats       8 float lanes (per-group float scaling)
//   scales16     16 int8 lanes: a 256-weight super-block's scale (or minimum) per 16 weights
//   scale_lanes  scales16 prepared once per super-block for dot_scaled
//   fvec         the widest float vector (fwidth lanes), for the float kernels
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "chorus/config.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/simd/isa.hpp"
#include "chorus/simd/target.hpp"

namespace chorus::inline CHORUS_ABI::simd {

// fp16 -> float without F16C: the exponent and mantissa moved into place and rebiased by one
// multiplication (exact for normal and subnormal halves); infinities and NaNs take the branch.
constexpr float half_to_float_fast(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t magnitude = h & 0x7fffu;
  if (magnitude >= 0x7c00u) return std::bit_cast<float>(sign | 0x7f800000u | ((magnitude & 0x3ffu) << 13));
  const float value = std::bit_cast<float>(magnitude << 13) * 0x1p112f;
  return std::bit_cast<float>(sign | std::bit_cast<std::uint32_t>(value));
}

struct scalar_level {
  static constexpr isa level = isa::scalar;
  struct bytes {
    std::int8_t v[32];
  };
  struct ints {
    std::int32_t v[8];
  };
  struct floats {
    float v[8];
  };
  struct scales16 {
    std::int8_t v[16];
  };
  struct scale_lanes {
    std::int8_t v[16];
  };
  static constexpr std::size_t fwidth = 8;
  // activation rows per register tile of the gemm (kernels.hpp: interleaved_tile)
  static constexpr std::size_t tile_cols = 2;
  // activation rows one K-quant weight row meets per pass of gemm_k's few-rows path (dot_rows):
  // 4, because 8 fully unrolled scalar rows grew this level's kernel file from 58 to 80 s of
  // compile time (GCC 12, -O3), and the scalar level's speed matters less than every build's time
  static constexpr std::size_t k_rows_per_pass = 4;
  struct fvec {
    float v[8];
  };

  // ---- bytes ----
  static inline bytes load(const void* p) noexcept {
    bytes r;
    std::memcpy(r.v, p, 32);
    return r;
  }
  static inline void store(void* p, bytes a) noexcept { std::memcpy(p, a.v, 32); }
  // the 4 bytes at p in every group of 4 lanes
  static inline bytes broadcast4(const void* p) noexcept {
    bytes r;
    for (int k = 0; k < 8; ++k) std::memcpy(r.v + 4 * k, p, 4);
    return r;
  }
  // 16 bytes: the low nibbles become lanes 0..15, the high nibbles lanes 16..31.
  static inline bytes nibbles(const std::uint8_t* p) noexcept {
    bytes r;
    for (int j = 0; j < 16; ++j) {
      r.v[j] = static_cast<std::int8_t>(p[j] & 0x0F);
      r.v[j + 16] = static_cast<std::int8_t>(p[j] >> 4);
    }
    return r;
  }
  // lane j: `value` if bit j of `bits` is set, else 0.
  static inline bytes bit_bytes(std::uint32_t bits, std::uint8_t value) noexcept {
    bytes r;
    for (int j = 0; j < 32; ++j) r.v[j] = static_cast<std::int8_t>(((bits >> j) & 1u) ? value : 0);
    return r;
  }
  static inline bytes splat(std::int8_t x) noexcept {
    bytes r;
    for (auto& v : r.v) v = x;
    return r;
  }
  static inline bytes and_(bytes a, bytes b) noexcept {
    for (int j = 0; j < 32; ++j) a.v[j] = static_cast<std::int8_t>(a.v[j] & b.v[j]);
    return a;
  }
  static inline bytes or_(bytes a, bytes b) noexcept {
    for (int j = 0; j < 32; ++j) a.v[j] = static_cast<std::int8_t>(a.v[j] | b.v[j]);
    return a;
  }
  static inline bytes sub(bytes a, bytes b) noexcept {
    for (int j = 0; j < 32; ++j) a.v[j] = static_cast<std::int8_t>(a.v[j] - b.v[j]);
    return a;
  }
  // (lane >> N) & mask, lanes as unsigned bytes.
  template <int N>
  static inline bytes shr(bytes a, std::uint8_t mask) noexcept {
    for (auto& v : a.v) v = static_cast<std::int8_t>((static_cast<std::uint8_t>(v) >> N) & mask);
    return a;
  }
  // (lane << N) & mask.
  template <int N>
  static inline bytes shl(bytes a, std::uint8_t mask) noexcept {
    for (auto& v : a.v) v = static_cast<std::int8_t>((static_cast<std::uint8_t>(v) << N) & mask);
    return a;
  }
  // lane j: table[idx_j] for idx_j in 0..15.
  static inline bytes lookup16(const std::int8_t* table, bytes idx) noexcept {
    for (auto& v : idx.v) v = table[v & 15];
    return idx;
  }

  // ---- int8 multiply-accumulate ----
  // signed weights x signed activations (activations in [-127, 127])
  static inline ints dot_s8(bytes w, bytes a) noexcept {
    ints r{};
    for (int j = 0; j < 32; ++j) r.v[j / 4] += w.v[j] * a.v[j];
    return r;
  }
  // unsigned weights in [0, 127] x signed activations
  static inline ints dot_u8(bytes w, bytes a) noexcept {
    ints r{};
    for (int j = 0; j < 32; ++j) r.v[j / 4] += static_cast<std::uint8_t>(w.v[j]) * a.v[j];
    return r;
  }
  static inline ints zero_ints() noexcept { return ints{}; }
  static inline ints load_ints(const std::int32_t* p) noexcept {
    ints r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static inline ints mul_ints(ints a, ints b) noexcept {
    for (int k = 0; k < 8; ++k) a.v[k] *= b.v[k];
    return a;
  }
  // bytes as 16 int16 lanes: lane k of acc plus the products of int16 lanes 2k and 2k + 1
  static inline ints dot_i16_acc(ints acc, bytes a, bytes b) noexcept {
    std::int16_t x[16], y[16];
    std::memcpy(x, a.v, 32);
    std::memcpy(y, b.v, 32);
    for (int k = 0; k < 8; ++k) acc.v[k] += x[2 * k] * y[2 * k] + x[2 * k + 1] * y[2 * k + 1];
    return acc;
  }
  // lane r: the sum of the lanes of v[r]
  static inline ints reduce8(const ints* v) noexcept {
    ints r;
    for (int k = 0; k < 8; ++k) r.v[k] = hsum(v[k]);
    return r;
  }
  static inline ints splat_ints(std::int32_t x) noexcept {
    ints r;
    for (auto& v : r.v) v = x;
    return r;
  }
  static inline ints add(ints a, ints b) noexcept {
    for (int k = 0; k < 8; ++k) a.v[k] += b.v[k];
    return a;
  }
  static inline std::int32_t hsum(ints a) noexcept {
    std::int32_t s = 0;
    for (auto v : a.v) s += v;
    return s;
  }

  // ---- K-quant scales ----
  static inline scales16 load_scales(const void* p) noexcept {
    scales16 s;
    std::memcpy(s.v, p, 16);
    return s;
  }
  static inline void store_scales(void* p, scales16 s) noexcept { std::memcpy(p, s.v, 16); }
  static inline scales16 scales_from_words(std::uint32_t w0, std::uint32_t w1, std::uint32_t w2, std::uint32_t w3) noexcept {
    const std::uint32_t w[4] = {w0, w1, w2, w3};
    scales16 s;
    std::memcpy(s.v, w, 16);
    return s;
  }
  static inline scales16 sub(scales16 s, std::int8_t x) noexcept {
    for (auto& v : s.v) v = static_cast<std::int8_t>(v - x);
    return s;
  }
  // lanes 0..7 to lanes 2k and 2k + 1 (a scale per 32 weights, as one per 16)
  static inline scales16 widen_pairs(scales16 s) noexcept {
    scales16 r;
    for (int k = 0; k < 16; ++k) r.v[k] = s.v[k / 2];
    return r;
  }
  static inline scale_lanes prepare(scales16 s) noexcept {
    scale_lanes r;
    std::memcpy(r.v, s.v, 16);
    return r;
  }
  // acc + s[2G] * (w . a over bytes 0..15) + s[2G + 1] * (w . a over bytes 16..31); weights
  // unsigned (< 128) or, with Signed, signed.
  template <int G, bool Signed>
  static inline ints dot_scaled(ints acc, bytes w, bytes a, const scale_lanes& s) noexcept {
    for (int j = 0; j < 32; ++j) {
      const int wj = Signed ? w.v[j] : static_cast<std::uint8_t>(w.v[j]);
      acc.v[j / 4] += s.v[2 * G + j / 16] * wj * a.v[j];
    }
    return acc;
  }
  // sum over k of bsums[k] * s[k]
  static inline std::int32_t dot_bsums(const std::int16_t* bsums, scales16 s) noexcept {
    std::int32_t r = 0;
    for (int k = 0; k < 16; ++k) r += bsums[k] * s.v[k];
    return r;
  }

  // ---- floats (8 lanes) ----
  static inline floats to_floats(ints a) noexcept {
    floats r;
    for (int k = 0; k < 8; ++k) r.v[k] = static_cast<float>(a.v[k]);
    return r;
  }
  static inline floats splatf(float x) noexcept {
    floats r;
    for (auto& v : r.v) v = x;
    return r;
  }
  static inline floats zerof() noexcept { return floats{}; }
  // std::fma, not a * b + c: GCC contracts the latter into an fma in some inlined contexts and
  // not in others, so dot() and gemv() of the same row would differ in the last bit; the vector
  // levels' fma rounds once too.
  static inline floats fma(floats a, floats b, floats c) noexcept {
    for (int k = 0; k < 8; ++k) c.v[k] = std::fma(a.v[k], b.v[k], c.v[k]);
    return c;
  }
  static inline floats add(floats a, floats b) noexcept {
    for (int k = 0; k < 8; ++k) a.v[k] += b.v[k];
    return a;
  }
  static inline floats mul(floats a, floats b) noexcept {
    for (int k = 0; k < 8; ++k) a.v[k] *= b.v[k];
    return a;
  }
  static inline floats load_floats(const float* p) noexcept {
    floats r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static inline void store_floats(float* p, floats a) noexcept { std::memcpy(p, a.v, sizeof a.v); }
  static inline float first(floats a) noexcept { return a.v[0]; }
  static inline floats set_floats(float f0, float f1, float f2, float f3, float f4, float f5, float f6, float f7) noexcept {
    return floats{{f0, f1, f2, f3, f4, f5, f6, f7}};
  }
  static inline float hsum(floats a) noexcept {
    // pairwise, as the vector levels reduce
    float s4[4], s2[2];
    for (int k = 0; k < 4; ++k) s4[k] = a.v[k] + a.v[k + 4];
    for (int k = 0; k < 2; ++k) s2[k] = s4[k] + s4[k + 2];
    return s2[0] + s2[1];
  }
  static inline float half(std::uint16_t bits) noexcept { return half_to_float_fast(bits); }
  static inline floats set_halves(std::uint16_t h0, std::uint16_t h1, std::uint16_t h2, std::uint16_t h3, std::uint16_t h4,
                                  std::uint16_t h5, std::uint16_t h6, std::uint16_t h7) noexcept {
    return set_floats(half(h0), half(h1), half(h2), half(h3), half(h4), half(h5), half(h6), half(h7));
  }

  // ---- fvec: the float kernels' vector ----
  static inline fvec loadf(const float* p) noexcept {
    fvec r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static inline void storef(float* p, fvec a) noexcept { std::memcpy(p, a.v, sizeof a.v); }
  static inline fvec splatv(float x) noexcept {
    fvec r;
    for (auto& v : r.v) v = x;
    return r;
  }
#define CHORUS_SCALAR_BINARY(name, expr)                      \
  static inline fvec name(fvec a, fvec b) noexcept {          \
    for (std::size_t k = 0; k < fwidth; ++k) {                \
      const float x = a.v[k], y = b.v[k];                     \
      a.v[k] = (expr);                                        \
    }                                                         \
    return a;                                                 \
  }
  CHORUS_SCALAR_BINARY(addv, x + y)
  CHORUS_SCALAR_BINARY(subv, x - y)
  CHORUS_SCALAR_BINARY(mulv, x * y)
  CHORUS_SCALAR_BINARY(divv, x / y)
  CHORUS_SCALAR_BINARY(maxv, x > y ? x : y)
  CHORUS_SCALAR_BINARY(minv, x < y ? x : y)
#undef CHORUS_SCALAR_BINARY
  // lane k: a < b ? if_less : otherwise
  static inline fvec select_less(fvec a, fvec b, fvec if_less, fvec otherwise) noexcept {
    for (std::size_t k = 0; k < fwidth; ++k) otherwise.v[k] = a.v[k] < b.v[k] ? if_less.v[k] : otherwise.v[k];
    return otherwise;
  }
  static inline fvec fmav(fvec a, fvec b, fvec c) noexcept {
    for (std::size_t k = 0; k < fwidth; ++k) c.v[k] = std::fma(a.v[k], b.v[k], c.v[k]);  // as fma() above
    return c;
  }
  static inline fvec roundv(fvec a) noexcept {
    for (auto& v : a.v) v = std::nearbyint(v);
    return a;
  }
  // 2^n for integer-valued n in [-126, 127]
  static inline fvec pow2v(fvec n) noexcept {
    for (auto& v : n.v) v = std::bit_cast<float>(static_cast<std::uint32_t>(static_cast<std::int32_t>(v) + 127) << 23);
    return n;
  }
  static inline float hsumv(fvec a) noexcept {
    float s4[4], s2[2];
    for (int k = 0; k < 4; ++k) s4[k] = a.v[k] + a.v[k + 4];
    for (int k = 0; k < 2; ++k) s2[k] = s4[k] + s4[k + 2];
    return s2[0] + s2[1];
  }
  static inline float hmaxv(fvec a) noexcept {
    float m = a.v[0];
    for (auto v : a.v) m = v > m ? v : m;
    return m;
  }
  static inline fvec absv(fvec a) noexcept {
    for (auto& v : a.v) v = std::fabs(v);
    return a;
  }
  // fwidth floats that hold integers in [-128, 127] stored as int8
  static inline void store_int8s(std::int8_t* p, fvec a) noexcept {
    for (std::size_t k = 0; k < fwidth; ++k) p[k] = static_cast<std::int8_t>(a.v[k]);
  }
  static inline fvec load_halves(const fp16* p) noexcept {
    fvec r;
    for (std::size_t k = 0; k < fwidth; ++k) r.v[k] = half_to_float_fast(p[k].bits);
    return r;
  }
  static inline void store_halves(fp16* p, fvec a) noexcept {
    for (std::size_t k = 0; k < fwidth; ++k) p[k] = fp16(a.v[k]);
  }
  static inline fvec load_bf16s(const bf16* p) noexcept {
    fvec r;
    for (std::size_t k = 0; k < fwidth; ++k) r.v[k] = p[k].to_float();
    return r;
  }
};

}  // namespace chorus::inline CHORUS_ABI::simd
