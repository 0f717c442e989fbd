// chorus — float kernels of the forward pass: dot, rmsnorm, softmax, rope, silu, swiglu, add,
// scale. Each is written once over xsimd::batch<float, Arch> for the architecture the code is
// compiled for; the scalar versions beside them are the test oracles.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <xsimd/xsimd.hpp>

#include "chorus/config.hpp"
#include "chorus/core/fp16.hpp"

#if defined(__F16C__) && defined(__AVX2__)
#include <immintrin.h>
#endif

namespace chorus::inline CHORUS_ABI::simd {

using default_arch = xsimd::default_arch;

namespace reference {
inline float dot(const float* a, const float* b, std::size_t n) noexcept {
  float sum = 0.0f;
  for (std::size_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}
inline void rmsnorm(const float* x, const float* weight, float* out, std::size_t n, float eps) noexcept {
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
  for (std::size_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}
inline void softmax(float* x, std::size_t n) noexcept {
  const float max = *std::max_element(x, x + n);
  float sum = 0.0f;
  for (std::size_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - max));
  for (std::size_t i = 0; i < n; ++i) x[i] /= sum;
}
inline void silu(const float* x, float* out, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = x[i] / (1.0f + std::exp(-x[i]));
}
inline void swiglu(const float* gate, const float* up, float* out, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}
}  // namespace reference

template <class Arch = default_arch>
float dot(const float* a, const float* b, std::size_t n) noexcept {
  using batch = xsimd::batch<float, Arch>;
  constexpr std::size_t width = batch::size;
  batch acc0(0.0f), acc1(0.0f);
  std::size_t i = 0;
  for (; i + 2 * width <= n; i += 2 * width) {
    acc0 = xsimd::fma(batch::load_unaligned(a + i), batch::load_unaligned(b + i), acc0);
    acc1 = xsimd::fma(batch::load_unaligned(a + i + width), batch::load_unaligned(b + i + width), acc1);
  }
  for (; i + width <= n; i += width) acc0 = xsimd::fma(batch::load_unaligned(a + i), batch::load_unaligned(b + i), acc0);
  float sum = xsimd::hadd(acc0 + acc1);
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// out = x / sqrt(mean(x^2) + eps) * weight (out may alias x).
template <class Arch = default_arch>
void rmsnorm(const float* x, const float* weight, float* out, std::size_t n, float eps) noexcept {
  using batch = xsimd::batch<float, Arch>;
  constexpr std::size_t width = batch::size;
  batch acc(0.0f);
  std::size_t i = 0;
  for (; i + width <= n; i += width) {
    const batch v = batch::load_unaligned(x + i);
    acc = xsimd::fma(v, v, acc);
  }
  float sum = xsimd::hadd(acc);
  for (; i < n; ++i) sum += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  i = 0;
  for (; i + width <= n; i += width) {
    (batch::load_unaligned(x + i) * scale * batch::load_unaligned(weight + i)).store_unaligned(out + i);
  }
  for (; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

// In-place softmax over n values, max-subtracted.
template <class Arch = default_arch>
void softmax(float* x, std::size_t n) noexcept {
  using batch = xsimd::batch<float, Arch>;
  constexpr std::size_t width = batch::size;
  float max = -INFINITY;
  for (std::size_t i = 0; i < n; ++i) max = std::max(max, x[i]);
  batch acc(0.0f);
  std::size_t i = 0;
  for (; i + width <= n; i += width) {
    const batch e = xsimd::exp(batch::load_unaligned(x + i) - max);
    e.store_unaligned(x + i);
    acc += e;
  }
  float sum = xsimd::hadd(acc);
  for (; i < n; ++i) sum += (x[i] = std::exp(x[i] - max));
  const float inv = 1.0f / sum;
  i = 0;
  for (; i + width <= n; i += width) (batch::load_unaligned(x + i) * inv).store_unaligned(x + i);
  for (; i < n; ++i) x[i] *= inv;
}

// out = silu(x) = x / (1 + e^-x) (out may alias x).
template <class Arch = default_arch>
void silu(const float* x, float* out, std::size_t n) noexcept {
  using batch = xsimd::batch<float, Arch>;
  constexpr std::size_t width = batch::size;
  std::size_t i = 0;
  for (; i + width <= n; i += width) {
    const batch v = batch::load_unaligned(x + i);
    (v / (1.0f + xsimd::exp(-v))).store_unaligned(out + i);
  }
  for (; i < n; ++i) out[i] = x[i] / (1.0f + std::exp(-x[i]));
}

// out = silu(gate) * up, silu(g) = g / (1 + e^-g).
template <class Arch = default_arch>
void swiglu(const float* gate, const float* up, float* out, std::size_t n) noexcept {
  using batch = xsimd::batch<float, Arch>;
  constexpr std::size_t width = batch::size;
  std::size_t i = 0;
  for (; i + width <= n; i += width) {
    const batch g = batch::load_unaligned(gate + i);
    (g / (1.0f + xsimd::exp(-g)) * batch::load_unaligned(up + i)).store_unaligned(out + i);
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// y += x
template <class Arch = default_arch>
void add(float* y, const float* x, std::size_t n) noexcept {
  using batch = xsimd::batch<float, Arch>;
  constexpr std::size_t width = batch::size;
  std::size_t i = 0;
  for (; i + width <= n; i += width) (batch::load_unaligned(y + i) + batch::load_unaligned(x + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] += x[i];
}

// y += a * x
template <class Arch = default_arch>
void axpy(float* y, float a, const float* x, std::size_t n) noexcept {
  using batch = xsimd::batch<float, Arch>;
  constexpr std::size_t width = batch::size;
  std::size_t i = 0;
  for (; i + width <= n; i += width) {
    xsimd::fma(batch(a), batch::load_unaligned(x + i), batch::load_unaligned(y + i)).store_unaligned(y + i);
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

template <class Arch = default_arch>
void scale(float* x, float factor, std::size_t n) noexcept {
  using batch = xsimd::batch<float, Arch>;
  constexpr std::size_t width = batch::size;
  std::size_t i = 0;
  for (; i + width <= n; i += width) (batch::load_unaligned(x + i) * factor).store_unaligned(x + i);
  for (; i < n; ++i) x[i] *= factor;
}

// The rotation of position `pos` for rope(): cos and sin of pos * base^(-2i / n_rot) for
// i < n_rot / 2 (llama: n_rot = head_dim). Angles in double, as they grow with the position.
inline void rope_cos_sin(double pos, double base, std::size_t n_rot, float* cos, float* sin) noexcept {
  for (std::size_t i = 0; i < n_rot / 2; ++i) {
    const double angle = pos * std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(n_rot));
    cos[i] = static_cast<float>(std::cos(angle));
    sin[i] = static_cast<float>(std::sin(angle));
  }
}

// Rotary position embedding, "normal" (GPT-J style) mode: adjacent pairs (x[2i], x[2i+1]) of
// the first n_rot dimensions of each head rotated by the angle pos * theta_i, with cos/sin
// (n_rot / 2 values) precomputed for the position (rope_cos_sin). Scalar on purpose: a few
// hundred multiply-adds per token, not worth a deinterleaving kernel; it is its own reference.
inline void rope(float* x, std::size_t n_heads, std::size_t head_dim, std::size_t n_rot, const float* cos,
                 const float* sin) noexcept {
  for (std::size_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (std::size_t i = 0; i < n_rot / 2; ++i) {
      const float a = v[2 * i], b = v[2 * i + 1];
      v[2 * i] = a * cos[i] - b * sin[i];
      v[2 * i + 1] = a * sin[i] + b * cos[i];
    }
  }
}

// The same rotation in "NeoX" pairing (Qwen2): x[i] is paired with x[i + n_rot/2].
inline void rope_neox(float* x, std::size_t n_heads, std::size_t head_dim, std::size_t n_rot, const float* cos,
                      const float* sin) noexcept {
  const std::size_t half = n_rot / 2;
  for (std::size_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (std::size_t i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * cos[i] - b * sin[i];
      v[i + half] = a * sin[i] + b * cos[i];
    }
  }
}

// fp16 <-> float for whole rows (F16C where available).
inline void fp16_to_float(const fp16* in, float* out, std::size_t n) noexcept {
  std::size_t i = 0;
#if defined(__F16C__) && defined(__AVX2__)
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  }
#endif
  for (; i < n; ++i) out[i] = in[i].to_float();
}
inline void float_to_fp16(const float* in, fp16* out, std::size_t n) noexcept {
  std::size_t i = 0;
#if defined(__F16C__) && defined(__AVX2__)
  for (const std::size_t whole = n - n % 8; i < whole; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT));
  }
#endif
  for (; i < n; ++i) out[i] = fp16(in[i]);
}

}  // namespace chorus::inline CHORUS_ABI::simd
