// chorus — rounding and small helpers shared by the quantizers.
#pragma once

#include <cmath>
#include <cstdint>

#include "chorus/config.hpp"

namespace chorus::inline CHORUS_ABI::quant {

// Round to nearest, ties to even (the behaviour of the x86 vector rounding instructions the
// reference implementation uses when it quantizes activations).
inline int nearest_even(float x) noexcept { return static_cast<int>(std::nearbyint(x)); }

}  // namespace chorus::inline CHORUS_ABI::quant
