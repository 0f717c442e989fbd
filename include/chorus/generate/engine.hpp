// chorus — the one decode loop. An engine advances several sequences of one model together:
// each has its own prompt, sampler, stop rules and token sink, and every step is one forward
// pass over all of them (model::basic_context::decode_batch), so that the weights are read once
// per step however many sequences run. A session is an engine with one sequence; a fusion panel
// of one model and a server's continuous batching are engines with many.
//
// Prompts are shared: a new sequence starts from the longest prefix of its prompt that any slot
// holds (a running sequence, or one that finished and left its keys and values behind), copied
// copy-on-write in the paged KV cache; a prompt identical to one already evaluated costs no
// forward pass at all (its last logits are kept). Each sequence makes exactly the tokens it makes
// alone with the same seed.
//
// Not thread-safe: one thread calls start/step/take (generate/batcher.hpp runs one on a thread of
// its own and feeds it from any thread). A step allocates nothing.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/core/thread_pool.hpp"
#include "chorus/generate/language_model.hpp"
#include "chorus/generate/options.hpp"
#include "chorus/generate/stop_strings.hpp"
#include "chorus/model/model.hpp"
#include "chorus/sample/sampler.hpp"
#include "chorus/tokenizer/tokenizer.hpp"

namespace chorus::inline CHORUS_ABI::generate {

struct engine_config {
  std::uint32_t n_ctx = 0;      // positions per sequence; 0: the training context, at most 4096
  std::uint32_t n_seq = 1;      // sequences decoded together at most
  std::size_t threads = 0;      // 0: one per physical core (ignored with a shared pool)
  thread_pool* pool = nullptr;  // share one pool between engines and sessions on one machine
  std::size_t kv_pages = 0;     // KV cache pages of 32 positions; 0: n_seq full contexts
};

// One sequence to generate: the prompt as token ids (tokenize and render chat formats first).
struct sequence_request {
  std::vector<std::int32_t> prompt;
  options opts;
  token_sink on_token = {};
  std::stop_token stop = {};
};

template <class KvElement = fp16>
class basic_engine {
 public:
  using handle = std::size_t;  // a slot; valid from start() until take()

  basic_engine(std::shared_ptr<const language_model> m, engine_config config = {})
      : model_(std::move(m)),
        context_(model_->network(), {.n_ctx = config.n_ctx,
                                     .n_batch = std::max<std::uint32_t>(512, config.n_seq),
                                     .n_seq = config.n_seq,
                                     .pool = config.pool,
                                     .threads = config.threads,
                                     .kv_pages = config.kv_pages}),
        n_vocab_(model_->network().params().n_vocab),
        slots_(config.n_seq),
        logits_(static_cast<std::size_t>(config.n_seq) * n_vocab_),
        prompt_logits_(logits_.size()) {
    batch_.reserve(config.n_seq);
    batch_slot_.reserve(config.n_seq);
    pending_.reserve(config.n_seq);
    followers_.reserve(config.n_seq);
    prompt_batch_.reserve(context_.n_batch());
    chunk_rows_.reserve(config.n_seq);
    chunk_slots_.reserve(config.n_seq);
    for (auto& s : slots_) s.cached.reserve(context_.n_ctx());
  }

  basic_engine(const basic_engine&) = delete;
  basic_engine& operator=(const basic_engine&) = delete;

  const language_model& model() const noexcept { return *model_; }
  std::shared_ptr<const language_model> shared_model() const noexcept { return model_; }
  model::basic_context<KvElement>& context() noexcept { return context_; }
  std::size_t n_ctx() const noexcept { return context_.n_ctx(); }
  std::size_t capacity() const noexcept { return slots_.size(); }
  std::size_t active() const noexcept {
    return static_cast<std::size_t>(std::count_if(slots_.begin(), slots_.end(), [](const slot& s) {
      return s.state == phase::prefill || s.state == phase::running;
    }));
  }
  bool has_free_slot() const noexcept {
    return std::any_of(slots_.begin(), slots_.end(), [](const slot& s) { return s.state == phase::free; });
  }

  // The longest prefix of `prompt` whose keys and values some slot holds.
  std::size_t cached_prefix(std::span<const std::int32_t> prompt) const noexcept {
    std::size_t best = 0;
    for (const auto& s : slots_) best = std::max(best, common_prefix(s.cached, prompt));
    return best;
  }

