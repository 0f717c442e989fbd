// chorus — turning logits into the next token: small composable stages (penalties,
// temperature, top-k, top-p, min-p) over a candidate list, then a seeded random pick or the
// arg-max. Buffers are sized once per sampler; sampling a token allocates nothing.
//
// A stage is any type with `void apply(candidates&) const` (the `stage` concept): it edits
// the logits in place and/or shrinks the candidate span. `chain{a, b, c}.apply(cands)` runs
// several in order; pick_random / pick_greedy choose the token. `sampler` composes them from
// `sampling_params` in the usual order: penalties, top-k, top-p, min-p, temperature, pick
// (temperature 0 = greedy after the penalties; top-p and min-p judge the untempered
// distribution).
//
// Log-probabilities reported with a token (`sampled::logprob`, `sampled::top`) are the
// log-softmax of the ORIGINAL logits, before penalties, temperature and truncation: they
// measure what the model believed, comparable across members with different sampling
// settings (the fusion judges rely on this), and never -inf for a token that was cut.
//
// Constrained decoding: sample() takes an optional set of allowed tokens (a bitset, as
// sample::grammar_constraint::allowed() gives). Tokens outside it are removed before every
// stage (penalties, top-k, ...), and the reported log-probabilities are those of the
// constrained distribution: the log-softmax over the allowed tokens only.
//
// Reproducibility: for a fixed seed and the same logits the choice is the same on every
// standard library and platform: the uniform number is built from the generator's raw bits
// (uniform01), not with std::uniform_real_distribution, and ties sort by id.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"

namespace chorus::inline CHORUS_ABI::sample {

struct candidate {
  std::int32_t id;
  float logit;
  float p;
};

// The working set a stage transforms: candidates, and whether they are sorted by logit
// (descending) and hold normalised probabilities.
struct candidates {
  std::span<candidate> items;
  bool sorted = false;
  bool normalised = false;

  void sort() {
    if (!sorted) {
      std::sort(items.begin(), items.end(), [](const candidate& a, const candidate& b) {
        return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
      });
      sorted = true;
    }
  }
  void softmax() {
    sort();
    if (items.empty()) return;
    const float max = items[0].logit;
    double sum = 0.0;
    for (auto& c : items) sum += (c.p = std::exp(c.logit - max));
    for (auto& c : items) c.p = static_cast<float>(c.p / sum);
    normalised = true;
  }
  void keep(std::size_t n) { items = items.first(std::min(n, items.size())); }
};

// A stage is anything with apply(candidates&).
template <class S>
concept stage = requires(const S s, candidates& c) { s.apply(c); };

// Several stages applied in order, itself a stage: chain{top_k{40}, temperature{0.7f}}.apply(c).
template <stage... Stages>
struct chain {
  std::tuple<Stages...> stages;
  explicit chain(Stages... s) : stages(std::move(s)...) {}
  void apply(candidates& c) const {
    std::apply([&c](const auto&... s) { (s.apply(c), ...); }, stages);
  }
};

// Divides the logits by the temperature. A temperature of 0 (or below) is the limit: only the
// best candidate (lowest id among equals) remains.
struct temperature {
  float value = 1.0f;
  void apply(candidates& c) const {
    if (c.items.empty()) return;
    if (!(value > 0.0f)) {
      c.sort();
      c.keep(1);
      c.normalised = false;
      return;
    }
    for (auto& x : c.items) x.logit /= value;
    c.normalised = false;
  }
};

struct top_k {
  std::int32_t k = 40;
  void apply(candidates& c) const {
    if (k <= 0 || static_cast<std::size_t>(k) >= c.items.size()) return;
    if (!c.sorted) {
      std::partial_sort(c.items.begin(), c.items.begin() + k, c.items.end(), [](const candidate& a, const candidate& b) {
        return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
      });
      c.sorted = true;
    }
    c.keep(static_cast<std::size_t>(k));
    c.normalised = false;
  }
};

// Keeps the smallest prefix (by probability, descending) whose probability reaches p; at least one.
struct top_p {
  float p = 0.95f;
  void apply(candidates& c) const {
    if (p >= 1.0f || c.items.empty()) return;
    c.softmax();
    double sum = 0.0;
    std::size_t n = 0;
    while (n < c.items.size()) {
      sum += c.items[n++].p;
      if (sum >= p) break;
    }
    c.keep(n);
    c.normalised = false;
  }
};

// Keeps the candidates whose probability is at least p times the best one's (always the best).
struct min_p {
  float p = 0.05f;
  void apply(candidates& c) const {
    if (p <= 0.0f || c.items.empty()) return;
    c.sort();
    const float threshold = c.items[0].logit + std::log(p);
    std::size_t n = 1;
    while (n < c.items.size() && c.items[n].logit >= threshold) ++n;
    c.keep(n);
    c.normalised = false;
  }
};

// Repetition (divide positive logits, multiply negative ones), frequency and presence
// penalties over the recent tokens: a token seen n > 0 times in `history` gets
//   logit' = (logit > 0 ? logit / repeat : logit * repeat) - n * frequency - presence.
// `counts` is scratch of n_vocab zeros (left zeroed); history ids must be in [0, n_vocab)
// (the sampler checks them).
struct penalties {
  float repeat = 1.0f;
  float frequency = 0.0f;
  float presence = 0.0f;
  std::span<const std::int32_t> history;
  std::vector<std::int32_t>* counts = nullptr;  // scratch of n_vocab zeros, restored after use

