// chorus synth — write a synthetic model of a real architecture's shape (random weights,
// a real tokenizer) for speed measurements: chorus's GGUF writer and quantizers at work.
#include <chorus/chorus.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <thread>
#include <vector>

#include "command.hpp"

namespace cmd_synth {

using namespace chorus;

// The shapes of published models (their config.json), random weights. n_vocab 0: as many tokens
// as the --vocab file has; otherwise that file's vocabulary is padded with unused tokens to the
// model's size, so the output matrix costs what the real model's does.
struct shape {
  const char* name;
  const char* architecture;  // llama or qwen2 (NeoX rotary pairs, attention biases)
  std::uint32_t n_embd, n_layer, n_ff, n_head, n_head_kv, n_vocab;
  float rope_freq_base, rms_eps;
  bool tied_output;  // no output.weight: token_embd is the output matrix too
};
constexpr shape shapes[] = {
    {"llama-3.2-1b", "llama", 2048, 16, 8192, 32, 8, 0, 500000.0f, 1e-5f, true},  // docs/perf.md: with the GPT-2 vocabulary
    {"llama-3.2-3b", "llama", 3072, 28, 8192, 24, 8, 128256, 500000.0f, 1e-5f, true},
    {"qwen2.5-3b", "qwen2", 2048, 36, 11008, 16, 2, 151936, 1000000.0f, 1e-6f, true},
    {"mistral-7b", "llama", 4096, 32, 14336, 32, 8, 32768, 1000000.0f, 1e-5f, false},  // Mistral-7B v0.3
    {"ministral-8b", "llama", 4096, 36, 12288, 32, 8, 131072, 100000000.0f, 1e-5f, false},  // tekken's size
    {"tiny", "llama", 256, 4, 768, 8, 2, 0, 500000.0f, 1e-5f, true},
    {"tiny-qwen2", "qwen2", 256, 4, 768, 8, 2, 0, 1000000.0f, 1e-6f, true},
};

std::string shape_names() {
  std::string names;
  for (const auto& s : shapes) names += (names.empty() ? "" : ", ") + std::string(s.name);
  return names;
}

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

// The values come from one sequential generator, so a file is the same whatever --threads is:
// a chunk of rows is drawn on this thread, then its rows are quantized on `threads` threads
// (the least-squares K-quant search is what takes the time: 41 minutes for a 7B file on one).
std::vector<std::byte> random_tensor(gguf::tensor_type type, std::size_t rows, std::size_t cols, float scale, std::uint64_t seed,
                                     unsigned threads) {
  return quant::dispatch(type, [&](auto tag) {
    using Block = typename decltype(tag)::type;
    using traits = quant::block_traits<Block>;
    std::vector<std::byte> out(rows * cols / traits::block_elements * sizeof(Block));
    noise rng{seed * 0x9E3779B97F4A7C15ull + 1};
    if constexpr (quant::quantizable_format<Block>) {
      auto* blocks = reinterpret_cast<Block*>(out.data());
      const std::size_t blocks_per_row = cols / traits::block_elements;
      const std::size_t chunk_rows = std::size_t{64} * threads;
      std::vector<float> chunk(std::min(rows, chunk_rows) * cols);
      for (std::size_t first = 0; first < rows; first += chunk_rows) {
        const std::size_t n = std::min(chunk_rows, rows - first);
        for (std::size_t i = 0; i < n * cols; ++i) chunk[i] = rng.next() * scale;
        auto quantize_rows = [&](std::size_t begin, std::size_t end) {
          for (std::size_t r = begin; r < end; ++r) traits::quantize(chunk.data() + r * cols, blocks + (first + r) * blocks_per_row, cols);
        };
        const std::size_t per_thread = (n + threads - 1) / threads;
        std::vector<std::jthread> workers;
        for (std::size_t begin = per_thread; begin < n; begin += per_thread) {
          workers.emplace_back(quantize_rows, begin, std::min(n, begin + per_thread));
        }
        quantize_rows(0, std::min(n, per_thread));
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
  throw chorus_cli::usage_error("unknown or unsupported --type '" + name + "' (e.g. q4_0, q8_0, q4_k, q6_k, f16, q4_k_m, q5_k_m)");
}

// The tensor types of a file: one type for every matrix, or a mix as llama-quantize writes it for
// Q4_K_M / Q5_K_M: the output matrix (or the tied token_embd) in Q6_K, and attn_v and ffn_down in
// Q6_K in the first and last eighth of the layers and in every third layer between.
struct file_types {
  gguf::tensor_type base;
  bool k_mix = false;

  static file_types from_name(const std::string& name) {
    if (name == "q4_k_m") return {gguf::tensor_type::q4_k, true};
    if (name == "q5_k_m") return {gguf::tensor_type::q5_k, true};
    return {type_from_name(name)};
  }
  static bool more_bits(std::uint32_t layer, std::uint32_t n_layer) {
    return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
  }
  gguf::tensor_type output() const { return k_mix ? gguf::tensor_type::q6_k : base; }
  gguf::tensor_type layer_matrix(std::string_view role, std::uint32_t layer, std::uint32_t n_layer) const {
    const bool raised = k_mix && (role == "attn_v" || role == "ffn_down") && more_bits(layer, n_layer);
    return raised ? gguf::tensor_type::q6_k : base;
  }
};

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments a(args);
  const auto shape_name = a.get("shape").value_or("llama-3.2-1b");
  const auto type_name = a.get("type").value_or("q4_0");
  const auto types = file_types::from_name(type_name);
  const auto vocab_path = a.require("vocab");
  const auto out_path = a.require("out");
  const auto vocab_size = a.number<std::uint32_t>("vocab-size", 0);  // 0: the shape's
  const auto threads = a.number<unsigned>("threads", std::max(1u, std::thread::hardware_concurrency()));
  if (threads == 0) throw chorus_cli::usage_error("--threads must be at least 1");
  a.reject_unknown();
  const shape* s = nullptr;
  for (const auto& candidate : shapes) {
    if (shape_name == candidate.name) s = &candidate;
  }
  if (!s) throw chorus_cli::usage_error("unknown --shape '" + shape_name + "' (" + shape_names() + ")");

  const auto vocab = gguf::file::open(vocab_path);
  auto tokens = vocab.get_array<std::string>("tokenizer.ggml.tokens");
  const std::size_t vocab_tokens = tokens.size();
  const std::size_t wanted = vocab_size != 0 ? vocab_size : s->n_vocab;
  if (wanted != 0 && vocab_tokens > wanted) {
    throw chorus_cli::usage_error(vocab_path + " has " + std::to_string(vocab_tokens) + " tokens, more than the " +
                                  std::to_string(wanted) + " of " + (vocab_size != 0 ? std::string("--vocab-size") : std::string(s->name)) +
                                  ": give a smaller vocabulary (--vocab) or a larger --vocab-size");
  }
  const std::size_t n_vocab = wanted != 0 ? wanted : vocab_tokens;
  // Padding tokens: unused (token type 5), score 0; ordinary text never tokenizes to them.
  for (std::size_t id = vocab_tokens; id < n_vocab; ++id) tokens.push_back("<synth_unused_" + std::to_string(id) + ">");

  gguf::writer w;
  const std::string arch = s->architecture, p = arch + ".";
  w.set("general.architecture", std::string_view(arch));
  w.set("general.name", std::string("synthetic ") + s->name);
  w.set(p + "context_length", std::uint32_t{4096});
  w.set(p + "embedding_length", s->n_embd);
  w.set(p + "block_count", s->n_layer);
  w.set(p + "feed_forward_length", s->n_ff);
  w.set(p + "attention.head_count", s->n_head);
  w.set(p + "attention.head_count_kv", s->n_head_kv);
  w.set(p + "rope.dimension_count", s->n_embd / s->n_head);
  w.set(p + "rope.freq_base", s->rope_freq_base);
  w.set(p + "attention.layer_norm_rms_epsilon", s->rms_eps);
  w.set(p + "vocab_size", static_cast<std::uint32_t>(n_vocab));
  for (const auto& e : vocab.metadata()) {
    if (!e.key.starts_with("tokenizer.")) continue;
    if (e.key == "tokenizer.ggml.tokens") {
      w.set_array(e.key, tokens);
    } else if (e.type == gguf::value_type::array) {
      if (e.element_type == gguf::value_type::string) {
        w.set_array(e.key, vocab.get_array<std::string>(e.key));
      } else if (e.element_type == gguf::value_type::float32) {
        auto values = vocab.get_array<float>(e.key);
        if (values.size() == vocab_tokens) values.resize(n_vocab, 0.0f);  // scores
        w.set_array(e.key, values);
      } else {
        auto values = vocab.get_array<std::int32_t>(e.key);
        if (values.size() == vocab_tokens) values.resize(n_vocab, 5);  // token types: unused
        w.set_array(e.key, values);
      }
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
  auto bias = [&](const std::string& name, std::size_t n) {
    noise rng{seed++ * 0x9E3779B97F4A7C15ull + 1};
    std::vector<float> values(n);
    for (auto& v : values) v = rng.next() * 0.02f;
    w.add_tensor(name, gguf::tensor_type::f32, {n}, std::as_bytes(std::span(values)));
  };
  std::fprintf(stderr, "writing %s (%s, %s, %zu tokens%s)...\n", out_path.c_str(), s->name, type_name.c_str(), n_vocab,
               n_vocab > vocab_tokens ? ", the vocabulary padded" : "");
  const auto embd_type = s->tied_output ? types.output() : types.base;
  w.add_tensor("token_embd.weight", embd_type, {d, n_vocab}, random_tensor(embd_type, n_vocab, d, 0.05f, seed++, threads));
  norm("output_norm.weight");
  if (!s->tied_output) {
    w.add_tensor("output.weight", types.output(), {d, n_vocab}, random_tensor(types.output(), n_vocab, d, 0.02f, seed++, threads));
  }
  for (std::uint32_t l = 0; l < s->n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    auto matrix = [&](std::string_view role, std::size_t rows, std::size_t cols) {
      const auto type = types.layer_matrix(role, l, s->n_layer);
      w.add_tensor(b + std::string(role) + ".weight", type, {cols, rows}, random_tensor(type, rows, cols, 0.02f, seed++, threads));
    };
    norm(b + "attn_norm.weight");
    norm(b + "ffn_norm.weight");
    matrix("attn_q", d, d);
    matrix("attn_k", dkv, d);
    matrix("attn_v", dkv, d);
    if (arch == "qwen2") {
      bias(b + "attn_q.bias", d);
      bias(b + "attn_k.bias", dkv);
      bias(b + "attn_v.bias", dkv);
    }
    matrix("attn_output", d, d);
    matrix("ffn_gate", ff, d);
    matrix("ffn_up", ff, d);
    matrix("ffn_down", d, ff);
  }
  w.write(out_path);
  std::fprintf(stderr, "done\n");
  return 0;
}

const chorus_cli::registration synth_command{
    "synth", "write a synthetic model (random weights, real tokenizer) for speed measurements",
    "--vocab VOCAB.gguf --out OUT.gguf [--shape llama-3.2-1b|llama-3.2-3b|qwen2.5-3b|mistral-7b|ministral-8b|tiny|tiny-qwen2]\n"
    "                [--type q4_0|q8_0|q4_k|q6_k|...|q4_k_m|q5_k_m] [--vocab-size N (pad the vocabulary to N tokens)]\n"
    "                [--threads N (quantizing threads; the file does not depend on it)]", &run};

}  // namespace cmd_synth
