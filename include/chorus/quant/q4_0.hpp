// chorus — Q4_0 (GGUF type 2): 32 weights as 4-bit quants q with value = d * (q - 8).
#pragma once

#include <cstdint>

#include "chorus/quant/small_block.hpp"

namespace chorus::inline CHORUS_ABI::quant {

struct block_q4_0 {
  fp16 d;
  std::uint8_t qs[16];
};
static_assert(sizeof(block_q4_0) == 18 && alignof(block_q4_0) == 2);

template <>
struct block_traits<block_q4_0> {
  static constexpr gguf::tensor_type type = gguf::tensor_type::q4_0;
  static constexpr std::size_t block_elements = 32;
  static constexpr std::size_t block_bytes = sizeof(block_q4_0);
  static constexpr block_kind kind = block_kind::symmetric;
  using activation = block_q8_0;

  static constexpr bool unsigned_quants = false;
  static constexpr int quant_offset = 8;  // quants + quant_offset: the stored 0..15

  static void unpack(const block_q4_0& b, std::int8_t* q) noexcept { small_block::unpack_nibbles(b.qs, q, 8); }
  template <class L>
  CHORUS_ALWAYS_INLINE static typename L::bytes quants(const block_q4_0& b) noexcept {
    return L::sub(L::nibbles(b.qs), L::splat(8));
  }
  static void dequantize(const block_q4_0* in, float* out, std::size_t n) noexcept { small_block::dequantize(in, out, n); }
  static void quantize(const float* in, block_q4_0* out, std::size_t n) noexcept {
    std::uint8_t q[32];
    for (std::size_t b = 0; b < n / 32; ++b) {
      out[b].d = fp16(small_block::quantize_symmetric<16>(in + b * 32, q));
      small_block::pack_nibbles(q, out[b].qs);
    }
  }
  static float dot_reference(const block_q4_0* w, const activation* a, std::size_t n) noexcept {
    return small_block::dot_reference(w, a, n);
  }
};
static_assert(block_format<block_q4_0>);

}  // namespace chorus::inline CHORUS_ABI::quant