  void apply(candidates& c) const {
    if ((repeat == 1.0f && frequency == 0.0f && presence == 0.0f) || history.empty() || counts == nullptr) return;
    for (const auto id : history) ++(*counts)[static_cast<std::size_t>(id)];
    for (auto& x : c.items) {
      const auto n = (*counts)[static_cast<std::size_t>(x.id)];
      if (n == 0) continue;
      x.logit = x.logit > 0.0f ? x.logit / repeat : x.logit * repeat;
      x.logit -= static_cast<float>(n) * frequency + presence;
    }
    for (const auto id : history) (*counts)[static_cast<std::size_t>(id)] = 0;
    c.sorted = false;
    c.normalised = false;
  }
};

// The id of the best candidate; ties go to the lowest id. The candidates must be non-empty.
inline std::int32_t pick_greedy(const candidates& c) noexcept {
  if (c.sorted) return c.items[0].id;
  const candidate* best = &c.items[0];
  for (const auto& x : c.items) {
    if (x.logit > best->logit || (x.logit == best->logit && x.id < best->id)) best = &x;
  }
  return best->id;
}

struct sampling_params {
  float temperature = 0.8f;  // 0 = greedy (arg-max, ties to the lowest id)
  std::int32_t top_k = 40;   // 0 = off
  float top_p = 0.95f;       // 1 = off
  float min_p = 0.05f;       // 0 = off
  float repeat_penalty = 1.0f;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  std::int32_t penalty_last_n = 64;
  std::uint64_t seed = 0;
  std::int32_t top_logprobs = 0;  // alternatives reported with each token

  void validate() const {
    if (!(temperature >= 0.0f) || !std::isfinite(temperature)) fail(errc::invalid_argument, "sampling: temperature ", temperature, " must be >= 0");
    if (top_k < 0) fail(errc::invalid_argument, "sampling: top_k ", top_k, " must be >= 0");
    if (!(top_p > 0.0f && top_p <= 1.0f)) fail(errc::invalid_argument, "sampling: top_p ", top_p, " must be in (0, 1]");
    if (!(min_p >= 0.0f && min_p <= 1.0f)) fail(errc::invalid_argument, "sampling: min_p ", min_p, " must be in [0, 1]");
    if (!(repeat_penalty > 0.0f) || !std::isfinite(repeat_penalty)) fail(errc::invalid_argument, "sampling: repeat_penalty ", repeat_penalty, " must be > 0");
    if (!std::isfinite(frequency_penalty)) fail(errc::invalid_argument, "sampling: frequency_penalty must be finite");
    if (!std::isfinite(presence_penalty)) fail(errc::invalid_argument, "sampling: presence_penalty must be finite");
    if (penalty_last_n < 0) fail(errc::invalid_argument, "sampling: penalty_last_n ", penalty_last_n, " must be >= 0");
    if (top_logprobs < 0 || top_logprobs > 100) fail(errc::invalid_argument, "sampling: top_logprobs must be in [0, 100]");
  }
};

struct token_logprob {
  std::int32_t id;
  float logprob;
};

struct sampled {
  std::int32_t id = 0;
  float logprob = 0.0f;  // log-softmax of the chosen token under the unmodified logits
  std::span<const token_logprob> top;  // the best alternatives under the unmodified logits
};

// `bits` uniform random bits (1..64) from any uniform random bit generator, built only from
// its raw outputs (high bits first: a 64-bit generator gives its top `bits` bits), so the same generator state gives the same bits everywhere. A generator
// whose range is not a power of two (std::minstd_rand: [1, 2^31 - 2]) has outputs above the
// largest power of two it covers rejected, so that every bit is unbiased.
template <std::uniform_random_bit_generator G>
std::uint64_t random_bits(G& g, int bits) {
  using result = typename G::result_type;
  constexpr std::uint64_t range = static_cast<std::uint64_t>(G::max() - G::min());  // outputs - 1
  constexpr int bits_per_call = range == std::numeric_limits<std::uint64_t>::max() ? 64 : std::bit_width(range + 1) - 1;
  static_assert(bits_per_call >= 1, "sampler: the generator must produce at least two values");
  constexpr std::uint64_t usable_mask = bits_per_call == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits_per_call) - 1;
  std::uint64_t out = 0;
  int have = 0;
  while (have < bits) {
    std::uint64_t x = 0;
    do {
      x = static_cast<std::uint64_t>(static_cast<result>(g() - G::min()));
    } while (x > usable_mask);
    const int take = std::min(bits - have, bits_per_call);
    x >>= bits_per_call - take;  // the high bits of each output (the better ones of weak generators)
    out = take == 64 ? x : (out << take) | x;
    have += take;
  }
  return out;
}

