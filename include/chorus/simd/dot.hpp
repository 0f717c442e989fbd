// chorus — dot products of a row of weight blocks with a row of activation blocks, for every
// block format: the pattern every kernel follows.
//
//  - Each format's traits give the scalar reference (dot_reference: integer dot per block,
//    float scaling per block, summed in block order). It is the test oracle and the fallback.
//  - simd::dot(w, a, n_blocks) is one overload per format family, chosen by the block type:
//      32-element blocks (traits have `kind`): dot_small.hpp, unpack to an __m256i of int8
//        quants in registers, dpbusd (VNNI) / maddubs into int32 lanes, scaled into a float
//        vector accumulator; without AVX2+FMA, unpack() to scratch + int8_dot.hpp primitive.
//      K-quant super-blocks (traits have `sub_block_elements`): k_dot.hpp fused kernels, or
//        unpack() to quant::k_block::unpacked + block_dot() below.
//      f32/f16/bf16: the xsimd float dot of float_kernels.hpp (16-bit widened by chunks).
//  - Float work is written once over xsimd::batch<float, Arch>; where xsimd 8.1 has no
//    operation (int8 multiply-add, VNNI), an arch-specific version with intrinsics sits next
//    to the portable one, guarded by the ISA macros (__AVX2__, __AVX512VNNI__ && __AVX512VL__),
//    and is tested against the same reference.
//  - Per block the SIMD kernels compute the reference's integers and scale exactly; only the
//    order of float additions differs (bound in dot_small.hpp, tested in tests/test_simd.cpp).
//  - gemv/gemm (gemv.hpp) call dot() or the same kernels on an unpacked tile; no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "chorus/config.hpp"
#include "chorus/quant/formats.hpp"
#include "chorus/quant/q8_k.hpp"
#include "chorus/simd/dot_small.hpp"
#include "chorus/simd/float_kernels.hpp"
#include "chorus/simd/int8_dot.hpp"
#include "chorus/simd/k_dot.hpp"

namespace chorus::inline CHORUS_ABI::simd {

namespace detail {
template <class Block>
concept small_block = requires { quant::block_traits<Block>::kind; };
template <class Block>
concept k_block = requires { quant::block_traits<Block>::sub_block_elements; };
}  // namespace detail

// One 32-element block already unpacked to int8 quants q (with scale d, offset m) against
// one activation block: the integer dot, then the float scaling of the reference.
template <class Block>
  requires detail::small_block<Block>
CHORUS_ALWAYS_INLINE float block_dot(const std::int8_t* q, float d, float m,
                                     const typename quant::block_traits<Block>::activation& a) noexcept {
  const auto sumi = static_cast<float>(dot_s8_32(q, a.qs));
  if constexpr (quant::block_traits<Block>::kind == quant::block_kind::affine) {
    return sumi * (d * a.d.to_float()) + m * a.s.to_float();
  } else {
    (void)m;
    return sumi * (d * a.d.to_float());
  }
}

template <class Block>
  requires detail::small_block<Block>
CHORUS_ALWAYS_INLINE float block_offset(const Block& b) noexcept {
  if constexpr (quant::block_traits<Block>::kind == quant::block_kind::affine) {
    return b.m.to_float();
  } else {
    (void)b;
    return 0.0f;
  }
}

template <class Block>
  requires detail::small_block<Block>
CHORUS_ALWAYS_INLINE const std::int8_t* unpack_quants(const Block& b, std::int8_t* scratch) noexcept {
  if constexpr (std::is_same_v<Block, quant::block_q8_0>) {
    return b.qs;
  } else {
    quant::block_traits<Block>::unpack(b, scratch);
    return scratch;
  }
}

template <class Block>
  requires detail::small_block<Block>
float dot(const Block* w, const typename quant::block_traits<Block>::activation* a, std::size_t n_blocks) noexcept {
#if defined(CHORUS_HAVE_FUSED_SMALL_DOT)
  return sb::dot(w, a, n_blocks);  // unpack in registers, vector accumulation (dot_small.hpp)
#else
  alignas(32) std::int8_t q[32];
  float sum = 0.0f;
  for (std::size_t b = 0; b < n_blocks; ++b) {
    sum += block_dot<Block>(unpack_quants(w[b], q), w[b].d.to_float(), block_offset(w[b]), a[b]);
  }
  return sum;
#endif
}

// One unpacked K-quant super-block against one Q8_K activation block (the portable path, and
// gemm's, which unpacks a tile once for many activation rows; dot() uses the fused x86 kernels
// of k_dot.hpp where they exist).
template <class Block>
  requires detail::k_block<Block>
CHORUS_ALWAYS_INLINE float block_dot(const quant::k_block::unpacked& u, const quant::block_q8_k& a) noexcept {
  using traits = quant::block_traits<Block>;
  constexpr int sub = traits::sub_block_elements;
  std::int32_t sumi = 0;
  std::int32_t summ = 0;
  for (int chunk = 0; chunk < 8; ++chunk) {
    if constexpr (sub == 32) {
      sumi += u.scales[chunk] * dot_s8_32(u.q + 32 * chunk, a.qs + 32 * chunk);
      if constexpr (traits::has_mins) summ += u.mins[chunk] * (a.bsums[2 * chunk] + a.bsums[2 * chunk + 1]);
    } else {
      std::int32_t low = 0, high = 0;
      dot_s8_2x16(u.q + 32 * chunk, a.qs + 32 * chunk, low, high);
      sumi += u.scales[2 * chunk] * low + u.scales[2 * chunk + 1] * high;
      if constexpr (traits::has_mins) {
        summ += u.mins[2 * chunk] * a.bsums[2 * chunk] + u.mins[2 * chunk + 1] * a.bsums[2 * chunk + 1];
      }
    }
  }
  return a.d * (u.d * static_cast<float>(sumi) - u.dmin * static_cast<float>(summ));
}

template <class Block>
  requires detail::k_block<Block>
float dot(const Block* w, const quant::block_q8_k* a, std::size_t n_blocks) noexcept {
#if CHORUS_HAVE_FUSED_K_DOT
  return kq::dot(w, a, n_blocks);  // unpack in registers (k_dot.hpp)
#endif
  alignas(32) quant::k_block::unpacked u;
  float sum = 0.0f;
  for (std::size_t b = 0; b < n_blocks; ++b) {
    quant::block_traits<Block>::unpack(w[b], u);
    sum += block_dot<Block>(u, a[b]);
  }
  return sum;
}

inline float dot(const float* w, const float* a, std::size_t n) noexcept { return simd::dot<>(w, a, n); }

// 16-bit float weights with 16-bit activations: widen chunks to float, multiply-add in float.
template <class Half>
  requires std::is_same_v<Half, fp16> || std::is_same_v<Half, bf16>
float dot(const Half* w, const Half* a, std::size_t n) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<Half, fp16>) {
    // xsimd 8.1 has no fp16 conversion: widen 16 halves of each with vcvtph2ps and fma in
    // registers (the products are exact in float; only the summation order differs)
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    // (the zero-masking form: GCC 12's plain _mm512_cvtph_ps trips -Wuninitialized in its own header)
    auto widen = [](const fp16* p) {
      return _mm512_maskz_cvtph_ps(__mmask16(0xFFFF), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    };
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
      acc0 = _mm512_fmadd_ps(widen(w + i), widen(a + i), acc0);
      acc1 = _mm512_fmadd_ps(widen(w + i + 16), widen(a + i + 16), acc1);
    }
    for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(widen(w + i), widen(a + i), acc0);
    // Reduced through memory: GCC 12's _mm512_reduce_add_ps trips -Wuninitialized in its own header.
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, _mm512_add_ps(acc0, acc1));
    float sum = 0.0f;
    for (const float lane : lanes) sum += lane;
    for (; i < n; ++i) sum += w[i].to_float() * a[i].to_float();
    return sum;
  }
