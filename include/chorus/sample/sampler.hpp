// chorus — turning logits into the next token: small composable stages (penalties,
// temperature, top-k, top-p, min-p) over a candidate list, then a seeded random pick or the
// arg-max. Buffers are sized once per sampler; sampling a token allocates nothing.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
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
    const float max = items.empty() ? 0.0f : items[0].logit;
    double sum = 0.0;
    for (auto& c : items) sum += (c.p = std::exp(c.logit - max));
    for (auto& c : items) c.p = static_cast<float>(c.p / sum);
    normalised = true;
  }
  void keep(std::size_t n) { items = items.first(std::min(n, items.size())); }
};

// A stage is anything with apply(candidates&).
template <class S>
concept stage = requires(S s, candidates& c) { s.apply(c); };

struct temperature {
  float value = 1.0f;
  void apply(candidates& c) const {
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

// Keeps the smallest prefix whose probability reaches p.
struct top_p {
  float p = 0.95f;
  void apply(candidates& c) const {
    if (p >= 1.0f) return;
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

// Keeps the candidates whose probability is at least p times the best one's.
struct min_p {
  float p = 0.05f;
  void apply(candidates& c) const {
    if (p <= 0.0f) return;
    c.sort();
    const float threshold = c.items[0].logit + std::log(p);
    std::size_t n = 1;
    while (n < c.items.size() && c.items[n].logit >= threshold) ++n;
    c.keep(n);
    c.normalised = false;
  }
};

// Repetition (divide positive logits, multiply negative ones), frequency and presence
// penalties over the recent tokens.
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
    if (!(repeat_penalty > 0.0f)) fail(errc::invalid_argument, "sampling: repeat_penalty ", repeat_penalty, " must be > 0");
    if (penalty_last_n < 0) fail(errc::invalid_argument, "sampling: penalty_last_n must be >= 0");
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

// A uniform double in [0, 1) from 53 bits of the generator: the same on every standard
// library (std::uniform_real_distribution is not). Generators of 32 or 64 full bits.
template <std::uniform_random_bit_generator G>
double uniform01(G& g) {
  static_assert(G::min() == 0 && (G::max() == 0xFFFFFFFFu || G::max() == std::numeric_limits<std::uint64_t>::max()),
                "sampler: the generator must produce 32 or 64 uniform bits");
  std::uint64_t bits = static_cast<std::uint64_t>(g());
  if constexpr (G::max() == 0xFFFFFFFFu) bits = (bits << 32) | static_cast<std::uint64_t>(g());
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
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
  sampled sample(std::span<const float> logits, std::span<const std::int32_t> history = {}) {
    if (logits.size() != buffer_.size()) {
      fail(errc::invalid_argument, "sampler: ", logits.size(), " logits for a vocabulary of ", buffer_.size());
    }
    // log-sum-exp of the unmodified logits, for the reported log-probabilities
    const float max = *std::max_element(logits.begin(), logits.end());
    double sum = 0.0;
    for (const float l : logits) sum += std::exp(static_cast<double>(l - max));
    const float log_z = max + static_cast<float>(std::log(sum));

    std::int32_t chosen = 0;
    const std::size_t n_recent = std::min<std::size_t>(history.size(), static_cast<std::size_t>(params_.penalty_last_n));
    const auto recent = history.last(n_recent);
    const bool penalised = params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f;
    if (params_.temperature == 0.0f && !(penalised && !recent.empty())) {
      chosen = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    } else {
      for (std::size_t i = 0; i < logits.size(); ++i) buffer_[i] = {static_cast<std::int32_t>(i), logits[i], 0.0f};
      candidates c{buffer_};
      penalties{params_.repeat_penalty, params_.frequency_penalty, params_.presence_penalty, recent, &counts_}.apply(c);
      if (params_.temperature == 0.0f) {
        c.sort();
        chosen = c.items[0].id;
      } else {
        top_k{params_.top_k}.apply(c);
        top_p{params_.top_p}.apply(c);
        min_p{params_.min_p}.apply(c);
        temperature{params_.temperature}.apply(c);
        c.softmax();
        double u = uniform01(rng_);
        chosen = c.items.back().id;
        for (const auto& x : c.items) {
          u -= x.p;
          if (u < 0.0) {
            chosen = x.id;
            break;
          }
        }
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
  sampling_params params_;
  Rng rng_;
  std::vector<candidate> buffer_;
  std::vector<std::int32_t> counts_;
  std::vector<token_logprob> top_;
};

}  // namespace chorus::inline CHORUS_ABI::sample
