// Models derived from a shipped fixture by a deterministic rewrite with chorus's GGUF writer:
// the same weights as another architecture (Qwen2: NeoX rotary pairing, attention biases) or
// with a RoPE scaling (YaRN keys, Llama 3.1 rope_freqs.weight). Their logits were checked
// against llama.cpp (tests/data/golden-logits/, produced from the files these functions write).
#pragma once

#include <chorus/chorus.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace chorus_test {

// Copies every metadata entry of `src` into `w`, renaming keys that start with `from_prefix`.
inline void copy_metadata(const chorus::gguf::file& src, chorus::gguf::writer& w, const std::string& from_prefix,
                          const std::string& to_prefix) {
  using chorus::gguf::value_type;
  for (const auto& e : src.metadata()) {
    if (e.key == "general.alignment") continue;  // the writer's default
    std::string key(e.key);
    if (key.starts_with(from_prefix)) key = to_prefix + key.substr(from_prefix.size());
    if (key == "general.architecture") {
      w.set(key, to_prefix.substr(0, to_prefix.size() - 1));
      continue;
    }
    if (e.type == value_type::array) {
      switch (e.element_type) {
        case value_type::string: w.set_array(key, src.get_array<std::string>(e.key)); break;
        case value_type::float32: w.set_array(key, src.get_array<float>(e.key)); break;
        case value_type::int32: w.set_array(key, src.get_array<std::int32_t>(e.key)); break;
        case value_type::uint32: w.set_array(key, src.get_array<std::uint32_t>(e.key)); break;
        default: throw std::runtime_error("copy_metadata: unhandled array type of " + key);
      }
      continue;
    }
    switch (e.type) {
      case value_type::string: w.set(key, src.get<std::string>(e.key)); break;
      case value_type::boolean: w.set(key, src.get<bool>(e.key)); break;
      case value_type::uint32: w.set(key, src.get<std::uint32_t>(e.key)); break;
      case value_type::int32: w.set(key, src.get<std::int32_t>(e.key)); break;
      case value_type::uint64: w.set(key, src.get<std::uint64_t>(e.key)); break;
      case value_type::float32: w.set(key, src.get<float>(e.key)); break;
      default: throw std::runtime_error("copy_metadata: unhandled type of " + key);
    }
  }
}

inline std::vector<std::uint64_t> dims_of(const chorus::gguf::tensor_info& t) {
  return std::vector<std::uint64_t>(t.dims.begin(), t.dims.begin() + t.n_dims);
}

// The rows of a Q or K matrix in the original (Hugging Face) order: llama GGUFs store, per
// head, row 2i + j at HF row j * head_dim/2 + i; Qwen2 GGUFs keep the HF order.
inline std::vector<std::byte> unpermute_rows(const chorus::gguf::tensor_info& t, std::size_t n_heads) {
  const std::size_t rows = t.dims[1], row_bytes = t.n_bytes / rows, head_dim = rows / n_heads, half = head_dim / 2;
  std::vector<std::byte> out(t.n_bytes);
  for (std::size_t h = 0; h < n_heads; ++h) {
    for (std::size_t i = 0; i < half; ++i) {
      for (std::size_t j = 0; j < 2; ++j) {
        const std::size_t from = h * head_dim + 2 * i + j, to = h * head_dim + j * half + i;
        std::memcpy(out.data() + to * row_bytes, t.data.data() + from * row_bytes, row_bytes);
      }
    }
  }
  return out;
}

// Small deterministic values for bias vectors.
inline std::vector<float> pattern(std::size_t n, float amplitude, unsigned seed) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto step = static_cast<int>(((i * 2654435761u + seed * 97u) >> 7) % 201);  // 0..200
    v[i] = amplitude * static_cast<float>(step - 100) / 100.0f;
  }
  return v;
}

