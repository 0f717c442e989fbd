// chorus — the block formats compiled into this build, as one list of block types, and the
// dispatch from a GGUF type id to a compile-time block type, a fold over that list.
//
// The list is quant::compiled_formats. A program that ships one model format names its own
// before including chorus:
//   #define CHORUS_FORMAT_LIST chorus::quant::formats<chorus::quant::block_q4_k, chorus::quant::block_q6_k>
// (or, the older way, CHORUS_FORMATS_MINIMAL and the CHORUS_WITH_<FORMAT> it needs, which build
// the default list: see config.hpp). The other formats' kernels are then never instantiated, and
// a tensor in one of them is rejected when the model loads.
#pragma once

#include <string>
#include <type_traits>
#include <utility>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/gguf/tensor_type.hpp"
#include "chorus/quant/float_formats.hpp"
#include "chorus/quant/iq4_nl.hpp"
#include "chorus/quant/iq4_xs.hpp"
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

// A list of block formats: the element types (float, fp16, bf16) and block structs whose
// block_traits name a GGUF type id.
template <class... Blocks>
struct formats {
  static constexpr std::size_t size = sizeof...(Blocks);
  template <class Block>
  static constexpr bool has = (std::is_same_v<Block, Blocks> || ...);
  static constexpr bool contains(gguf::tensor_type type) noexcept { return ((block_traits<Blocks>::type == type) || ...); }
};

namespace detail {
template <class... Lists>
struct concat;
template <>
struct concat<> {
  using type = formats<>;
};
template <class... A>
struct concat<formats<A...>> {
  using type = formats<A...>;
};
template <class... A, class... B, class... Rest>
struct concat<formats<A...>, formats<B...>, Rest...> {
  using type = typename concat<formats<A..., B...>, Rest...>::type;
};
template <bool Included, class Block>
using optional_format = std::conditional_t<Included, formats<Block>, formats<>>;
}  // namespace detail

// The list the CHORUS_WITH_<FORMAT> macros select (all formats by default).
using default_formats = typename detail::concat<
    formats<float>, detail::optional_format<CHORUS_WITH_F16, fp16>, detail::optional_format<CHORUS_WITH_BF16, bf16>,
    detail::optional_format<CHORUS_WITH_Q4_0, block_q4_0>, detail::optional_format<CHORUS_WITH_Q4_1, block_q4_1>,
    detail::optional_format<CHORUS_WITH_Q5_0, block_q5_0>, detail::optional_format<CHORUS_WITH_Q5_1, block_q5_1>,
    detail::optional_format<CHORUS_WITH_Q8_0, block_q8_0>, detail::optional_format<CHORUS_WITH_Q2_K, block_q2_k>,
    detail::optional_format<CHORUS_WITH_Q3_K, block_q3_k>, detail::optional_format<CHORUS_WITH_Q4_K, block_q4_k>,
    detail::optional_format<CHORUS_WITH_Q5_K, block_q5_k>, detail::optional_format<CHORUS_WITH_Q6_K, block_q6_k>,
    detail::optional_format<CHORUS_WITH_IQ4_NL, block_iq4_nl>, detail::optional_format<CHORUS_WITH_IQ4_XS, block_iq4_xs>>::type;

#ifdef CHORUS_FORMAT_LIST
using compiled_formats = CHORUS_FORMAT_LIST;
#else
using compiled_formats = default_formats;
#endif
static_assert(compiled_formats::size > 0, "chorus: the list of compiled-in block formats is empty");

namespace detail {
template <class List>
struct only_quantizable;
template <class... Blocks>
struct only_quantizable<formats<Blocks...>> {
  using type = typename concat<std::conditional_t<quantizable_format<Blocks>, formats<Blocks>, formats<>>...>::type;
};
}  // namespace detail
// The compiled-in formats chorus can also write (all but the decoder-only ones).
using quantizable_formats = typename detail::only_quantizable<compiled_formats>::type;

// Whether chorus has kernels for the format at all (compiled in or not).
constexpr bool is_known_weight_format(gguf::tensor_type type) noexcept {
  using gguf::tensor_type;
  switch (type) {
    case tensor_type::f32: case tensor_type::f16: case tensor_type::bf16: case tensor_type::q4_0:
    case tensor_type::q4_1: case tensor_type::q5_0: case tensor_type::q5_1: case tensor_type::q8_0:
    case tensor_type::q2_k: case tensor_type::q3_k: case tensor_type::q4_k: case tensor_type::q5_k:
    case tensor_type::q6_k: case tensor_type::iq4_nl: case tensor_type::iq4_xs: return true;
    default: return false;
  }
}

// Whether `type` is in this build's list (no exception, no dispatch).
constexpr bool is_compiled_in(gguf::tensor_type type) noexcept { return compiled_formats::contains(type); }

[[noreturn]] inline void fail_not_compiled_in(gguf::tensor_type type) {
  const std::string name(gguf::type_name(type));
  if (is_known_weight_format(type)) {
    fail(errc::unsupported, "tensor type ", name,
         " is not compiled into this build (its block type is not in chorus::quant::compiled_formats: "
         "see CHORUS_FORMAT_LIST and CHORUS_WITH_",
         name, " in chorus/config.hpp)");
  }
  fail(errc::unsupported, "tensor type ", name, " (id ", static_cast<unsigned>(type), ") is not supported by chorus");
}

namespace detail {
template <class List>
struct dispatcher;
template <class First, class... Rest>
struct dispatcher<formats<First, Rest...>> {
  template <class F>
  static decltype(auto) call(gguf::tensor_type type, F& f) {
    if (type == block_traits<First>::type) return f(std::type_identity<First>{});
    if constexpr (sizeof...(Rest) == 0) {
      fail_not_compiled_in(type);
    } else {
      return dispatcher<formats<Rest...>>::call(type, f);
    }
  }
};
}  // namespace detail

// Calls f(std::type_identity<Block>{}) for the block type of `type` in List (by default this
// build's list): a fold over the list through the traits' GGUF type id. Throws errc::unsupported
// for a type chorus has no kernels for, or one left out of the list.
template <class List = compiled_formats, class F>
decltype(auto) dispatch(gguf::tensor_type type, F&& f) {
  return detail::dispatcher<List>::call(type, f);
}

}  // namespace chorus::inline CHORUS_ABI::quant
