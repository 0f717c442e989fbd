// Tests of sample/: each stage's semantics on hand-made logits, the greedy tie rule, penalties,
// log-probabilities, reproducibility with fixed seeds, frequencies of seeded sampling, and
// parameter validation.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace chorus;
using sample::candidate;

std::vector<candidate> from_logits(const std::vector<float>& logits) {
  std::vector<candidate> items;
  for (std::size_t i = 0; i < logits.size(); ++i) items.push_back({static_cast<std::int32_t>(i), logits[i], 0.0f});
  return items;
}

std::vector<std::int32_t> ids_of(const sample::candidates& c) {
  std::vector<std::int32_t> ids;
  for (const auto& x : c.items) ids.push_back(x.id);
  return ids;
}

sample::sampling_params plain(float temperature, std::uint64_t seed = 1) {
  sample::sampling_params p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

using chorus_test::expect_error;

TEST(Sample, TemperatureScalesLogits) {
  auto items = from_logits({1.0f, -2.0f, 4.0f});
  sample::candidates c{items};
  sample::temperature{0.5f}.apply(c);
  EXPECT_EQ(c.items[0].logit, 2.0f);
  EXPECT_EQ(c.items[1].logit, -4.0f);
  EXPECT_EQ(c.items[2].logit, 8.0f);
  // Temperature 0 is the limit: only the best remains, ties to the lowest id.
  auto tied = from_logits({1.0f, 3.0f, 0.0f, 3.0f});
  sample::candidates t{tied};
  sample::temperature{0.0f}.apply(t);
  EXPECT_EQ(ids_of(t), std::vector<std::int32_t>{1});
}

TEST(Sample, TopKKeepsTheBestKInOrder) {
  auto items = from_logits({1.0f, 4.0f, 3.0f, 4.0f, 2.0f});
  sample::candidates c{items};
  sample::top_k{3}.apply(c);
  EXPECT_EQ(ids_of(c), (std::vector<std::int32_t>{1, 3, 2}));  // 4, 4 (ties by id), 3
  EXPECT_TRUE(c.sorted);
  auto all = from_logits({1.0f, 2.0f});
  sample::candidates d{all};
  sample::top_k{0}.apply(d);  // off
  EXPECT_EQ(d.items.size(), 2u);
  sample::top_k{5}.apply(d);  // more than there are
  EXPECT_EQ(d.items.size(), 2u);
}

TEST(Sample, TopPKeepsTheSmallestPrefixReachingP) {
  const std::vector<float> logits = {std::log(0.2f), std::log(0.5f), std::log(0.3f)};
  for (const auto& [p, expected] : std::vector<std::pair<float, std::vector<std::int32_t>>>{
           {0.4f, {1}}, {0.6f, {1, 2}}, {0.79f, {1, 2}}, {0.9f, {1, 2, 0}}, {1.0f, {0, 1, 2}}}) {
    auto items = from_logits(logits);
    sample::candidates c{items};
    sample::top_p{p}.apply(c);
    EXPECT_EQ(ids_of(c), expected) << p;
  }
}

TEST(Sample, MinPKeepsWhatIsAtLeastPTimesTheBest) {
  const std::vector<float> logits = {std::log(0.3f), std::log(0.5f), std::log(0.15f), std::log(0.05f)};
  for (const auto& [p, expected] : std::vector<std::pair<float, std::vector<std::int32_t>>>{
           {0.5f, {1, 0}}, {0.25f, {1, 0, 2}}, {0.7f, {1}}, {1.0f, {1}}, {0.0f, {0, 1, 2, 3}}}) {
    auto items = from_logits(logits);
    sample::candidates c{items};
    sample::min_p{p}.apply(c);
    EXPECT_EQ(ids_of(c), expected) << p;
  }
}

TEST(Sample, PenaltiesFollowTheirFormula) {
  std::vector<std::int32_t> counts(4, 0);
  const std::vector<std::int32_t> history = {1, 1, 2};
  auto items = from_logits({2.0f, 2.0f, -2.0f, 1.0f});
  sample::candidates c{items};
  sample::penalties{2.0f, 0.5f, 0.25f, history, &counts}.apply(c);
  EXPECT_FLOAT_EQ(c.items[0].logit, 2.0f);                 // not in the history
  EXPECT_FLOAT_EQ(c.items[1].logit, 2.0f / 2 - 2 * 0.5f - 0.25f);  // twice, positive
  EXPECT_FLOAT_EQ(c.items[2].logit, -2.0f * 2 - 0.5f - 0.25f);     // once, negative
  EXPECT_FLOAT_EQ(c.items[3].logit, 1.0f);
  EXPECT_EQ(counts, std::vector<std::int32_t>(4, 0));  // the scratch is left zeroed
}

TEST(Sample, ChainAppliesStagesInOrder) {
  const std::vector<float> logits = {0.1f, 2.0f, 1.5f, -1.0f, 1.9f, 0.0f};
  auto a = from_logits(logits);
  sample::candidates ca{a};
  sample::chain{sample::top_k{4}, sample::top_p{0.8f}, sample::temperature{0.7f}}.apply(ca);
  auto b = from_logits(logits);
  sample::candidates cb{b};
  sample::top_k{4}.apply(cb);
  sample::top_p{0.8f}.apply(cb);
  sample::temperature{0.7f}.apply(cb);
  ASSERT_EQ(ids_of(ca), ids_of(cb));
  for (std::size_t i = 0; i < ca.items.size(); ++i) EXPECT_EQ(ca.items[i].logit, cb.items[i].logit);
  static_assert(sample::stage<sample::chain<sample::top_k, sample::min_p>>);
}

TEST(Sample, GreedyTiesGoToTheLowestId) {
  auto items = from_logits({0.0f, 5.0f, -1.0f, 5.0f, 5.0f});
  std::swap(items[1], items[4]);  // unsorted, ids out of order
  EXPECT_EQ(sample::pick_greedy(sample::candidates{items}), 1);
  const std::vector<float> logits = {-3.0f, 7.0f, 7.0f, 7.0f};
  sample::sampler<> s(plain(0.0f), logits.size());
  EXPECT_EQ(s.sample(logits).id, 1);
  // Through the penalty path too: token 1 penalised, 2 and 3 tie.
  auto p = plain(0.0f);
  p.presence_penalty = 1.0f;
  sample::sampler<> penalised(p, logits.size());
  const std::vector<std::int32_t> history = {1};
  EXPECT_EQ(penalised.sample(logits, history).id, 2);
}

TEST(Sample, PenaltiesOnlyLookAtTheLastN) {
  auto p = plain(0.0f);
  p.repeat_penalty = 10.0f;
  p.penalty_last_n = 2;
  const std::vector<float> logits = {5.0f, 4.0f, 3.0f};
  sample::sampler<> s(p, logits.size());
  EXPECT_EQ(s.sample(logits, std::vector<std::int32_t>{0, 2, 2}).id, 0);  // 0 is 3 tokens back: ignored
  EXPECT_EQ(s.sample(logits, std::vector<std::int32_t>{2, 0}).id, 1);     // 0 penalised: 5/10
  p.penalty_last_n = 0;
  sample::sampler<> off(p, logits.size());
  EXPECT_EQ(off.sample(logits, std::vector<std::int32_t>{0}).id, 0);
}

TEST(Sample, LogprobsAreTheLogSoftmaxOfTheOriginalLogits) {
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);  // only to make test data; the values are used as given
  std::vector<float> logits(60);
  for (auto& l : logits) l = normal(gen);
  logits[10] = logits[11] = 20.0f;  // a tie at the top
  double z = 0.0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  auto p = plain(0.8f, 99);
  p.top_k = 5;
  p.repeat_penalty = 1.3f;
  p.top_logprobs = 60;
  sample::sampler<> s(p, logits.size());
  const std::vector<std::int32_t> history = {10, 3, 3};
  for (int step = 0; step < 20; ++step) {
    const auto r = s.sample(logits, history);
    // The chosen token's logprob is under the ORIGINAL logits, whatever the penalties and temperature did.
    EXPECT_NEAR(r.logprob, logits[static_cast<std::size_t>(r.id)] - std::log(z), 1e-4);
    ASSERT_EQ(r.top.size(), 60u);
    double total = 0.0;
    for (std::size_t i = 0; i < r.top.size(); ++i) {
      total += std::exp(static_cast<double>(r.top[i].logprob));
      EXPECT_NEAR(r.top[i].logprob, logits[static_cast<std::size_t>(r.top[i].id)] - std::log(z), 1e-4);
      if (i > 0) {
        EXPECT_GE(r.top[i - 1].logprob, r.top[i].logprob);
        if (r.top[i - 1].logprob == r.top[i].logprob) {
          EXPECT_LT(r.top[i - 1].id, r.top[i].id);
        }
      }
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
    EXPECT_EQ(r.top[0].id, 10);
    EXPECT_EQ(r.top[1].id, 11);
  }
}

TEST(Sample, FixedSeedsReproduce) {
  const std::vector<float> logits = {0.5f, 1.0f, 0.2f, 1.1f, 0.9f, -0.3f, 0.0f, 0.7f};
  auto p = plain(1.0f, 2024);
  p.top_k = 6;
  p.top_p = 0.95f;
  sample::sampler<> a(p, logits.size()), b(p, logits.size());
  std::vector<std::int32_t> first;
  for (int i = 0; i < 2000; ++i) {
    const auto x = a.sample(logits).id;
    ASSERT_EQ(x, b.sample(logits).id) << i;
    first.push_back(x);
  }
  // reseed() restarts the sequence; another seed gives another one.
  a.reseed(2024);
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(a.sample(logits).id, first[static_cast<std::size_t>(i)]);
  sample::sampler<> c(plain(1.0f, 2025), logits.size());
  int same = 0;
  for (int i = 0; i < 2000; ++i) same += c.sample(logits).id == first[static_cast<std::size_t>(i)];
  EXPECT_LT(same, 1000);
}

TEST(Sample, UniformDoublesComeFromTheRawBits) {
  // 53 bits of the generator, the same on every standard library.
  std::mt19937_64 g64(42), ref64(42);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sample::uniform01(g64), static_cast<double>(ref64() >> 11) * 0x1.0p-53);
  std::mt19937 g32(42), ref32(42);  // two 32-bit outputs: all 32 bits, then the top 21
  for (int i = 0; i < 100; ++i) {
    const std::uint64_t hi = ref32(), lo = ref32();
    EXPECT_EQ(sample::uniform01(g32), static_cast<double>((hi << 21) | (lo >> 11)) * 0x1.0p-53);
  }
  // A generator whose range is no power of two still gives values in [0, 1) with the right mean.
  std::minstd_rand odd(5);
  double sum = 0.0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double u = sample::uniform01(odd);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 5 * std::sqrt(1.0 / 12 / n));
  // The sampler works with any such generator.
  sample::sampler<std::minstd_rand> s(plain(1.0f, 3), 3);
  const std::vector<float> logits = {0.0f, 0.0f, 0.0f};
  EXPECT_LT(s.sample(logits).id, 3);
}

