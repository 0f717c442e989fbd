// chorus — what the K-quant formats (Q2_K..Q6_K) share: a super-block of 256 weights that
// unpacks to int8 quants q with integer sub-block scales (and minimums), value =
// d * scale[s] * q - dmin * min[s]. Dequantize and the reference dot with Q8_K are written
// once here over that unpacking; each format supplies unpack/scales (and pack for quantize).
//
// Each format's traits give two decoders of the same super-block:
//   unpack(block, unpacked&)               the scalar decoder: the test oracle and the reference path
//   group<Level, G>(block) -> bytes        the vector decoder: the quants of weights 32G..32G+31 as
//                                          unsigned bytes u (value = u - quant_offset, or signed
//                                          bytes when signed_quants), over a level's vocabulary
//   scales<Level>(block) -> k_scales<L>    the scale (and minimum) of every 16 weights as int8
//                                          lanes (formats with 32-weight sub-blocks repeat each)
// The kernels of simd/ (kernels.hpp) are written once over these.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

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

// A super-block's sub-block scales and minimums (zero for formats without), one per 16 weights.
template <class L>
struct k_scales {
  typename L::scales16 scales;
  typename L::scales16 mins;
};

// Q4_K's and Q5_K's 12-byte packing of eight 6-bit scales and minimums (see q4_k.hpp), four at a
// time in 32-bit words, each as one per 16 weights.
template <class L>
CHORUS_ALWAYS_INLINE k_scales<L> scales_6bit(const std::uint8_t* s) noexcept {
  std::uint32_t w[3];
  std::memcpy(w, s, 12);
  const std::uint32_t scales_lo = w[0] & 0x3F3F3F3Fu;
  const std::uint32_t mins_lo = w[1] & 0x3F3F3F3Fu;
  const std::uint32_t scales_hi = (w[2] & 0x0F0F0F0Fu) | (((w[0] >> 6) & 0x03030303u) << 4);
  const std::uint32_t mins_hi = ((w[2] >> 4) & 0x0F0F0F0Fu) | (((w[1] >> 6) & 0x03030303u) << 4);
  return {L::widen_pairs(L::scales_from_words(scales_lo, scales_hi, 0, 0)),
          L::widen_pairs(L::scales_from_words(mins_lo, mins_hi, 0, 0))};
}

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
    // Loops with constant trip counts. Written with bounds s * sub .. (s + 1) * sub, GCC 12's
    // -O3 vectorization of this loop for AVX-512 (-march=native on Sapphire Rapids, and
    // -march=x86-64-v4) loaded from a garbage address when sub is 32 (Q4_K, Q5_K): a segfault
    // in every test of them. -O2, AVX2 and the sanitizer builds were fine, and neither ASan nor
    // UBSan finds anything here.
    constexpr int groups_per_sub = sub / 16;
    for (int s = 0; s < 256 / sub; ++s) {
      std::int32_t dot = 0;
      for (int i = 0; i < sub; ++i) dot += u.q[s * sub + i] * a[b].qs[s * sub + i];
      sumi += u.scales[s] * dot;
      std::int32_t group_sum = 0;
      for (int g = 0; g < groups_per_sub; ++g) group_sum += a[b].bsums[s * groups_per_sub + g];
      summ += u.mins[s] * group_sum;
    }
    sum += a[b].d * (u.d * static_cast<float>(sumi) - u.dmin * static_cast<float>(summ));
  }
  return sum;
}

