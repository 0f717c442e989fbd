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
    x_.resize(b * h.n_embd);
    xn_.resize(b * h.n_embd);
    q_.resize(b * h.n_embd);
    k_.resize(b * h.n_embd_kv());
    v_.resize(b * h.n_embd_kv());
    attn_.resize(b * h.n_embd);
    gate_.resize(b * h.n_ff);
    up_.resize(b * h.n_ff);
    const std::size_t widest = std::max<std::size_t>(h.n_embd, h.n_ff);
    activations_.resize((b * widest * sizeof(float)) / sizeof(std::uint64_t) + 64);
    scores_.resize(pool_->size() * (options_.n_ctx + 16));
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
      for (std::size_t i = 0; i < n; ++i) simd::quantize_activation<Block>(x + i * w.cols, act + i * act_per_row, w.cols);
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
      attention(il, n);
      matmul(l.wo, attn_.data(), n, xn_.data());
      for (std::size_t t = 0; t < n; ++t) simd::add<>(x_.data() + t * d, xn_.data() + t * d, d);

      for (std::size_t t = 0; t < n; ++t) simd::rmsnorm<>(x_.data() + t * d, l.ffn_norm, xn_.data() + t * d, d, h.rms_eps);
      matmul(l.w_gate, xn_.data(), n, gate_.data());
      matmul(l.w_up, xn_.data(), n, up_.data());
      // Row by row: over the whole batch at once, a row's elements would fall on other vector lanes
      // (and the scalar tail) depending on its place in the batch, and batching would change results.
      for (std::size_t t = 0; t < n; ++t) {
        simd::swiglu<>(gate_.data() + t * h.n_ff, up_.data() + t * h.n_ff, gate_.data() + t * h.n_ff, h.n_ff);
      }
      matmul(l.w_down, gate_.data(), n, xn_.data());
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
  // What a value meets on its way into an fp16 cache's products, nothing for a float cache.
  static float kv_rounded(float x) noexcept {
    if constexpr (std::is_same_v<KvElement, fp16>) {
      return fp16(x).to_float();
    } else {
      return x;
    }
  }

  // Causal attention of the n new tokens over the cache, one task per (token, head). With an
  // fp16 cache, Q and the attention weights are rounded to fp16 like the K/V they meet, as the
  // reference does.
  void attention(std::size_t layer, std::size_t n) {
    const auto& h = model_->params();
    const std::size_t hd = h.head_dim, group = h.n_group();
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const std::size_t stride = options_.n_ctx + 16;
    std::size_t work = 0;  // multiply-adds of q.k and of the weighted values
    for (std::size_t t = 0; t < n; ++t) work += 2 * (token_pos_[t] + 1) * hd * h.n_head;
    const std::size_t tasks = n * h.n_head;
    // one task at a time on this thread when the work is small (see matmul)
    const auto run = [&](auto&& body) {
      if (work < parallel_macs) {
        for (std::size_t task = 0; task < tasks; ++task) body(task, 0);
      } else {
        pool_->parallel_for(tasks, body);
      }
    };
    run([&](std::size_t task, std::size_t thread) {
      const std::size_t t = task / h.n_head, head = task % h.n_head, kv_head = head / group;
      const std::size_t seq = token_seq_[t], pos = token_pos_[t];
      const std::size_t first = h.sliding_window && pos + 1 > *h.sliding_window ? pos + 1 - *h.sliding_window : 0;
      float* scores = scores_.data() + thread * stride;
      alignas(64) float q[max_head_dim];
      alignas(64) float row[max_head_dim];
      const float* q_src = q_.data() + t * h.n_embd + head * hd;
      for (std::size_t i = 0; i < hd; ++i) q[i] = kv_rounded(q_src[i]);
      for (std::size_t j = first; j <= pos; ++j) {
        const float* key = kv_row(cache_.key(seq, layer, j) + kv_head * hd, row, hd);
        scores[j - first] = simd::dot<>(q, key, hd) * scale;
      }
      const std::size_t count = pos + 1 - first;
      simd::softmax<>(scores, count);
      float* out = attn_.data() + t * h.n_embd + head * hd;
      std::fill(out, out + hd, 0.0f);
      for (std::size_t j = 0; j < count; ++j) {
        const float* value = kv_row(cache_.value(seq, layer, first + j) + kv_head * hd, row, hd);
        simd::axpy<>(out, kv_rounded(scores[j]), value, hd);
      }
    });
  }

  const model* model_;
  context_options options_;
  std::unique_ptr<thread_pool> own_pool_;
  thread_pool* pool_ = nullptr;
  kv_cache<KvElement> cache_;
  std::vector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_, scores_, rope_cos_, rope_sin_, logits_;
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
