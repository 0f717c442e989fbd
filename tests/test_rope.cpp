// Tests of the rotary embedding's pairing and scaling (model/rope.hpp, hparams.hpp). The logits
// of the derived Qwen2 / YaRN / rope_freqs models against llama.cpp are in test_model.cpp
// (tests/data/golden-logits); these check the properties that make them right.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>
#include <vector>

#include "derived_models.hpp"
#include "test_support.hpp"

namespace {

using namespace chorus;

model::hparams llama_like(std::uint32_t n_rot, float base) {
  model::hparams h;
  h.n_rot = n_rot;
  h.head_dim = n_rot;
  h.rope_freq_base = base;
  return h;
}

TEST(Rope, UnscaledFrequenciesArePowersOfTheBase) {
  const auto h = llama_like(64, 10000.0f);
  double mscale = 0.0;
  const auto f = model::rope_frequencies(h, nullptr, mscale);
  ASSERT_EQ(f.size(), 32u);
  EXPECT_EQ(mscale, 1.0);
  for (std::size_t i = 0; i < f.size(); ++i) EXPECT_NEAR(f[i], std::pow(10000.0, -2.0 * i / 64.0), 1e-15);
}

TEST(Rope, LinearScalingDividesEveryFrequency) {
  auto h = llama_like(64, 10000.0f);
  h.rope_scale.type = model::rope_scaling::kind::linear;
  h.rope_freq_scale = 0.25f;
  double mscale = 0.0;
  const auto f = model::rope_frequencies(h, nullptr, mscale);
  for (std::size_t i = 0; i < f.size(); ++i) EXPECT_NEAR(f[i], 0.25 * std::pow(10000.0, -2.0 * i / 64.0), 1e-15);
  EXPECT_EQ(mscale, 1.0);
}

// YaRN: frequencies that turn more than beta_fast times over the original context are kept,
// those that turn less than beta_slow times are interpolated, a linear ramp in between; cos
// and sin are scaled by 1 + 0.1 ln(factor).
TEST(Rope, YarnKeepsFastDimensionsAndInterpolatesSlowOnes) {
  auto h = llama_like(128, 10000.0f);
  h.rope_scale = {model::rope_scaling::kind::yarn, 8.0f, 4096, 32.0f, 1.0f, 1.0f};
  h.rope_freq_scale = 1.0f / 8.0f;
  double mscale = 0.0;
  const auto f = model::rope_frequencies(h, nullptr, mscale);
  EXPECT_NEAR(mscale, 1.0 + 0.1 * std::log(8.0), 1e-12);
  double low = 0.0, high = 0.0;
  model::yarn_correction_range(h, low, high);
  ASSERT_LT(0.0, low);
  ASSERT_LT(low, high);
  ASSERT_LT(high, 63.0);
  for (std::size_t i = 0; i < f.size(); ++i) {
    const double unscaled = std::pow(10000.0, -2.0 * i / 128.0);
    const double rotations = 4096.0 * unscaled / (2.0 * std::numbers::pi);
    if (i <= low) { EXPECT_NEAR(f[i], unscaled, 1e-15) << i; }
    if (i >= high) { EXPECT_NEAR(f[i], unscaled / 8.0, 1e-15) << i; }
    if (rotations > 32.0 * 1.2) { EXPECT_GT(f[i], unscaled / 8.0 * 1.5) << i; }   // (mostly) kept
    if (rotations < 1.0 / 1.2) { EXPECT_NEAR(f[i], unscaled / 8.0, 1e-15) << i; }  // interpolated
    EXPECT_LE(f[i], unscaled * (1 + 1e-12));
    EXPECT_GE(f[i], unscaled / 8.0 * (1 - 1e-12));
  }
}

TEST(Rope, FrequencyDivisorsApplyPerDimension) {
  const auto h = llama_like(8, 500000.0f);
  const float divisors[4] = {1.0f, 2.0f, 4.0f, 8.0f};
  double mscale = 0.0;
  const auto f = model::rope_frequencies(h, divisors, mscale);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_NEAR(f[i], std::pow(500000.0, -2.0 * i / 8.0) / divisors[i], 1e-15);
}

TEST(Rope, NeoxPairingRotatesHalvesAndPreservesNorms) {
  std::vector<float> x(16), y(16);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 0.1f * static_cast<float>(i) - 0.7f;
  const float cos[4] = {1.0f, 0.0f, std::cos(0.3f), -1.0f}, sin[4] = {0.0f, 1.0f, std::sin(0.3f), 0.0f};
  y = x;
  simd::rope_neox(y.data(), 2, 8, 8, cos, sin);
  for (std::size_t head = 0; head < 2; ++head) {
    const float* a = x.data() + head * 8;
    const float* b = y.data() + head * 8;
    EXPECT_FLOAT_EQ(b[0], a[0]);                       // angle 0
    EXPECT_FLOAT_EQ(b[1], -a[5]);                      // angle pi/2: (x1, x5) -> (-x5, x1)
    EXPECT_FLOAT_EQ(b[5], a[1]);
    EXPECT_FLOAT_EQ(b[3], -a[3]);                      // angle pi
    EXPECT_NEAR(b[2] * b[2] + b[6] * b[6], a[2] * a[2] + a[6] * a[6], 1e-6);
  }
}

// The logits at every position of 40 tokens, with a KV cache of KvElement.
template <class KvElement>
std::vector<float> all_logits(const model::model& m) {
  model::basic_context<KvElement> ctx(m, {.n_ctx = 128, .threads = 2});
  std::vector<std::int32_t> tokens;
  for (std::int32_t i = 0; i < 40; ++i) tokens.push_back(1 + (i * 37) % 500);
  const auto logits = ctx.decode(tokens, 0, true);
  return {logits.begin(), logits.end()};
}

struct difference {
  double worst = 0.0, rms = 0.0, scale = 0.0;  // scale: the largest |logit| of `a`
};
difference compare(const std::vector<float>& a, const std::vector<float>& b) {
  difference d;
  double squares = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(a[i]) - b[i]);
    d.worst = std::max(d.worst, diff);
    squares += diff * diff;
    d.scale = std::max(d.scale, std::fabs(static_cast<double>(a[i])));
  }
  d.rms = std::sqrt(squares / static_cast<double>(a.size()));
  return d;
}