// Frequencies of 100k seeded draws against the known softmax: within 5 sigma per token.
void expect_frequencies(const sample::sampling_params& p, const std::vector<float>& logits, const std::vector<double>& expected) {
  sample::sampler<> s(p, logits.size());
  std::vector<int> counts(logits.size(), 0);
  const int n = 100000;
  for (int i = 0; i < n; ++i) ++counts[static_cast<std::size_t>(s.sample(logits).id)];
  for (std::size_t k = 0; k < logits.size(); ++k) {
    const double mean = n * expected[k];
    const double sigma = std::sqrt(n * expected[k] * (1.0 - expected[k]));
    if (expected[k] == 0.0) {
      EXPECT_EQ(counts[k], 0) << k;
    } else {
      EXPECT_NEAR(counts[k], mean, 5 * sigma + 1) << "token " << k;
    }
  }
}

TEST(Sample, SampledFrequenciesFollowTheSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.0f, 1.5f, -1.0f};
  // Temperature 0.7, no truncation.
  std::vector<double> softmax(logits.size());
  double z = 0.0;
  for (std::size_t i = 0; i < logits.size(); ++i) z += softmax[i] = std::exp(logits[i] / 0.7);
  for (auto& q : softmax) q /= z;
  expect_frequencies(plain(0.7f, 11), logits, softmax);
  // Top-k 2 renormalises over tokens 1 and 3 (temperature 1).
  auto p = plain(1.0f, 12);
  p.top_k = 2;
  const double e = std::exp(2.0), f = std::exp(1.5);
  expect_frequencies(p, logits, {0.0, e / (e + f), 0.0, f / (e + f), 0.0});
}

