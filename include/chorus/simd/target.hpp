// chorus — how one header-only build carries the kernels of several instruction-set levels.
//
// GCC and Clang compile a function for an instruction set the command line does not enable when
// the function carries __attribute__((target("..."))); intrinsics of that set are usable inside
// it. The kernels are written once as templates over a *level* (simd/level_*.hpp: a struct of
// vector types and small operations); three rules make one template body serve every level:
//
//  1. Each level's operations carry that level's target attribute and are plain `inline`
//     functions (not always_inline: an always_inline intrinsic wrapper would have to be inlined
//     into the kernel template, which has no target of its own, and both compilers refuse).
//  2. The kernel templates (and the format decoders they call) are CHORUS_ALWAYS_INLINE and carry
//     no target; each level has entry points (dispatch.hpp) that carry its target and CHORUS_FLATTEN.
//     So the whole kernel lands inside the entry point, where the level's operations are legal
//     and get inlined; at -O0 the operations stay calls between functions of the same target.
//  3. Vector values are wrapped in structs ({__m256i v;}): a raw __m256i passed between a
//     function with AVX and one without is an ABI error under Clang and a warning under GCC,
//     while the wrapped values only ever meet inside the entry point after inlining.
//
// Lambdas inside kernels are marked CHORUS_LAMBDA_INLINE for the same reason as rule 2.
// The compiler flags still matter for everything outside the kernels, and a -march=native build
// lets the compiler use the native instructions inside every level too (so only a baseline
// build proves that a level's kernels run on a CPU with no more than that level).
#pragma once

#include <cstddef>
#include <utility>

#include "chorus/config.hpp"
#include "chorus/simd/isa.hpp"

#if defined(__GNUC__) || defined(__clang__)
#define CHORUS_TARGET(features) __attribute__((target(features)))
#define CHORUS_FLATTEN __attribute__((flatten))
#define CHORUS_NOINLINE __attribute__((noinline))
#else
#define CHORUS_TARGET(features)
#define CHORUS_FLATTEN
#define CHORUS_NOINLINE
#endif

#if CHORUS_HAVE_X86_LEVELS
#define CHORUS_TARGET_SSE4 CHORUS_TARGET("sse4.1,ssse3,popcnt")
#define CHORUS_TARGET_AVX2 CHORUS_TARGET("avx2,fma,f16c,bmi,bmi2,popcnt")
#define CHORUS_TARGET_AVX512 CHORUS_TARGET("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c,bmi,bmi2,popcnt")
#endif
#if CHORUS_HAVE_DOTPROD_LEVEL && !defined(__clang__)
#define CHORUS_TARGET_DOTPROD CHORUS_TARGET("arch=armv8.2-a+dotprod")
#elif CHORUS_HAVE_DOTPROD_LEVEL
#define CHORUS_TARGET_DOTPROD
#endif

// GCC notes that passing the 32/64-byte structs by value changed ABI in GCC 4.6 (-Wpsabi) when
// it compiles a kernel template's body on its own; that body is never called (rule 2).
#if defined(__GNUC__) && !defined(__clang__)
#define CHORUS_KERNELS_BEGIN _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wpsabi\"")
#define CHORUS_KERNELS_END _Pragma("GCC diagnostic pop")
#else
#define CHORUS_KERNELS_BEGIN
#define CHORUS_KERNELS_END
#endif

namespace chorus::inline CHORUS_ABI::simd {

// f(std::integral_constant<int, 0>{}), ..., f(std::integral_constant<int, N - 1>{}): loops over
// the groups of a block with compile-time indices (shift counts and shuffle constants).
template <int N, class F>
CHORUS_ALWAYS_INLINE void unroll(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) CHORUS_LAMBDA_INLINE {
    (f(std::integral_constant<int, I>{}), ...);
  }(std::make_integer_sequence<int, N>{});
}

}  // namespace chorus::inline CHORUS_ABI::simd
