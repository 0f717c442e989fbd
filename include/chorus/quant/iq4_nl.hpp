// chorus — IQ4_NL (GGUF type 20): 32 weights as 4-bit indices into a fixed non-linear codebook
// of 16 int8 values, with value = d * codebook[index]. Laid out like Q4_0 (low nibbles hold
// elements 0..15, high nibbles 16..31); multiplied with Q8_0 activations. Decoders only: chorus
// reads IQ4_NL files (llama-quantize writes them) but does not quantize to it.
#pragma once

#include <cstdint>

#include "chorus/quant/small_block.hpp"

namespace chorus::inline CHORUS_ABI::quant {

// The codebook of IQ4_NL and IQ4_XS (GGUF's kvalues_iq4nl): denser near zero, where weights are.
alignas(16) inline constexpr std::int8_t iq4_codebook[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                             1,    13,   25,  38,  53,  69,  89,  113};

struct block_iq4_nl {
  fp16 d;
  std::uint8_t qs[16];
};
static_assert(sizeof(block_iq4_nl) == 18 && alignof(block_iq4_nl) == 2);

template <>
struct block_traits<block_iq4_nl> {
  static constexpr gguf::tensor_type type = gguf::tensor_type::iq4_nl;
  static constexpr std::size_t block_elements = 32;
  static constexpr std::size_t block_bytes = sizeof(block_iq4_nl);
  static constexpr block_kind kind = block_kind::symmetric;
  static constexpr bool unsigned_quants = false;
  using activation = block_q8_0;

  static void unpack(const block_iq4_nl& b, std::int8_t* q) noexcept {
    for (int j = 0; j < 16; ++j) {
      q[j] = iq4_codebook[b.qs[j] & 0x0F];
      q[j + 16] = iq4_codebook[b.qs[j] >> 4];
    }
  }
  template <class L>
  CHORUS_ALWAYS_INLINE static typename L::bytes quants(const block_iq4_nl& b) noexcept {
    return L::lookup16(iq4_codebook, L::nibbles(b.qs));
  }
  static void dequantize(const block_iq4_nl* in, float* out, std::size_t n) noexcept { small_block::dequantize(in, out, n); }
  static float dot_reference(const block_iq4_nl* w, const activation* a, std::size_t n) noexcept {
    return small_block::dot_reference(w, a, n);
  }
};
static_assert(block_format<block_iq4_nl>);

}  // namespace chorus::inline CHORUS_ABI::quant
