// chorus — Q3_K (GGUF type 11): 256 weights as 3-bit quants (2 low bits + 1 high bit) in 16
// sub-blocks of 16 with 6-bit scales: value = d * (scale - 32) * (q - 4).
#pragma once

#include <cstdint>
#include <cstring>

#include "chorus/quant/k_block.hpp"

namespace chorus::inline CHORUS_ABI::quant {

struct block_q3_k {
  std::uint8_t hmask[32];
  std::uint8_t qs[64];
  std::uint8_t scales[12];
  fp16 d;
};
static_assert(sizeof(block_q3_k) == 110 && alignof(block_q3_k) == 2);

template <>
struct block_traits<block_q3_k> {
  static constexpr gguf::tensor_type type = gguf::tensor_type::q3_k;
  static constexpr std::size_t block_elements = 256;
  static constexpr std::size_t block_bytes = sizeof(block_q3_k);
  static constexpr int sub_block_elements = 16;
  static constexpr bool has_mins = false;
  static constexpr int quant_levels = 8;
  static constexpr int quant_offset = 4;
  static constexpr int scale_levels = 64;
  static constexpr bool signed_quants = false;
  using activation = block_q8_k;

  // Element i (n = i / 128, j = (i % 128) / 32, l = i % 32): low bits 2j..2j+1 of
  // qs[32n + l], high bit 4n + j of hmask[l]; a clear high bit means q - 4.
  // Scale k: low 4 bits in nibble k / 8 of scales[k % 8], high 2 bits at 2 * (k / 4) of
  // scales[8 + k % 4].
  static void unpack(const block_q3_k& b, k_block::unpacked& u) noexcept {
    for (int k = 0; k < 16; ++k) {
      const int low = (b.scales[k % 8] >> (4 * (k / 8))) & 0x0F;
      const int high = (b.scales[8 + k % 4] >> (2 * (k / 4))) & 3;
      u.scales[k] = (low | (high << 4)) - 32;
      u.mins[k] = 0;
    }
    u.d = b.d.to_float();
    u.dmin = 0.0f;
    for (int i = 0; i < 256; ++i) {
      const int n = i / 128, j = (i % 128) / 32, l = i % 32;
      const int low = (b.qs[32 * n + l] >> (2 * j)) & 3;
      const int high = (b.hmask[l] >> (4 * n + j)) & 1;
      u.q[i] = static_cast<std::int8_t>(low - (high ? 0 : 4));
    }
  }
  // Group G = 4n + j: low bits 2j..2j+1 of qs[32n ..], high bit G of hmask[l] as bit 2 (u = q + 4).
  template <class L, int G>
  CHORUS_ALWAYS_INLINE static typename L::bytes group(const block_q3_k& b) noexcept {
    const auto low = L::template shr<2 * (G % 4)>(L::load(b.qs + 32 * (G / 4)), 3);
    const auto hm = L::load(b.hmask);
    if constexpr (G <= 2) {
      return L::or_(low, L::template shl<2 - G>(hm, 4));
    } else {
      return L::or_(low, L::template shr<G - 2>(hm, 4));
    }
  }
  // Scale k: low 4 bits in nibble k / 8 of scales[k % 8], high 2 bits at 2 (k / 4) of scales[8 + k % 4],
  // biased by 32; four at a time in 32-bit words.
  template <class L>
  CHORUS_ALWAYS_INLINE static k_block::k_scales<L> scales(const block_q3_k& b) noexcept {
    std::uint32_t low[2], high;
    std::memcpy(low, b.scales, 8);
    std::memcpy(&high, b.scales + 8, 4);
    constexpr std::uint32_t low4 = 0x0F0F0F0Fu, low2 = 0x03030303u;
    // scales 4m..4m+3: their nibbles, and bits 2m..2m+1 of the high bytes as bits 4..5
    const std::uint32_t w0 = (low[0] & low4) | ((high & low2) << 4);
    const std::uint32_t w1 = (low[1] & low4) | (((high >> 2) & low2) << 4);
    const std::uint32_t w2 = ((low[0] >> 4) & low4) | (((high >> 4) & low2) << 4);
    const std::uint32_t w3 = ((low[1] >> 4) & low4) | (((high >> 6) & low2) << 4);
    const auto s = L::scales_from_words(w0, w1, w2, w3);
    return {L::sub(s, 32), s};  // (no minimums: the second member is unused)
  }
  static void pack(const k_block::unpacked& u, block_q3_k& b) noexcept {
    for (auto& q : b.qs) q = 0;
    for (auto& h : b.hmask) h = 0;
    for (auto& s : b.scales) s = 0;
    for (int i = 0; i < 256; ++i) {
      const int n = i / 128, j = (i % 128) / 32, l = i % 32;
      const int q = u.q[i] + 4;  // 0..7
      b.qs[32 * n + l] = static_cast<std::uint8_t>(b.qs[32 * n + l] | ((q & 3) << (2 * j)));
      b.hmask[l] = static_cast<std::uint8_t>(b.hmask[l] | (((q >> 2) & 1) << (4 * n + j)));
    }
    for (int k = 0; k < 16; ++k) {
      const int v = u.scales[k] + 32;  // 0..63
      b.scales[k % 8] = static_cast<std::uint8_t>(b.scales[k % 8] | ((v & 0x0F) << (4 * (k / 8))));
      b.scales[8 + k % 4] = static_cast<std::uint8_t>(b.scales[8 + k % 4] | (((v >> 4) & 3) << (2 * (k / 4))));
    }
    b.d = fp16(u.d);
  }
  static void dequantize(const block_q3_k* in, float* out, std::size_t n) noexcept { k_block::dequantize(in, out, n); }
  static void quantize(const float* in, block_q3_k* out, std::size_t n) noexcept { k_block::quantize(in, out, n); }
  static float dot_reference(const block_q3_k* w, const activation* a, std::size_t n) noexcept {
    return k_block::dot_reference(w, a, n);
  }
};
static_assert(block_format<block_q3_k>);

}  // namespace chorus::inline CHORUS_ABI::quant
