// chorus — Q5_0 (GGUF type 6): 32 weights as 5-bit quants q with value = d * (q - 16); the
// fifth bits of the 32 quants sit in one little-endian 32-bit word (bit j for element j).
#pragma once

#include <cstdint>
#include <cstring>

#include "chorus/quant/small_block.hpp"

namespace chorus::inline CHORUS_ABI::quant {

struct block_q5_0 {
  fp16 d;
  std::uint8_t qh[4];
  std::uint8_t qs[16];
};
static_assert(sizeof(block_q5_0) == 22 && alignof(block_q5_0) == 2);

namespace small_block {
inline void unpack_5bit(const std::uint8_t* qh, const std::uint8_t* qs, std::int8_t* q, int offset) noexcept {
  std::uint32_t high;
  std::memcpy(&high, qh, 4);
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<std::int8_t>(((qs[j] & 0x0F) | (((high >> j) & 1u) << 4)) - offset);
    q[j + 16] = static_cast<std::int8_t>(((qs[j] >> 4) | (((high >> (j + 16)) & 1u) << 4)) - offset);
  }
}
// The vector decoder's part: nibbles as in Q4, and bit j of the little-endian qh word as bit 4
// of lane j.
template <class L>
CHORUS_ALWAYS_INLINE typename L::bytes quants_5bit(const std::uint8_t* qh, const std::uint8_t* qs) noexcept {
  std::uint32_t high;
  std::memcpy(&high, qh, 4);
  return L::or_(L::nibbles(qs), L::bit_bytes(high, 0x10));
}
inline void pack_5bit(const std::uint8_t* q, std::uint8_t* qh, std::uint8_t* qs) noexcept {
  pack_nibbles(q, qs);
  std::uint32_t high = 0;
  for (int j = 0; j < 32; ++j) high |= static_cast<std::uint32_t>((q[j] >> 4) & 1u) << j;
  std::memcpy(qh, &high, 4);
}
}  // namespace small_block

template <>
struct block_traits<block_q5_0> {
  static constexpr gguf::tensor_type type = gguf::tensor_type::q5_0;
  static constexpr std::size_t block_elements = 32;
  static constexpr std::size_t block_bytes = sizeof(block_q5_0);
  static constexpr block_kind kind = block_kind::symmetric;
  using activation = block_q8_0;

  static constexpr bool unsigned_quants = false;
  static constexpr int quant_offset = 16;  // quants + quant_offset: the stored 0..31

  static void unpack(const block_q5_0& b, std::int8_t* q) noexcept { small_block::unpack_5bit(b.qh, b.qs, q, 16); }
  template <class L>
  CHORUS_ALWAYS_INLINE static typename L::bytes quants(const block_q5_0& b) noexcept {
    return L::sub(small_block::quants_5bit<L>(b.qh, b.qs), L::splat(16));
  }
  static void dequantize(const block_q5_0* in, float* out, std::size_t n) noexcept { small_block::dequantize(in, out, n); }
  static void quantize(const float* in, block_q5_0* out, std::size_t n) noexcept {
    std::uint8_t q[32];
    for (std::size_t b = 0; b < n / 32; ++b) {
      out[b].d = fp16(small_block::quantize_symmetric<32>(in + b * 32, q));
      small_block::pack_5bit(q, out[b].qh, out[b].qs);
    }
  }
  static float dot_reference(const block_q5_0* w, const activation* a, std::size_t n) noexcept {
    return small_block::dot_reference(w, a, n);
  }
};
static_assert(block_format<block_q5_0>);

}  // namespace chorus::inline CHORUS_ABI::quant
