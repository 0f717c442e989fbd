// chorus — Q6_K (GGUF type 14): 256 weights as 6-bit quants (4 low + 2 high bits) in 16
// sub-blocks of 16 with int8 scales: value = d * scale * (q - 32).
#pragma once

#include <cstdint>

#include "chorus/quant/k_block.hpp"

namespace chorus::inline CHORUS_ABI::quant {

struct block_q6_k {
  std::uint8_t ql[128];
  std::uint8_t qh[64];
  std::int8_t scales[16];
  fp16 d;
};
static_assert(sizeof(block_q6_k) == 210 && alignof(block_q6_k) == 2);

template <>
struct block_traits<block_q6_k> {
  static constexpr gguf::tensor_type type = gguf::tensor_type::q6_k;
  static constexpr std::size_t block_elements = 256;
  static constexpr std::size_t block_bytes = sizeof(block_q6_k);
  static constexpr int sub_block_elements = 16;
  static constexpr bool has_mins = false;
  static constexpr int quant_levels = 64;
  static constexpr int quant_offset = 32;
  static constexpr int scale_levels = 256;
  static constexpr bool signed_quants = false;
  using activation = block_q8_k;

  // Element i (n = i / 128, group g = (i % 128) / 32, lane l = i % 32): low 4 bits in nibble
  // g / 2 of ql[64n + 32 (g % 2) + l], high 2 bits at 2g of qh[32n + l]; sub-block i / 16.
  static void unpack(const block_q6_k& b, k_block::unpacked& u) noexcept {
    for (int s = 0; s < 16; ++s) {
      u.scales[s] = b.scales[s];
      u.mins[s] = 0;
    }
    u.d = b.d.to_float();
    u.dmin = 0.0f;
    for (int i = 0; i < 256; ++i) {
      const int n = i / 128, g = (i % 128) / 32, l = i % 32;
      const int low = (b.ql[64 * n + 32 * (g % 2) + l] >> (4 * (g / 2))) & 0x0F;
      const int high = (b.qh[32 * n + l] >> (2 * g)) & 3;
      u.q[i] = static_cast<std::int8_t>((low | (high << 4)) - 32);
    }
  }
  // Group G = 4n + g: low 4 bits in nibble g / 2 of ql[64n + 32 (g % 2) ..], high 2 bits at 2g
  // of qh[32n ..] moved to bits 4..5 (u = q + 32).
  template <class L, int G>
  CHORUS_ALWAYS_INLINE static typename L::bytes group(const block_q6_k& b) noexcept {
    constexpr int n = G / 4, g = G % 4;
    const auto low = L::template shr<4 * (g / 2)>(L::load(b.ql + 64 * n + 32 * (g % 2)), 0x0F);
    const auto qh = L::load(b.qh + 32 * n);
    if constexpr (g <= 2) {
      return L::or_(low, L::template shl<4 - 2 * g>(qh, 0x30));
    } else {
      return L::or_(low, L::template shr<2>(qh, 0x30));
    }
  }
  template <class L>
  CHORUS_ALWAYS_INLINE static k_block::k_scales<L> scales(const block_q6_k& b) noexcept {
    const auto s = L::load_scales(b.scales);
    return {s, s};  // (no minimums: the second member is unused)
  }
  static void pack(const k_block::unpacked& u, block_q6_k& b) noexcept {
    for (auto& q : b.ql) q = 0;
    for (auto& h : b.qh) h = 0;
    for (int i = 0; i < 256; ++i) {
      const int n = i / 128, g = (i % 128) / 32, l = i % 32;
      const int q = u.q[i] + 32;  // 0..63
      auto& low = b.ql[64 * n + 32 * (g % 2) + l];
      low = static_cast<std::uint8_t>(low | ((q & 0x0F) << (4 * (g / 2))));
      b.qh[32 * n + l] = static_cast<std::uint8_t>(b.qh[32 * n + l] | (((q >> 4) & 3) << (2 * g)));
    }
    for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<std::int8_t>(u.scales[s]);
    b.d = fp16(u.d);
  }
  static void dequantize(const block_q6_k* in, float* out, std::size_t n) noexcept { k_block::dequantize(in, out, n); }
  static void quantize(const float* in, block_q6_k* out, std::size_t n) noexcept { k_block::quantize(in, out, n); }
  static float dot_reference(const block_q6_k* w, const activation* a, std::size_t n) noexcept {
    return k_block::dot_reference(w, a, n);
  }
};
static_assert(block_format<block_q6_k>);

}  // namespace chorus::inline CHORUS_ABI::quant
