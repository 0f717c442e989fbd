// chorus — a loaded model (hyper-parameters + weights as views into the mapped file) and a
// context that runs the forward pass with its own KV cache and scratch buffers.
//
// The model is immutable and can be shared by any number of contexts (fusion members that
// are the same model with other seeds share one copy of the weights). A context is not
// thread-safe; its compute is spread over a thread_pool.
//
// The KV cache's element type is a compile-time choice: `context` stores fp16 keys and values
// (half the memory, what the reference stores, so logits match it most closely);
// `basic_context<float>` stores float (twice the memory, no rounding of K, V, Q or the
// attention weights).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/core/thread_pool.hpp"
#include "chorus/gguf/file.hpp"
#include "chorus/model/hparams.hpp"
#include "chorus/model/kv_cache.hpp"
#include "chorus/model/rope.hpp"
#include "chorus/model/weights.hpp"
#include "chorus/quant/formats.hpp"
#include "chorus/simd/dot.hpp"
#include "chorus/simd/float_kernels.hpp"
#include "chorus/simd/gemv.hpp"

namespace chorus::inline CHORUS_ABI::model {

class model {
 public:
  explicit model(const std::filesystem::path& path) : file_(gguf::file::open(path)) { init(); }
  explicit model(gguf::file file) : file_(std::move(file)) { init(); }

  model(const model&) = delete;
  model& operator=(const model&) = delete;

  const hparams& params() const noexcept { return hparams_; }
  const weights& tensors() const noexcept { return weights_; }
  const gguf::file& file() const noexcept { return file_; }

 private:
  void init() {
    hparams_ = hparams::from_gguf(file_);
    weights_ = weights::from_gguf(file_, hparams_);
  }

  gguf::file file_;
  hparams hparams_;
  weights weights_;
};

struct context_options {
  std::uint32_t n_ctx = 0;     // positions per sequence; 0 = the training context, at most 4096
  std::uint32_t n_batch = 512; // tokens per forward step (longer prompts are split)
  std::uint32_t n_seq = 1;     // independent sequences (each with its own positions)
  thread_pool* pool = nullptr; // shared pool; nullptr = a pool of its own with `threads` threads
  std::size_t threads = 0;     // 0 = one per physical core
  std::size_t kv_pages = 0;    // KV cache pages of 32 positions; 0 = n_seq full contexts (sequences
                               // that share a prompt prefix need fewer: see kv_cache.hpp)
};

template <class KvElement = fp16>
class basic_context {
  static_assert(std::is_same_v<KvElement, fp16> || std::is_same_v<KvElement, float>,
                "the KV cache stores fp16 or float");

 public:
  using kv_element = KvElement;
  static constexpr std::size_t max_head_dim = 512;
  // Below this many multiply-adds a matrix product or an attention step is not split over threads.
  static constexpr std::size_t parallel_macs = std::size_t{1} << 19;
  // The feed-forward block runs this many tokens of a step at a time: its two hidden buffers are
  // n_ff wide (3.5x n_embd on Mistral 7B), and at 512 tokens they alone would be 59 MB.
  static constexpr std::size_t max_ffn_rows = 64;
  // Attention tiles (see attention()): at most this many tokens, and score rows of at most about
  // this many bytes per thread, so that a tile's working set stays in a core's L2.
  static constexpr std::size_t max_attention_tile_tokens = 16;
  static constexpr std::size_t attention_scratch_target = std::size_t{1} << 20;