// A Qwen2 file is a llama file with Q/K rows in the original order and NeoX pairing: the two
// layouts of the same weights give the same logits.
TEST(Rope, Qwen2LayoutEqualsTheLlamaLayoutOfTheSameWeights) {
  const auto base = chorus_test::model_path("tiny-llama-spm512-F16.gguf");
  const auto out = chorus_test::scratch_dir("rope-qwen2-nobias") / "qwen2.gguf";
  chorus_test::write_qwen2_variant(base, out, /*with_biases=*/false);
  const model::model llama(base), qwen2(out);
  EXPECT_EQ(qwen2.params().architecture, "qwen2");
  EXPECT_EQ(qwen2.params().rope_pairs, model::rope_pairing::neox);
  EXPECT_EQ(llama.params().rope_pairs, model::rope_pairing::adjacent);

  // Only the order of the q.k sums differs: summed in double, both layouts give identical
  // logits. Summed in float they differ by a rounding error that this random-weight model
  // carries through its layers to about 3e-4 of its largest logit, with a float KV cache and
  // with an fp16 one alike. The yardstick is another rounding of the same size:
  // storing K and V as fp16 instead of float moves the same model's logits about twice as far.
  const auto layouts_f32 = compare(all_logits<float>(llama), all_logits<float>(qwen2));
  const auto layouts_f16 = compare(all_logits<fp16>(llama), all_logits<fp16>(qwen2));
  const auto kv_rounding = compare(all_logits<float>(llama), all_logits<fp16>(llama));
  std::printf("[ rope ] largest logit %.1f; qwen2 vs llama layout: f32 KV worst %.3g RMS %.3g, f16 KV worst %.3g RMS %.3g; "
              "f16 vs f32 KV: worst %.3g RMS %.3g\n",
              layouts_f32.scale, layouts_f32.worst, layouts_f32.rms, layouts_f16.worst, layouts_f16.rms, kv_rounding.worst,
              kv_rounding.rms);
  for (const auto& d : {layouts_f32, layouts_f16}) {
    EXPECT_LT(d.worst, kv_rounding.worst);
    EXPECT_LT(d.rms, kv_rounding.rms);
    EXPECT_LT(d.worst, 1e-3 * d.scale);
  }
}

TEST(Rope, ScalingKeysAreValidated) {
  const auto base = chorus_test::model_path("tiny-llama-spm512-F16.gguf");
  const auto dir = chorus_test::scratch_dir("rope-bad-keys");
  auto rewrite = [&](const std::string& name, auto&& add_keys) {
    const auto src = gguf::file::open(base);
    gguf::writer w;
    chorus_test::copy_metadata(src, w, "llama.", "llama.");
    add_keys(w);
    for (const auto& t : src.tensors()) w.add_tensor(t.name, t.type, chorus_test::dims_of(t), t.data);
    w.write(dir / name);
    return dir / name;
  };
  const auto longrope = rewrite("longrope.gguf", [](gguf::writer& w) {
    w.set("llama.rope.scaling.type", std::string_view("longrope"));
    w.set("llama.rope.scaling.factor", 2.0f);
  });
  const auto no_original = rewrite("yarn-no-original.gguf", [](gguf::writer& w) {
    w.set("llama.rope.scaling.type", std::string_view("yarn"));
    w.set("llama.rope.scaling.factor", 2.0f);
  });
  const auto zero_factor = rewrite("zero-factor.gguf", [](gguf::writer& w) {
    w.set("llama.rope.scaling.type", std::string_view("linear"));
    w.set("llama.rope.scaling.factor", 0.0f);
  });
  for (const auto& [file, kind, needle] : {std::tuple{longrope, errc::unsupported, "longrope"},
                                           std::tuple{no_original, errc::bad_format, "original_context_length"},
                                           std::tuple{zero_factor, errc::bad_format, "factor"}}) {
    try {
      model::model m(file);
      ADD_FAILURE() << file << " was accepted";
    } catch (const chorus::error& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
}

}  // namespace
