// chorus — Q5_K (GGUF type 13): Q4_K with a fifth bit per quant: value = d * scale * q - dmin * min.
#pragma once

#include <cstdint>

#include "chorus/quant/k_block.hpp"
#include "chorus/quant/q4_k.hpp"

namespace chorus::inline CHORUS_ABI::quant {

struct block_q5_k {
  fp16 d;
  fp16 dmin;
  std::uint8_t scales[12];
  std::uint8_t qh[32];
  std::uint8_t qs[128];
};
static_assert(sizeof(block_q5_k) == 176 && alignof(block_q5_k) == 2);

template <>
struct block_traits<block_q5_k> {
  static constexpr gguf::tensor_type type = gguf::tensor_type::q5_k;
  static constexpr std::size_t block_elements = 256;
  static constexpr std::size_t block_bytes = sizeof(block_q5_k);
  static constexpr int sub_block_elements = 32;
  static constexpr bool has_mins = true;
  static constexpr int quant_levels = 32;
  static constexpr int quant_offset = 0;
  static constexpr int scale_levels = 64;
  static constexpr bool signed_quants = false;
  using activation = block_q8_k;

  // Low 4 bits as in Q4_K; the fifth bit of element i is bit i / 32 of qh[i % 32].
  static void unpack(const block_q5_k& b, k_block::unpacked& u) noexcept {
    k_block::unpack_scales_6bit(b.scales, u.scales, u.mins);
    u.d = b.d.to_float();
    u.dmin = b.dmin.to_float();
    for (int i = 0; i < 256; ++i) {
      const int c = i / 64, l = i % 32, half = (i % 64) / 32;
      const int low = (b.qs[32 * c + l] >> (4 * half)) & 0x0F;
      const int high = (b.qh[l] >> (i / 32)) & 1;
      u.q[i] = static_cast<std::int8_t>(low | (high << 4));
    }
  }
  // Group G: Q4_K's nibbles, and bit G of qh[l] moved to bit 4.
  template <class L, int G>
  CHORUS_ALWAYS_INLINE static typename L::bytes group(const block_q5_k& b) noexcept {
    const auto low = L::template shr<4 * (G % 2)>(L::load(b.qs + 32 * (G / 2)), 0x0F);
    const auto qh = L::load(b.qh);
    if constexpr (G <= 4) {
      return L::or_(low, L::template shl<4 - G>(qh, 0x10));
    } else {
      return L::or_(low, L::template shr<G - 4>(qh, 0x10));
    }
  }
  template <class L>
  CHORUS_ALWAYS_INLINE static k_block::k_scales<L> scales(const block_q5_k& b) noexcept {
    return k_block::scales_6bit<L>(b.scales);
  }
  static void pack(const k_block::unpacked& u, block_q5_k& b) noexcept {
    for (auto& q : b.qs) q = 0;
    for (auto& h : b.qh) h = 0;
    for (int i = 0; i < 256; ++i) {
      const int c = i / 64, l = i % 32, half = (i % 64) / 32;
      b.qs[32 * c + l] = static_cast<std::uint8_t>(b.qs[32 * c + l] | ((u.q[i] & 0x0F) << (4 * half)));
      b.qh[l] = static_cast<std::uint8_t>(b.qh[l] | (((u.q[i] >> 4) & 1) << (i / 32)));
    }
    k_block::pack_scales_6bit(u.scales, u.mins, b.scales);
    b.d = fp16(u.d);
    b.dmin = fp16(u.dmin);
  }
  static void dequantize(const block_q5_k* in, float* out, std::size_t n) noexcept { k_block::dequantize(in, out, n); }
  static void quantize(const float* in, block_q5_k* out, std::size_t n) noexcept { k_block::quantize(in, out, n); }
  static float dot_reference(const block_q5_k* w, const activation* a, std::size_t n) noexcept {
    return k_block::dot_reference(w, a, n);
  }
};
static_assert(block_format<block_q5_k>);

}  // namespace chorus::inline CHORUS_ABI::quant