TEST(Sample, InvalidParametersAreNamed) {
  const auto check = [](auto edit, std::string_view name) {
    sample::sampling_params p;
    edit(p);
    expect_error(errc::invalid_argument, name, [&] { p.validate(); });
    expect_error(errc::invalid_argument, name, [&] { sample::sampler<> s(p, 4); });
  };
  check([](auto& p) { p.temperature = -0.5f; }, "temperature");
  check([](auto& p) { p.temperature = std::numeric_limits<float>::quiet_NaN(); }, "temperature");
  check([](auto& p) { p.temperature = std::numeric_limits<float>::infinity(); }, "temperature");
  check([](auto& p) { p.top_k = -1; }, "top_k");
  check([](auto& p) { p.top_p = 0.0f; }, "top_p");
  check([](auto& p) { p.top_p = 1.5f; }, "top_p");
  check([](auto& p) { p.min_p = -0.1f; }, "min_p");
  check([](auto& p) { p.min_p = 2.0f; }, "min_p");
  check([](auto& p) { p.repeat_penalty = 0.0f; }, "repeat_penalty");
  check([](auto& p) { p.frequency_penalty = std::numeric_limits<float>::infinity(); }, "frequency_penalty");
  check([](auto& p) { p.presence_penalty = std::numeric_limits<float>::quiet_NaN(); }, "presence_penalty");
  check([](auto& p) { p.penalty_last_n = -1; }, "penalty_last_n");
  check([](auto& p) { p.top_logprobs = 101; }, "top_logprobs");
  expect_error(errc::invalid_argument, "empty vocabulary", [] { sample::sampler<> s(sample::sampling_params{}, 0); });
}