  explicit basic_context(const model& m, context_options options = {}) : model_(&m), options_(options) {
    const auto& h = m.params();
    if (options_.n_ctx == 0) options_.n_ctx = std::min<std::uint32_t>(h.n_ctx_train, 4096);
    if (options_.n_batch == 0) fail(errc::invalid_argument, "context: n_batch must be positive");
    if (options_.n_seq == 0) fail(errc::invalid_argument, "context: n_seq must be positive");
    if (h.head_dim > max_head_dim) {
      fail(errc::unsupported, "context: head dimension ", h.head_dim, " exceeds the supported ", max_head_dim);
    }
    if (options_.pool == nullptr) {
      own_pool_ = std::make_unique<thread_pool>(options_.threads);
      options_.pool = own_pool_.get();
    }
    pool_ = options_.pool;
    cache_ = kv_cache<KvElement>(h.n_layer, options_.n_ctx, h.n_embd_kv(), options_.n_seq, options_.kv_pages);
    const std::size_t b = options_.n_batch;
    ffn_rows_ = std::min<std::size_t>(b, max_ffn_rows);
    x_.resize(b * h.n_embd);
    xn_.resize(b * h.n_embd);
    q_.resize(b * h.n_embd);
    k_.resize(b * h.n_embd_kv());
    v_.resize(b * h.n_embd_kv());
    gate_.resize(ffn_rows_ * h.n_ff);
    up_.resize(ffn_rows_ * h.n_ff);
    activations_.resize(largest_activations(m, b, ffn_rows_) / sizeof(std::uint64_t) + 64);
    // Attention tiles: as many tokens as keep one thread's score rows within attention_scratch_target.
    const std::size_t group = h.n_group(), stride = options_.n_ctx + 16;
    attention_tile_tokens_ = std::clamp<std::size_t>(attention_scratch_target / sizeof(float) / (group * stride), 1,
                                                     std::min<std::size_t>(b, max_attention_tile_tokens));
    const std::size_t tile_queries = attention_tile_tokens_ * group;
    attention_scratch_floats_ = tile_queries * (stride + 2 * h.head_dim) + h.head_dim;
    attention_scratch_.resize(pool_->size() * attention_scratch_floats_);
    tile_begin_.resize(b + 1);
    rope_cos_.resize(b * h.n_rot / 2);
    rope_sin_.resize(b * h.n_rot / 2);
    inv_freq_ = rope_frequencies(h, m.tensors().rope_freqs, rope_mscale_);
    logits_.resize(h.n_vocab);
    token_seq_.resize(b);
    token_pos_.resize(b);
    batch_tokens_.resize(b);
    output_rows_.resize(b);
  }

  const model& owner() const noexcept { return *model_; }
  std::size_t n_ctx() const noexcept { return options_.n_ctx; }
  std::size_t n_seq() const noexcept { return options_.n_seq; }
  std::size_t n_batch() const noexcept { return options_.n_batch; }
  std::size_t position(std::size_t seq = 0) const { return cache_.length(seq); }
  void reset(std::size_t seq = 0) { cache_.truncate(seq, 0); }
  void truncate(std::size_t seq, std::size_t n) { cache_.truncate(seq, n); }
  // Makes sequence `dst` continue from the first `n` positions of `src` (e.g. one prompt
  // shared by several candidates), sharing the cached keys/values copy-on-write.
  void copy_prefix(std::size_t src, std::size_t dst, std::size_t n) { cache_.copy_prefix(src, dst, n); }
  thread_pool& pool() noexcept { return *pool_; }
  const kv_cache<KvElement>& cache() const noexcept { return cache_; }

