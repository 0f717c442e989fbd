// chorus — Q3_K (GGUF type 11): 256 weights as 3-bit quants (2 low bits + 1 high bit) in 16
// sub-blocks of 16 with 6-bit scales: value = d * (scale - 32) * (q - 4).
#pragma once

#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

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
#if defined(__AVX2__)
    const __m256i three = _mm256_set1_epi8(3);
    const __m256i one = _mm256_set1_epi8(1);
    const __m256i four = _mm256_set1_epi8(4);
    const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.hmask));
    for (int n = 0; n < 2; ++n) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * n));
      for (int j = 0; j < 4; ++j) {
        const __m256i low = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * j)), three);
        const __m256i high = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(4 * n + j)), one);
        // q = low - 4 when the high bit is clear, low when it is set
        const __m256i q = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(high, 2)), four);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(u.q + 128 * n + 32 * j), q);
      }
    }
    return;
#endif
    for (int i = 0; i < 256; ++i) {
      const int n = i / 128, j = (i % 128) / 32, l = i % 32;
      const int low = (b.qs[32 * n + l] >> (2 * j)) & 3;
      const int high = (b.hmask[l] >> (4 * n + j)) & 1;
      u.q[i] = static_cast<std::int8_t>(low - (high ? 0 : 4));
    }
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
