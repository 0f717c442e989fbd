// chorus — what the K-quant formats (Q2_K..Q6_K) share: a super-block of 256 weights that
// unpacks to int8 quants q with integer sub-block scales (and minimums), value =
// d * scale[s] * q - dmin * min[s]. Dequantize and the reference dot with Q8_K are written
// once here over that unpacking; each format supplies unpack/scales (and pack for quantize).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "chorus/config.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/gguf/tensor_type.hpp"
#include "chorus/quant/q8_k.hpp"
#include "chorus/quant/traits.hpp"

namespace chorus::inline CHORUS_ABI::quant::k_block {

inline constexpr int elements = 256;

// Unpacked form of one super-block: what both the reference and the SIMD kernels consume.
struct unpacked {
  std::int8_t q[256];
  std::int32_t scales[16];  // per sub-block (16 sub-blocks of 16, or the first 8 of 32)
  std::int32_t mins[16];    // zero for formats without minimums
  float d;
  float dmin;
};

template <class Block>
void dequantize(const Block* in, float* out, std::size_t n) noexcept {
  using traits = block_traits<Block>;
  constexpr int sub = traits::sub_block_elements;
  unpacked u;
  for (std::size_t b = 0; b < n / 256; ++b) {
    traits::unpack(in[b], u);
    for (int i = 0; i < 256; ++i) {
      const int s = i / sub;
      out[b * 256 + i] = u.d * static_cast<float>(u.scales[s]) * static_cast<float>(u.q[i]) -
                         u.dmin * static_cast<float>(u.mins[s]);
    }
  }
}

// Integer dot per sub-block, scaled by the integer sub-block scale; the minimums go through
// the activation's group sums. One float multiply per super-block, as in the reference.
template <class Block>
float dot_reference(const Block* w, const block_q8_k* a, std::size_t n_blocks) noexcept {
  using traits = block_traits<Block>;
  constexpr int sub = traits::sub_block_elements;
  unpacked u;
  float sum = 0.0f;
  for (std::size_t b = 0; b < n_blocks; ++b) {
    traits::unpack(w[b], u);
    std::int32_t sumi = 0;
    std::int32_t summ = 0;
    for (int s = 0; s < 256 / sub; ++s) {
      std::int32_t dot = 0;
      for (int i = s * sub; i < (s + 1) * sub; ++i) dot += u.q[i] * a[b].qs[i];
      sumi += u.scales[s] * dot;
      std::int32_t group_sum = 0;
      for (int g = s * sub / 16; g < (s + 1) * sub / 16; ++g) group_sum += a[b].bsums[g];
      summ += u.mins[s] * group_sum;
    }
    sum += a[b].d * (u.d * static_cast<float>(sumi) - u.dmin * static_cast<float>(summ));
  }
  return sum;
}

// A simple quantizer for the K formats: per sub-block a least-squares-free min/max fit,
// sub-block scales (and minimums) quantized to `ScaleLevels` levels relative to the
// super-block's d (dmin). It is not the reference's iterative search (errors are somewhat
// larger) but produces valid blocks; chorus uses it for synthetic benchmark models.
template <class Block>
void quantize(const float* in, Block* out, std::size_t n) noexcept {
  using traits = block_traits<Block>;
  constexpr int sub = traits::sub_block_elements;
  constexpr int n_sub = 256 / sub;
  constexpr int qmax = traits::quant_levels - 1;
  constexpr int smax = traits::scale_levels - 1;
  for (std::size_t b = 0; b < n / 256; ++b) {
    const float* x = in + b * 256;
    float scale[16] = {};
    float minimum[16] = {};
    for (int s = 0; s < n_sub; ++s) {
      float lo = x[s * sub], hi = x[s * sub];
      for (int i = s * sub; i < (s + 1) * sub; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
      }
      if constexpr (traits::has_mins) {
        lo = std::min(lo, 0.0f);  // min is stored as a positive offset subtracted
        scale[s] = (hi - lo) / static_cast<float>(qmax);
        minimum[s] = -lo;
      } else {
        const float amax = std::max(std::fabs(lo), std::fabs(hi));
        scale[s] = amax / static_cast<float>(traits::quant_offset);
      }
    }
    float max_scale = 0.0f, max_min = 0.0f;
    for (int s = 0; s < n_sub; ++s) {
      max_scale = std::max(max_scale, scale[s]);
      max_min = std::max(max_min, minimum[s]);
    }
    const float d = max_scale / static_cast<float>(traits::has_mins ? smax : smax / 2);
    const float dmin = max_min / static_cast<float>(smax);
    unpacked u{};
    u.d = fp16(d).to_float();
    u.dmin = fp16(dmin).to_float();
    for (int s = 0; s < n_sub; ++s) {
      int sc = u.d > 0.0f ? static_cast<int>(std::lround(scale[s] / u.d)) : 0;
      if constexpr (traits::has_mins) {
        sc = std::clamp(sc, 0, smax);
        u.mins[s] = u.dmin > 0.0f ? std::clamp(static_cast<int>(std::lround(minimum[s] / u.dmin)), 0, smax) : 0;
      } else {
        sc = std::clamp(sc, -(smax + 1) / 2, smax / 2);
      }
      u.scales[s] = sc;
      const float step = u.d * static_cast<float>(sc);
      const float offset = u.dmin * static_cast<float>(u.mins[s]);
      for (int i = s * sub; i < (s + 1) * sub; ++i) {
        int q = step != 0.0f ? static_cast<int>(std::lround((x[i] + offset) / step)) : 0;
        if constexpr (traits::has_mins) q = std::clamp(q, 0, qmax);
        else q = std::clamp(q, -traits::quant_offset, qmax - traits::quant_offset);
        u.q[i] = static_cast<std::int8_t>(q);
      }
    }
    traits::pack(u, out[b]);
  }
}

}  // namespace chorus::inline CHORUS_ABI::quant::k_block