  // Runs `tokens` through the model at the end of sequence `seq`. Returns the logits of the
  // last token (n_vocab values), or of every token (tokens.size() * n_vocab) when all_logits.
  // The span stays valid until the next call.
  std::span<const float> decode(std::span<const std::int32_t> tokens, std::size_t seq = 0, bool all_logits = false) {
    const auto& h = model_->params();
    cache_.check_sequence(seq);
    if (tokens.empty()) fail(errc::invalid_argument, "decode: no tokens");
    if (cache_.length(seq) + tokens.size() > options_.n_ctx) {
      fail(errc::out_of_range, "decode: context full: ", cache_.length(seq), " + ", tokens.size(),
           " tokens exceed the context of ", options_.n_ctx, " positions");
    }
    for (const auto id : tokens) {
      if (id < 0 || static_cast<std::uint32_t>(id) >= h.n_vocab) {
        fail(errc::invalid_argument, "decode: token id ", id, " is outside the vocabulary of ", h.n_vocab);
      }
    }
    if (all_logits && logits_.size() < tokens.size() * h.n_vocab) logits_.resize(tokens.size() * h.n_vocab);
    for (std::size_t done = 0; done < tokens.size(); done += options_.n_batch) {
      const std::size_t n = std::min<std::size_t>(options_.n_batch, tokens.size() - done);
      const bool last_chunk = done + n == tokens.size();
      const std::size_t start = cache_.length(seq);
      for (std::size_t t = 0; t < n; ++t) {
        token_seq_[t] = seq;
        token_pos_[t] = start + t;
      }
      cache_.prepare_write(seq, start, start + n);
      std::size_t n_rows = 0;
      if (all_logits) {
        for (std::size_t t = 0; t < n; ++t) output_rows_[n_rows++] = t;
      } else if (last_chunk) {
        output_rows_[n_rows++] = n - 1;
      }
      forward(tokens.subspan(done, n), std::span<const std::size_t>(output_rows_.data(), n_rows),
              all_logits ? logits_.data() + done * h.n_vocab : logits_.data());
      cache_.set_length(seq, start + n);
    }
    return all_logits ? std::span<const float>(logits_.data(), tokens.size() * h.n_vocab)
                      : std::span<const float>(logits_.data(), h.n_vocab);
  }

  // Tokens of several sequences, evaluated in one forward pass: the weights are read once for all
  // of them (a gemm instead of one gemv per sequence), which is what makes N candidates of one
  // model nearly as fast as one. Entries of the same sequence take its next positions in order
  // (several prompts can be evaluated together this way). Returns one row of n_vocab logits per
  // entry whose `logits` is set, in order, valid until the next call.
  struct batch_token {
    std::int32_t token;
    std::size_t seq;
    bool logits = true;
  };
  std::span<const float> decode_batch(std::span<const batch_token> batch) {
    const auto& h = model_->params();
    if (batch.empty()) fail(errc::invalid_argument, "decode_batch: no tokens");
    if (batch.size() > options_.n_batch) {
      fail(errc::invalid_argument, "decode_batch: ", batch.size(), " tokens exceed n_batch ", options_.n_batch);
    }
    for (std::size_t t = 0; t < batch.size(); ++t) {
      const auto& e = batch[t];
      cache_.check_sequence(e.seq);
      if (e.token < 0 || static_cast<std::uint32_t>(e.token) >= h.n_vocab) {
        fail(errc::invalid_argument, "decode_batch: token id ", e.token, " is outside the vocabulary of ", h.n_vocab);
      }
      std::size_t earlier = 0;
      for (std::size_t u = 0; u < t; ++u) earlier += batch[u].seq == e.seq;
      token_seq_[t] = e.seq;
      token_pos_[t] = cache_.length(e.seq) + earlier;
      batch_tokens_[t] = e.token;
      if (token_pos_[t] >= options_.n_ctx) {
        fail(errc::out_of_range, "decode_batch: context full: sequence ", e.seq, " has ", cache_.length(e.seq),
             " of ", options_.n_ctx, " positions");
      }
    }
    // Pages for every token first, so that running out of them fails before anything is written.
    for (std::size_t t = 0; t < batch.size(); ++t) cache_.prepare_write(token_seq_[t], token_pos_[t], token_pos_[t] + 1);
    std::size_t n_rows = 0;
    for (std::size_t t = 0; t < batch.size(); ++t) {
      if (batch[t].logits) output_rows_[n_rows++] = t;
    }
    if (logits_.size() < n_rows * h.n_vocab) logits_.resize(n_rows * h.n_vocab);
    forward(std::span<const std::int32_t>(batch_tokens_.data(), batch.size()),
            std::span<const std::size_t>(output_rows_.data(), n_rows), logits_.data());
    for (std::size_t t = 0; t < batch.size(); ++t) cache_.set_length(token_seq_[t], token_pos_[t] + 1);
    return std::span<const float>(logits_.data(), n_rows * h.n_vocab);
  }

