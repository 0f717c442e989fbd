// chorus — matrix-vector and matrix-matrix products over row-major quantized weights, at the
// instruction-set level that runs (dispatch.hpp; the kernels are in kernels.hpp). Both take a
// row range so that the caller can split the rows of one matrix over threads.
#pragma once

#include <cstddef>

#include "chorus/config.hpp"
#include "chorus/simd/dispatch.hpp"

namespace chorus::inline CHORUS_ABI::simd {

// y[r] = W[r] . x for r in [row_begin, row_end). W has `cols` columns (a multiple of the
// block size); x is one activation row already quantized for Block.
template <class Block>
void gemv(const Block* w, std::size_t row_begin, std::size_t row_end, std::size_t cols, const activation_t<Block>* x,
          float* y) {
  active_kernels().of<Block>().gemv(w, row_begin, row_end, cols, x, y);
}

// Y[i][r] = W[r] . X[i] for n_x activation rows. X rows are `x_stride` activation blocks
// apart, Y rows `y_stride` floats apart. Every result equals dot() of its two rows.
template <class Block>
void gemm(const Block* w, std::size_t row_begin, std::size_t row_end, std::size_t cols, const activation_t<Block>* x,
          std::size_t n_x, std::size_t x_stride, float* y, std::size_t y_stride) {
  active_kernels().of<Block>().gemm(w, row_begin, row_end, cols, x, n_x, x_stride, y, y_stride);
}

}  // namespace chorus::inline CHORUS_ABI::simd
