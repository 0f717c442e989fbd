// chorus — a model's hyper-parameters, read from the GGUF metadata at run time.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/gguf/file.hpp"

namespace chorus::inline CHORUS_ABI::model {

// How the rotary embedding pairs a head's dimensions: llama/mistral GGUFs store Q/K rows
// permuted for adjacent pairs (x[2i], x[2i+1]); Qwen2 keeps the original layout and rotates
// x[i] with x[i + n_rot/2] ("NeoX" style).
enum class rope_pairing { adjacent, neox };

// Context-extension scaling of the rotary frequencies (GGUF `<arch>.rope.scaling.*`).
//   linear: positions multiplied by 1/factor.
//   yarn (Peng et al. 2023, "YaRN: Efficient Context Window Extension of Large Language
//   Models"): dimensions whose wavelength is short against the original context keep their
//   frequency, long ones are interpolated by 1/factor, a linear ramp between the correction
//   dimensions of beta_fast and beta_slow rotations; attention is sharpened by multiplying
//   cos/sin by attn_factor * (1 + 0.1 ln factor).
// Llama 3.1's scaling needs no key: its files carry per-dimension divisors of the frequencies
// as the tensor rope_freqs.weight (see weights).
struct rope_scaling {
  enum class kind { none, linear, yarn };
  kind type = kind::none;
  float factor = 1.0f;
  std::uint32_t original_context = 0;  // yarn: the training context before extension
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  float attn_factor = 1.0f;
};

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
  float rope_freq_scale = 1.0f;  // 1 / scaling factor (linear and yarn)
  rope_pairing rope_pairs = rope_pairing::adjacent;
  rope_scaling rope_scale;
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
    h.rope_pairs = h.architecture == "qwen2" ? rope_pairing::neox : rope_pairing::adjacent;
    if (const auto type = file.find<std::string>(p + "rope.scaling.type"); type && *type != "none") {
      auto& rs = h.rope_scale;
      if (*type == "linear") {
        rs.type = rope_scaling::kind::linear;
      } else if (*type == "yarn") {
        rs.type = rope_scaling::kind::yarn;
      } else {
        fail(errc::unsupported, file.source_name(), ": rope scaling '", *type, "' is not supported (none, linear and yarn are)");
      }
      rs.factor = file.get<float>(p + "rope.scaling.factor");
      if (!(rs.factor > 0.0f) || !std::isfinite(rs.factor)) {
        fail(errc::bad_format, file.source_name(), ": rope.scaling.factor must be positive");
      }
      h.rope_freq_scale = 1.0f / rs.factor;
      if (rs.type == rope_scaling::kind::yarn) {
        rs.original_context = file.find<std::uint32_t>(p + "rope.scaling.original_context_length").value_or(0);
        if (rs.original_context == 0) {
          fail(errc::bad_format, file.source_name(), ": yarn scaling needs ", p, "rope.scaling.original_context_length");
        }
        rs.beta_fast = file.find<float>(p + "rope.scaling.yarn_beta_fast").value_or(32.0f);
        rs.beta_slow = file.find<float>(p + "rope.scaling.yarn_beta_slow").value_or(1.0f);
        rs.attn_factor = file.find<float>(p + "rope.scaling.attn_factor").value_or(1.0f);
        if (!(rs.beta_fast > 0.0f) || !(rs.beta_slow > 0.0f) || !(rs.attn_factor > 0.0f)) {
          fail(errc::bad_format, file.source_name(), ": yarn beta_fast, beta_slow and attn_factor must be positive");
        }
      }
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