 private:
  // y[i][0..w.rows) = w . x[i] for n rows of x (w.cols floats each). The kernels are those of the
  // instruction-set level that runs (simd::active_kernels(): looked up here, in the calling thread,
  // so that an unusable CHORUS_ISA fails before any task starts).
  void matmul(const matrix& w, const float* x, std::size_t n, float* y) {
    quant::dispatch(w.type, [&](auto tag) {
      using Block = typename decltype(tag)::type;
      using activation = typename quant::block_traits<Block>::activation;
      const auto& kernels = simd::active_kernels().of<Block>();
      const std::size_t act_per_row = simd::activation_bytes<Block>(w.cols) / sizeof(activation);
      auto* act = reinterpret_cast<activation*>(activations_.data());
      for (std::size_t i = 0; i < n; ++i) kernels.quantize(x + i * w.cols, act + i * act_per_row, w.cols);
      const auto* blocks = reinterpret_cast<const Block*>(w.data);
      // Small products run on the calling thread: waking the pool costs microseconds when it is
      // idle and a scheduler time slice when the machine is busy, more than a small matrix takes.
      const bool small = w.rows * w.cols * n < parallel_macs;
      const std::size_t n_tasks = small ? 1 : std::min<std::size_t>(w.rows, pool_->size() * 8);
      pool_->parallel_for(n_tasks, [&](std::size_t task, std::size_t) {
        const std::size_t begin = w.rows * task / n_tasks;
        const std::size_t end = w.rows * (task + 1) / n_tasks;
        if (n == 1) {
          kernels.gemv(blocks, begin, end, w.cols, act, y);
        } else {
          kernels.gemm(blocks, begin, end, w.cols, act, n, act_per_row, y, w.rows);
        }
      });
    });
  }

  void embed(std::int32_t id, float* out) const {
    const matrix& e = model_->tensors().token_embd;
    quant::dispatch(e.type, [&](auto tag) {
      using Block = typename decltype(tag)::type;
      quant::block_traits<Block>::dequantize(reinterpret_cast<const Block*>(e.data + id * e.row_bytes), out, e.cols);
    });
  }

