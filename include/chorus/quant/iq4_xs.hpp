// chorus — IQ4_XS (GGUF type 23): 256 weights in 8 sub-blocks of 32, each weight a 4-bit index
// into IQ4_NL's codebook, each sub-block a 6-bit scale (biased by 32): value =
// d * (scale - 32) * codebook[index]. Multiplied with Q8_K activations, as a K-quant without
// minimums whose quants are signed. Decoders only: chorus reads IQ4_XS but does not quantize to it.
#pragma once

#include <cstdint>
#include <cstring>

#include "chorus/quant/iq4_nl.hpp"
#include "chorus/quant/k_block.hpp"

namespace chorus::inline CHORUS_ABI::quant {

struct block_iq4_xs {
  fp16 d;
  std::uint16_t scales_h;   // 2 high bits of scale s at bits 2s..2s+1
  std::uint8_t scales_l[4]; // 4 low bits of scale s in nibble s % 2 of byte s / 2
  std::uint8_t qs[128];     // sub-block s: bytes 16s..16s+15, low nibbles elements 32s..32s+15, high 32s+16..
};
static_assert(sizeof(block_iq4_xs) == 136 && alignof(block_iq4_xs) == 2);

template <>
struct block_traits<block_iq4_xs> {
  static constexpr gguf::tensor_type type = gguf::tensor_type::iq4_xs;
  static constexpr std::size_t block_elements = 256;
  static constexpr std::size_t block_bytes = sizeof(block_iq4_xs);
  static constexpr int sub_block_elements = 32;
  static constexpr bool has_mins = false;
  static constexpr int quant_offset = 0;
  static constexpr bool signed_quants = true;  // codebook values, -127..113
  using activation = block_q8_k;

  static int scale(const block_iq4_xs& b, int s) noexcept {
    const int low = (b.scales_l[s / 2] >> (4 * (s % 2))) & 0x0F;
    const int high = (b.scales_h >> (2 * s)) & 3;
    return (low | (high << 4)) - 32;
  }
  static void unpack(const block_iq4_xs& b, k_block::unpacked& u) noexcept {
    for (int s = 0; s < 8; ++s) {
      u.scales[s] = scale(b, s);
      u.mins[s] = 0;
      for (int j = 0; j < 16; ++j) {
        u.q[32 * s + j] = iq4_codebook[b.qs[16 * s + j] & 0x0F];
        u.q[32 * s + 16 + j] = iq4_codebook[b.qs[16 * s + j] >> 4];
      }
    }
    u.d = b.d.to_float();
    u.dmin = 0.0f;
  }
  template <class L, int G>
  CHORUS_ALWAYS_INLINE static typename L::bytes group(const block_iq4_xs& b) noexcept {
    return L::lookup16(iq4_codebook, L::nibbles(b.qs + 16 * G));
  }
  // The eight scales in two 32-bit words (scales 0..3, 4..7), each as one per 16 weights.
  template <class L>
  CHORUS_ALWAYS_INLINE static k_block::k_scales<L> scales(const block_iq4_xs& b) noexcept {
    std::uint32_t low;
    std::memcpy(&low, b.scales_l, 4);
    const std::uint32_t h = b.scales_h;
    std::uint32_t words[2] = {0, 0};
    for (int s = 0; s < 8; ++s) {
      const std::uint32_t v = ((low >> (4 * s)) & 0x0F) | (((h >> (2 * s)) & 3) << 4);
      words[s / 4] |= v << (8 * (s % 4));
    }
    const auto sc = L::sub(L::widen_pairs(L::scales_from_words(words[0], words[1], 0, 0)), 32);
    return {sc, sc};  // (no minimums: the second member is unused)
  }
  static void dequantize(const block_iq4_xs* in, float* out, std::size_t n) noexcept { k_block::dequantize(in, out, n); }
  static float dot_reference(const block_iq4_xs* w, const activation* a, std::size_t n) noexcept {
    return k_block::dot_reference(w, a, n);
  }
};
static_assert(block_format<block_iq4_xs>);

}  // namespace chorus::inline CHORUS_ABI::quant