  // Checks the request and gives it a free slot (the one whose cached tokens share most with the
  // prompt, else the least recently used). Its prompt is evaluated by the next step(). Throws
  // chorus::error for a bad request or when every slot is taken.
  handle start(sequence_request r) {
    if (r.opts.max_tokens < 0) fail(errc::invalid_argument, "generate: max_tokens must be >= 0");
    if (r.prompt.empty()) fail(errc::invalid_argument, "generate: the prompt is empty and the model adds no BOS");
    if (r.prompt.size() >= context_.n_ctx()) {
      fail(errc::out_of_range, "generate: the prompt has ", r.prompt.size(), " tokens; the context holds ", context_.n_ctx());
    }
    for (const auto id : r.prompt) {
      if (id < 0 || static_cast<std::size_t>(id) >= n_vocab_) {
        fail(errc::invalid_argument, "generate: prompt token id ", id, " is outside the vocabulary of ", n_vocab_);
      }
    }
    std::optional<handle> best;
    std::size_t best_shared = 0;
    for (handle h = 0; h < slots_.size(); ++h) {
      if (slots_[h].state != phase::free) continue;
      const std::size_t shared = common_prefix(slots_[h].cached, r.prompt);
      if (!best || shared > best_shared || (shared == best_shared && slots_[h].last_used < slots_[*best].last_used)) {
        best = h;
        best_shared = shared;
      }
    }
    if (!best) fail(errc::out_of_range, "generate: all ", slots_.size(), " sequences of the engine are in use");
    slot& s = slots_[*best];
    s.run.emplace(model_->tokens(), std::move(r), n_vocab_);
    s.state = phase::prefill;
    s.last_used = ++use_clock_;
    return *best;
  }

  // One forward pass: the prompts of new sequences are evaluated, every running sequence samples
  // its next token (and may finish), and the sampled tokens are decoded together.
  void step() {
    prefill_new();
    batch_.clear();
    batch_slot_.clear();
    for (handle h = 0; h < slots_.size(); ++h) {
      if (slots_[h].state == phase::running) sample_next(h);
    }
    if (batch_.empty()) return;
    make_room_for_batch();
    if (batch_.empty()) return;
    try {
      const auto rows = context_.decode_batch(batch_);
      for (std::size_t i = 0; i < batch_.size(); ++i) {
        std::copy_n(rows.data() + i * n_vocab_, n_vocab_, logits_of(batch_slot_[i]));
        slots_[batch_slot_[i]].cached.push_back(batch_[i].token);
      }
    } catch (const std::exception& e) {
      for (const handle h : batch_slot_) finish(h, stop_reason::error, e.what(), std::current_exception());
    }
  }

  // Steps until `h` has finished.
  void run(handle h) {
    while (!finished(h)) step();
  }

  bool finished(handle h) const { return slot_at(h).state == phase::finished; }

  // The result of a finished sequence; frees its slot (its keys and values stay as a prefix
  // cache for later prompts until the slot is reused).
  result take(handle h) {
    slot& s = slot_at(h);
    if (s.state != phase::finished) fail(errc::invalid_argument, "generate: sequence ", h, " has not finished");
    result out = std::move(s.run->out);
    s.run.reset();
    s.state = phase::free;
    return out;
  }

 private:
  using clock = std::chrono::steady_clock;
  enum class phase { free, prefill, running, finished };

  struct running_sequence {
    running_sequence(const tokenizer::tokenizer& tok, sequence_request&& r, std::size_t n_vocab)
        : opts(std::move(r.opts)),
          sink(r.on_token),
          stop(std::move(r.stop)),
          sampler(opts.sampling, n_vocab),
          decoder(tok),
          filter(opts.stop) {
      decoder.continue_text();  // a continuation keeps its leading space
      if (opts.constraint) constraint.emplace(opts.constraint->fresh());
      out.prompt_ids = std::move(r.prompt);
      out.ids.reserve(static_cast<std::size_t>(opts.max_tokens));
      out.logprobs.reserve(static_cast<std::size_t>(opts.max_tokens));
      out.top_logprobs.reserve(static_cast<std::size_t>(opts.max_tokens) *
                               static_cast<std::size_t>(opts.sampling.top_logprobs));
    }
    options opts;
    token_sink sink;
    std::stop_token stop;
    sample::sampler<> sampler;
    tokenizer::stream_decoder decoder;
    stop_string_filter filter;
    std::optional<sample::grammar_constraint> constraint;  // this sequence's own grammar state
    result out;
    clock::time_point started = clock::now();
    clock::time_point prompt_done;
  };

  struct pending_prompt {
    handle slot;
    std::size_t from;  // positions already in its cache
  };
  struct follower {
    handle slot;
    handle leader;
    std::size_t shared;  // prompt positions it shares with its leader's prompt
  };

