// chorus — matrix-vector and matrix-matrix products over row-major quantized weights. Both
// take a row range so that the caller can split the rows of one matrix over threads.
#pragma once

#include <cstddef>

#include "chorus/config.hpp"
#include "chorus/quant/traits.hpp"
#include "chorus/simd/dot.hpp"

namespace chorus::inline CHORUS_ABI::simd {

// y[r] = W[r] . x for r in [row_begin, row_end). W has `cols` columns (a multiple of the
// block size); x is one activation row already quantized for Block.
template <class Block>
void gemv(const Block* w, std::size_t row_begin, std::size_t row_end, std::size_t cols,
          const typename quant::block_traits<Block>::activation* x, float* y) noexcept {
  const std::size_t blocks_per_row = cols / quant::block_traits<Block>::block_elements;
  for (std::size_t r = row_begin; r < row_end; ++r) y[r] = dot(w + r * blocks_per_row, x, blocks_per_row);
}

// Y[i][r] = W[r] . X[i] for n_x activation rows: each weight row is loaded once and used for
// every activation row while it is in cache. X rows are `x_stride` activations apart (in
// activation elements/blocks), Y rows `y_stride` floats apart.
template <class Block>
void gemm(const Block* w, std::size_t row_begin, std::size_t row_end, std::size_t cols,
          const typename quant::block_traits<Block>::activation* x, std::size_t n_x, std::size_t x_stride, float* y,
          std::size_t y_stride) noexcept {
  const std::size_t blocks_per_row = cols / quant::block_traits<Block>::block_elements;
  for (std::size_t r = row_begin; r < row_end; ++r) {
    const Block* row = w + r * blocks_per_row;
    for (std::size_t i = 0; i < n_x; ++i) y[i * y_stride + r] = dot(row, x + i * x_stride, blocks_per_row);
  }
}

}  // namespace chorus::inline CHORUS_ABI::simd
