// chorus — run-time dispatch: one table of kernel function pointers per instruction-set level,
// built at compile time for every compiled-in block format, and the table of the level that
// runs (simd::active_isa(): the best the CPU has, or CHORUS_ISA), chosen at first use.
//
// The entry points below are the only functions that carry a level's target attribute; each
// inlines (CHORUS_FLATTEN) one kernel template of kernels.hpp for its level. The public functions
// of dot.hpp, gemv.hpp and float_kernels.hpp call through active_kernels(); tests reach every
// level's table with kernels_for(level).
#pragma once

#include <cstddef>
#include <tuple>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/quant/formats.hpp"
#include "chorus/simd/isa.hpp"
#include "chorus/simd/kernels.hpp"
#include "chorus/simd/level_arm.hpp"
#include "chorus/simd/level_scalar.hpp"
#include "chorus/simd/level_x86.hpp"
#include "chorus/simd/target.hpp"

CHORUS_KERNELS_BEGIN

namespace chorus::inline CHORUS_ABI::simd {

// The kernels of one block format at one level.
template <class Block>
struct format_kernels {
  using activation = activation_t<Block>;
  float (*dot)(const Block* w, const activation* a, std::size_t n_blocks) noexcept;
  void (*gemv)(const Block* w, std::size_t row_begin, std::size_t row_end, std::size_t cols, const activation* x,
               float* y) noexcept;
  void (*gemm)(const Block* w, std::size_t row_begin, std::size_t row_end, std::size_t cols, const activation* x,
               std::size_t n_x, std::size_t x_stride, float* y, std::size_t y_stride) noexcept;
  // the vector decoder's output stored to memory (quantized formats; for tests)
  void (*unpack)(const Block& b, decoded_t<Block>& out) noexcept;
  // one row of `cols` float activations into the format these weights are multiplied with
  void (*quantize)(const float* x, activation* out, std::size_t cols) noexcept;
};

// The float kernels of the forward pass at one level.
struct float_kernels {
  float (*dot)(const float* a, const float* b, std::size_t n) noexcept;
  void (*rmsnorm)(const float* x, const float* weight, float* out, std::size_t n, float eps) noexcept;
  void (*softmax)(float* x, std::size_t n) noexcept;
  void (*swiglu)(const float* gate, const float* up, float* out, std::size_t n) noexcept;
  void (*axpy)(float* y, float a, const float* x, std::size_t n) noexcept;
  void (*add)(float* y, const float* x, std::size_t n) noexcept;
  void (*scale)(float* x, float factor, std::size_t n) noexcept;
  void (*fp16_to_float)(const fp16* in, float* out, std::size_t n) noexcept;
  void (*float_to_fp16)(const float* in, fp16* out, std::size_t n) noexcept;
};

template <class List>
struct basic_kernel_table;
template <class... Blocks>
struct basic_kernel_table<quant::formats<Blocks...>> {
  isa level;
  std::tuple<format_kernels<Blocks>...> formats;
  float_kernels floats;

