// chorus — the kernels, written once over a level L (simd/level_*.hpp) and a block format's
// decoders (quant/): the dot products of every format, gemv, gemm, and the float kernels of the
// forward pass. dispatch.hpp instantiates them per level inside entry points that carry the
// level's target attribute (see target.hpp for why everything here is CHORUS_ALWAYS_INLINE).
//
// Arithmetic against the formats' scalar references (quant/*: dot_reference):
//  - 32-element blocks: per block the exact integer dot of the reference (L::dot_s8 / dot_u8,
//    or the gemm's interleaved multiply-accumulate), converted to float (exact: |I| < 2^24),
//    times the reference's scale d_w * d_a and added by one fused multiply-add, blocks in order;
//    the affine formats' m_w * s_a terms likewise in a second sum, added at the end. The
//    reference sums the same terms in float, in one sum, rounding as its compiler contracts, so
//    the two take at most 2 n_blocks + 1 rounding steps each, each erring by at most eps / 2 of
//    the magnitudes summed:
//      |dot - dot_reference| <= eps * (n_blocks + 8) * M,
//      M = sum_b (|d_w * d_a| * sum_i |q_i * a_i| + |m_w * s_a|)
//    (tests/test_simd.cpp checks exactly this bound, at every level). dot, gemv and gemm follow
//    the same steps, so they agree to the bit (see dot() below).
//  - K-quant super-blocks: the reference's integers exactly (sub-block scales applied to int16
//    pairs or int32 lanes, offsets and minimums through the activation's group sums), and the
//    reference's float expression per block, summed in block order: equal to dot_reference up
//    to the compiler's contraction of that expression into fused multiply-adds.
//  - float formats: products in float, summed in vector lanes (a different order).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "chorus/config.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/quant/formats.hpp"
#include "chorus/quant/q8_1.hpp"
#include "chorus/quant/q8_k.hpp"
#include "chorus/simd/target.hpp"

CHORUS_KERNELS_BEGIN

