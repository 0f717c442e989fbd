// chorus — what every quantization block format provides: the traits contract.
//
// Each GGUF block format is a standard-layout struct whose bytes match the file exactly
// (static_assert on its size), plus one specialization of block_traits<Block>:
//
//   template <> struct block_traits<block_q4_0> {
//     static constexpr gguf::tensor_type type = gguf::tensor_type::q4_0;
//     static constexpr std::size_t block_elements = 32;           // weights per block
//     static constexpr std::size_t block_bytes = sizeof(block_q4_0);
//     using activation = block_q8_0;                              // the format activations are quantized to
//     // n is a multiple of block_elements:
//     static void dequantize(const block_q4_0* in, float* out, std::size_t n) noexcept;
//     static void quantize(const float* in, block_q4_0* out, std::size_t n) noexcept;  // optional
//     // scalar reference dot of n_blocks weight blocks with as many activation blocks:
//     static float dot_reference(const block_q4_0* w, const activation* a, std::size_t n_blocks) noexcept;
//   };
//
// Float formats (f32, f16, bf16) use element types as "blocks" of one element.
#pragma once

#include <concepts>
#include <cstddef>

#include "chorus/config.hpp"
#include "chorus/gguf/tensor_type.hpp"

namespace chorus::inline CHORUS_ABI::quant {

template <class Block>
struct block_traits;  // specialised once per format

// What chorus needs to read a format: its geometry, dequantize and the reference dot (plus the
// decoders of its family, see small_block.hpp and k_block.hpp).
template <class Block>
concept block_format = requires(const Block* in, float* f, std::size_t n, const typename block_traits<Block>::activation* act) {
  { block_traits<Block>::type } -> std::convertible_to<gguf::tensor_type>;
  { block_traits<Block>::block_elements } -> std::convertible_to<std::size_t>;
  { block_traits<Block>::block_bytes } -> std::convertible_to<std::size_t>;
  block_traits<Block>::dequantize(in, f, n);
  { block_traits<Block>::dot_reference(in, act, n) } -> std::convertible_to<float>;
};

// Formats chorus can also write (the decoder-only ones, IQ4_NL and IQ4_XS, cannot).
template <class Block>
concept quantizable_format = block_format<Block> && requires(const float* in, Block* out, std::size_t n) {
  block_traits<Block>::quantize(in, out, n);
};

}  // namespace chorus::inline CHORUS_ABI::quant
