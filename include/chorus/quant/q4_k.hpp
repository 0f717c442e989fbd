// chorus — Q4_K (GGUF type 12): 256 weights as 4-bit quants in 8 sub-blocks of 32, each with
// a 6-bit scale and a 6-bit minimum: value = d * scale * q - dmin * min.
#pragma once

#include <cstdint>

#include "chorus/quant/k_block.hpp"

namespace chorus::inline CHORUS_ABI::quant {

namespace k_block {
// The 12-byte packing of eight 6-bit scales and eight 6-bit minimums used by Q4_K and Q5_K:
// for j < 4 the low 6 bits of bytes j (scale) and j + 4 (min); for j >= 4 the nibbles of
// byte j + 4 with the 2 high bits taken from the tops of bytes j - 4 (scale) and j (min).
inline void unpack_scales_6bit(const std::uint8_t* s, std::int32_t* scales, std::int32_t* mins) noexcept {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      scales[j] = s[j] & 63;
      mins[j] = s[j + 4] & 63;
    } else {
      scales[j] = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
      mins[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
  }
}
inline void pack_scales_6bit(const std::int32_t* scales, const std::int32_t* mins, std::uint8_t* s) noexcept {
  for (int j = 0; j < 12; ++j) s[j] = 0;
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] = static_cast<std::uint8_t>(s[j] | (scales[j] & 63));
      s[j + 4] = static_cast<std::uint8_t>(s[j + 4] | (mins[j] & 63));
    } else {
      s[j + 4] = static_cast<std::uint8_t>((scales[j] & 0x0F) | ((mins[j] & 0x0F) << 4));
      s[j - 4] = static_cast<std::uint8_t>(s[j - 4] | ((scales[j] >> 4) << 6));
      s[j] = static_cast<std::uint8_t>(s[j] | ((mins[j] >> 4) << 6));
    }
  }
}
}  // namespace k_block

struct block_q4_k {
  fp16 d;
  fp16 dmin;
  std::uint8_t scales[12];
  std::uint8_t qs[128];
};
static_assert(sizeof(block_q4_k) == 144 && alignof(block_q4_k) == 2);

template <>
struct block_traits<block_q4_k> {
  static constexpr gguf::tensor_type type = gguf::tensor_type::q4_k;
  static constexpr std::size_t block_elements = 256;
  static constexpr std::size_t block_bytes = sizeof(block_q4_k);
  static constexpr int sub_block_elements = 32;
  static constexpr bool has_mins = true;
  static constexpr int quant_levels = 16;
  static constexpr int quant_offset = 0;
  static constexpr int scale_levels = 64;
  static constexpr bool signed_quants = false;
  using activation = block_q8_k;

  // Element i: chunk c = i / 64 of 32 bytes; the low nibbles of qs[32c + l] hold elements
  // 64c + l, the high nibbles 64c + 32 + l.
  static void unpack(const block_q4_k& b, k_block::unpacked& u) noexcept {
    k_block::unpack_scales_6bit(b.scales, u.scales, u.mins);
    u.d = b.d.to_float();
    u.dmin = b.dmin.to_float();
    for (int i = 0; i < 256; ++i) {
      const int c = i / 64, l = i % 32, half = (i % 64) / 32;
      u.q[i] = static_cast<std::int8_t>((b.qs[32 * c + l] >> (4 * half)) & 0x0F);
    }
  }
  // Group G: the low (even G) or high (odd G) nibbles of qs[32 (G / 2) ..].
  template <class L, int G>
  CHORUS_ALWAYS_INLINE static typename L::bytes group(const block_q4_k& b) noexcept {
    return L::template shr<4 * (G % 2)>(L::load(b.qs + 32 * (G / 2)), 0x0F);
  }
  template <class L>
  CHORUS_ALWAYS_INLINE static k_block::k_scales<L> scales(const block_q4_k& b) noexcept {
    return k_block::scales_6bit<L>(b.scales);
  }
  static void pack(const k_block::unpacked& u, block_q4_k& b) noexcept {
    for (auto& q : b.qs) q = 0;
    for (int i = 0; i < 256; ++i) {
      const int c = i / 64, l = i % 32, half = (i % 64) / 32;
      b.qs[32 * c + l] = static_cast<std::uint8_t>(b.qs[32 * c + l] | ((u.q[i] & 0x0F) << (4 * half)));
    }
    k_block::pack_scales_6bit(u.scales, u.mins, b.scales);
    b.d = fp16(u.d);
    b.dmin = fp16(u.dmin);
  }
  static void dequantize(const block_q4_k* in, float* out, std::size_t n) noexcept { k_block::dequantize(in, out, n); }
  static void quantize(const float* in, block_q4_k* out, std::size_t n) noexcept { k_block::quantize(in, out, n); }
  static float dot_reference(const block_q4_k* w, const activation* a, std::size_t n) noexcept {
    return k_block::dot_reference(w, a, n);
  }
};
static_assert(block_format<block_q4_k>);

}  // namespace chorus::inline CHORUS_ABI::quant