  struct slot {
    phase state = phase::free;
    std::vector<std::int32_t> cached;  // the tokens whose keys/values the slot's sequence holds
    std::size_t prompt_logits_for = 0; // prompt_logits_ row holds the logits after cached[0, this)
    std::uint64_t last_used = 0;
    std::optional<running_sequence> run;
  };

  static std::size_t common_prefix(std::span<const std::int32_t> a, std::span<const std::int32_t> b) noexcept {
    const std::size_t n = std::min(a.size(), b.size());
    std::size_t i = 0;
    while (i < n && a[i] == b[i]) ++i;
    return i;
  }

  slot& slot_at(handle h) {
    if (h >= slots_.size()) fail(errc::out_of_range, "generate: no sequence ", h);
    return slots_[h];
  }
  const slot& slot_at(handle h) const {
    if (h >= slots_.size()) fail(errc::out_of_range, "generate: no sequence ", h);
    return slots_[h];
  }
  float* logits_of(handle h) noexcept { return logits_.data() + h * n_vocab_; }
  float* prompt_logits_of(handle h) noexcept { return prompt_logits_.data() + h * n_vocab_; }

  // The prompts of the sequences started since the last step, evaluated together. Each starts
  // from the longest prefix any slot holds (copy-on-write); an identical prompt already evaluated
  // costs nothing (its logits are kept). Prompts that share a prefix no slot holds yet are
  // evaluated in two waves: the first of them, then the others from its keys and values.
  void prefill_new() {
    pending_.clear();
    followers_.clear();
    for (handle h = 0; h < slots_.size(); ++h) {
      if (slots_[h].state != phase::prefill) continue;
      try {
        plan_prefill(h);
      } catch (const std::exception& e) {
        fail_prefill(h, e.what());
      }
    }
    evaluate(pending_);
    // Wave two: the followers start from their leaders' prompts, now evaluated.
    pending_.clear();
    for (const auto& [h, leader, shared] : followers_) {
      slot& s = slots_[h];
      if (s.state != phase::prefill) continue;
      const auto prompt = std::span<const std::int32_t>(s.run->out.prompt_ids);
      if (common_prefix(slots_[leader].cached, prompt) < shared) {  // the leader failed: start afresh
        try {
          plan_prefill(h, false);
        } catch (const std::exception& e) {
          fail_prefill(h, e.what());
        }
        continue;
      }
      share(leader, h, shared, prompt);
    }
    evaluate(pending_);
  }

  // Decides where sequence h's prompt starts: shares the best prefix held by a slot now, or (when
  // `may_follow`) waits for a prompt of this step that shares more.
  void plan_prefill(handle h, bool may_follow = true) {
    slot& s = slots_[h];
    const auto prompt = std::span<const std::int32_t>(s.run->out.prompt_ids);
    handle source = h;
    std::size_t shared = common_prefix(s.cached, prompt);
    for (handle u = 0; u < slots_.size(); ++u) {
      if (u == h) continue;
      const std::size_t n = common_prefix(slots_[u].cached, prompt);
      if (n > shared) {
        source = u;
        shared = n;
      }
    }
    if (may_follow) {
      for (const auto& p : pending_) {
        const std::size_t n = common_prefix(slots_[p.slot].run->out.prompt_ids, prompt);
        if (n > shared) {
          followers_.push_back({h, p.slot, n});
          return;
        }
      }
    }
    share(source, h, shared, prompt);
  }

  // Starts h from the first `shared` positions of `source`; what remains is queued for evaluation.
  void share(handle source, handle h, std::size_t shared, std::span<const std::int32_t> prompt) {
    slot& s = slots_[h];
    const bool same_prompt = shared == prompt.size() && slots_[source].prompt_logits_for == prompt.size();
    const std::size_t keep = same_prompt ? prompt.size() : std::min(shared, prompt.size() - 1);
    if (source != h || keep < s.cached.size()) context_.copy_prefix(source, h, keep);
    if (source != h) {
      s.cached.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(keep));
    } else {
      s.cached.resize(keep);
    }
    if (s.prompt_logits_for > keep) s.prompt_logits_for = 0;  // those logits no longer follow its cache
    if (same_prompt) {
      if (source != h) std::copy_n(prompt_logits_of(source), n_vocab_, prompt_logits_of(h));
      prompt_evaluated(h, 0);
    } else {
      pending_.push_back({h, keep});
    }
  }