TEST(Sample, InvalidInputsAreErrorsNotCrashes) {
  auto p = plain(1.0f);
  p.repeat_penalty = 1.1f;
  sample::sampler<> s(p, 3);
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  expect_error(errc::invalid_argument, "4 logits for a vocabulary of 3",
               [&] { (void)s.sample(std::vector<float>{0, 0, 0, 0}); });
  expect_error(errc::invalid_argument, "history token 7", [&] { (void)s.sample(logits, std::vector<std::int32_t>{7}); });
  expect_error(errc::invalid_argument, "history token -1", [&] { (void)s.sample(logits, std::vector<std::int32_t>{-1}); });
  expect_error(errc::invalid_argument, "NaN",
               [&] { (void)s.sample(std::vector<float>{0.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f}); });
  const float inf = std::numeric_limits<float>::infinity();
  expect_error(errc::invalid_argument, "NaN", [&] { (void)s.sample(std::vector<float>{-inf, -inf, -inf}); });
  // -infinity marks a banned token: never chosen, logprob -inf.
  for (int i = 0; i < 200; ++i) {
    const auto r = s.sample(std::vector<float>{-inf, 0.0f, 0.0f});
    ASSERT_NE(r.id, 0);
  }
  std::vector<candidate> none;
  sample::candidates empty{none};
  std::mt19937_64 g(1);
  expect_error(errc::invalid_argument, "no candidate", [&] { (void)sample::pick_random(empty, g); });
  sample::top_p{0.5f}.apply(empty);  // stages accept an empty list
  sample::min_p{0.5f}.apply(empty);
  sample::temperature{0.0f}.apply(empty);
  EXPECT_TRUE(empty.items.empty());
}

}  // namespace