  // The forward pass of tokens[t] at (token_seq_[t], token_pos_[t]), whose KV pages the caller
  // made writable; the logits of the tokens listed in `rows` go to `out`, one row each. The
  // caller sets the sequences' lengths afterwards.
  void forward(std::span<const std::int32_t> tokens, std::span<const std::size_t> rows, float* out) {
    const auto& h = model_->params();
    const auto& w = model_->tensors();
    const std::size_t n = tokens.size();
    const std::size_t d = h.n_embd, dkv = h.n_embd_kv(), hd = h.head_dim, half_rot = h.n_rot / 2;

    for (std::size_t t = 0; t < n; ++t) {
      embed(tokens[t], x_.data() + t * d);
      const double pos = static_cast<double>(token_pos_[t]);
      for (std::size_t i = 0; i < half_rot; ++i) {
        rope_cos_[t * half_rot + i] = static_cast<float>(std::cos(pos * inv_freq_[i]) * rope_mscale_);
        rope_sin_[t * half_rot + i] = static_cast<float>(std::sin(pos * inv_freq_[i]) * rope_mscale_);
      }
    }

    plan_attention_tiles(n);
    for (std::size_t il = 0; il < h.n_layer; ++il) {
      const auto& l = w.layers[il];
      for (std::size_t t = 0; t < n; ++t) simd::rmsnorm<>(x_.data() + t * d, l.attn_norm, xn_.data() + t * d, d, h.rms_eps);
      matmul(l.wq, xn_.data(), n, q_.data());
      matmul(l.wk, xn_.data(), n, k_.data());
      matmul(l.wv, xn_.data(), n, v_.data());
      for (std::size_t t = 0; t < n; ++t) {
        if (l.bq != nullptr) {
          simd::add<>(q_.data() + t * d, l.bq, d);
          simd::add<>(k_.data() + t * dkv, l.bk, dkv);
          simd::add<>(v_.data() + t * dkv, l.bv, dkv);
        }
        const float* cos = rope_cos_.data() + t * half_rot;
        const float* sin = rope_sin_.data() + t * half_rot;
        if (h.rope_pairs == rope_pairing::neox) {
          simd::rope_neox(q_.data() + t * d, h.n_head, hd, h.n_rot, cos, sin);
          simd::rope_neox(k_.data() + t * dkv, h.n_head_kv, hd, h.n_rot, cos, sin);
        } else {
          simd::rope(q_.data() + t * d, h.n_head, hd, h.n_rot, cos, sin);
          simd::rope(k_.data() + t * dkv, h.n_head_kv, hd, h.n_rot, cos, sin);
        }
        store_kv(k_.data() + t * dkv, cache_.key(token_seq_[t], il, token_pos_[t]), dkv);
        store_kv(v_.data() + t * dkv, cache_.value(token_seq_[t], il, token_pos_[t]), dkv);
      }
      attention(il, n);  // leaves each token's attention output in q_
      matmul(l.wo, q_.data(), n, xn_.data());
      for (std::size_t t = 0; t < n; ++t) simd::add<>(x_.data() + t * d, xn_.data() + t * d, d);

      for (std::size_t t = 0; t < n; ++t) simd::rmsnorm<>(x_.data() + t * d, l.ffn_norm, xn_.data() + t * d, d, h.rms_eps);
      for (std::size_t first = 0; first < n; first += ffn_rows_) {
        const std::size_t m = std::min(ffn_rows_, n - first);
        float* rows_in = xn_.data() + first * d;
        matmul(l.w_gate, rows_in, m, gate_.data());
        matmul(l.w_up, rows_in, m, up_.data());
        // Row by row: over the whole batch at once, a row's elements would fall on other vector lanes
        // (and the scalar tail) depending on its place in the batch, and batching would change results.
        for (std::size_t t = 0; t < m; ++t) {
          simd::swiglu<>(gate_.data() + t * h.n_ff, up_.data() + t * h.n_ff, gate_.data() + t * h.n_ff, h.n_ff);
        }
        matmul(l.w_down, gate_.data(), m, rows_in);  // these rows of xn_ are read already
      }
      for (std::size_t t = 0; t < n; ++t) simd::add<>(x_.data() + t * d, xn_.data() + t * d, d);
    }

    for (std::size_t k = 0; k < rows.size(); ++k) {
      simd::rmsnorm<>(x_.data() + rows[k] * d, w.output_norm, xn_.data() + k * d, d, h.rms_eps);
    }
    if (!rows.empty()) matmul(w.output, xn_.data(), rows.size(), out);
  }

  static void store_kv(const float* in, KvElement* out, std::size_t n) noexcept {
    if constexpr (std::is_same_v<KvElement, fp16>) {
      simd::float_to_fp16(in, out, n);
    } else {
      std::copy(in, in + n, out);
    }
  }
  // A row of the cache as floats: converted into `scratch` from an fp16 cache, read in place
  // from a float one (no copy per key and token).
  static const float* kv_row(const KvElement* in, float* scratch, std::size_t n) noexcept {
    if constexpr (std::is_same_v<KvElement, fp16>) {
      simd::fp16_to_float(in, scratch, n);
      return scratch;
    } else {
      return in;
    }
  }
  // out = what in's n values meet on their way into an fp16 cache's products (a copy for a float
  // cache; out may alias in). Through the level's vector conversions, 256 values at a time: one
  // fp16 round trip per element, portable code in a baseline build, put 23 % of a 1B model's
  // pp512 time in attention against 14 % this way (perf, Zen 3, docs/perf.md 2026-12-07).
  static void kv_rounded(const simd::float_kernels& floats, const float* in, float* out, std::size_t n) noexcept {
    if constexpr (std::is_same_v<KvElement, fp16>) {
      alignas(64) fp16 halves[256];
      for (std::size_t i = 0; i < n; i += 256) {
        const std::size_t m = std::min<std::size_t>(256, n - i);
        floats.float_to_fp16(in + i, halves, m);
        floats.fp16_to_float(halves, out + i, m);
      }
    } else if (out != in) {
      std::copy(in, in + n, out);
    }
  }