namespace chorus::inline CHORUS_ABI::simd {

namespace detail {
template <class Block>
concept small_block = requires { quant::block_traits<Block>::kind; };
template <class Block>
concept k_block = requires { quant::block_traits<Block>::sub_block_elements; };
template <class Block>
concept float_block = std::is_same_v<Block, float> || std::is_same_v<Block, fp16> || std::is_same_v<Block, bf16>;
}  // namespace detail

template <class Block>
using activation_t = typename quant::block_traits<Block>::activation;

// What a format's vector decoder gives, stored to memory (for tests against the scalar decoder):
// the 32 quants of a small block, a K-quant super-block unpacked as traits::unpack() does it.
struct quants32 {
  std::int8_t q[32];
};
struct no_decoder {};
template <class Block>
struct decoded_of {
  using type = no_decoder;
};
template <class Block>
  requires detail::small_block<Block>
struct decoded_of<Block> {
  using type = quants32;
};
template <class Block>
  requires detail::k_block<Block>
struct decoded_of<Block> {
  using type = quant::k_block::unpacked;
};
template <class Block>
using decoded_t = typename decoded_of<Block>::type;

namespace kernels {

// ---- the vector decoders, stored ----
template <class L, class Block>
CHORUS_ALWAYS_INLINE void unpack(const Block& b, decoded_t<Block>& out) noexcept {
  using traits = quant::block_traits<Block>;
  if constexpr (detail::small_block<Block>) {
    L::store(out.q, traits::template quants<L>(b));
  } else if constexpr (detail::k_block<Block>) {
    unroll<8>([&](auto g) CHORUS_LAMBDA_INLINE {
      constexpr int G = decltype(g)::value;
      L::store(out.q + 32 * G, L::sub(traits::template group<L, G>(b), L::splat(static_cast<std::int8_t>(traits::quant_offset))));
    });
    const auto s = traits::template scales<L>(b);
    std::int8_t scales[16], mins[16];
    L::store_scales(scales, s.scales);
    L::store_scales(mins, s.mins);
    constexpr int step = traits::sub_block_elements / 16;
    for (int k = 0; k < 256 / traits::sub_block_elements; ++k) {
      out.scales[k] = scales[k * step];
      out.mins[k] = traits::has_mins ? mins[k * step] : 0;
    }
    out.d = L::half(b.d.bits);
    if constexpr (traits::has_mins) {
      out.dmin = L::half(b.dmin.bits);
    } else {
      out.dmin = 0.0f;
    }
  } else {
    (void)b;
    (void)out;
  }
}

// ---- dot products: one row of weight blocks with one row of activation blocks ----

// One decoded 32-element block: its quants, scale and offset (0 for the symmetric formats).
template <class L>
struct decoded_block {
  typename L::bytes q;
  float d;
  float m;
};

template <class L, class Block>
CHORUS_ALWAYS_INLINE decoded_block<L> decode_block(const Block& b) noexcept {
  using traits = quant::block_traits<Block>;
  if constexpr (traits::kind == quant::block_kind::affine) {
    return {traits::template quants<L>(b), L::half(b.d.bits), L::half(b.m.bits)};
  } else {
    return {traits::template quants<L>(b), L::half(b.d.bits), 0.0f};
  }
}

// Decoded quants plus this offset lie in [0, 127] for the unsigned operand of the u8 x s8
// multiply-accumulate (no sign trick; the offset times the activations' sum is taken off after);
// -1 for formats whose quants span int8 (Q8_0, IQ4_NL), which take the signed one.
template <class Block>
constexpr int unsigned_offset() noexcept {
  using traits = quant::block_traits<Block>;
  if constexpr (traits::unsigned_quants) {
    return 0;
  } else if constexpr (requires { traits::quant_offset; }) {
    return traits::quant_offset;
  } else {
    return -1;
  }
}

// The exact integer dot of one decoded 32-element block with its activation block (8 lanes).
template <class L, class Block>
CHORUS_ALWAYS_INLINE typename L::ints block_ints(const typename L::bytes& q, const activation_t<Block>& a) noexcept {
  return quant::block_traits<Block>::unsigned_quants ? L::dot_u8(q, L::load(a.qs)) : L::dot_s8(q, L::load(a.qs));
}

// The one float arithmetic of a row of 32-element blocks, which dot(), gemv and gemm all follow
// so that a row's result is the same bits whichever of them computes it (a batch of sequences
// must make the tokens each makes alone): per block b in order,
//     sum = fma(float(I_b), d_w * d_a, sum),  offset = fma(m_w, s_a, offset)   (affine formats)
// with I_b the block's exact integer dot, then sum + offset. The steps are the level's vector
// fma (a lane of it here, a lane per row in gemv and gemm), so that each level rounds alike.
template <class L, class Block>
  requires detail::small_block<Block>
CHORUS_ALWAYS_INLINE float dot(const Block* w, const activation_t<Block>* a, std::size_t n) noexcept {
  constexpr bool affine = quant::block_traits<Block>::kind == quant::block_kind::affine;
  auto sum = L::zerof(), offset = L::zerof();
  for (std::size_t b = 0; b < n; ++b) {
    const decoded_block<L> u = decode_block<L>(w[b]);
    const auto i = L::splatf(static_cast<float>(L::hsum(block_ints<L, Block>(u.q, a[b]))));
    sum = L::fma(i, L::mul(L::splatf(u.d), L::splatf(L::half(a[b].d.bits))), sum);
    if constexpr (affine) offset = L::fma(L::splatf(u.m), L::splatf(L::half(a[b].s.bits)), offset);
  }
  return L::first(sum) + L::first(offset);
}

// One K-quant weight row against N activation rows (a few sequences decoding together; N = 1 is
// dot() below): each super-block's groups and scales decoded once for all N, and per activation
// row the same integers and float steps, so each result is dot()'s.
//
// The row loop prefetches k_prefetch_blocks super-blocks ahead (past the row's end that is the
// next row's start, as gemv reads them): left to the hardware prefetchers, the 1B Q4_K model
// generated 7.3 tok/s on one thread of a Xeon (Sapphire Rapids) and 13.4 on two; 16 blocks ahead,
// 15.5 and 26.5 (4 and 8 ahead were slower; docs/perf.md, 2026-12-03, evening).
inline constexpr std::size_t k_prefetch_blocks = 16;

template <class Block>
CHORUS_ALWAYS_INLINE void prefetch_block(const Block* block) noexcept {
  const char* p = reinterpret_cast<const char*>(block);
  for (std::size_t offset = 0; offset < sizeof(Block); offset += 64) CHORUS_PREFETCH(p + offset);
  CHORUS_PREFETCH(p + sizeof(Block) - 1);  // the last line, where the block straddles one more
}

template <class L, class Block, std::size_t N>
  requires detail::k_block<Block>
CHORUS_ALWAYS_INLINE void dot_rows(const Block* w, const quant::block_q8_k* x, std::size_t x_stride, std::size_t n,
                                   float* out, std::size_t out_stride) noexcept {
  using traits = quant::block_traits<Block>;
  typename L::floats sum[N];
  for (std::size_t i = 0; i < N; ++i) sum[i] = L::zerof();
  for (std::size_t b = 0; b < n; ++b) {
    prefetch_block(w + b + k_prefetch_blocks);
    const auto s = traits::template scales<L>(w[b]);
    const auto lanes = L::prepare(s.scales);
    typename L::ints acc[N];
    for (std::size_t i = 0; i < N; ++i) acc[i] = L::zero_ints();
    unroll<8>([&](auto g) CHORUS_LAMBDA_INLINE {
      constexpr int G = decltype(g)::value;
      const auto quants = traits::template group<L, G>(w[b]);
      unroll<N>([&](auto i) CHORUS_LAMBDA_INLINE {
        acc[i] = L::template dot_scaled<G, traits::signed_quants>(acc[i], quants, L::load(x[i * x_stride + b].qs + 32 * G), lanes);
      });
    });
    unroll<N>([&](auto i) CHORUS_LAMBDA_INLINE {
      const quant::block_q8_k& a = x[i * x_stride + b];
      std::int32_t sumi = L::hsum(acc[i]);
      if constexpr (traits::quant_offset != 0) sumi -= traits::quant_offset * L::dot_bsums(a.bsums, s.scales);
      auto inner = L::mul(L::splatf(L::half(w[b].d.bits)), L::splatf(static_cast<float>(sumi)));
      if constexpr (traits::has_mins) {
        inner = L::fma(L::splatf(static_cast<float>(L::dot_bsums(a.bsums, s.mins))), L::splatf(-L::half(w[b].dmin.bits)), inner);
      }
      sum[i] = L::fma(L::splatf(a.d), inner, sum[i]);
    });
  }
  for (std::size_t i = 0; i < N; ++i) out[i * out_stride] = L::first(sum[i]);
}

// The float arithmetic of a K-quant row, shared with gemm_k (see the 32-element one above): per
// super-block in order, sum = fma(a_d, d_w * sumi - dmin_w * summ, sum), the inner expression as
// fma(summ, -dmin_w, d_w * sumi); sumi is the scaled products with the quant offset taken off,
// summ the minimums times the activation sums.
template <class L, class Block>
  requires detail::k_block<Block>
CHORUS_ALWAYS_INLINE float dot(const Block* w, const quant::block_q8_k* a, std::size_t n) noexcept {
  float result;
  dot_rows<L, Block, 1>(w, a, 0, n, &result, 0);
  return result;
}

// Float rows: f32 x f32, or 16-bit weights x 16-bit activations widened to float.
template <class L, class T>
CHORUS_ALWAYS_INLINE typename L::fvec load_floats(const T* p) noexcept {
  if constexpr (std::is_same_v<T, float>) {
    return L::loadf(p);
  } else if constexpr (std::is_same_v<T, fp16>) {
    return L::load_halves(p);
  } else {
    return L::load_bf16s(p);
  }
}

template <class L, class Block>
  requires detail::float_block<Block>
CHORUS_ALWAYS_INLINE float dot(const Block* w, const Block* a, std::size_t n) noexcept {
  constexpr std::size_t width = L::fwidth;
  auto acc0 = L::splatv(0.0f), acc1 = L::splatv(0.0f);
  std::size_t i = 0;
  for (; i + 2 * width <= n; i += 2 * width) {
    acc0 = L::fmav(load_floats<L>(w + i), load_floats<L>(a + i), acc0);
    acc1 = L::fmav(load_floats<L>(w + i + width), load_floats<L>(a + i + width), acc1);
  }
  for (; i + width <= n; i += width) acc0 = L::fmav(load_floats<L>(w + i), load_floats<L>(a + i), acc0);
  float sum = L::hsumv(L::addv(acc0, acc1));
  for (; i < n; ++i) {
    if constexpr (std::is_same_v<Block, float>) {
      sum += w[i] * a[i];
    } else {
      sum += w[i].to_float() * a[i].to_float();
    }
  }
  return sum;
}

// ---- matrix products over row-major weights, on a range of rows ----

// The row loops take the level's dot entry point (a call per row of thousands of weights costs
// nothing measurable, and each level then compiles its dot kernels once, not once per caller).

// y[r] = W[r] . x for r in [row_begin, row_end).
template <class Block, class Dot>
CHORUS_ALWAYS_INLINE void gemv(Dot dot_row, const Block* w, std::size_t row_begin, std::size_t row_end, std::size_t cols,
                               const activation_t<Block>* x, float* y) noexcept {
  const std::size_t per_row = cols / quant::block_traits<Block>::block_elements;
  for (std::size_t r = row_begin; r < row_end; ++r) y[r] = dot_row(w + r * per_row, x, per_row);
}

// The sum of an activation block's quants: what the unsigned operand's offset costs per block.
template <class Activation>
CHORUS_ALWAYS_INLINE std::int32_t activation_sum(const Activation& a) noexcept {
  std::int32_t sum = 0;
  for (const std::int8_t v : a.qs) sum += v;
  return sum;
}

// Y[i][r] = W[r] . X[i] for 32-element blocks and a few activation rows (up to
// gemv_activation_rows), eight weight rows at a time: each block of the 8 rows is decoded once,
// and per activation row their 8 integer vectors are reduced into one (lane r = row r) and take
// dot()'s float steps in lanes; the activation scales are converted once for all rows (rows up to
// 16384 columns; longer ones, and the last rows of the range, go through dot()). Every result is
// dot()'s. One activation row is the gemv of generation; 2-8 are a few sequences decoded together,
// where the gemm's interleaved tiles would run one column each (docs/perf.md, 2026-12-03). All 8
// in one pass over the weights rather than two passes of 4: 8 sequences of the 1B Q4_0 model
// decoded 14 % more tokens/s on a Xeon at the AVX-512 level (docs/perf.md, 2026-12-08).
//
// Eight rows are eight short read streams that restart at every group of rows, and the hardware
// prefetchers fell behind them: the loop prefetches each row gemv_prefetch_blocks ahead, and
// near a row's end the same place in the next group's row (docs/perf.md, 2026-12-03). 32 blocks
// (576 bytes) rather than 12: the 1B Q4_0 model's generation went from 25 to 29 tok/s on two
// threads of a Xeon (Sapphire Rapids), and 64 was no faster (docs/perf.md, 2026-12-03, evening).
inline constexpr std::size_t gemv_prefetch_blocks = 32;
inline constexpr std::size_t gemv_activation_rows = 8;
inline constexpr std::size_t gemm_min_activation_rows = 8;  // up to this many, gemm_small runs gemv_small

template <class L, class Block, class Dot>
CHORUS_ALWAYS_INLINE void gemv_small(Dot dot_row, const Block* w, std::size_t row_begin, std::size_t row_end, std::size_t cols,
                                     const activation_t<Block>* x, std::size_t n_x, std::size_t x_stride, float* y,
                                     std::size_t y_stride) noexcept {
  constexpr bool affine = quant::block_traits<Block>::kind == quant::block_kind::affine;
  constexpr std::size_t max_blocks = 512;
  const std::size_t per_row = cols / 32;
  if (per_row > max_blocks) {
    for (std::size_t i = 0; i < n_x; ++i) gemv(dot_row, w, row_begin, row_end, cols, x + i * x_stride, y + i * y_stride);
    return;
  }
  // Q4_0 and Q5_0 as the unsigned operand (see unsigned_offset), as in the gemm
  constexpr int quant_offset = unsigned_offset<Block>();
  constexpr std::size_t N = gemv_activation_rows;
  float ds[N][max_blocks], ss[N][max_blocks];
  std::int32_t correction[N][max_blocks];
  for (std::size_t i = 0; i < n_x; ++i) {
    for (std::size_t b = 0; b < per_row; ++b) {
      const auto& a = x[i * x_stride + b];
      ds[i][b] = L::half(a.d.bits);
      if constexpr (affine) ss[i][b] = L::half(a.s.bits);
      if constexpr (quant_offset > 0) correction[i][b] = -quant_offset * activation_sum(a);
    }
  }
  std::size_t r = row_begin;
  for (; r + 8 <= row_end; r += 8) {
    const Block* rows = w + r * per_row;
    const bool next_group = r + 16 <= row_end;
    typename L::floats sum[N], offset[N];
    for (std::size_t i = 0; i < n_x; ++i) sum[i] = offset[i] = L::zerof();
    for (std::size_t b = 0; b < per_row; ++b) {
      if (b % 2 == 0) {
        // ahead of row k: in row k itself, else in row k + 8 (only where the range has it)
        std::size_t ahead = b + gemv_prefetch_blocks;
        if (ahead >= per_row) ahead = next_group ? ahead + 7 * per_row : b;
        unroll<8>([&](auto k) CHORUS_LAMBDA_INLINE { CHORUS_PREFETCH(&rows[k * per_row + ahead]); });
      }
      typename L::bytes q[8];
      unroll<8>([&](auto k) CHORUS_LAMBDA_INLINE {
        q[k] = quant::block_traits<Block>::template quants<L>(rows[k * per_row + b]);
        if constexpr (quant_offset > 0) q[k] = L::sub(q[k], L::splat(static_cast<std::int8_t>(-quant_offset)));
      });
      // the eight rows' scales straight from the blocks into one conversion: eight scalar
      // conversions stored and read back as a vector stall store forwarding
      const auto half_of = [&](auto k, auto field) CHORUS_LAMBDA_INLINE { return (rows[k * per_row + b].*field).bits; };
      const auto halves = [&](auto field) CHORUS_LAMBDA_INLINE {
        return L::set_halves(half_of(0, field), half_of(1, field), half_of(2, field), half_of(3, field), half_of(4, field),
                             half_of(5, field), half_of(6, field), half_of(7, field));
      };
      const auto dw = halves(&Block::d);
      for (std::size_t i = 0; i < n_x; ++i) {
        const auto& a = x[i * x_stride + b];
        const auto qa = L::load(a.qs);
        typename L::ints ints[8];
        unroll<8>([&](auto k) CHORUS_LAMBDA_INLINE {
          if constexpr (quant_offset > 0) {
            ints[k] = L::dot_u8(q[k], qa);
          } else {
            ints[k] = block_ints<L, Block>(q[k], a);
          }
        });
        auto total = L::reduce8(ints);
        if constexpr (quant_offset > 0) total = L::add(total, L::splat_ints(correction[i][b]));
        sum[i] = L::fma(L::to_floats(total), L::mul(dw, L::splatf(ds[i][b])), sum[i]);
        if constexpr (affine) offset[i] = L::fma(halves(&Block::m), L::splatf(ss[i][b]), offset[i]);
      }
    }
    for (std::size_t i = 0; i < n_x; ++i) {
      alignas(32) float s8[8], o8[8];
      L::store_floats(s8, sum[i]);
      L::store_floats(o8, offset[i]);
      for (std::size_t k = 0; k < 8; ++k) y[i * y_stride + r + k] = s8[k] + o8[k];
    }
  }
  for (; r < row_end; ++r) {
    for (std::size_t i = 0; i < n_x; ++i) y[i * y_stride + r] = dot_row(w + r * per_row, x + i * x_stride, per_row);
  }
}

// ---- the gemm of 32-element blocks ----
//
// Eight weight rows at a time, interleaved so that int32 lane r of the multiply-accumulate is
// row r: for each block and group of 4 quants, the 4 quants of row 0, then of row 1, ... (one
// 32-byte vector), against the group's 4 activations repeated in every lane. Per block the 8 lanes
// then take one conversion, one scale vector (the rows' d_w times the activation's d_a) and one
// fused multiply-add per activation row, instead of one each per row and activation; no
// horizontal sums at all. The weights are decoded and interleaved once per chunk of activation
// rows into a tile that stays in L1.
//
// Arithmetic per row and block: the reference's integer (exact), d_w * d_a rounded once, a fused
// multiply-add into the row's lane, blocks in order; the affine formats' m_w * s_a in a second
// accumulator added at the end. So n_blocks + 1 rounding steps: within the bound above.

template <class L>
CHORUS_ALWAYS_INLINE typename L::ints dot_u8_acc(typename L::ints acc, typename L::bytes u, typename L::bytes a) noexcept {
  if constexpr (requires { L::dot_u8_acc(acc, u, a); }) {
    return L::dot_u8_acc(acc, u, a);
  } else {
    return L::add(acc, L::dot_u8(u, a));
  }
}
template <class L>
CHORUS_ALWAYS_INLINE typename L::ints dot_s8_acc(typename L::ints acc, typename L::bytes w, typename L::bytes a) noexcept {
  if constexpr (requires { L::dot_s8_acc(acc, w, a); }) {
    return L::dot_s8_acc(acc, w, a);
  } else {
    return L::add(acc, L::dot_s8(w, a));
  }
}

inline constexpr std::size_t gemm_tile_blocks = 64;     // 2048 columns of 8 rows: 16 KiB
inline constexpr std::size_t gemm_chunk_rows = 64;      // activation rows per chunk
inline constexpr std::size_t gemm_chunk_blocks = 4096;  // activation blocks per chunk (about 140 KB)

struct interleaved_rows {
  alignas(64) std::int8_t q[gemm_tile_blocks][8][32];
  alignas(32) float d[gemm_tile_blocks][8];
  alignas(32) float m[gemm_tile_blocks][8];
};

// Rows [0, n_rows) (n_rows <= 8; the others zero) of blocks [b0, b0 + nb), decoded and interleaved.
template <class L, class Block>
CHORUS_ALWAYS_INLINE void interleave(const Block* w, std::size_t per_row, std::size_t n_rows, std::size_t b0, std::size_t nb,
                                     interleaved_rows& t) noexcept {
  constexpr int offset = unsigned_offset<Block>();
  for (std::size_t r = 0; r < 8; ++r) {
    for (std::size_t b = 0; b < nb; ++b) {
      alignas(32) std::int8_t q[32] = {};
      float d = 0.0f, m = 0.0f;
      if (r < n_rows) {
        const decoded_block<L> u = decode_block<L>(w[r * per_row + b0 + b]);
        L::store(q, offset > 0 ? L::sub(u.q, L::splat(static_cast<std::int8_t>(-offset))) : u.q);
        d = u.d;
        m = u.m;
      }
      for (std::size_t g = 0; g < 8; ++g) std::memcpy(&t.q[b][g][4 * r], q + 4 * g, 4);
      t.d[b][r] = d;
      t.m[b][r] = m;
    }
  }
}

// What the tiles need of each activation block, converted once per chunk: d_a, s_a (affine) and
// -offset * (sum of its quants), indexed [row in chunk * per_row + block].
struct activation_terms {
  float d[gemm_chunk_blocks];
  float s[gemm_chunk_blocks];
  std::int32_t correction[gemm_chunk_blocks];
};

template <class L, class Block>
CHORUS_ALWAYS_INLINE void prepare_terms(const activation_t<Block>* x, std::size_t x_stride, std::size_t n_rows, std::size_t per_row,
                                        activation_terms& terms) noexcept {
  constexpr int offset = unsigned_offset<Block>();
  for (std::size_t i = 0; i < n_rows; ++i) {
    for (std::size_t b = 0; b < per_row; ++b) {
      const auto& a = x[i * x_stride + b];
      const std::size_t k = i * per_row + b;
      terms.d[k] = L::half(a.d.bits);
      if constexpr (quant::block_traits<Block>::kind == quant::block_kind::affine) terms.s[k] = L::half(a.s.bits);
      if constexpr (offset > 0) terms.correction[k] = -offset * activation_sum(a);
    }
  }
}

// Cols activation rows (x: the first one's block b0, x_stride apart; terms at row `term_row`)
// against a tile of nb blocks, accumulated into acc/off[j][0..8).
template <class L, class Block, std::size_t Cols>
CHORUS_ALWAYS_INLINE void interleaved_tile(const interleaved_rows& t, std::size_t nb, const activation_t<Block>* x,
                                           std::size_t x_stride, const activation_terms& terms, std::size_t term_row,
                                           std::size_t per_row, std::size_t b0, float (*acc)[8], float (*off)[8]) noexcept {
  constexpr int offset = unsigned_offset<Block>();
  constexpr bool affine = quant::block_traits<Block>::kind == quant::block_kind::affine;
  typename L::floats sum[Cols], sum_off[Cols];
  unroll<Cols>([&](auto j) CHORUS_LAMBDA_INLINE {
    sum[j] = L::load_floats(acc[j]);
    if constexpr (affine) sum_off[j] = L::load_floats(off[j]);
  });
  for (std::size_t b = 0; b < nb; ++b) {
    typename L::ints s[Cols];
    unroll<Cols>([&](auto j) CHORUS_LAMBDA_INLINE {
      s[j] = offset > 0 ? L::splat_ints(terms.correction[(term_row + j) * per_row + b0 + b]) : L::zero_ints();
    });
    unroll<8>([&](auto g) CHORUS_LAMBDA_INLINE {
      const auto wq = L::load(t.q[b][g]);
      unroll<Cols>([&](auto j) CHORUS_LAMBDA_INLINE {
        const auto a = L::broadcast4(x[j * x_stride + b].qs + 4 * g);
        s[j] = offset >= 0 ? dot_u8_acc<L>(s[j], wq, a) : dot_s8_acc<L>(s[j], wq, a);
      });
    });
    const auto dw = L::load_floats(t.d[b]);
    unroll<Cols>([&](auto j) CHORUS_LAMBDA_INLINE {
      const std::size_t k = (term_row + j) * per_row + b0 + b;
      sum[j] = L::fma(L::to_floats(s[j]), L::mul(dw, L::splatf(terms.d[k])), sum[j]);
      if constexpr (affine) sum_off[j] = L::fma(L::load_floats(t.m[b]), L::splatf(terms.s[k]), sum_off[j]);
    });
  }
  unroll<Cols>([&](auto j) CHORUS_LAMBDA_INLINE {
    L::store_floats(acc[j], sum[j]);
    if constexpr (affine) L::store_floats(off[j], sum_off[j]);
  });
}

// Y[i][r] = W[r] . X[i] for 32-element blocks (x_stride activation blocks apart; Y rows y_stride
// floats apart), L::tile_cols activation rows per register tile.
template <class L, class Block, class Dot>
CHORUS_ALWAYS_INLINE void gemm_small(Dot dot_row, const Block* w, std::size_t row_begin, std::size_t row_end, std::size_t cols,
                                     const activation_t<Block>* x, std::size_t n_x, std::size_t x_stride, float* y,
                                     std::size_t y_stride) noexcept {
  constexpr std::size_t C = L::tile_cols;
  const std::size_t per_row = cols / 32;
  if (per_row > gemm_chunk_blocks) {  // beyond 131072 columns: one row at a time
    for (std::size_t i = 0; i < n_x; ++i) {
      for (std::size_t r = row_begin; r < row_end; ++r) y[i * y_stride + r] = dot_row(w + r * per_row, x + i * x_stride, per_row);
    }
    return;
  }
  // Few activation rows (a few sequences decoding together): gemv_small's decoded rows serve them
  // faster than the tiles, whose interleaving pays off over more rows (14336 x 4096 Q4_0 and
  // Q8_0, one thread, Zen 5: 1.4-1.9x at 8 rows on AVX-512, 1.6-2.6x at 4-8 rows on AVX2; at
  // 16 rows the AVX-512 tiles are 1.6x faster).
  if (n_x <= gemm_min_activation_rows) {
    for (std::size_t i = 0; i < n_x; i += gemv_activation_rows) {
      gemv_small<L>(dot_row, w, row_begin, row_end, cols, x + i * x_stride, std::min(gemv_activation_rows, n_x - i), x_stride,
                    y + i * y_stride, y_stride);
    }
    return;
  }
  const std::size_t chunk = std::min(gemm_chunk_rows, gemm_chunk_blocks / per_row);
  interleaved_rows tile;
  activation_terms terms;
  float acc[gemm_chunk_rows][8], off[gemm_chunk_rows][8];
  for (std::size_t i0 = 0; i0 < n_x; i0 += chunk) {
    const std::size_t ni = std::min(chunk, n_x - i0);
    prepare_terms<L, Block>(x + i0 * x_stride, x_stride, ni, per_row, terms);
    for (std::size_t r0 = row_begin; r0 < row_end; r0 += 8) {
      const std::size_t nr = std::min<std::size_t>(8, row_end - r0);
      std::fill(&acc[0][0], &acc[0][0] + ni * 8, 0.0f);
      std::fill(&off[0][0], &off[0][0] + ni * 8, 0.0f);
      for (std::size_t b0 = 0; b0 < per_row; b0 += gemm_tile_blocks) {
        const std::size_t nb = std::min(gemm_tile_blocks, per_row - b0);
        interleave<L>(w + r0 * per_row, per_row, nr, b0, nb, tile);
        std::size_t i = 0;
        for (; i + C <= ni; i += C) {
          interleaved_tile<L, Block, C>(tile, nb, x + (i0 + i) * x_stride + b0, x_stride, terms, i, per_row, b0, acc + i, off + i);
        }
        for (; i < ni; ++i) {
          interleaved_tile<L, Block, 1>(tile, nb, x + (i0 + i) * x_stride + b0, x_stride, terms, i, per_row, b0, acc + i, off + i);
        }
      }
      for (std::size_t i = 0; i < ni; ++i) {
        for (std::size_t r = 0; r < nr; ++r) y[(i0 + i) * y_stride + r0 + r] = acc[i][r] + off[i][r];
      }
    }
  }
}

// ---- the gemm of K-quant super-blocks ----
//
// The same interleaving as above, per super-block: lane r of the multiply-accumulate is row r.
// Per sub-block the exact integer sum of u * a is multiplied by the rows' sub-block scales (int32
// lanes); the offset or minimum terms come from the activation's sums per 16 (bsums) against the
// rows' (offset x scale) or minimums, as int16 pairs. Per super-block then the reference's float
// expression a_d * (d_w * sumi - dmin_w * summ), in lanes, summed in block order: dot()'s
// arithmetic up to the contraction of that expression.

inline constexpr std::size_t gemm_tile_super_blocks = 8;  // 2048 columns of 8 rows: 16 KiB

struct interleaved_k_rows {
  alignas(64) std::int8_t q[gemm_tile_super_blocks][8][8][32];  // [block][group of 32][4 quants][row, 4]
  alignas(32) std::int32_t scales[gemm_tile_super_blocks][16][8];  // [block][sub-block][row]
  alignas(32) std::int16_t terms[gemm_tile_super_blocks][8][8][2];  // [block][pair of 16s][row][2]
  alignas(32) float d[gemm_tile_super_blocks][8];
  alignas(32) float neg_dmin[gemm_tile_super_blocks][8];
};

template <class L, class Block>
CHORUS_ALWAYS_INLINE void interleave_k(const Block* w, std::size_t per_row, std::size_t n_rows, std::size_t b0, std::size_t nb,
                                       interleaved_k_rows& t) noexcept {
  using traits = quant::block_traits<Block>;
  constexpr int n_sub = 256 / traits::sub_block_elements, step = traits::sub_block_elements / 16;
  static_assert(traits::quant_offset == 0 || !traits::has_mins, "one term per 16 activations: an offset or a minimum");
  for (std::size_t r = 0; r < 8; ++r) {
    for (std::size_t b = 0; b < nb; ++b) {
      if (r >= n_rows) {
        for (std::size_t G = 0; G < 8; ++G) {
          for (std::size_t g = 0; g < 8; ++g) std::memset(&t.q[b][G][g][4 * r], 0, 4);
        }
        for (int s = 0; s < n_sub; ++s) t.scales[b][s][r] = 0;
        for (int p = 0; p < 8; ++p) t.terms[b][p][r][0] = t.terms[b][p][r][1] = 0;
        t.d[b][r] = t.neg_dmin[b][r] = 0.0f;
        continue;
      }
      const Block& block = w[r * per_row + b0 + b];
      unroll<8>([&](auto group) CHORUS_LAMBDA_INLINE {
        constexpr int G = decltype(group)::value;
        alignas(32) std::int8_t q[32];
        L::store(q, traits::template group<L, G>(block));
        for (std::size_t g = 0; g < 8; ++g) std::memcpy(&t.q[b][G][g][4 * r], q + 4 * g, 4);
      });
      const auto s = traits::template scales<L>(block);
      std::int8_t scales[16], mins[16];
      L::store_scales(scales, s.scales);
      L::store_scales(mins, s.mins);
      for (int k = 0; k < n_sub; ++k) t.scales[b][k][r] = scales[k * step];
      for (int h = 0; h < 16; ++h) {
        // quants stored as u = q + offset: the offset times scale times the 16 activations' sum is taken off
        const int term = traits::quant_offset != 0 ? -traits::quant_offset * scales[h] : (traits::has_mins ? mins[h] : 0);
        t.terms[b][h / 2][r][h % 2] = static_cast<std::int16_t>(term);
      }
      t.d[b][r] = L::half(block.d.bits);
      if constexpr (traits::has_mins) {
        t.neg_dmin[b][r] = -L::half(block.dmin.bits);
      } else {
        t.neg_dmin[b][r] = 0.0f;
      }
    }
  }
}

// Cols activation rows (x: the first one's super-block b0, x_stride apart) against a tile of nb
// super-blocks, accumulated into acc[j][0..8).
template <class L, class Block, std::size_t Cols>
CHORUS_ALWAYS_INLINE void interleaved_k_tile(const interleaved_k_rows& t, std::size_t nb, const quant::block_q8_k* x,
                                             std::size_t x_stride, float (*acc)[8]) noexcept {
  using traits = quant::block_traits<Block>;
  constexpr int sub = traits::sub_block_elements, n_sub = 256 / sub;
  constexpr bool has_terms = traits::quant_offset != 0 || traits::has_mins;
  typename L::floats sum[Cols];
  unroll<Cols>([&](auto j) CHORUS_LAMBDA_INLINE { sum[j] = L::load_floats(acc[j]); });
  for (std::size_t b = 0; b < nb; ++b) {
    typename L::ints total[Cols], terms[Cols];
    unroll<Cols>([&](auto j) CHORUS_LAMBDA_INLINE {
      total[j] = L::zero_ints();
      terms[j] = L::zero_ints();
    });
    if constexpr (has_terms) {
      unroll<8>([&](auto p) CHORUS_LAMBDA_INLINE {
        const auto v = L::load(t.terms[b][p]);
        unroll<Cols>([&](auto j) CHORUS_LAMBDA_INLINE {
          terms[j] = L::dot_i16_acc(terms[j], v, L::broadcast4(x[j * x_stride + b].bsums + 2 * p));
        });
      });
    }
    // The sub-blocks are a loop, not unrolled: unrolled, the body was 64 * Cols multiply-
    // accumulates per super-block, and GCC took about 25 s per K format (-O2) to compile the four
    // levels' copies, against 5.8 s now; the prompt went 2-3 % slower (docs/perf.md, 2026-12-03).
    for (int s = 0; s < n_sub; ++s) {
      typename L::ints part[Cols];
      unroll<Cols>([&](auto j) CHORUS_LAMBDA_INLINE { part[j] = L::zero_ints(); });
      unroll<sub / 4>([&](auto k) CHORUS_LAMBDA_INLINE {
        const int e = s * sub + 4 * decltype(k)::value;  // first of the 4 elements
        const auto wq = L::load(t.q[b][e / 32][(e % 32) / 4]);
        unroll<Cols>([&](auto j) CHORUS_LAMBDA_INLINE {
          const auto a = L::broadcast4(x[j * x_stride + b].qs + e);
          part[j] = traits::signed_quants ? dot_s8_acc<L>(part[j], wq, a) : dot_u8_acc<L>(part[j], wq, a);
        });
      });
      const auto scale = L::load_ints(t.scales[b][s]);
      unroll<Cols>([&](auto j) CHORUS_LAMBDA_INLINE { total[j] = L::add(total[j], L::mul_ints(part[j], scale)); });
    }
    const auto dw = L::load_floats(t.d[b]);
    unroll<Cols>([&](auto j) CHORUS_LAMBDA_INLINE {
      typename L::floats inner;
      if constexpr (traits::has_mins) {
        inner = L::fma(L::to_floats(terms[j]), L::load_floats(t.neg_dmin[b]), L::mul(dw, L::to_floats(total[j])));
      } else {
        inner = L::mul(dw, L::to_floats(has_terms ? L::add(total[j], terms[j]) : total[j]));
      }
      sum[j] = L::fma(L::splatf(x[j * x_stride + b].d), inner, sum[j]);
    });
  }
  unroll<Cols>([&](auto j) CHORUS_LAMBDA_INLINE { L::store_floats(acc[j], sum[j]); });
}

// Y[i][r] = W[r] . X[i] for K-quant super-blocks, as gemm_small.
template <class L, class Block>
CHORUS_ALWAYS_INLINE void gemm_k(const Block* w, std::size_t row_begin, std::size_t row_end, std::size_t cols,
                                 const quant::block_q8_k* x, std::size_t n_x, std::size_t x_stride, float* y,
                                 std::size_t y_stride) noexcept {
  constexpr std::size_t C = L::tile_cols;
  const std::size_t per_row = cols / 256;
  // A few activation rows: one weight row against up to L::k_rows_per_pass of them at a time
  // (dot_rows), faster than tiles of one column (docs/perf.md, 2026-12-03 and 2026-12-08).
  if (n_x <= gemm_min_activation_rows) {
    for (std::size_t r = row_begin; r < row_end; ++r) {
      const Block* row = w + r * per_row;
      std::size_t i = 0;
      if constexpr (L::k_rows_per_pass == 8) {
        for (; i + 8 <= n_x; i += 8) dot_rows<L, Block, 8>(row, x + i * x_stride, x_stride, per_row, y + i * y_stride + r, y_stride);
      }
      for (; i + 4 <= n_x; i += 4) dot_rows<L, Block, 4>(row, x + i * x_stride, x_stride, per_row, y + i * y_stride + r, y_stride);
      for (; i + 2 <= n_x; i += 2) dot_rows<L, Block, 2>(row, x + i * x_stride, x_stride, per_row, y + i * y_stride + r, y_stride);
      for (; i < n_x; ++i) dot_rows<L, Block, 1>(row, x + i * x_stride, x_stride, per_row, y + i * y_stride + r, y_stride);
    }
    return;
  }
  const std::size_t chunk = std::clamp<std::size_t>(gemm_chunk_blocks / 8 / per_row, 1, gemm_chunk_rows);
  interleaved_k_rows tile;
  float acc[gemm_chunk_rows][8];
  for (std::size_t i0 = 0; i0 < n_x; i0 += chunk) {
    const std::size_t ni = std::min(chunk, n_x - i0);
    for (std::size_t r0 = row_begin; r0 < row_end; r0 += 8) {
      const std::size_t nr = std::min<std::size_t>(8, row_end - r0);
      std::fill(&acc[0][0], &acc[0][0] + ni * 8, 0.0f);
      for (std::size_t b0 = 0; b0 < per_row; b0 += gemm_tile_super_blocks) {
        const std::size_t nb = std::min(gemm_tile_super_blocks, per_row - b0);
        interleave_k<L>(w + r0 * per_row, per_row, nr, b0, nb, tile);
        std::size_t i = 0;
        for (; i + C <= ni; i += C) interleaved_k_tile<L, Block, C>(tile, nb, x + (i0 + i) * x_stride + b0, x_stride, acc + i);
        for (; i < ni; ++i) interleaved_k_tile<L, Block, 1>(tile, nb, x + (i0 + i) * x_stride + b0, x_stride, acc + i);
      }
      for (std::size_t i = 0; i < ni; ++i) {
        for (std::size_t r = 0; r < nr; ++r) y[(i0 + i) * y_stride + r0 + r] = acc[i][r];
      }
    }
  }
}

// Y[i][r] = W[r] . X[i] for n_x activation rows (x_stride activation blocks apart; Y rows
// y_stride floats apart), other formats: each activation row takes dot() over a chunk of weight
// rows that stays in cache meanwhile, so every result is exactly dot()'s.
template <class Block, class Dot>
CHORUS_ALWAYS_INLINE void gemm(Dot dot_row, const Block* w, std::size_t row_begin, std::size_t row_end, std::size_t cols,
                               const activation_t<Block>* x, std::size_t n_x, std::size_t x_stride, float* y,
                               std::size_t y_stride) noexcept {
  const std::size_t per_row = cols / quant::block_traits<Block>::block_elements;
  constexpr std::size_t chunk = 16;
  for (std::size_t r0 = row_begin; r0 < row_end; r0 += chunk) {
    const std::size_t r1 = std::min(row_end, r0 + chunk);
    for (std::size_t i = 0; i < n_x; ++i) {
      for (std::size_t r = r0; r < r1; ++r) y[i * y_stride + r] = dot_row(w + r * per_row, x + i * x_stride, per_row);
    }
  }
}

// ---- float kernels of the forward pass ----

// e^x, |error| about 1 ulp: x = n ln 2 + r with |r| <= ln 2 / 2, e^r by a degree-6 polynomial
// (Cephes' expf coefficients), times 2^n. Above 88.3 it saturates at e^88.3; below -87.3 (where
// the result would leave the normal floats) it is 0.
template <class L>
CHORUS_ALWAYS_INLINE typename L::fvec exp(const typename L::fvec& input) noexcept {
  const auto low = L::splatv(-87.3f);
  const auto x = L::minv(L::maxv(input, low), L::splatv(88.3f));
  const auto n = L::roundv(L::mulv(x, L::splatv(1.44269504088896341f)));
  auto r = L::fmav(n, L::splatv(-0.693359375f), x);
  r = L::fmav(n, L::splatv(2.12194440e-4f), r);
  auto p = L::splatv(1.9875691500e-4f);
  p = L::fmav(p, r, L::splatv(1.3981999507e-3f));
  p = L::fmav(p, r, L::splatv(8.3334519073e-3f));
  p = L::fmav(p, r, L::splatv(4.1665795894e-2f));
  p = L::fmav(p, r, L::splatv(1.6666665459e-1f));
  p = L::fmav(p, r, L::splatv(5.0000001201e-1f));
  p = L::fmav(p, L::mulv(r, r), L::addv(r, L::splatv(1.0f)));
  return L::select_less(input, low, L::splatv(0.0f), L::mulv(p, L::pow2v(n)));
}

template <class L>
CHORUS_ALWAYS_INLINE void rmsnorm(const float* x, const float* weight, float* out, std::size_t n, float eps) noexcept {
  constexpr std::size_t width = L::fwidth;
  auto acc = L::splatv(0.0f);
  std::size_t i = 0;
  for (; i + width <= n; i += width) {
    const auto v = L::loadf(x + i);
    acc = L::fmav(v, v, acc);
  }
  float sum = L::hsumv(acc);
  for (; i < n; ++i) sum += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  const auto s = L::splatv(scale);
  for (i = 0; i + width <= n; i += width) L::storef(out + i, L::mulv(L::mulv(L::loadf(x + i), s), L::loadf(weight + i)));
  for (; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

template <class L>
CHORUS_ALWAYS_INLINE void softmax(float* x, std::size_t n) noexcept {
  constexpr std::size_t width = L::fwidth;
  float max = -INFINITY;
  std::size_t i = 0;
  if (n >= width) {
    auto m = L::loadf(x);
    for (i = width; i + width <= n; i += width) m = L::maxv(m, L::loadf(x + i));
    max = L::hmaxv(m);
  }
  for (; i < n; ++i) max = std::max(max, x[i]);
  const auto vmax = L::splatv(max);
  auto acc = L::splatv(0.0f);
  for (i = 0; i + width <= n; i += width) {
    const auto e = exp<L>(L::subv(L::loadf(x + i), vmax));
    L::storef(x + i, e);
    acc = L::addv(acc, e);
  }
  float sum = L::hsumv(acc);
  for (; i < n; ++i) sum += (x[i] = std::exp(x[i] - max));
  const float inv = 1.0f / sum;
  for (i = 0; i + width <= n; i += width) L::storef(x + i, L::mulv(L::loadf(x + i), L::splatv(inv)));
  for (; i < n; ++i) x[i] *= inv;
}

// out = gate / (1 + e^-gate) * up (silu when up is null); out may alias gate.
template <class L>
CHORUS_ALWAYS_INLINE void swiglu(const float* gate, const float* up, float* out, std::size_t n) noexcept {
  constexpr std::size_t width = L::fwidth;
  const auto one = L::splatv(1.0f);
  std::size_t i = 0;
  for (; i + width <= n; i += width) {
    const auto g = L::loadf(gate + i);
    auto v = L::divv(g, L::addv(one, exp<L>(L::subv(L::splatv(0.0f), g))));
    if (up != nullptr) v = L::mulv(v, L::loadf(up + i));
    L::storef(out + i, v);
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * (up != nullptr ? up[i] : 1.0f);
}

// y = y + a * x (axpy), y = y + x (a = 1 exactly: add), x = x * a (scale: y == nullptr).
template <class L>
CHORUS_ALWAYS_INLINE void axpy(float* y, float a, const float* x, std::size_t n) noexcept {
  constexpr std::size_t width = L::fwidth;
  const auto va = L::splatv(a);
  std::size_t i = 0;
  for (; i + width <= n; i += width) L::storef(y + i, L::fmav(va, L::loadf(x + i), L::loadf(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}
template <class L>
CHORUS_ALWAYS_INLINE void add(float* y, const float* x, std::size_t n) noexcept {
  constexpr std::size_t width = L::fwidth;
  std::size_t i = 0;
  for (; i + width <= n; i += width) L::storef(y + i, L::addv(L::loadf(y + i), L::loadf(x + i)));
  for (; i < n; ++i) y[i] += x[i];
}
template <class L>
CHORUS_ALWAYS_INLINE void scale(float* x, float factor, std::size_t n) noexcept {
  constexpr std::size_t width = L::fwidth;
  const auto f = L::splatv(factor);
  std::size_t i = 0;
  for (; i + width <= n; i += width) L::storef(x + i, L::mulv(L::loadf(x + i), f));
  for (; i < n; ++i) x[i] *= factor;
}

template <class L>
CHORUS_ALWAYS_INLINE void fp16_to_float(const fp16* in, float* out, std::size_t n) noexcept {
  constexpr std::size_t width = L::fwidth;
  std::size_t i = 0;
  for (; i + width <= n; i += width) L::storef(out + i, L::load_halves(in + i));
  for (; i < n; ++i) out[i] = L::half(in[i].bits);
}
template <class L>
CHORUS_ALWAYS_INLINE void float_to_fp16(const float* in, fp16* out, std::size_t n) noexcept {
  constexpr std::size_t width = L::fwidth;
  std::size_t i = 0;
  for (; i + width <= n; i += width) L::store_halves(out + i, L::loadf(in + i));
  for (; i < n; ++i) out[i] = fp16(in[i]);
}

// ---- activation quantizers ----
// The arithmetic of the oracles (quant::block_traits<block_q8_0>::quantize, quant::quantize_q8_1,
// quant::quantize_q8_k) lane by lane, so that every level writes the same bytes: the largest
// magnitude by max (exact in any order), one multiplication by the same inverse scale per value,
// rounding to nearest even. Blocks of 32 and 256 are whole vectors at every level.
template <class L>
CHORUS_ALWAYS_INLINE float abs_max(const float* x, std::size_t n) noexcept {
  auto m = L::absv(L::loadf(x));
  for (std::size_t i = L::fwidth; i < n; i += L::fwidth) m = L::maxv(m, L::absv(L::loadf(x + i)));
  return L::hmaxv(m);
}
template <class L>
CHORUS_ALWAYS_INLINE void round_to_int8s(const float* x, float scale, std::int8_t* out, std::size_t n) noexcept {
  const auto s = L::splatv(scale);
  const auto limit = L::splatv(127.0f);  // the oracles' clamp (quantize_q8_k); a no-op elsewhere
  for (std::size_t i = 0; i < n; i += L::fwidth) L::store_int8s(out + i, L::minv(L::roundv(L::mulv(L::loadf(x + i), s)), limit));
}

// One row of `cols` float activations into the format `Activation` that weights are multiplied with.
template <class L, class Activation>
CHORUS_ALWAYS_INLINE void quantize(const float* x, Activation* out, std::size_t cols) noexcept {
  if constexpr (std::is_same_v<Activation, float>) {
    std::memcpy(out, x, cols * sizeof(float));
  } else if constexpr (std::is_same_v<Activation, fp16>) {
    float_to_fp16<L>(x, out, cols);
  } else if constexpr (std::is_same_v<Activation, bf16>) {
    for (std::size_t i = 0; i < cols; ++i) out[i] = bf16(x[i]);
  } else if constexpr (std::is_same_v<Activation, quant::block_q8_0> || std::is_same_v<Activation, quant::block_q8_1>) {
    for (std::size_t b = 0; b < cols / 32; ++b) {
      const float* xb = x + b * 32;
      const float amax = abs_max<L>(xb, 32);
      const float d = amax / 127.0f;
      round_to_int8s<L>(xb, amax != 0.0f ? 127.0f / amax : 0.0f, out[b].qs, 32);
      out[b].d = fp16(d);
      if constexpr (std::is_same_v<Activation, quant::block_q8_1>) {
        int sum = 0;
        for (const std::int8_t q : out[b].qs) sum += q;
        out[b].s = fp16(d * static_cast<float>(sum));
      }
    }
  } else {
    static_assert(std::is_same_v<Activation, quant::block_q8_k>);
    for (std::size_t b = 0; b < cols / 256; ++b) {
      const float* xb = x + b * 256;
      quant::block_q8_k& y = out[b];
      const float amax = abs_max<L>(xb, 256);
      if (amax == 0.0f) {
        std::memset(&y, 0, sizeof y);
        continue;
      }
      // the signed value of the first element of largest magnitude, as the oracle picks it (the
      // bound: a NaN in the block makes amax NaN at some levels, and then nothing compares equal)
      std::size_t first = 0;
      while (first < 255 && !(std::fabs(xb[first]) == amax)) ++first;
      const float iscale = -127.0f / xb[first];
      round_to_int8s<L>(xb, iscale, y.qs, 256);
      for (int g = 0; g < 16; ++g) {
        int sum = 0;
        for (int i = 0; i < 16; ++i) sum += y.qs[g * 16 + i];
        y.bsums[g] = static_cast<std::int16_t>(sum);
      }
      y.d = 1.0f / iscale;
    }
  }
}

}  // namespace kernels
}  // namespace chorus::inline CHORUS_ABI::simd

CHORUS_KERNELS_END