// A uniform double in [0, 1) from 53 bits of the generator: the same on every standard
// library (std::uniform_real_distribution is not).
template <std::uniform_random_bit_generator G>
double uniform01(G& g) {
  return static_cast<double>(random_bits(g, 53)) * 0x1.0p-53;
}

// The random pick: candidate i with probability p_i (after softmax over what remains).
template <std::uniform_random_bit_generator G>
std::int32_t pick_random(candidates& c, G& g) {
  if (c.items.empty()) fail(errc::invalid_argument, "sampler: no candidate left to pick from");
  if (!c.normalised) c.softmax();
  double u = uniform01(g);
  for (const auto& x : c.items) {
    u -= x.p;
    if (u < 0.0) return x.id;
  }
  return c.items.back().id;  // rounding left u a hair above the total
}

template <std::uniform_random_bit_generator Rng = std::mt19937_64>
class sampler {
 public:
  sampler(const sampling_params& params, std::size_t n_vocab) : params_(params), rng_(params.seed) {
    params_.validate();
    if (n_vocab == 0) fail(errc::invalid_argument, "sampler: empty vocabulary");
    buffer_.resize(n_vocab);
    counts_.assign(n_vocab, 0);
    top_.resize(static_cast<std::size_t>(params_.top_logprobs));
  }

  const sampling_params& params() const noexcept { return params_; }
  void reseed(std::uint64_t seed) { rng_.seed(seed); }