#endif
  alignas(64) float wf[256];
  alignas(64) float af[256];
  float sum = 0.0f;
  for (std::size_t i = 0; i < n; i += 256) {
    const std::size_t len = n - i < 256 ? n - i : 256;
    if constexpr (std::is_same_v<Half, fp16>) {
      fp16_to_float(w + i, wf, len);
      fp16_to_float(a + i, af, len);
    } else {
      for (std::size_t j = 0; j < len; ++j) {
        wf[j] = w[i + j].to_float();
        af[j] = a[i + j].to_float();
      }
    }
    sum += simd::dot<>(wf, af, len);
  }
  return sum;
}

// Quantizes (or converts) one row of `cols` float activations to the format that `Block`
// weights are multiplied with.
template <class Block>
void quantize_activation(const float* x, typename quant::block_traits<Block>::activation* out, std::size_t cols) noexcept {
  using activation = typename quant::block_traits<Block>::activation;
  if constexpr (std::is_same_v<activation, float>) {
    std::copy_n(x, cols, out);
  } else if constexpr (std::is_same_v<activation, fp16>) {
    float_to_fp16(x, out, cols);
  } else if constexpr (std::is_same_v<activation, bf16>) {
    for (std::size_t i = 0; i < cols; ++i) out[i] = bf16(x[i]);
  } else if constexpr (std::is_same_v<activation, quant::block_q8_0>) {
    quant::block_traits<quant::block_q8_0>::quantize(x, out, cols);
  } else if constexpr (std::is_same_v<activation, quant::block_q8_1>) {
    quant::quantize_q8_1(x, out, cols);
  } else {
    static_assert(std::is_same_v<activation, quant::block_q8_k>);
    quant::quantize_q8_k(x, out, cols);
  }
}

// Bytes of activation storage for a row of `cols` values for `Block` weights.
template <class Block>
constexpr std::size_t activation_bytes(std::size_t cols) noexcept {
  using traits = quant::block_traits<Block>;
  return cols / traits::block_elements * sizeof(typename traits::activation);
}

}  // namespace chorus::inline CHORUS_ABI::simd
