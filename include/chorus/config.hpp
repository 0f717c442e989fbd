// chorus — configuration: ABI namespace, feature macros, compiled-in formats.
#pragma once

#include "chorus/version.hpp"

// Every declaration lives in chorus::inline CHORUS_ABI, so that two copies of chorus
// built with different versions or options can be linked into one program without
// ODR clashes. Open it with `namespace chorus::inline CHORUS_ABI { ... }`.
#ifndef CHORUS_ABI
#define CHORUS_ABI abi_v0
#endif

// Block formats compiled in: one list of block types, chorus::quant::compiled_formats
// (quant/formats.hpp). A game that ships one Q4_K_M model names its own list before including
// chorus:
//   #define CHORUS_FORMAT_LIST chorus::quant::formats<chorus::quant::block_q4_k, chorus::quant::block_q6_k>
// Without it, the list is built from these macros: all formats, or with CHORUS_FORMATS_MINIMAL
// only those whose CHORUS_WITH_<FORMAT> is 1 (F32 is always in the default list). A tensor in a
// format not compiled in is rejected at load time.
#ifdef CHORUS_FORMATS_MINIMAL
#define CHORUS_FORMAT_DEFAULT 0
#else
#define CHORUS_FORMAT_DEFAULT 1
#endif
#ifndef CHORUS_WITH_F16
#define CHORUS_WITH_F16 CHORUS_FORMAT_DEFAULT
#endif
#ifndef CHORUS_WITH_BF16
#define CHORUS_WITH_BF16 CHORUS_FORMAT_DEFAULT
#endif
#ifndef CHORUS_WITH_Q4_0
#define CHORUS_WITH_Q4_0 CHORUS_FORMAT_DEFAULT
#endif
#ifndef CHORUS_WITH_Q4_1
#define CHORUS_WITH_Q4_1 CHORUS_FORMAT_DEFAULT
#endif
#ifndef CHORUS_WITH_Q5_0
#define CHORUS_WITH_Q5_0 CHORUS_FORMAT_DEFAULT
#endif
#ifndef CHORUS_WITH_Q5_1
#define CHORUS_WITH_Q5_1 CHORUS_FORMAT_DEFAULT
#endif
#ifndef CHORUS_WITH_Q8_0
#define CHORUS_WITH_Q8_0 CHORUS_FORMAT_DEFAULT
#endif
#ifndef CHORUS_WITH_Q2_K
#define CHORUS_WITH_Q2_K CHORUS_FORMAT_DEFAULT
#endif
#ifndef CHORUS_WITH_Q3_K
#define CHORUS_WITH_Q3_K CHORUS_FORMAT_DEFAULT
#endif
#ifndef CHORUS_WITH_Q4_K
#define CHORUS_WITH_Q4_K CHORUS_FORMAT_DEFAULT
#endif
#ifndef CHORUS_WITH_Q5_K
#define CHORUS_WITH_Q5_K CHORUS_FORMAT_DEFAULT
#endif
#ifndef CHORUS_WITH_Q6_K
#define CHORUS_WITH_Q6_K CHORUS_FORMAT_DEFAULT
#endif
#ifndef CHORUS_WITH_IQ4_NL
#define CHORUS_WITH_IQ4_NL CHORUS_FORMAT_DEFAULT
#endif
#ifndef CHORUS_WITH_IQ4_XS
#define CHORUS_WITH_IQ4_XS CHORUS_FORMAT_DEFAULT
#endif

// Platform.
#if defined(_WIN32)
#define CHORUS_OS_WINDOWS 1
#else
#define CHORUS_OS_WINDOWS 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CHORUS_ALWAYS_INLINE inline __attribute__((always_inline))
#define CHORUS_LAMBDA_INLINE __attribute__((always_inline))
#define CHORUS_RESTRICT __restrict__
#define CHORUS_PREFETCH(address) __builtin_prefetch(address)
#elif defined(_MSC_VER)
#define CHORUS_ALWAYS_INLINE __forceinline
#define CHORUS_LAMBDA_INLINE
#define CHORUS_RESTRICT __restrict
#define CHORUS_PREFETCH(address) ((void)(address))
#else
#define CHORUS_ALWAYS_INLINE inline
#define CHORUS_LAMBDA_INLINE
#define CHORUS_RESTRICT
#define CHORUS_PREFETCH(address) ((void)(address))
#endif

namespace chorus::inline CHORUS_ABI {}
