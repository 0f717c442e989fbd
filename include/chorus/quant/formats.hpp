// chorus — the block formats compiled into this build, and the one switch from a GGUF type
// id to a compile-time block type.
//
// A program that ships one model format can define CHORUS_FORMATS_MINIMAL and the
// CHORUS_WITH_<FORMAT> it needs (see config.hpp): the other formats' kernels are then never
// instantiated, and a tensor in one of them is rejected when the model loads.
#pragma once

#include <string>
#include <type_traits>
#include <utility>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/gguf/tensor_type.hpp"
#include "chorus/quant/float_formats.hpp"
#include "chorus/quant/q2_k.hpp"
#include "chorus/quant/q3_k.hpp"
#include "chorus/quant/q4_0.hpp"
#include "chorus/quant/q4_1.hpp"
#include "chorus/quant/q4_k.hpp"
#include "chorus/quant/q5_0.hpp"
#include "chorus/quant/q5_1.hpp"
#include "chorus/quant/q5_k.hpp"
#include "chorus/quant/q6_k.hpp"
#include "chorus/quant/q8_0.hpp"

namespace chorus::inline CHORUS_ABI::quant {

// Whether chorus has kernels for the format at all (compiled in or not).
constexpr bool is_known_weight_format(gguf::tensor_type type) noexcept {
  using gguf::tensor_type;
  switch (type) {
    case tensor_type::f32: case tensor_type::f16: case tensor_type::bf16: case tensor_type::q4_0:
    case tensor_type::q4_1: case tensor_type::q5_0: case tensor_type::q5_1: case tensor_type::q8_0:
    case tensor_type::q2_k: case tensor_type::q3_k: case tensor_type::q4_k: case tensor_type::q5_k:
    case tensor_type::q6_k: return true;
    default: return false;
  }
}

// Calls f(std::type_identity<Block>{}) for the block type of `type`. Throws errc::unsupported
// for a type chorus has no kernels for, or one left out of this build.
template <class F>
decltype(auto) dispatch(gguf::tensor_type type, F&& f) {
  using gguf::tensor_type;
  switch (type) {
    case tensor_type::f32: return f(std::type_identity<float>{});
#if CHORUS_WITH_F16
    case tensor_type::f16: return f(std::type_identity<fp16>{});
#endif
#if CHORUS_WITH_BF16
    case tensor_type::bf16: return f(std::type_identity<bf16>{});
#endif
#if CHORUS_WITH_Q4_0
    case tensor_type::q4_0: return f(std::type_identity<block_q4_0>{});
#endif
#if CHORUS_WITH_Q4_1
    case tensor_type::q4_1: return f(std::type_identity<block_q4_1>{});
#endif
#if CHORUS_WITH_Q5_0
    case tensor_type::q5_0: return f(std::type_identity<block_q5_0>{});
#endif
#if CHORUS_WITH_Q5_1
    case tensor_type::q5_1: return f(std::type_identity<block_q5_1>{});
#endif
#if CHORUS_WITH_Q8_0
    case tensor_type::q8_0: return f(std::type_identity<block_q8_0>{});
#endif
#if CHORUS_WITH_Q2_K
    case tensor_type::q2_k: return f(std::type_identity<block_q2_k>{});
#endif
#if CHORUS_WITH_Q3_K
    case tensor_type::q3_k: return f(std::type_identity<block_q3_k>{});
#endif
#if CHORUS_WITH_Q4_K
    case tensor_type::q4_k: return f(std::type_identity<block_q4_k>{});
#endif
#if CHORUS_WITH_Q5_K
    case tensor_type::q5_k: return f(std::type_identity<block_q5_k>{});
#endif
#if CHORUS_WITH_Q6_K
    case tensor_type::q6_k: return f(std::type_identity<block_q6_k>{});
#endif
    default: break;
  }
  const std::string name(gguf::type_name(type));
  if (is_known_weight_format(type)) {
    fail(errc::unsupported, "tensor type ", name, " is not compiled into this build (define CHORUS_WITH_", name, ")");
  }
  fail(errc::unsupported, "tensor type ", name, " (id ", static_cast<unsigned>(type), ") is not supported by chorus");
}

inline bool is_compiled_in(gguf::tensor_type type) noexcept {
  try {
    return dispatch(type, [](auto) { return true; });
  } catch (const error&) {
    return false;
  }
}

}  // namespace chorus::inline CHORUS_ABI::quant
