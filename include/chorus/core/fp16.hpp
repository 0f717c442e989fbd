// chorus — IEEE half precision (fp16) and bfloat16 storage types with exact conversions.
//
// These are storage types: arithmetic happens in float. The conversions round to nearest
// even and keep infinities, NaNs and subnormals, so that F16 tensors and the fp16 scales
// inside quantized blocks decode bit-exactly as in the reference implementation.
#pragma once

#include <bit>
#include <cstdint>
#include <type_traits>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "chorus/config.hpp"

namespace chorus::inline CHORUS_ABI {

constexpr float fp16_bits_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits = 0;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mantissa <<= 1;
      } while ((mantissa & 0x400u) == 0);
      bits = sign | (static_cast<std::uint32_t>(127 - 15 - e) << 23) | ((mantissa & 0x3ffu) << 13);
    }
  } else if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);
  }
  return std::bit_cast<float>(bits);
}

constexpr std::uint16_t float_to_fp16_bits(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN (keep NaN quiet and non-zero)
    return static_cast<std::uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u | ((abs >> 13) & 0x3ffu) : 0u));
  }
  if (abs >= 0x477ff000u) {  // rounds to >= 65536: overflow to infinity
    return static_cast<std::uint16_t>(sign | 0x7c00u);
  }
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    if (abs < 0x33000000u) return static_cast<std::uint16_t>(sign);  // < half of the smallest subnormal
    // value = mantissa * 2^(exponent - 126) in units of the smallest subnormal (2^-24)
    const std::uint32_t exponent = abs >> 23;
    const std::uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126 - exponent;  // 14..24
    const std::uint32_t kept = mantissa >> shift;
    const std::uint32_t remainder = mantissa & ((1u << shift) - 1u);
    const std::uint32_t half_point = 1u << (shift - 1);
    std::uint32_t rounded = kept;
    if (remainder > half_point || (remainder == half_point && (kept & 1u))) ++rounded;
    return static_cast<std::uint16_t>(sign | rounded);
  }
  // normal: rebias the exponent, round the mantissa to 10 bits (nearest even)
  std::uint32_t half = ((abs >> 13) - ((127 - 15) << 10));
  const std::uint32_t low = abs & 0x1fffu;
  if (low > 0x1000u || (low == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent: correct
  return static_cast<std::uint16_t>(sign | half);
}

constexpr float bf16_bits_to_float(std::uint16_t h) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}

constexpr std::uint16_t float_to_bf16_bits(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<std::uint16_t>((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
}

// IEEE binary16 as stored in GGUF (little-endian 16 bits).
struct fp16 {
  std::uint16_t bits = 0;
  constexpr fp16() = default;
  constexpr explicit fp16(float f) noexcept : bits(float_to_fp16_bits(f)) {}
  static constexpr fp16 from_bits(std::uint16_t b) noexcept {
    fp16 h;
    h.bits = b;
    return h;
  }
  constexpr explicit operator float() const noexcept { return to_float(); }
  constexpr float to_float() const noexcept {
#if defined(__F16C__)
    // one instruction instead of the portable bit manipulation: quantized blocks convert their
    // fp16 scales on every dot product
    if (!std::is_constant_evaluated()) return _cvtsh_ss(bits);
#endif
    return fp16_bits_to_float(bits);
  }
};
static_assert(sizeof(fp16) == 2);

struct bf16 {
  std::uint16_t bits = 0;
  constexpr bf16() = default;
  constexpr explicit bf16(float f) noexcept : bits(float_to_bf16_bits(f)) {}
  static constexpr bf16 from_bits(std::uint16_t b) noexcept {
    bf16 h;
    h.bits = b;
    return h;
  }
  constexpr explicit operator float() const noexcept { return bf16_bits_to_float(bits); }
  constexpr float to_float() const noexcept { return bf16_bits_to_float(bits); }
};
static_assert(sizeof(bf16) == 2);

}  // namespace chorus::inline CHORUS_ABI