// The quantizer: a search over candidate step sizes per sub-block with a least-squares refit,
// then the sub-block scales (and minimums) quantized against the super-block's d (dmin), then
// the quants recomputed with the scales as stored.
//
// Per sub-block, for 21 candidate inverse steps around the one that maps the value range onto
// the quant range exactly (range * (levels - 1 +- 1) in steps of 0.1), the quants are rounded
// and clamped, the best scale (and offset) for those quants is solved by least squares, and the
// candidate with the smallest squared error wins. Formats without minimums map the value of
// largest magnitude to the most negative level (one more level on that side) and keep signed
// scales. This follows the idea of the reference K-quant search but not its details: errors are
// unweighted (the reference weights them by x^2 or by importance data, which chorus does not
// take), and the super-block scales are not refined afterwards. Relative RMS error on Gaussian
// data (measured): Q2_K 0.27, Q3_K 0.14, Q4_K 0.071, Q5_K 0.036, Q6_K 0.017; on the spm512
// models' F16 weights at most the error of the GGUF files' own K-quant tensors (tests/test_kquant.cpp).
namespace detail {

inline constexpr int search_steps = 10;  // candidates -10..10
inline constexpr float search_delta = 0.1f;

// x ~ scale * q - min with q in [0, qmax], scale >= 0, min >= 0.
inline void fit_affine(const float* x, int n, int qmax, float& scale, float& minimum) noexcept {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  lo = std::min(lo, 0.0f);  // the offset is a minimum subtracted: it cannot be positive
  scale = 0.0f;
  minimum = -lo;
  if (hi <= lo) return;
  float best = INFINITY;
  for (int k = -search_steps; k <= search_steps; ++k) {
    const float iscale = (static_cast<float>(qmax) + search_delta * static_cast<float>(k)) / (hi - lo);
    double sq = 0, sqq = 0, sx = 0, sxq = 0;
    int q[32];
    for (int i = 0; i < n; ++i) {
      q[i] = std::clamp(static_cast<int>(std::lround(iscale * (x[i] - lo))), 0, qmax);
      sq += q[i];
      sqq += static_cast<double>(q[i]) * q[i];
      sx += x[i];
      sxq += static_cast<double>(x[i]) * q[i];
    }
    const double det = n * sqq - sq * sq;
    if (det <= 0) continue;
    double s = (n * sxq - sq * sx) / det;
    double b = (sqq * sx - sq * sxq) / det;
    if (b > 0) {  // would need a negative minimum: refit through the origin
      b = 0;
      s = sxq / sqq;
    }
    if (s <= 0) continue;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double e = s * q[i] + b - x[i];
      err += e * e;
    }
    if (err < best) {
      best = static_cast<float>(err);
      scale = static_cast<float>(s);
      minimum = static_cast<float>(-b);
    }
  }
}

// x ~ scale * q with q in [-offset, qmax - offset]; the sign of scale is free.
inline float fit_symmetric(const float* x, int n, int offset, int qmax) noexcept {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax == 0.0f) return 0.0f;
  float best = INFINITY, scale = 0.0f;
  for (int k = -search_steps; k <= search_steps; ++k) {
    const float iscale = -(static_cast<float>(offset) + search_delta * static_cast<float>(k)) / max;
    double sxq = 0, sqq = 0, sxx = 0;
    for (int i = 0; i < n; ++i) {
      const int q = std::clamp(static_cast<int>(std::lround(iscale * x[i])), -offset, qmax - offset);
      sxq += static_cast<double>(x[i]) * q;
      sqq += static_cast<double>(q) * q;
      sxx += static_cast<double>(x[i]) * x[i];
    }
    if (sqq <= 0) continue;
    const double err = sxx - sxq * sxq / sqq;  // residual of the least-squares scale
    if (err < best) {
      best = static_cast<float>(err);
      scale = static_cast<float>(sxq / sqq);
    }
  }
  return scale;
}

}  // namespace detail

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
      if constexpr (traits::has_mins) {
        detail::fit_affine(x + s * sub, sub, qmax, scale[s], minimum[s]);
      } else {
        scale[s] = detail::fit_symmetric(x + s * sub, sub, traits::quant_offset, qmax);
      }
    }
    unpacked u{};
    if constexpr (traits::has_mins) {
      float max_scale = 0.0f, max_min = 0.0f;
      for (int s = 0; s < n_sub; ++s) {
        max_scale = std::max(max_scale, scale[s]);
        max_min = std::max(max_min, minimum[s]);
      }
      u.d = fp16(max_scale / static_cast<float>(smax)).to_float();
      u.dmin = fp16(max_min / static_cast<float>(smax)).to_float();
    } else {
      // signed scales in [-(levels / 2), levels / 2 - 1]: the largest maps to the negative end
      float amax = 0.0f, max = 0.0f;
      for (int s = 0; s < n_sub; ++s) {
        if (std::fabs(scale[s]) > amax) {
          amax = std::fabs(scale[s]);
          max = scale[s];
        }
      }
      u.d = fp16(-max / static_cast<float>(traits::scale_levels / 2)).to_float();
      u.dmin = 0.0f;
    }
    for (int s = 0; s < n_sub; ++s) {
      int sc = u.d != 0.0f ? static_cast<int>(std::lround(scale[s] / u.d)) : 0;
      if constexpr (traits::has_mins) {
        sc = std::clamp(sc, 0, smax);
        u.mins[s] = u.dmin > 0.0f ? std::clamp(static_cast<int>(std::lround(minimum[s] / u.dmin)), 0, smax) : 0;
      } else {
        sc = std::clamp(sc, -traits::scale_levels / 2, traits::scale_levels / 2 - 1);
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