  // The largest quantized activations one matmul() of a step takes (bytes): n_batch rows into the
  // attention and output matrices, ffn_rows into the feed-forward ones.
  static std::size_t largest_activations(const model& m, std::size_t batch_rows, std::size_t ffn_rows) {
    std::size_t bytes = 0;
    const auto need = [&](const matrix& w, std::size_t rows) {
      quant::dispatch(w.type, [&](auto tag) {
        using Block = typename decltype(tag)::type;
        bytes = std::max(bytes, rows * simd::activation_bytes<Block>(w.cols));
      });
    };
    const auto& w = m.tensors();
    for (const auto& l : w.layers) {
      for (const matrix* a : {&l.wq, &l.wk, &l.wv, &l.wo}) need(*a, batch_rows);
      for (const matrix* f : {&l.w_gate, &l.w_up, &l.w_down}) need(*f, ffn_rows);
    }
    need(w.output, batch_rows);
    return bytes;
  }

  // Cuts the step's n tokens into attention tiles: runs of consecutive positions of one sequence,
  // at most attention_tile_tokens_ long. Tile i is tokens [tile_begin_[i], tile_begin_[i + 1]).
  void plan_attention_tiles(std::size_t n) {
    n_tiles_ = 0;
    tile_begin_[0] = 0;
    for (std::size_t t = 1; t < n; ++t) {
      const bool full = t - tile_begin_[n_tiles_] == attention_tile_tokens_;
      const bool continues = token_seq_[t] == token_seq_[t - 1] && token_pos_[t] == token_pos_[t - 1] + 1;
      if (full || !continues) tile_begin_[++n_tiles_] = t;
    }
    tile_begin_[++n_tiles_] = n;
  }

