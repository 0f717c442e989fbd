// chorus — Q5_1 (GGUF type 7): 32 weights as 5-bit quants q with value = d * q + m.
#pragma once

#include <cstdint>

#include "chorus/quant/q5_0.hpp"
#include "chorus/quant/small_block.hpp"

namespace chorus::inline CHORUS_ABI::quant {

struct block_q5_1 {
  fp16 d;
  fp16 m;
  std::uint8_t qh[4];
  std::uint8_t qs[16];
};
static_assert(sizeof(block_q5_1) == 24 && alignof(block_q5_1) == 2);

template <>
struct block_traits<block_q5_1> {
  static constexpr gguf::tensor_type type = gguf::tensor_type::q5_1;
  static constexpr std::size_t block_elements = 32;
  static constexpr std::size_t block_bytes = sizeof(block_q5_1);
  static constexpr block_kind kind = block_kind::affine;
  using activation = block_q8_1;

  static constexpr bool unsigned_quants = true;  // 0..31

  static void unpack(const block_q5_1& b, std::int8_t* q) noexcept { small_block::unpack_5bit(b.qh, b.qs, q, 0); }
  template <class L>
  CHORUS_ALWAYS_INLINE static typename L::bytes quants(const block_q5_1& b) noexcept {
    return small_block::quants_5bit<L>(b.qh, b.qs);
  }
  static void dequantize(const block_q5_1* in, float* out, std::size_t n) noexcept { small_block::dequantize(in, out, n); }
  static void quantize(const float* in, block_q5_1* out, std::size_t n) noexcept {
    std::uint8_t q[32];
    for (std::size_t b = 0; b < n / 32; ++b) {
      float d = 0.0f, m = 0.0f;
      small_block::quantize_affine<32>(in + b * 32, q, d, m);
      out[b].d = fp16(d);
      out[b].m = fp16(m);
      small_block::pack_5bit(q, out[b].qh, out[b].qs);
    }
  }
  static float dot_reference(const block_q5_1* w, const activation* a, std::size_t n) noexcept {
    return small_block::dot_reference(w, a, n);
  }
};
static_assert(block_format<block_q5_1>);

}  // namespace chorus::inline CHORUS_ABI::quant