  // Evaluates the rest of every pending prompt in as few forward passes as n_batch allows (a long
  // prompt spans several; several short ones share one).
  void evaluate(const std::vector<pending_prompt>& pending) {
    if (pending.empty()) return;
    for (const auto& p : pending) make_room(p.slot, p.from, slots_[p.slot].run->out.prompt_ids.size());
    const std::size_t n_batch = context_.n_batch();
    std::size_t i = 0, at = pending[0].from;
    auto next_prompt = [&] {
      if (++i < pending.size()) at = pending[i].from;
    };
    while (i < pending.size()) {
      prompt_batch_.clear();
      chunk_slots_.clear();
      chunk_rows_.clear();
      while (i < pending.size() && prompt_batch_.size() < n_batch) {
        const handle h = pending[i].slot;
        if (slots_[h].state != phase::prefill) {  // failed in an earlier chunk
          next_prompt();
          continue;
        }
        const auto& prompt = slots_[h].run->out.prompt_ids;
        const std::size_t take = std::min(prompt.size() - at, n_batch - prompt_batch_.size());
        for (std::size_t k = 0; k < take; ++k) prompt_batch_.push_back({prompt[at + k], h, at + k + 1 == prompt.size()});
        chunk_slots_.push_back(h);
        at += take;
        if (at == prompt.size()) {
          chunk_rows_.push_back({h, prompt.size() - pending[i].from});
          next_prompt();
        }
      }
      if (prompt_batch_.empty()) break;
      try {
        const auto rows = context_.decode_batch(prompt_batch_);
        for (std::size_t r = 0; r < chunk_rows_.size(); ++r) {
          std::copy_n(rows.data() + r * n_vocab_, n_vocab_, prompt_logits_of(chunk_rows_[r].slot));
        }
      } catch (const std::exception& e) {
        for (const handle h : chunk_slots_) fail_prefill(h, e.what());  // the others go on
        continue;
      }
      for (const auto& row : chunk_rows_) prompt_evaluated(row.slot, row.from);
    }
  }

  // h's prompt is in its cache and its logits in prompt_logits_of(h): it starts generating.
  void prompt_evaluated(handle h, std::size_t evaluated) {
    slot& s = slots_[h];
    auto& run = *s.run;
    const auto& prompt = run.out.prompt_ids;
    s.cached.assign(prompt.begin(), prompt.end());
    s.prompt_logits_for = prompt.size();
    std::copy_n(prompt_logits_of(h), n_vocab_, logits_of(h));
    run.prompt_done = clock::now();
    run.out.time.prompt_ms = std::chrono::duration<double, std::milli>(run.prompt_done - run.started).count();
    run.out.time.prompt_tokens = evaluated;
    s.state = phase::running;
    if (run.opts.max_tokens == 0) finish(h, stop_reason::max_tokens);
  }

  void fail_prefill(handle h, const char* why) {
    if (slots_[h].state != phase::prefill) return;
    slot& s = slots_[h];
    context_.truncate(h, 0);
    s.cached.clear();
    s.prompt_logits_for = 0;
    finish(h, stop_reason::error, why, std::current_exception());
  }

  // Samples the next token of a running sequence, streams it, and either finishes the sequence or
  // queues the token for this step's forward pass.
  void sample_next(handle h) {
    slot& s = slots_[h];
    auto& run = *s.run;
    auto& out = run.out;
    if (run.stop.stop_requested()) return finish(h, stop_reason::cancelled);
    if (run.constraint && run.constraint->finished()) return finish(h, stop_reason::end_of_text);
    sample::sampled pick;
    try {
      const auto allowed = run.constraint ? run.constraint->allowed() : std::span<const std::uint64_t>{};
      pick = run.sampler.sample(std::span<const float>(logits_of(h), n_vocab_), out.ids, allowed);
      if (run.constraint) run.constraint->accept(pick.id);
    } catch (const std::exception& e) {
      return finish(h, stop_reason::error, e.what(), std::current_exception());
    }
    if (out.ids.empty()) {
      out.time.time_to_first_token_ms = std::chrono::duration<double, std::milli>(clock::now() - run.started).count();
    }
    if (model_->tokens().vocabulary().is_end_of_generation(pick.id)) return finish(h, stop_reason::end_of_text);
    out.ids.push_back(pick.id);
    out.logprobs.push_back(pick.logprob);
    out.top_logprobs.insert(out.top_logprobs.end(), pick.top.begin(), pick.top.end());
    const std::string_view piece = run.decoder.push(pick.id);
    const std::string_view visible = run.filter.push(piece);
    const bool keep_going = run.sink(token_event{pick.id, visible, pick.logprob, pick.top});
    if (run.filter.stopped()) return finish(h, stop_reason::stop_string);
    if (!keep_going) return finish(h, stop_reason::cancelled);
    if (context_.position(h) + 1 > context_.n_ctx()) return finish(h, stop_reason::context_full);
    if (out.ids.size() == static_cast<std::size_t>(run.opts.max_tokens)) return finish(h, stop_reason::max_tokens);
    batch_.push_back({pick.id, h});
    batch_slot_.push_back(h);
  }