// A llama-architecture file rewritten as "qwen2": keys renamed, Q/K rows in HF order (for
// NeoX pairing) and deterministic q/k/v biases added, as Qwen2 models have.
inline std::filesystem::path write_qwen2_variant(const std::filesystem::path& llama_file, const std::filesystem::path& out,
                                                 bool with_biases = true) {
  const auto src = chorus::gguf::file::open(llama_file);
  const auto n_head = src.get<std::uint32_t>("llama.attention.head_count");
  const auto n_head_kv = src.get<std::uint32_t>("llama.attention.head_count_kv");
  chorus::gguf::writer w;
  copy_metadata(src, w, "llama.", "qwen2.");
  unsigned seed = 1;
  for (const auto& t : src.tensors()) {
    const std::string name(t.name);
    if (name.ends_with("attn_q.weight") || name.ends_with("attn_k.weight")) {
      const auto rows = unpermute_rows(t, name.ends_with("attn_q.weight") ? n_head : n_head_kv);
      w.add_tensor(name, t.type, dims_of(t), rows);
      if (!with_biases) continue;
      const auto bias = pattern(t.dims[1], 0.5f, seed++);
      w.add_tensor(name.substr(0, name.size() - 6) + "bias", chorus::gguf::tensor_type::f32, {t.dims[1]}, std::as_bytes(std::span(bias)));
    } else if (name.ends_with("attn_v.weight")) {
      w.add_tensor(name, t.type, dims_of(t), t.data);
      if (!with_biases) continue;
      const auto bias = pattern(t.dims[1], 0.5f, seed++);
      w.add_tensor(name.substr(0, name.size() - 6) + "bias", chorus::gguf::tensor_type::f32, {t.dims[1]}, std::as_bytes(std::span(bias)));
    } else {
      w.add_tensor(name, t.type, dims_of(t), t.data);
    }
  }
  w.write(out);
  return out;
}

// The same weights with YaRN scaling keys (factor 4 over an original context of 64 positions,
// so that the ramp between the correction dimensions falls inside the rotated dimensions).
inline std::filesystem::path write_yarn_variant(const std::filesystem::path& llama_file, const std::filesystem::path& out) {
  const auto src = chorus::gguf::file::open(llama_file);
  chorus::gguf::writer w;
  copy_metadata(src, w, "llama.", "llama.");
  w.set("llama.rope.scaling.type", std::string_view("yarn"));
  w.set("llama.rope.scaling.factor", 4.0f);
  w.set("llama.rope.scaling.original_context_length", std::uint32_t{64});
  for (const auto& t : src.tensors()) w.add_tensor(t.name, t.type, dims_of(t), t.data);
  w.write(out);
  return out;
}

// The same weights with Llama 3.1 style per-dimension frequency divisors (rope_freqs.weight).
inline std::filesystem::path write_rope_freqs_variant(const std::filesystem::path& llama_file, const std::filesystem::path& out) {
  const auto src = chorus::gguf::file::open(llama_file);
  const auto n_rot = src.find<std::uint32_t>("llama.rope.dimension_count")
                         .value_or(src.get<std::uint32_t>("llama.embedding_length") / src.get<std::uint32_t>("llama.attention.head_count"));
  chorus::gguf::writer w;
  copy_metadata(src, w, "llama.", "llama.");
  std::vector<float> divisors(n_rot / 2);
  for (std::size_t i = 0; i < divisors.size(); ++i) divisors[i] = i < divisors.size() / 3 ? 1.0f : (i < 2 * divisors.size() / 3 ? 2.5f : 8.0f);
  w.add_tensor("rope_freqs.weight", chorus::gguf::tensor_type::f32, {divisors.size()}, std::as_bytes(std::span(divisors)));
  for (const auto& t : src.tensors()) w.add_tensor(t.name, t.type, dims_of(t), t.data);
  w.write(out);
  return out;
}

// The same weights with a sliding attention window of `window` positions (Mistral's
// llama.attention.sliding_window): each token attends to itself and the window - 1 before it.
inline std::filesystem::path write_sliding_window_variant(const std::filesystem::path& llama_file,
                                                          const std::filesystem::path& out, std::uint32_t window = 5) {
  const auto src = chorus::gguf::file::open(llama_file);
  chorus::gguf::writer w;
  copy_metadata(src, w, "llama.", "llama.");
  w.set("llama.attention.sliding_window", window);
  for (const auto& t : src.tensors()) w.add_tensor(t.name, t.type, dims_of(t), t.data);
  w.write(out);
  return out;
}

}  // namespace chorus_test