  // Picks the next token from `logits` given the tokens generated so far (for penalties).
  // `allowed`, when not empty, is a bitset of the tokens that may be picked (bit i % 64 of
  // word i / 64); it must hold at least one token.
  sampled sample(std::span<const float> logits, std::span<const std::int32_t> history = {},
                 std::span<const std::uint64_t> allowed = {}) {
    if (logits.size() != buffer_.size()) {
      fail(errc::invalid_argument, "sampler: ", logits.size(), " logits for a vocabulary of ", buffer_.size());
    }
    if (!allowed.empty()) return sample_allowed(logits, history, allowed);
    // log-sum-exp of the unmodified logits, for the reported log-probabilities
    const float max = *std::max_element(logits.begin(), logits.end());
    double sum = 0.0;
    for (const float l : logits) sum += std::exp(static_cast<double>(l - max));
    if (!std::isfinite(max) || !std::isfinite(sum)) {
      fail(errc::invalid_argument, "sampler: the logits contain NaN or +infinity, or no finite value");
    }
    const float log_z = max + static_cast<float>(std::log(sum));

    std::int32_t chosen = 0;
    const std::size_t n_recent = std::min<std::size_t>(history.size(), static_cast<std::size_t>(params_.penalty_last_n));
    const auto recent = history.last(n_recent);
    for (const auto id : recent) {  // the penalties index a per-vocabulary table with them
      if (id < 0 || static_cast<std::size_t>(id) >= buffer_.size()) {
        fail(errc::invalid_argument, "sampler: history token ", id, " is outside the vocabulary of ", buffer_.size());
      }
    }
    const bool penalised = params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f;
    if (params_.temperature == 0.0f && !(penalised && !recent.empty())) {
      chosen = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());  // first max
    } else {
      for (std::size_t i = 0; i < logits.size(); ++i) buffer_[i] = {static_cast<std::int32_t>(i), logits[i], 0.0f};
      candidates c{buffer_};
      penalties{params_.repeat_penalty, params_.frequency_penalty, params_.presence_penalty, recent, &counts_}.apply(c);
      if (params_.temperature == 0.0f) {
        chosen = pick_greedy(c);
      } else {
        chain{top_k{params_.top_k}, top_p{params_.top_p}, min_p{params_.min_p}, temperature{params_.temperature}}.apply(c);
        chosen = pick_random(c, rng_);
      }
    }
    sampled result{chosen, logits[static_cast<std::size_t>(chosen)] - log_z, {}};
    if (!top_.empty()) {
      // the best alternatives by a partial selection over the unmodified logits
      std::size_t n = 0;
      for (std::size_t i = 0; i < logits.size(); ++i) {
        const token_logprob entry{static_cast<std::int32_t>(i), logits[i] - log_z};
        if (n < top_.size()) {
          top_[n++] = entry;
        } else if (entry.logprob > top_.back().logprob) {
          top_.back() = entry;
        } else {
          continue;
        }
        for (std::size_t k = n - 1; k > 0 && top_[k].logprob > top_[k - 1].logprob; --k) std::swap(top_[k], top_[k - 1]);
      }
      result.top = std::span<const token_logprob>(top_.data(), n);
    }
    return result;
  }

 private:
  // Calls f(id) for each token of the bitset, in increasing order.
  template <class F>
  void for_each_allowed(std::span<const std::uint64_t> allowed, F&& f) const {
    for (std::size_t w = 0; w < allowed.size(); ++w) {
      for (std::uint64_t bits = allowed[w]; bits != 0; bits &= bits - 1) {
        const std::size_t i = w * 64 + static_cast<std::size_t>(std::countr_zero(bits));
        if (i < buffer_.size()) f(i);
      }
    }
  }

  // sample() over the allowed tokens only: the others do not exist for any stage.
  sampled sample_allowed(std::span<const float> logits, std::span<const std::int32_t> history, std::span<const std::uint64_t> allowed) {
    if (allowed.size() * 64 < buffer_.size()) {
      fail(errc::invalid_argument, "sampler: an allowed-token set of ", allowed.size() * 64, " bits for a vocabulary of ", buffer_.size());
    }
    float max = -std::numeric_limits<float>::infinity();
    std::size_t n = 0, best = 0;
    for_each_allowed(allowed, [&](std::size_t i) {
      if (logits[i] > max || n == 0) {
        max = logits[i];
        best = i;
      }
      ++n;
    });
    if (n == 0) fail(errc::invalid_argument, "sampler: no token is allowed");
    double sum = 0.0;
    for_each_allowed(allowed, [&](std::size_t i) { sum += std::exp(static_cast<double>(logits[i] - max)); });
    if (!std::isfinite(max) || !std::isfinite(sum)) {
      fail(errc::invalid_argument, "sampler: the allowed logits contain NaN or +infinity, or no finite value");
    }
    const float log_z = max + static_cast<float>(std::log(sum));

    const std::size_t n_recent = std::min<std::size_t>(history.size(), static_cast<std::size_t>(params_.penalty_last_n));
    const auto recent = history.last(n_recent);
    for (const auto id : recent) {
      if (id < 0 || static_cast<std::size_t>(id) >= buffer_.size()) {
        fail(errc::invalid_argument, "sampler: history token ", id, " is outside the vocabulary of ", buffer_.size());
      }
    }
    const bool penalised = params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f;
    std::int32_t chosen = static_cast<std::int32_t>(best);  // first max among the allowed
    if (!(params_.temperature == 0.0f && !(penalised && !recent.empty()))) {
      std::size_t m = 0;
      for_each_allowed(allowed, [&](std::size_t i) { buffer_[m++] = {static_cast<std::int32_t>(i), logits[i], 0.0f}; });
      candidates c{std::span<candidate>(buffer_.data(), m)};
      penalties{params_.repeat_penalty, params_.frequency_penalty, params_.presence_penalty, recent, &counts_}.apply(c);
      if (params_.temperature == 0.0f) {
        chosen = pick_greedy(c);
      } else {
        chain{top_k{params_.top_k}, top_p{params_.top_p}, min_p{params_.min_p}, temperature{params_.temperature}}.apply(c);
        chosen = pick_random(c, rng_);
      }
    }
    sampled result{chosen, logits[static_cast<std::size_t>(chosen)] - log_z, {}};
    if (!top_.empty()) {
      std::size_t k = 0;
      for_each_allowed(allowed, [&](std::size_t i) {
        const token_logprob entry{static_cast<std::int32_t>(i), logits[i] - log_z};
        if (k < top_.size()) {
          top_[k++] = entry;
        } else if (entry.logprob > top_.back().logprob) {
          top_.back() = entry;
        } else {
          return;
        }
        for (std::size_t j = k - 1; j > 0 && top_[j].logprob > top_[j - 1].logprob; --j) std::swap(top_[j], top_[j - 1]);
      });
      result.top = std::span<const token_logprob>(top_.data(), k);
    }
    return result;
  }

  sampling_params params_;
  Rng rng_;
  std::vector<candidate> buffer_;
  std::vector<std::int32_t> counts_;
  std::vector<token_logprob> top_;
};

}  // namespace chorus::inline CHORUS_ABI::sample
