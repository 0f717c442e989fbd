// chorus — the plain floating-point tensor formats F32, F16 and BF16 as one-element "blocks".
//
// F32 weights meet F32 activations; F16 and BF16 weights meet activations converted to the
// same 16-bit format (as the reference implementation does), with float accumulation.
#pragma once

#include <cstddef>

#include "chorus/config.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/gguf/tensor_type.hpp"
#include "chorus/quant/traits.hpp"

namespace chorus::inline CHORUS_ABI::quant {

namespace detail {
template <class Half, gguf::tensor_type Type>
struct half_traits {
  static constexpr gguf::tensor_type type = Type;
  static constexpr std::size_t block_elements = 1;
  static constexpr std::size_t block_bytes = sizeof(Half);
  using activation = Half;
  static void dequantize(const Half* in, float* out, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) out[i] = in[i].to_float();
  }
  static void quantize(const float* in, Half* out, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) out[i] = Half(in[i]);
  }
  static float dot_reference(const Half* w, const Half* a, std::size_t n) noexcept {
    float sum = 0.0f;
    for (std::size_t i = 0; i < n; ++i) sum += w[i].to_float() * a[i].to_float();
    return sum;
  }
};
}  // namespace detail

template <>
struct block_traits<float> {
  static constexpr gguf::tensor_type type = gguf::tensor_type::f32;
  static constexpr std::size_t block_elements = 1;
  static constexpr std::size_t block_bytes = sizeof(float);
  using activation = float;
  static void dequantize(const float* in, float* out, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) out[i] = in[i];
  }
  static void quantize(const float* in, float* out, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) out[i] = in[i];
  }
  static float dot_reference(const float* w, const float* a, std::size_t n) noexcept {
    float sum = 0.0f;
    for (std::size_t i = 0; i < n; ++i) sum += w[i] * a[i];
    return sum;
  }
};

template <>
struct block_traits<fp16> : detail::half_traits<fp16, gguf::tensor_type::f16> {};
template <>
struct block_traits<bf16> : detail::half_traits<bf16, gguf::tensor_type::bf16> {};

static_assert(block_format<float> && block_format<fp16> && block_format<bf16>);

}  // namespace chorus::inline CHORUS_ABI::quant
