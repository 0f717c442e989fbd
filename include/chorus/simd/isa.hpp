// chorus — instruction-set levels: which ones this build contains, which ones the CPU has, and
// which one runs (the best the CPU has, or the one CHORUS_ISA names).
//
// Every level's kernels are compiled into every build (GCC/Clang target attributes, see
// target.hpp), whatever the compiler flags: a binary built for baseline x86-64 or armv8-a runs
// the AVX-512 VNNI, AVX2 or NEON dot-product kernels on a CPU that has them, and the scalar or
// SSE4.1 ones elsewhere. The choice is made once, at the first call of active_isa().
#pragma once

#include <array>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#define CHORUS_ARCH_X86 1
#else
#define CHORUS_ARCH_X86 0
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#define CHORUS_ARCH_ARM64 1
#else
#define CHORUS_ARCH_ARM64 0
#endif

// Levels above the baseline need GCC/Clang target attributes (MSVC builds run scalar on x86).
#if CHORUS_ARCH_X86 && (defined(__GNUC__) || defined(__clang__))
#define CHORUS_HAVE_X86_LEVELS 1
#include <cpuid.h>
#else
#define CHORUS_HAVE_X86_LEVELS 0
#endif
// GCC's arm_neon.h declares vdotq_s32 for target("+dotprod") functions; Clang 14's only when
// the whole build enables the feature.
#if CHORUS_ARCH_ARM64 && ((defined(__GNUC__) && !defined(__clang__)) || defined(__ARM_FEATURE_DOTPROD))
#define CHORUS_HAVE_DOTPROD_LEVEL 1
#else
#define CHORUS_HAVE_DOTPROD_LEVEL 0
#endif
#if CHORUS_ARCH_ARM64 && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace chorus::inline CHORUS_ABI::simd {

// In order of preference within an architecture (higher is better).
enum class isa : std::uint8_t {
  scalar,   // portable C++ (what the compiler makes of it for the build's baseline)
  sse4,     // x86: SSE4.1 + SSSE3 (pmaddubsw, pshufb)
  avx2,     // x86: AVX2 + FMA + F16C
  avx512,   // x86: AVX-512 F/BW/VL/DQ + VNNI (dpbusd, dpwssd)
  neon,     // armv8-a Advanced SIMD
  dotprod,  // armv8.2-a dot product (sdot)
};
inline constexpr std::array<isa, 6> all_isas = {isa::scalar, isa::sse4, isa::avx2, isa::avx512, isa::neon, isa::dotprod};

constexpr std::string_view isa_name(isa level) noexcept {
  switch (level) {
    case isa::scalar: return "scalar";
    case isa::sse4: return "sse4";
    case isa::avx2: return "avx2";
    case isa::avx512: return "avx512";
    case isa::neon: return "neon";
    case isa::dotprod: return "dotprod";
  }
  return "?";
}

// Whether this build contains the level's kernels (the architecture it was compiled for, and a
// compiler that can target the level from baseline code).
constexpr bool isa_compiled(isa level) noexcept {
  switch (level) {
    case isa::scalar: return true;
    case isa::sse4:
    case isa::avx2:
    case isa::avx512: return CHORUS_HAVE_X86_LEVELS != 0;
    case isa::neon: return CHORUS_ARCH_ARM64 != 0;
    case isa::dotprod: return CHORUS_HAVE_DOTPROD_LEVEL != 0;
  }
  return false;
}

