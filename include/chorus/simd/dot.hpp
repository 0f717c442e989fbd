// chorus — dot products of a row of weight blocks with a row of activation blocks, for every
// compiled-in block format, at the instruction-set level that runs (dispatch.hpp), and the
// quantization of activations into the format each weight format is multiplied with.
//
// The pattern every kernel follows (kernels.hpp has the arithmetic):
//  - a format only decodes: its traits give a scalar decoder (unpack, the oracle, used by
//    dot_reference) and a vector decoder over a level's vocabulary (quants<L> for 32-element
//    blocks, group<L, G> and scales<L> for K-quant super-blocks);
//  - one int8 multiply-accumulate per instruction set (level_*.hpp: pmaddubsw, vpdpbusd, sdot,
//    smull, or plain C++) does the arithmetic;
//  - dot, gemv and gemm are written once over the two (kernels.hpp) and instantiated per level.
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "chorus/config.hpp"
#include "chorus/quant/formats.hpp"
#include "chorus/quant/q8_1.hpp"
#include "chorus/quant/q8_k.hpp"
#include "chorus/simd/dispatch.hpp"
#include "chorus/simd/float_kernels.hpp"

namespace chorus::inline CHORUS_ABI::simd {

// n_blocks weight blocks with as many activation blocks (elements for the float formats).
template <class Block>
  requires(!std::is_same_v<Block, float>)
float dot(const Block* w, const activation_t<Block>* a, std::size_t n_blocks) {
  return active_kernels().of<Block>().dot(w, a, n_blocks);
}

// Quantizes (or converts) one row of `cols` float activations to the format that `Block`
// weights are multiplied with, by the level that runs (the oracles: block_traits<block_q8_0>::
// quantize, quant::quantize_q8_1, quant::quantize_q8_k).
template <class Block>
void quantize_activation(const float* x, activation_t<Block>* out, std::size_t cols) {
  active_kernels().of<Block>().quantize(x, out, cols);
}

// Bytes of activation storage for a row of `cols` values for `Block` weights.
template <class Block>
constexpr std::size_t activation_bytes(std::size_t cols) noexcept {
  using traits = quant::block_traits<Block>;
  return cols / traits::block_elements * sizeof(typename traits::activation);
}

}  // namespace chorus::inline CHORUS_ABI::simd
