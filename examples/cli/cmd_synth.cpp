// chorus synth — write a synthetic model of a real architecture's shape (random weights,
// a real tokenizer) for speed measurements: chorus's GGUF writer and quantizers at work.
#include <chorus/chorus.hpp>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <vector>

#include "command.hpp"

namespace cmd_synth {

using namespace chorus;

struct shape {
  const char* name;
  std::uint32_t n_embd, n_layer, n_ff, n_head, n_head_kv;
};
constexpr shape shapes[] = {
    {"llama-3.2-1b", 2048, 16, 8192, 32, 8},  // Llama-3.2-1B, with the GPT-2 vocabulary below
    {"tiny", 256, 4, 768, 8, 2},
};

// Fast deterministic pseudo-normal values (sum of uniforms): the shape of the distribution
// does not matter for speed, generating a billion values quickly does.
struct noise {
  std::uint64_t state;
  float next() {
    float sum = 0.0f;
    for (int k = 0; k < 4; ++k) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      sum += static_cast<float>(state >> 40) * (1.0f / 16777216.0f);
    }
    return (sum - 2.0f) * 1.732f;  // mean 0, variance ~1
  }
};

std::vector<std::byte> random_tensor(gguf::tensor_type type, std::size_t rows, std::size_t cols, float scale, std::uint64_t seed) {
  return quant::dispatch(type, [&](auto tag) {
    using Block = typename decltype(tag)::type;
    using traits = quant::block_traits<Block>;
    std::vector<std::byte> out(rows * cols / traits::block_elements * sizeof(Block));
    std::vector<float> row(cols);
    noise rng{seed * 0x9E3779B97F4A7C15ull + 1};
    if constexpr (quant::quantizable_format<Block>) {
      for (std::size_t r = 0; r < rows; ++r) {
        for (auto& v : row) v = rng.next() * scale;
        traits::quantize(row.data(), reinterpret_cast<Block*>(out.data()) + r * (cols / traits::block_elements), cols);
      }
    } else {
      throw chorus_cli::usage_error("chorus reads " + std::string(gguf::type_name(type)) + " but cannot quantize to it");
    }
    return out;
  });
}

gguf::tensor_type type_from_name(const std::string& name) {
  for (int id = 0; id < 40; ++id) {
    const auto t = static_cast<gguf::tensor_type>(id);
    std::string n(gguf::type_name(t));
    for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (n == name && quant::quantizable_formats::contains(t)) return t;
  }
  throw chorus_cli::usage_error("unknown or unsupported --type '" + name + "' (e.g. q4_0, q8_0, q4_k, q6_k, f16)");
}

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments a(args);
  const auto shape_name = a.get("shape").value_or("llama-3.2-1b");
  const auto type = type_from_name(a.get("type").value_or("q4_0"));
  const auto vocab_path = a.require("vocab");
  const auto out_path = a.require("out");
  a.reject_unknown();
  const shape* s = nullptr;
  for (const auto& candidate : shapes) {
    if (shape_name == candidate.name) s = &candidate;
  }
  if (!s) throw chorus_cli::usage_error("unknown --shape '" + shape_name + "' (llama-3.2-1b, tiny)");

  const auto vocab = gguf::file::open(vocab_path);
  const auto tokens = vocab.get_array<std::string>("tokenizer.ggml.tokens");
  gguf::writer w;
  w.set("general.architecture", std::string_view("llama"));
  w.set("general.name", std::string("synthetic ") + s->name);
  w.set("llama.context_length", std::uint32_t{4096});
  w.set("llama.embedding_length", s->n_embd);
  w.set("llama.block_count", s->n_layer);
  w.set("llama.feed_forward_length", s->n_ff);
  w.set("llama.attention.head_count", s->n_head);
  w.set("llama.attention.head_count_kv", s->n_head_kv);
  w.set("llama.rope.dimension_count", s->n_embd / s->n_head);
  w.set("llama.rope.freq_base", 500000.0f);
  w.set("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set("llama.vocab_size", static_cast<std::uint32_t>(tokens.size()));
  for (const auto& e : vocab.metadata()) {
    if (!e.key.starts_with("tokenizer.")) continue;
    if (e.type == gguf::value_type::array) {
      if (e.element_type == gguf::value_type::string) w.set_array(e.key, vocab.get_array<std::string>(e.key));
      else if (e.element_type == gguf::value_type::float32) w.set_array(e.key, vocab.get_array<float>(e.key));
      else w.set_array(e.key, vocab.get_array<std::int32_t>(e.key));
    } else if (e.type == gguf::value_type::string) {
      w.set(e.key, vocab.get<std::string>(e.key));
    } else if (e.type == gguf::value_type::boolean) {
      w.set(e.key, vocab.get<bool>(e.key));
    } else {
      w.set(e.key, vocab.get<std::uint32_t>(e.key));
    }
  }
  const std::size_t d = s->n_embd, dkv = s->n_embd / s->n_head * s->n_head_kv, ff = s->n_ff;
  std::uint64_t seed = 1;
  const std::vector<float> ones(std::max(d, ff), 1.0f);
  auto norm = [&](const std::string& name) { w.add_tensor(name, gguf::tensor_type::f32, {d}, std::as_bytes(std::span(ones.data(), d))); };
  std::fprintf(stderr, "writing %s (%s, %s)...\n", out_path.c_str(), s->name, std::string(gguf::type_name(type)).c_str());
  w.add_tensor("token_embd.weight", type, {d, tokens.size()}, random_tensor(type, tokens.size(), d, 0.05f, seed++));
  norm("output_norm.weight");
  for (std::uint32_t l = 0; l < s->n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight");
    norm(p + "ffn_norm.weight");
    w.add_tensor(p + "attn_q.weight", type, {d, d}, random_tensor(type, d, d, 0.02f, seed++));
    w.add_tensor(p + "attn_k.weight", type, {d, dkv}, random_tensor(type, dkv, d, 0.02f, seed++));
    w.add_tensor(p + "attn_v.weight", type, {d, dkv}, random_tensor(type, dkv, d, 0.02f, seed++));
    w.add_tensor(p + "attn_output.weight", type, {d, d}, random_tensor(type, d, d, 0.02f, seed++));
    w.add_tensor(p + "ffn_gate.weight", type, {d, ff}, random_tensor(type, ff, d, 0.02f, seed++));
    w.add_tensor(p + "ffn_up.weight", type, {d, ff}, random_tensor(type, ff, d, 0.02f, seed++));
    w.add_tensor(p + "ffn_down.weight", type, {ff, d}, random_tensor(type, d, ff, 0.02f, seed++));
  }
  w.write(out_path);
  std::fprintf(stderr, "done\n");
  return 0;
}

const chorus_cli::registration synth_command{
    "synth", "write a synthetic model (random weights, real tokenizer) for speed measurements",
    "--vocab VOCAB.gguf --out OUT.gguf [--shape llama-3.2-1b|tiny] [--type q4_0|q8_0|q4_k|...]", &run};

}  // namespace cmd_synth
