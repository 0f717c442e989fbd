// chorus — float kernels of the forward pass: dot, rmsnorm, softmax, silu, swiglu, add, axpy,
// scale, fp16 row conversions (at the instruction-set level that runs: kernels.hpp has them
// written once over a level, dispatch.hpp picks the level), and rope. The scalar versions in
// `reference` are the test oracles.
//
// The empty template argument lists of the callers (simd::rmsnorm<>(...)) are accepted for
// source compatibility: the level is chosen at run time, not by a template argument.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "chorus/config.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/simd/dispatch.hpp"

namespace chorus::inline CHORUS_ABI::simd {

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

template <class = void>
float dot(const float* a, const float* b, std::size_t n) {
  return active_kernels().floats.dot(a, b, n);
}

// out = x / sqrt(mean(x^2) + eps) * weight (out may alias x).
template <class = void>
void rmsnorm(const float* x, const float* weight, float* out, std::size_t n, float eps) {
  active_kernels().floats.rmsnorm(x, weight, out, n, eps);
}

// In-place softmax over n values, max-subtracted.
template <class = void>
void softmax(float* x, std::size_t n) {
  active_kernels().floats.softmax(x, n);
}

// out = silu(x) = x / (1 + e^-x) (out may alias x).
template <class = void>
void silu(const float* x, float* out, std::size_t n) {
  active_kernels().floats.swiglu(x, nullptr, out, n);
}

// out = silu(gate) * up, silu(g) = g / (1 + e^-g) (out may alias gate).
template <class = void>
void swiglu(const float* gate, const float* up, float* out, std::size_t n) {
  active_kernels().floats.swiglu(gate, up, out, n);
}

// y += x
template <class = void>
void add(float* y, const float* x, std::size_t n) {
  active_kernels().floats.add(y, x, n);
}

// y += a * x
template <class = void>
void axpy(float* y, float a, const float* x, std::size_t n) {
  active_kernels().floats.axpy(y, a, x, n);
}

template <class = void>
void scale(float* x, float factor, std::size_t n) {
  active_kernels().floats.scale(x, factor, n);
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

// fp16 <-> float for whole rows (F16C, NEON conversions, or the exact scalar ones).
inline void fp16_to_float(const fp16* in, float* out, std::size_t n) { active_kernels().floats.fp16_to_float(in, out, n); }
inline void float_to_fp16(const float* in, fp16* out, std::size_t n) { active_kernels().floats.float_to_fp16(in, out, n); }

}  // namespace chorus::inline CHORUS_ABI::simd
