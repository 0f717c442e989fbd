// chorus — the tensor type ids of the GGUF format (ggml_type), and their block geometry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "chorus/config.hpp"

namespace chorus::inline CHORUS_ABI::gguf {

enum class tensor_type : std::uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  // 4 and 5 were Q4_2 / Q4_3, removed from the format
  q5_0 = 6,
  q5_1 = 7,
  q8_0 = 8,
  q8_1 = 9,
  q2_k = 10,
  q3_k = 11,
  q4_k = 12,
  q5_k = 13,
  q6_k = 14,
  q8_k = 15,
  iq2_xxs = 16,
  iq2_xs = 17,
  iq3_xxs = 18,
  iq1_s = 19,
  iq4_nl = 20,
  iq3_s = 21,
  iq2_s = 22,
  iq4_xs = 23,
  i8 = 24,
  i16 = 25,
  i32 = 26,
  i64 = 27,
  f64 = 28,
  iq1_m = 29,
  bf16 = 30,
  tq1_0 = 34,
  tq2_0 = 35,
};

struct tensor_type_info {
  std::string_view name;
  std::uint32_t block_elements;  // elements per block (1 for plain scalar types)
  std::uint32_t block_bytes;     // bytes per block
};

// Geometry of every type id the format defines, or nullopt for an unknown id. Needed by
// the reader to bounds-check tensors even in formats chorus cannot compute with.
constexpr std::optional<tensor_type_info> type_info(tensor_type type) noexcept {
  switch (type) {
    case tensor_type::f32: return tensor_type_info{"F32", 1, 4};
    case tensor_type::f16: return tensor_type_info{"F16", 1, 2};
    case tensor_type::q4_0: return tensor_type_info{"Q4_0", 32, 18};
    case tensor_type::q4_1: return tensor_type_info{"Q4_1", 32, 20};
    case tensor_type::q5_0: return tensor_type_info{"Q5_0", 32, 22};
    case tensor_type::q5_1: return tensor_type_info{"Q5_1", 32, 24};
    case tensor_type::q8_0: return tensor_type_info{"Q8_0", 32, 34};
    case tensor_type::q8_1: return tensor_type_info{"Q8_1", 32, 36};
    case tensor_type::q2_k: return tensor_type_info{"Q2_K", 256, 84};
    case tensor_type::q3_k: return tensor_type_info{"Q3_K", 256, 110};
    case tensor_type::q4_k: return tensor_type_info{"Q4_K", 256, 144};
    case tensor_type::q5_k: return tensor_type_info{"Q5_K", 256, 176};
    case tensor_type::q6_k: return tensor_type_info{"Q6_K", 256, 210};
    case tensor_type::q8_k: return tensor_type_info{"Q8_K", 256, 292};
    case tensor_type::iq2_xxs: return tensor_type_info{"IQ2_XXS", 256, 66};
    case tensor_type::iq2_xs: return tensor_type_info{"IQ2_XS", 256, 74};
    case tensor_type::iq3_xxs: return tensor_type_info{"IQ3_XXS", 256, 98};
    case tensor_type::iq1_s: return tensor_type_info{"IQ1_S", 256, 50};
    case tensor_type::iq4_nl: return tensor_type_info{"IQ4_NL", 32, 18};
    case tensor_type::iq3_s: return tensor_type_info{"IQ3_S", 256, 110};
    case tensor_type::iq2_s: return tensor_type_info{"IQ2_S", 256, 82};
    case tensor_type::iq4_xs: return tensor_type_info{"IQ4_XS", 256, 136};
    case tensor_type::i8: return tensor_type_info{"I8", 1, 1};
    case tensor_type::i16: return tensor_type_info{"I16", 1, 2};
    case tensor_type::i32: return tensor_type_info{"I32", 1, 4};
    case tensor_type::i64: return tensor_type_info{"I64", 1, 8};
    case tensor_type::f64: return tensor_type_info{"F64", 1, 8};
    case tensor_type::iq1_m: return tensor_type_info{"IQ1_M", 256, 56};
    case tensor_type::bf16: return tensor_type_info{"BF16", 1, 2};
    case tensor_type::tq1_0: return tensor_type_info{"TQ1_0", 256, 54};
    case tensor_type::tq2_0: return tensor_type_info{"TQ2_0", 256, 66};
  }
  return std::nullopt;
}

constexpr std::string_view type_name(tensor_type type) noexcept {
  const auto info = type_info(type);
  return info ? info->name : std::string_view("unknown");
}

}  // namespace chorus::inline CHORUS_ABI::gguf