  template <class Block>
  constexpr const format_kernels<Block>& of() const noexcept {
    static_assert(quant::formats<Blocks...>::template has<Block>,
                  "chorus: this block format is not in quant::compiled_formats (see CHORUS_FORMAT_LIST)");
    return std::get<format_kernels<Block>>(formats);
  }
};
using kernel_table = basic_kernel_table<quant::compiled_formats>;

// Entry points of a level: specialised once per level by CHORUS_LEVEL_ENTRIES.
template <class L>
struct entries;

#define CHORUS_LEVEL_ENTRIES(L, TARGET)                                                                           \
  template <>                                                                                                      \
  struct entries<L> {                                                                                              \
    template <class Block>                                                                                         \
    TARGET CHORUS_FLATTEN CHORUS_NOINLINE static float dot(const Block* w, const activation_t<Block>* a,           \
                                                           std::size_t n) noexcept {                               \
      return kernels::dot<L>(w, a, n);                                                                             \
    }                                                                                                              \
    template <class Block>                                                                                         \
    TARGET CHORUS_FLATTEN static void gemv(const Block* w, std::size_t r0, std::size_t r1, std::size_t cols,       \
                                           const activation_t<Block>* x, float* y) noexcept {                      \
      if constexpr (detail::small_block<Block>) {                                                                  \
        kernels::gemv_small<L>(&dot<Block>, w, r0, r1, cols, x, 1, 0, y, 0);                                       \
      } else {                                                                                                     \
        kernels::gemv(&dot<Block>, w, r0, r1, cols, x, y);                                                        \
      }                                                                                                            \
    }                                                                                                              \
    template <class Block>                                                                                         \
    TARGET CHORUS_FLATTEN static void gemm(const Block* w, std::size_t r0, std::size_t r1, std::size_t cols,       \
                                           const activation_t<Block>* x, std::size_t n_x, std::size_t x_stride,    \
                                           float* y, std::size_t y_stride) noexcept {                              \
      if constexpr (detail::small_block<Block>) {                                                                  \
        kernels::gemm_small<L>(&dot<Block>, w, r0, r1, cols, x, n_x, x_stride, y, y_stride);                      \
      } else if constexpr (detail::k_block<Block>) {                                                              \
        kernels::gemm_k<L>(w, r0, r1, cols, x, n_x, x_stride, y, y_stride);                                        \
      } else {                                                                                                     \
        kernels::gemm(&dot<Block>, w, r0, r1, cols, x, n_x, x_stride, y, y_stride);                                \
      }                                                                                                            \
    }                                                                                                              \
    template <class Block>                                                                                         \
    TARGET CHORUS_FLATTEN static void unpack(const Block& b, decoded_t<Block>& out) noexcept {                     \
      kernels::unpack<L>(b, out);                                                                                  \
    }                                                                                                              \
    template <class Activation>                                                                                    \
    TARGET CHORUS_FLATTEN static void quantize(const float* x, Activation* out, std::size_t cols) noexcept {       \
      kernels::quantize<L>(x, out, cols);                                                                          \
    }                                                                                                              \
    TARGET CHORUS_FLATTEN static float dot_f32(const float* a, const float* b, std::size_t n) noexcept {           \
      return kernels::dot<L, float>(a, b, n);                                                                      \
    }                                                                                                              \
    TARGET CHORUS_FLATTEN static void rmsnorm(const float* x, const float* w, float* out, std::size_t n,           \
                                              float eps) noexcept {                                                \
      kernels::rmsnorm<L>(x, w, out, n, eps);                                                                      \
    }                                                                                                              \
    TARGET CHORUS_FLATTEN static void softmax(float* x, std::size_t n) noexcept { kernels::softmax<L>(x, n); }    \
    TARGET CHORUS_FLATTEN static void swiglu(const float* g, const float* u, float* out, std::size_t n) noexcept { \
      kernels::swiglu<L>(g, u, out, n);                                                                            \
    }                                                                                                              \
    TARGET CHORUS_FLATTEN static void axpy(float* y, float a, const float* x, std::size_t n) noexcept {            \
      kernels::axpy<L>(y, a, x, n);                                                                                \
    }                                                                                                              \
    TARGET CHORUS_FLATTEN static void add(float* y, const float* x, std::size_t n) noexcept {                      \
      kernels::add<L>(y, x, n);                                                                                    \
    }                                                                                                              \
    TARGET CHORUS_FLATTEN static void scale(float* x, float f, std::size_t n) noexcept { kernels::scale<L>(x, f, n); } \
    TARGET CHORUS_FLATTEN static void fp16_to_float(const fp16* in, float* out, std::size_t n) noexcept {          \
      kernels::fp16_to_float<L>(in, out, n);                                                                       \
    }                                                                                                              \
    TARGET CHORUS_FLATTEN static void float_to_fp16(const float* in, fp16* out, std::size_t n) noexcept {          \
      kernels::float_to_fp16<L>(in, out, n);                                                                       \
    }                                                                                                              \
  };

CHORUS_LEVEL_ENTRIES(scalar_level, )
#if CHORUS_HAVE_X86_LEVELS
CHORUS_LEVEL_ENTRIES(sse4_level, CHORUS_TARGET_SSE4)
CHORUS_LEVEL_ENTRIES(avx2_level, CHORUS_TARGET_AVX2)
CHORUS_LEVEL_ENTRIES(avx512_level, CHORUS_TARGET_AVX512)
#endif
#if CHORUS_ARCH_ARM64
CHORUS_LEVEL_ENTRIES(neon_level, )
#if CHORUS_HAVE_DOTPROD_LEVEL
CHORUS_LEVEL_ENTRIES(dotprod_level, CHORUS_TARGET_DOTPROD)
#endif
#endif
#undef CHORUS_LEVEL_ENTRIES

namespace detail {
template <class L, class... Blocks>
constexpr kernel_table make_table(quant::formats<Blocks...>*) noexcept {
  using e = entries<L>;
  return kernel_table{L::level,
                      {format_kernels<Blocks>{&e::template dot<Blocks>, &e::template gemv<Blocks>, &e::template gemm<Blocks>,
                                              &e::template unpack<Blocks>, &e::template quantize<activation_t<Blocks>>}...},
                      float_kernels{&e::dot_f32, &e::rmsnorm, &e::softmax, &e::swiglu, &e::axpy, &e::add, &e::scale,
                                    &e::fp16_to_float, &e::float_to_fp16}};
}

// The table of level L. Its definition instantiates every kernel of every compiled-in format at
// that level: most of the machine code of chorus and about a minute of compile time per
// translation unit (docs/build-time.md). A program that includes chorus in several files can compile it once: define
// CHORUS_EXTERN_KERNELS in every file and CHORUS_DEFINE_KERNELS in exactly one of them
// (docs/build-time.md). Without either, every file has its own copy and the linker keeps one.
// A build with cores to spare can split that one file by level: one file per level, each defining
// one of CHORUS_DEFINE_KERNELS_SCALAR, _SSE4, _AVX2, _AVX512, _NEON, _DOTPROD (the other levels are
// then extern; a level this target has no code for compiles to nothing). Each level's table is
// a separate instantiation, so the files compile in parallel (chorus's own programs: src/kernels_*.cpp).
template <class L>
const kernel_table& table() noexcept;

#if defined(CHORUS_DEFINE_KERNELS_SCALAR) || defined(CHORUS_DEFINE_KERNELS_SSE4) || defined(CHORUS_DEFINE_KERNELS_AVX2) || \
    defined(CHORUS_DEFINE_KERNELS_AVX512) || defined(CHORUS_DEFINE_KERNELS_NEON) || defined(CHORUS_DEFINE_KERNELS_DOTPROD)
#define CHORUS_DEFINES_ONE_LEVEL 1
#else
#define CHORUS_DEFINES_ONE_LEVEL 0
#endif

#if !defined(CHORUS_EXTERN_KERNELS) || defined(CHORUS_DEFINE_KERNELS) || CHORUS_DEFINES_ONE_LEVEL
// Constant-initialized: no code runs to build a table.
template <class L>
inline constexpr kernel_table table_of = make_table<L>(static_cast<quant::compiled_formats*>(nullptr));

template <class L>
const kernel_table& table() noexcept {
  return table_of<L>;
}
#endif

// Each level: defined here (all levels, or this one), or extern (defined in another file).
#if defined(CHORUS_DEFINE_KERNELS) || defined(CHORUS_DEFINE_KERNELS_SCALAR)
template const kernel_table& table<scalar_level>() noexcept;
#elif defined(CHORUS_EXTERN_KERNELS) || CHORUS_DEFINES_ONE_LEVEL
extern template const kernel_table& table<scalar_level>() noexcept;
#endif
#if CHORUS_HAVE_X86_LEVELS
#if defined(CHORUS_DEFINE_KERNELS) || defined(CHORUS_DEFINE_KERNELS_SSE4)
template const kernel_table& table<sse4_level>() noexcept;
#elif defined(CHORUS_EXTERN_KERNELS) || CHORUS_DEFINES_ONE_LEVEL
extern template const kernel_table& table<sse4_level>() noexcept;
#endif
#if defined(CHORUS_DEFINE_KERNELS) || defined(CHORUS_DEFINE_KERNELS_AVX2)
template const kernel_table& table<avx2_level>() noexcept;
#elif defined(CHORUS_EXTERN_KERNELS) || CHORUS_DEFINES_ONE_LEVEL
extern template const kernel_table& table<avx2_level>() noexcept;
#endif
#if defined(CHORUS_DEFINE_KERNELS) || defined(CHORUS_DEFINE_KERNELS_AVX512)
template const kernel_table& table<avx512_level>() noexcept;
#elif defined(CHORUS_EXTERN_KERNELS) || CHORUS_DEFINES_ONE_LEVEL
extern template const kernel_table& table<avx512_level>() noexcept;
#endif
#endif
#if CHORUS_ARCH_ARM64
#if defined(CHORUS_DEFINE_KERNELS) || defined(CHORUS_DEFINE_KERNELS_NEON)
template const kernel_table& table<neon_level>() noexcept;
#elif defined(CHORUS_EXTERN_KERNELS) || CHORUS_DEFINES_ONE_LEVEL
extern template const kernel_table& table<neon_level>() noexcept;
#endif
#if CHORUS_HAVE_DOTPROD_LEVEL
#if defined(CHORUS_DEFINE_KERNELS) || defined(CHORUS_DEFINE_KERNELS_DOTPROD)
template const kernel_table& table<dotprod_level>() noexcept;
#elif defined(CHORUS_EXTERN_KERNELS) || CHORUS_DEFINES_ONE_LEVEL
extern template const kernel_table& table<dotprod_level>() noexcept;
#endif
#endif
#endif
#undef CHORUS_DEFINES_ONE_LEVEL
}  // namespace detail

// The kernels of `level`. Throws errc::unsupported if this build has none for it or the CPU
// lacks it.
inline const kernel_table& kernels_for(isa level) {
  if (!isa_usable(level)) (void)parse_isa(isa_name(level));  // throws the explanation
  switch (level) {
#if CHORUS_HAVE_X86_LEVELS
    case isa::sse4: return detail::table<sse4_level>();
    case isa::avx2: return detail::table<avx2_level>();
    case isa::avx512: return detail::table<avx512_level>();
#endif
#if CHORUS_ARCH_ARM64
    case isa::neon: return detail::table<neon_level>();
#if CHORUS_HAVE_DOTPROD_LEVEL
    case isa::dotprod: return detail::table<dotprod_level>();
#endif
#endif
    default: return detail::table<scalar_level>();
  }
}

// The kernels of the level that runs (active_isa()): chosen at the first call; throws
// chorus::error while CHORUS_ISA names a level that cannot run.
inline const kernel_table& active_kernels() {
  static const kernel_table& table = kernels_for(active_isa());
  return table;
}

}  // namespace chorus::inline CHORUS_ABI::simd

CHORUS_KERNELS_END