  // Causal attention of the step's new tokens over the cache; each token's output replaces its
  // queries in q_. One task is a tile of tokens (plan_attention_tiles) against one KV head, with the
  // query heads that share it (GQA), so that each cached key and value is read, and converted from
  // fp16, once per tile instead of once per token and head; the groups are split into single heads
  // only where there would be too few tasks for the threads. Within a tile each query follows the
  // arithmetic of a query alone (the same dot, softmax and axpy, over the keys in the same order),
  // so tiling changes no bit. With an fp16 cache, Q and the attention weights are rounded to fp16
  // like the K/V they meet, as the reference does.
  void attention(std::size_t layer, std::size_t n) {
    const auto& h = model_->params();
    const auto& floats = simd::active_kernels().floats;
    const std::size_t hd = h.head_dim, group = h.n_group(), d = h.n_embd;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const std::size_t stride = options_.n_ctx + 16;
    const std::size_t window = h.sliding_window ? *h.sliding_window : 0;
    const auto first_key = [&](std::size_t pos) { return window != 0 && pos + 1 > window ? pos + 1 - window : 0; };
    std::size_t work = 0;  // multiply-adds of q.k and of the weighted values
    for (std::size_t t = 0; t < n; ++t) work += 2 * (token_pos_[t] + 1 - first_key(token_pos_[t])) * hd * h.n_head;
    const std::size_t heads_per_task = n_tiles_ * h.n_head_kv < 2 * pool_->size() ? 1 : group;
    const std::size_t parts = h.n_head / heads_per_task;  // tasks per tile
    const std::size_t tasks = n_tiles_ * parts;

    auto body = [&](std::size_t task, std::size_t thread) {
      // The last tiles first: their tokens see the most keys, and the short tasks then fill the gaps.
      const std::size_t tile = n_tiles_ - 1 - task / parts;
      const std::size_t head0 = (task % parts) * heads_per_task, kv_head = head0 / group;
      const std::size_t t0 = tile_begin_[tile], nt = tile_begin_[tile + 1] - t0, nq = nt * heads_per_task;
      const std::size_t seq = token_seq_[t0], pos0 = token_pos_[t0], pos_last = pos0 + nt - 1;
      float* queries = attention_scratch_.data() + thread * attention_scratch_floats_;
      float* outputs = queries + nq * hd;
      float* row = outputs + nq * hd;
      float* scores = row + hd;  // query i's weight of key j at [i * stride + j - first_key(its position)]
      for (std::size_t i = 0; i < nt; ++i) {
        for (std::size_t k = 0; k < heads_per_task; ++k) {
          const float* src = q_.data() + (t0 + i) * d + (head0 + k) * hd;
          kv_rounded(floats, src, queries + (i * heads_per_task + k) * hd, hd);
        }
      }
      // fn(query, offset of key j in its weights) for each query of the tile that attends to key j:
      // its token is at or after j and, with a sliding window, less than `window` positions after.
      const auto each_query_of = [&](std::size_t j, auto&& fn) {
        const std::size_t a = j > pos0 ? j - pos0 : 0;
        const std::size_t b = window != 0 ? std::min(nt, j + window - pos0) : nt;
        for (std::size_t i = a; i < b; ++i) {
          const std::size_t offset = j - first_key(pos0 + i);
          for (std::size_t k = 0; k < heads_per_task; ++k) fn(i * heads_per_task + k, offset);
        }
      };
      for (std::size_t j = first_key(pos0); j <= pos_last; ++j) {
        const float* key = kv_row(cache_.key(seq, layer, j) + kv_head * hd, row, hd);
        each_query_of(j, [&](std::size_t qi, std::size_t offset) {
          scores[qi * stride + offset] = floats.dot(queries + qi * hd, key, hd) * scale;
        });
      }
      for (std::size_t i = 0; i < nt; ++i) {
        const std::size_t count = pos0 + i + 1 - first_key(pos0 + i);
        for (std::size_t k = 0; k < heads_per_task; ++k) {
          float* weights = scores + (i * heads_per_task + k) * stride;
          floats.softmax(weights, count);
          kv_rounded(floats, weights, weights, count);
        }
      }
      std::fill(outputs, outputs + nq * hd, 0.0f);
      for (std::size_t j = first_key(pos0); j <= pos_last; ++j) {
        const float* value = kv_row(cache_.value(seq, layer, j) + kv_head * hd, row, hd);
        each_query_of(j, [&](std::size_t qi, std::size_t offset) {
          floats.axpy(outputs + qi * hd, scores[qi * stride + offset], value, hd);
        });
      }
      for (std::size_t i = 0; i < nt; ++i) {
        for (std::size_t k = 0; k < heads_per_task; ++k) {
          const float* src = outputs + (i * heads_per_task + k) * hd;
          std::copy(src, src + hd, q_.data() + (t0 + i) * d + (head0 + k) * hd);
        }
      }
    };
    // one task at a time on this thread when the work is small (see matmul)
    if (work < parallel_macs) {
      for (std::size_t task = 0; task < tasks; ++task) body(task, 0);
    } else {
      pool_->parallel_for(tasks, body);
    }
  }

  const model* model_;
  context_options options_;
  std::unique_ptr<thread_pool> own_pool_;
  thread_pool* pool_ = nullptr;
  kv_cache<KvElement> cache_;
  std::vector<float> x_, xn_, q_, k_, v_, gate_, up_, rope_cos_, rope_sin_, logits_;
  std::size_t ffn_rows_ = 0;  // tokens per pass of the feed-forward block
  std::size_t attention_tile_tokens_ = 0, attention_scratch_floats_ = 0;  // per tile; per thread
  std::vector<float> attention_scratch_;  // per thread: a tile's queries, outputs, a key row, score rows
  std::vector<std::size_t> tile_begin_;  // the step's attention tiles (plan_attention_tiles)
  std::size_t n_tiles_ = 0;
  std::vector<std::size_t> token_seq_, token_pos_;  // sequence and position of each token of a step
  std::vector<std::int32_t> batch_tokens_;
  std::vector<std::size_t> output_rows_;  // the tokens of a step whose logits are asked for
  std::vector<double> inv_freq_;  // radians per position of each rotated pair (rope.hpp)
  double rope_mscale_ = 1.0;
  std::vector<std::uint64_t> activations_;  // quantized activations, 8-byte aligned
};

// The context most callers want: fp16 keys and values.
using context = basic_context<fp16>;

}  // namespace chorus::inline CHORUS_ABI::model