namespace detail {

#if CHORUS_HAVE_X86_LEVELS
inline std::uint64_t xgetbv0() noexcept {
  std::uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}
#endif

// What the CPU (and the operating system, which must save the wider registers) supports.
inline bool cpu_has(isa level) noexcept {
  switch (level) {
    case isa::scalar: return true;
#if CHORUS_HAVE_X86_LEVELS
    case isa::sse4:
    case isa::avx2:
    case isa::avx512: {
      unsigned a = 0, b = 0, c = 0, d = 0;
      if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
      const bool ssse3 = c & (1u << 9), sse41 = c & (1u << 19), fma = c & (1u << 12), f16c = c & (1u << 29);
      const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
      if (level == isa::sse4) return ssse3 && sse41;
      if (!(osxsave && avx && fma && f16c && sse41)) return false;
      const std::uint64_t xcr0 = xgetbv0();
      if ((xcr0 & 0x6) != 0x6) return false;  // XMM and YMM state
      unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0;
      if (!__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7)) return false;
      const bool avx2 = b7 & (1u << 5), bmi2 = b7 & (1u << 8);
      if (level == isa::avx2) return avx2 && bmi2;
      const bool f = b7 & (1u << 16), dq = b7 & (1u << 17), bw = b7 & (1u << 30), vl = b7 & (1u << 31);
      const bool vnni = c7 & (1u << 11);
      return avx2 && bmi2 && f && dq && bw && vl && vnni && (xcr0 & 0xE0) == 0xE0;  // opmask, ZMM state
    }
#endif
#if CHORUS_ARCH_ARM64
    case isa::neon: return true;  // mandatory in armv8-a
    case isa::dotprod:
#if defined(__linux__)
      return (getauxval(AT_HWCAP) & (1ul << 20)) != 0;  // HWCAP_ASIMDDP
#elif defined(__ARM_FEATURE_DOTPROD)
      return true;
#else
      return false;
#endif
#endif
    default: return false;
  }
}

inline std::string usable_names() {
  std::string names;
  for (const isa level : all_isas) {
    if (!isa_compiled(level) || !cpu_has(level)) continue;
    if (!names.empty()) names += ", ";
    names += isa_name(level);
  }
  return names;
}

}  // namespace detail

// Whether kernels of `level` are in this build and can run on this CPU.
inline bool isa_usable(isa level) noexcept { return isa_compiled(level) && detail::cpu_has(level); }

// The best level this build has kernels for and this CPU runs.
inline isa best_isa() noexcept {
  isa best = isa::scalar;
  for (const isa level : all_isas) {
    if (isa_usable(level)) best = level;  // all_isas is in order of preference
  }
  return best;
}

// The level named by `name` (as CHORUS_ISA spells it), checked against this build and CPU.
inline isa parse_isa(std::string_view name) {
  for (const isa level : all_isas) {
    if (name != isa_name(level)) continue;
    if (!isa_compiled(level)) {
      fail(errc::unsupported, "CHORUS_ISA=", name, ": this build has no ", name,
           " kernels (it was compiled for another architecture or compiler); usable here: ", detail::usable_names());
    }
    if (!detail::cpu_has(level)) {
      fail(errc::unsupported, "CHORUS_ISA=", name, ": this CPU lacks the ", name, " instructions; usable here: ",
           detail::usable_names());
    }
    return level;
  }
  fail(errc::invalid_argument, "CHORUS_ISA=", name,
       ": unknown instruction-set level (scalar, sse4, avx2, avx512, neon, dotprod); usable here: ", detail::usable_names());
}

// The level the kernels run at: CHORUS_ISA from the environment if set (an unknown level, or one
// this CPU lacks, throws chorus::error the first time and on every later call), else best_isa().
// Chosen once per process.
inline isa active_isa() {
  struct choice {
    isa level = isa::scalar;
    std::string problem;  // non-empty: CHORUS_ISA was unusable
  };
  static const choice chosen = [] {
    choice c;
    const char* forced = std::getenv("CHORUS_ISA");
    if (forced == nullptr || *forced == '\0') {
      c.level = best_isa();
      return c;
    }
    try {
      c.level = parse_isa(forced);
    } catch (const error& e) {
      c.problem = e.what();
    }
    return c;
  }();
  if (!chosen.problem.empty()) fail(errc::unsupported, chosen.problem);
  return chosen.level;
}

}  // namespace chorus::inline CHORUS_ABI::simd
