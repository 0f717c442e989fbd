// chorus — matrix-vector and matrix-matrix products over row-major quantized weights. Both
// take a row range so that the caller can split the rows of one matrix over threads.
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>

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

// Y[i][r] = W[r] . X[i] for n_x activation rows. X rows are `x_stride` activation blocks
// apart, Y rows `y_stride` floats apart. Quantized weights are unpacked once per tile of
// columns and used for a group of activation rows while they sit in L1 (prompt processing
// multiplies hundreds of rows by each weight row). Up to `tile` columns the float summation
// order is that of dot(); longer rows sum tile by tile.
template <class Block>
void gemm(const Block* w, std::size_t row_begin, std::size_t row_end, std::size_t cols,
          const typename quant::block_traits<Block>::activation* x, std::size_t n_x, std::size_t x_stride, float* y,
          std::size_t y_stride) noexcept {
  using traits = quant::block_traits<Block>;
  const std::size_t blocks_per_row = cols / traits::block_elements;
#if CHORUS_HAVE_FUSED_K_DOT
  if constexpr (detail::k_block<Block>) {
    // The fused K-quant kernel unpacks in registers faster than the tile below unpacks to memory
    // and reads back (pp256 of a 1B Q4_K model: 66 against 49 tokens/s on 2 threads), so each
    // activation row takes dot() over a chunk of weight rows that stays in cache meanwhile.
    constexpr std::size_t chunk = 16;
    for (std::size_t r0 = row_begin; r0 < row_end; r0 += chunk) {
      const std::size_t r1 = std::min(row_end, r0 + chunk);
      for (std::size_t i = 0; i < n_x; ++i) {
        for (std::size_t r = r0; r < r1; ++r) y[i * y_stride + r] = dot(w + r * blocks_per_row, x + i * x_stride, blocks_per_row);
      }
    }
    return;
  }
#endif
  constexpr std::size_t group = 64;  // activation rows per pass over a weight tile
  if constexpr (detail::small_block<Block> || detail::k_block<Block>) {
    constexpr bool k = detail::k_block<Block>;
    constexpr std::size_t tile_blocks = k ? 8 : 64;  // 2048 columns
    struct small_tile {
      alignas(32) std::int8_t q[64 * 32];
      float d[64];
      float m[64];
    };
    struct k_tile {
      alignas(32) quant::k_block::unpacked u[8];
    };
    std::conditional_t<k, k_tile, small_tile> tile;
    float acc[group];
    for (std::size_t r = row_begin; r < row_end; ++r) {
      const Block* row = w + r * blocks_per_row;
      for (std::size_t i0 = 0; i0 < n_x; i0 += group) {
        const std::size_t ni = std::min(group, n_x - i0);
        std::fill(acc, acc + ni, 0.0f);
        for (std::size_t b0 = 0; b0 < blocks_per_row; b0 += tile_blocks) {
          const std::size_t nb = std::min(tile_blocks, blocks_per_row - b0);
          const std::int8_t* quants[64];
          for (std::size_t b = 0; b < nb; ++b) {
            if constexpr (k) {
              traits::unpack(row[b0 + b], tile.u[b]);
            } else {
              quants[b] = unpack_quants(row[b0 + b], tile.q + 32 * b);
              tile.d[b] = row[b0 + b].d.to_float();
              tile.m[b] = block_offset(row[b0 + b]);
            }
          }
          for (std::size_t i = 0; i < ni; ++i) {
            const auto* a = x + (i0 + i) * x_stride + b0;
            float sum = 0.0f;
#if defined(CHORUS_HAVE_FUSED_SMALL_DOT)
            if constexpr (!k) {  // the kernel of dot(), reading the unpacked tile
              sum = sb::dot_source<Block>(
                  [&](std::size_t b) {
                    return sb::unpacked{_mm256_loadu_si256(reinterpret_cast<const __m256i*>(quants[b])), tile.d[b], tile.m[b]};
                  },
                  a, nb);
            } else
#endif
            {
              for (std::size_t b = 0; b < nb; ++b) {
                if constexpr (k) {
                  sum += block_dot<Block>(tile.u[b], a[b]);
                } else {
                  sum += block_dot<Block>(quants[b], tile.d[b], tile.m[b], a[b]);
                }
              }
            }
            acc[i] += sum;
          }
        }
        for (std::size_t i = 0; i < ni; ++i) y[(i0 + i) * y_stride + r] = acc[i];
      }
    }
  } else {
    for (std::size_t r = row_begin; r < row_end; ++r) {
      const Block* row = w + r * blocks_per_row;
      for (std::size_t i = 0; i < n_x; ++i) y[i * y_stride + r] = dot(row, x + i * x_stride, blocks_per_row);
    }
  }
}

}  // namespace chorus::inline CHORUS_ABI::simd