  // Frees KV pages held by idle slots (least recently used first) until sequence `h` can write
  // positions [begin, end).
  void make_room(handle h, std::size_t begin, std::size_t end) {
    while (context_.cache().pages_needed(h, begin, end) > context_.cache().pages_free()) {
      if (!evict_one_idle(h)) return;  // decode reports the shortage with its own message
    }
  }
  bool evict_one_idle(handle except) {
    std::optional<handle> victim;
    for (handle u = 0; u < slots_.size(); ++u) {
      const bool idle = slots_[u].state == phase::free || slots_[u].state == phase::finished;
      if (u == except || !idle || slots_[u].cached.empty()) continue;
      if (!victim || slots_[u].last_used < slots_[*victim].last_used) victim = u;
    }
    if (!victim) return false;
    context_.truncate(*victim, 0);
    slots_[*victim].cached.clear();
    slots_[*victim].prompt_logits_for = 0;
    return true;
  }
  // Before the batch: pages for every queued token, evicting idle caches, and failing the newest
  // sequences when the pool is still too small (a pool smaller than n_seq full contexts).
  void make_room_for_batch() {
    auto needed = [&] {
      std::size_t n = 0;
      for (const auto& e : batch_) n += context_.cache().pages_needed(e.seq, context_.position(e.seq), context_.position(e.seq) + 1);
      return n;
    };
    while (needed() > context_.cache().pages_free()) {
      if (evict_one_idle(slots_.size())) continue;
      const auto newest = std::max_element(batch_slot_.begin(), batch_slot_.end(), [&](handle a, handle b) {
        return slots_[a].last_used < slots_[b].last_used;
      });
      const handle h = *newest;
      const auto at = static_cast<std::size_t>(newest - batch_slot_.begin());
      batch_.erase(batch_.begin() + static_cast<std::ptrdiff_t>(at));
      batch_slot_.erase(newest);
      finish(h, stop_reason::error, "the KV cache has no free page for this sequence (kv_pages too small)");
    }
  }

  void finish(handle h, stop_reason reason, std::string_view why = {}, std::exception_ptr failure = nullptr) {
    slot& s = slots_[h];
    auto& run = *s.run;
    auto& out = run.out;
    out.reason = reason;
    if (!why.empty()) out.error = std::string(why);
    if (reason == stop_reason::error) {
      out.failure = failure ? failure : std::make_exception_ptr(chorus::error(errc::out_of_range, std::string(why)));
    }
    if (!run.filter.stopped()) {
      const std::string_view rest = run.decoder.flush();
      const std::string_view tail = run.filter.push(rest);
      if (run.filter.stopped()) out.reason = stop_reason::stop_string;
      std::string remaining(tail);
      remaining += run.filter.flush();
      if (!remaining.empty()) run.sink(token_event{-1, remaining, 0.0f});
    }
    out.text = run.filter.text();
    const auto from = run.prompt_done == clock::time_point{} ? run.started : run.prompt_done;
    out.time.generation_ms = std::chrono::duration<double, std::milli>(clock::now() - from).count();
    out.time.generated_tokens = out.ids.size();
    s.state = phase::finished;
  }

  std::shared_ptr<const language_model> model_;
  model::basic_context<KvElement> context_;
  std::size_t n_vocab_;
  std::vector<slot> slots_;
  std::vector<float> logits_;         // per slot: the logits its next token is sampled from
  std::vector<float> prompt_logits_;  // per slot: the logits after its prompt (an identical prompt reuses them)
  std::vector<typename model::basic_context<KvElement>::batch_token> batch_;
  std::vector<handle> batch_slot_;
  std::vector<pending_prompt> pending_;   // prefill: prompts to evaluate in this wave
  std::vector<follower> followers_;       // prefill: prompts waiting for a leader of this step
  std::vector<typename model::basic_context<KvElement>::batch_token> prompt_batch_;
  std::vector<pending_prompt> chunk_rows_;  // the prompts that end in a chunk (from: tokens evaluated)
  std::vector<handle> chunk_slots_;         // the sequences with tokens in a chunk
  std::uint64_t use_clock_ = 0;
};

using engine = basic_engine<fp16>;

}  // namespace chorus::inline CHORUS_ABI::generate
