// chorus — a model's weight tensors as typed views into the mapped GGUF file (no copies),
// with every shape checked against the hyper-parameters at load time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/gguf/file.hpp"
#include "chorus/model/hparams.hpp"
#include "chorus/quant/formats.hpp"

namespace chorus::inline CHORUS_ABI::model {

// A row-major matrix of `rows` rows of `cols` weights in one GGUF block format.
struct matrix {
  gguf::tensor_type type = gguf::tensor_type::f32;
  const std::byte* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t row_bytes = 0;
};

struct layer_weights {
  const float* attn_norm = nullptr;
  matrix wq, wk, wv, wo;
  const float* bq = nullptr;  // qwen2 attention biases (optional)
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* ffn_norm = nullptr;
  matrix w_gate, w_up, w_down;
};

struct weights {
  matrix token_embd;
  std::vector<layer_weights> layers;
  const float* output_norm = nullptr;
  matrix output;  // token_embd itself when the file has no output.weight (tied embeddings)
  const float* rope_freqs = nullptr;  // n_rot/2 divisors of the rotary frequencies (Llama 3.1), optional

  static weights from_gguf(const gguf::file& file, const hparams& h) {
    weights w;
    w.token_embd = get_matrix(file, "token_embd.weight", h.n_embd, h.n_vocab);
    w.output_norm = get_vector(file, "output_norm.weight", h.n_embd);
    w.output = file.find_tensor("output.weight") ? get_matrix(file, "output.weight", h.n_embd, h.n_vocab) : w.token_embd;
    if (file.find_tensor("rope_freqs.weight")) w.rope_freqs = get_vector(file, "rope_freqs.weight", h.n_rot / 2);
    w.layers.resize(h.n_layer);
    for (std::uint32_t i = 0; i < h.n_layer; ++i) {
      const std::string p = "blk." + std::to_string(i) + ".";
      auto& l = w.layers[i];
      l.attn_norm = get_vector(file, p + "attn_norm.weight", h.n_embd);
      l.wq = get_matrix(file, p + "attn_q.weight", h.n_embd, h.n_embd);
      l.wk = get_matrix(file, p + "attn_k.weight", h.n_embd, h.n_embd_kv());
      l.wv = get_matrix(file, p + "attn_v.weight", h.n_embd, h.n_embd_kv());
      l.wo = get_matrix(file, p + "attn_output.weight", h.n_embd, h.n_embd);
      if (file.find_tensor(p + "attn_q.bias")) {
        l.bq = get_vector(file, p + "attn_q.bias", h.n_embd);
        l.bk = get_vector(file, p + "attn_k.bias", h.n_embd_kv());
        l.bv = get_vector(file, p + "attn_v.bias", h.n_embd_kv());
      }
      l.ffn_norm = get_vector(file, p + "ffn_norm.weight", h.n_embd);
      l.w_gate = get_matrix(file, p + "ffn_gate.weight", h.n_embd, h.n_ff);
      l.w_up = get_matrix(file, p + "ffn_up.weight", h.n_embd, h.n_ff);
      l.w_down = get_matrix(file, p + "ffn_down.weight", h.n_ff, h.n_embd);
    }
    return w;
  }

 private:
  static const gguf::tensor_info& get_tensor(const gguf::file& file, const std::string& name) {
    const auto* t = file.find_tensor(name);
    if (t == nullptr) fail(errc::not_found, file.source_name(), ": the model has no tensor '", name, "'");
    return *t;
  }
  // GGUF shape [cols, rows]: cols contiguous.
  static matrix get_matrix(const gguf::file& file, const std::string& name, std::size_t cols, std::size_t rows) {
    const auto& t = get_tensor(file, name);
    if (t.n_dims != 2 || t.dims[0] != cols || t.dims[1] != rows) {
      fail(errc::bad_format, file.source_name(), ": tensor '", name, "' has shape [", t.dims[0], ", ", t.dims[1],
           "], expected [", cols, ", ", rows, "]");
    }
    if (!quant::is_compiled_in(t.type)) {
      quant::dispatch(t.type, [](auto) {});  // throws the explanation
    }
    return {t.type, t.data.data(), rows, cols, static_cast<std::size_t>(t.n_bytes / rows)};
  }
  static const float* get_vector(const gguf::file& file, const std::string& name, std::size_t n) {
    const auto& t = get_tensor(file, name);
    if (t.type != gguf::tensor_type::f32 || t.n_elements != n) {
      fail(errc::bad_format, file.source_name(), ": tensor '", name, "' must be F32 with ", n, " elements, found ",
           gguf::type_name(t.type), " with ", t.n_elements);
    }
    // Tensor data is aligned to general.alignment (>= 4 in practice); check rather than assume.
    if (reinterpret_cast<std::uintptr_t>(t.data.data()) % alignof(float) != 0) {
      fail(errc::bad_format, file.source_name(), ": tensor '", name, "' is not aligned for float access");
    }
    return reinterpret_cast<const float*>(t.data.data());
  }
};

}  // namespace chorus::inline CHORUS_ABI::model
