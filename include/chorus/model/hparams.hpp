// chorus — a model's hyper-parameters, read from the GGUF metadata at run time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/gguf/file.hpp"

namespace chorus::inline CHORUS_ABI::model {

struct hparams {
  std::string architecture;  // general.architecture: llama, mistral, qwen2
  std::string name;          // general.name, if present
  std::uint32_t n_vocab = 0;
  std::uint32_t n_ctx_train = 0;
  std::uint32_t n_embd = 0;
  std::uint32_t n_layer = 0;
  std::uint32_t n_ff = 0;
  std::uint32_t n_head = 0;
  std::uint32_t n_head_kv = 0;
  std::uint32_t head_dim = 0;
  std::uint32_t n_rot = 0;  // rotated dimensions per head
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // linear scaling: positions are multiplied by this
  float rms_eps = 1e-5f;
  std::optional<std::uint32_t> sliding_window;

  std::uint32_t n_embd_kv() const noexcept { return n_head_kv * head_dim; }
  std::uint32_t n_group() const noexcept { return n_head / n_head_kv; }

  static hparams from_gguf(const gguf::file& file) {
    hparams h;
    h.architecture = file.get<std::string>("general.architecture");
    if (h.architecture != "llama" && h.architecture != "mistral" && h.architecture != "qwen2") {
      fail(errc::unsupported, file.source_name(), ": architecture '", h.architecture,
           "' is not supported (chorus runs llama, mistral and qwen2)");
    }
    h.name = file.find<std::string>("general.name").value_or(h.architecture);
    const std::string p = h.architecture + ".";
    h.n_embd = file.get<std::uint32_t>(p + "embedding_length");
    h.n_layer = file.get<std::uint32_t>(p + "block_count");
    h.n_ff = file.get<std::uint32_t>(p + "feed_forward_length");
    h.n_head = file.get<std::uint32_t>(p + "attention.head_count");
    h.n_head_kv = file.find<std::uint32_t>(p + "attention.head_count_kv").value_or(h.n_head);
    h.n_ctx_train = file.find<std::uint32_t>(p + "context_length").value_or(2048);
    h.rms_eps = file.find<float>(p + "attention.layer_norm_rms_epsilon").value_or(1e-5f);
    h.rope_freq_base = file.find<float>(p + "rope.freq_base").value_or(10000.0f);
    if (const auto type = file.find<std::string>(p + "rope.scaling.type"); type && *type != "none") {
      if (*type != "linear") {
        fail(errc::unsupported, file.source_name(), ": rope scaling '", *type, "' is not supported yet (linear is)");
      }
      const float factor = file.get<float>(p + "rope.scaling.factor");
      if (!(factor > 0.0f)) fail(errc::bad_format, file.source_name(), ": rope.scaling.factor must be positive");
      h.rope_freq_scale = 1.0f / factor;
    }
    h.sliding_window = file.find<std::uint32_t>(p + "attention.sliding_window");
    if (h.n_embd == 0 || h.n_layer == 0 || h.n_head == 0 || h.n_head_kv == 0 || h.n_ff == 0) {
      fail(errc::bad_format, file.source_name(), ": a hyper-parameter is zero (embedding_length, block_count, ",
           "feed_forward_length, head_count and head_count_kv must be positive)");
    }
    if (h.n_embd % h.n_head != 0) {
      fail(errc::bad_format, file.source_name(), ": embedding_length ", h.n_embd, " is not a multiple of head_count ",
           h.n_head);
    }
    if (h.n_head % h.n_head_kv != 0) {
      fail(errc::bad_format, file.source_name(), ": head_count ", h.n_head, " is not a multiple of head_count_kv ",
           h.n_head_kv);
    }
    h.head_dim = h.n_embd / h.n_head;
    h.n_rot = file.find<std::uint32_t>(p + "rope.dimension_count").value_or(h.head_dim);
    if (h.n_rot > h.head_dim || h.n_rot % 2 != 0) {
      fail(errc::bad_format, file.source_name(), ": rope.dimension_count ", h.n_rot, " must be even and at most ",
           h.head_dim);
    }
    if (file.has("tokenizer.ggml.tokens")) {
      h.n_vocab = static_cast<std::uint32_t>(file.array_size("tokenizer.ggml.tokens"));
    }
    if (const auto v = file.find<std::uint32_t>(p + "vocab_size")) h.n_vocab = *v;
    if (h.n_vocab == 0) h.n_vocab = static_cast<std::uint32_t>(file.tensor("token_embd.weight").dims[1]);
    return h;
  }
};

}  // namespace chorus::inline CHORUS_ABI::model
