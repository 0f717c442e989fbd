// chorus — Q2_K (GGUF type 10): 256 weights as 2-bit quants in 16 sub-blocks of 16, each
// with a 4-bit scale and a 4-bit minimum: value = d * scale * q - dmin * min.
#pragma once

#include <cstdint>
#include <cstring>

#include "chorus/quant/k_block.hpp"

namespace chorus::inline CHORUS_ABI::quant {

struct block_q2_k {
  std::uint8_t scales[16];  // low nibble: scale, high nibble: minimum
  std::uint8_t qs[64];
  fp16 d;
  fp16 dmin;
};
static_assert(sizeof(block_q2_k) == 84 && alignof(block_q2_k) == 2);

template <>
struct block_traits<block_q2_k> {
  static constexpr gguf::tensor_type type = gguf::tensor_type::q2_k;
  static constexpr std::size_t block_elements = 256;
  static constexpr std::size_t block_bytes = sizeof(block_q2_k);
  static constexpr int sub_block_elements = 16;
  static constexpr bool has_mins = true;
  static constexpr int quant_levels = 4;
  static constexpr int quant_offset = 0;
  static constexpr int scale_levels = 16;
  static constexpr bool signed_quants = false;
  using activation = block_q8_k;

  // Element i: half n = i / 128, shift group j = (i % 128) / 32, lane l = i % 32; its two
  // bits are bits 2j..2j+1 of qs[32n + l]; its sub-block is 8n + 2j + l / 16 = i / 16.
  static void unpack(const block_q2_k& b, k_block::unpacked& u) noexcept {
    for (int s = 0; s < 16; ++s) {
      u.scales[s] = b.scales[s] & 0x0F;
      u.mins[s] = b.scales[s] >> 4;
    }
    u.d = b.d.to_float();
    u.dmin = b.dmin.to_float();
    for (int i = 0; i < 256; ++i) {
      const int n = i / 128, j = (i % 128) / 32, l = i % 32;
      u.q[i] = static_cast<std::int8_t>((b.qs[32 * n + l] >> (2 * j)) & 3);
    }
  }
  // Group G = 4n + j: bits 2j..2j+1 of qs[32n ..].
  template <class L, int G>
  CHORUS_ALWAYS_INLINE static typename L::bytes group(const block_q2_k& b) noexcept {
    return L::template shr<2 * (G % 4)>(L::load(b.qs + 32 * (G / 4)), 3);
  }
  template <class L>
  CHORUS_ALWAYS_INLINE static k_block::k_scales<L> scales(const block_q2_k& b) noexcept {
    std::uint32_t w[4];
    std::memcpy(w, b.scales, 16);
    constexpr std::uint32_t low4 = 0x0F0F0F0Fu;
    return {L::scales_from_words(w[0] & low4, w[1] & low4, w[2] & low4, w[3] & low4),
            L::scales_from_words((w[0] >> 4) & low4, (w[1] >> 4) & low4, (w[2] >> 4) & low4, (w[3] >> 4) & low4)};
  }
  static void pack(const k_block::unpacked& u, block_q2_k& b) noexcept {
    for (auto& q : b.qs) q = 0;
    for (int i = 0; i < 256; ++i) {
      const int n = i / 128, j = (i % 128) / 32, l = i % 32;
      b.qs[32 * n + l] = static_cast<std::uint8_t>(b.qs[32 * n + l] | ((u.q[i] & 3) << (2 * j)));
    }
    for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<std::uint8_t>(u.scales[s] | (u.mins[s] << 4));
    b.d = fp16(u.d);
    b.dmin = fp16(u.dmin);
  }
  static void dequantize(const block_q2_k* in, float* out, std::size_t n) noexcept { k_block::dequantize(in, out, n); }
  static void quantize(const float* in, block_q2_k* out, std::size_t n) noexcept { k_block::quantize(in, out, n); }
  static float dot_reference(const block_q2_k* w, const activation* a, std::size_t n) noexcept {
    return k_block::dot_reference(w, a, n);
  }
};
static_assert(block_format<block_q2_k>);

}  // namespace chorus::inline CHORUS_ABI::quant
