// Tests of quant/ and simd/: block layouts, quantize/dequantize, every dot kernel against its
// scalar reference and against float64, the float kernels, and the shipped models' tensors.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace chorus;

std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

double relative_rms(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0.0, ref = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    err += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    ref += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(err / ref);
}

template <class Block>
std::vector<float> dequantized(const Block* blocks, std::size_t n) {
  std::vector<float> out(n);
  quant::block_traits<Block>::dequantize(blocks, out.data(), n);
  return out;
}

std::vector<float> dequantize_tensor(const gguf::tensor_info& t) {
  return quant::dispatch(t.type, [&](auto tag) {
    using Block = typename decltype(tag)::type;
    return dequantized(reinterpret_cast<const Block*>(t.data.data()), t.n_elements);
  });
}

// Per format: the relative RMS error of quantize -> dequantize on Gaussian data.
struct format_case {
  gguf::tensor_type type;
  double roundtrip_bound;
};

class QuantFormat : public ::testing::TestWithParam<format_case> {};

TEST_P(QuantFormat, TraitsMatchTheGgufGeometry) {
  quant::dispatch(GetParam().type, [](auto tag) {
    using traits = quant::block_traits<typename decltype(tag)::type>;
    const auto info = gguf::type_info(traits::type);
    ASSERT_TRUE(info);
    EXPECT_EQ(traits::block_elements, info->block_elements);
    EXPECT_EQ(traits::block_bytes, info->block_bytes);
    EXPECT_EQ(sizeof(typename decltype(tag)::type), info->block_bytes);
  });
}

TEST_P(QuantFormat, QuantizeDequantizeRoundTrip) {
  const std::size_t n = 4096;
  const auto x = random_floats(n, 7);
  quant::dispatch(GetParam().type, [&](auto tag) {
    using Block = typename decltype(tag)::type;
    using traits = quant::block_traits<Block>;
    std::vector<Block> blocks(n / traits::block_elements);
    traits::quantize(x.data(), blocks.data(), n);
    const double error = relative_rms(dequantized(blocks.data(), n), x);
    EXPECT_LT(error, GetParam().roundtrip_bound) << gguf::type_name(traits::type);
    std::vector<Block> zeros(n / traits::block_elements);
    const std::vector<float> zero(n, 0.0f);
    traits::quantize(zero.data(), zeros.data(), n);
    for (float v : dequantized(zeros.data(), n)) ASSERT_EQ(v, 0.0f);
  });
}

TEST_P(QuantFormat, SimdDotEqualsTheScalarReference) {
  quant::dispatch(GetParam().type, [&](auto tag) {
    using Block = typename decltype(tag)::type;
    using traits = quant::block_traits<Block>;
    using activation = typename traits::activation;
    for (std::size_t count : {1u, 2u, 3u, 7u, 16u, 33u}) {
      // float formats: whole rows of 32..1056 elements (block_elements is 1)
      const std::size_t n_blocks = traits::block_elements == 1 ? count * 32 : count;
      const std::size_t n = n_blocks * traits::block_elements;
      const auto w = random_floats(n, 11 + static_cast<std::uint32_t>(n_blocks));
      const auto a = random_floats(n, 101 + static_cast<std::uint32_t>(n_blocks));
      std::vector<Block> wq(n_blocks);
      traits::quantize(w.data(), wq.data(), n);
      std::vector<activation> aq(simd::activation_bytes<Block>(n) / sizeof(activation));
      ASSERT_EQ(aq.size(), n_blocks);  // one activation block per weight block (per element for floats)
      simd::quantize_activation<Block>(a.data(), aq.data(), n);
      const float reference = traits::dot_reference(wq.data(), aq.data(), n_blocks);
      const float fast = simd::dot(wq.data(), aq.data(), n_blocks);
      // Same integers, same float operations except the float formats' summation order.
      EXPECT_NEAR(fast, reference, 1e-5 * (1.0 + std::fabs(reference)) * std::sqrt(static_cast<double>(n)))
          << gguf::type_name(traits::type) << " blocks " << n_blocks;

      // Against float64 over the dequantized weights and the unquantized activations: the
      // difference is the activation rounding, bounded relative to the size of the terms.
      const auto wd = dequantized(wq.data(), n);
      double exact = 0.0, magnitude = 0.0;
      for (std::size_t i = 0; i < n; ++i) {
        exact += static_cast<double>(wd[i]) * a[i];
        magnitude += std::fabs(static_cast<double>(wd[i]) * a[i]);
      }
      EXPECT_NEAR(fast, exact, 0.02 * magnitude / std::sqrt(static_cast<double>(n)) + 1e-6 * magnitude)
          << gguf::type_name(traits::type) << " blocks " << n_blocks;
    }
  });
}

TEST_P(QuantFormat, GemvAndGemmAgreeWithDot) {
  quant::dispatch(GetParam().type, [&](auto tag) {
    using Block = typename decltype(tag)::type;
    using traits = quant::block_traits<Block>;
    using activation = typename traits::activation;
    const std::size_t rows = 13, cols = 512, n_x = 3;
    const auto w = random_floats(rows * cols, 5);
    std::vector<Block> wq(rows * cols / traits::block_elements);
    traits::quantize(w.data(), wq.data(), rows * cols);
    const std::size_t act_per_row = simd::activation_bytes<Block>(cols) / sizeof(activation);
    std::vector<activation> x(n_x * act_per_row);
    for (std::size_t i = 0; i < n_x; ++i) {
      simd::quantize_activation<Block>(random_floats(cols, 50 + static_cast<std::uint32_t>(i)).data(),
                                       x.data() + i * act_per_row, cols);
    }
    std::vector<float> y(rows, -1.0f), z(n_x * rows, -1.0f);
    simd::gemv(wq.data(), 2, rows, cols, x.data(), y.data());
    EXPECT_EQ(y[0], -1.0f);  // outside the row range: untouched
    EXPECT_EQ(y[1], -1.0f);
    simd::gemm(wq.data(), 0, rows, cols, x.data(), n_x, act_per_row, z.data(), rows);
    const std::size_t blocks_per_row = cols / traits::block_elements;
    // The same arithmetic; only the compiler's fused multiply-adds may differ between call sites.
    auto close = [](float a, float b) { return std::fabs(a - b) <= 1e-5f * (1.0f + std::fabs(a)); };
    for (std::size_t r = 2; r < rows; ++r) EXPECT_PRED2(close, y[r], z[r]);
    for (std::size_t i = 0; i < n_x; ++i) {
      for (std::size_t r = 0; r < rows; ++r) {
        EXPECT_PRED2(close, z[i * rows + r], simd::dot(wq.data() + r * blocks_per_row, x.data() + i * act_per_row, blocks_per_row));
      }
    }
  });
}

INSTANTIATE_TEST_SUITE_P(
    AllFormats, QuantFormat,
    ::testing::Values(format_case{gguf::tensor_type::f32, 1e-7}, format_case{gguf::tensor_type::f16, 1e-3},
                      format_case{gguf::tensor_type::bf16, 5e-3}, format_case{gguf::tensor_type::q8_0, 0.01},
                      format_case{gguf::tensor_type::q4_0, 0.12}, format_case{gguf::tensor_type::q4_1, 0.12},
                      format_case{gguf::tensor_type::q5_0, 0.06}, format_case{gguf::tensor_type::q5_1, 0.06},
                      format_case{gguf::tensor_type::q2_k, 0.45}, format_case{gguf::tensor_type::q3_k, 0.25},
                      format_case{gguf::tensor_type::q4_k, 0.12}, format_case{gguf::tensor_type::q5_k, 0.06},
                      format_case{gguf::tensor_type::q6_k, 0.03}),
    [](const auto& info) { return std::string(gguf::type_name(info.param.type)); });

TEST(QuantActivations, Q8_0RoundsLikeTheReference) {
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;
  x[1] = -63.5f;  // a tie: to even (-64)
  x[2] = 0.5f;    // a tie: to even (0)
  x[3] = 1.5f;    // a tie: to even (2)
  quant::block_q8_0 q{};
  quant::block_traits<quant::block_q8_0>::quantize(x.data(), &q, 32);
  EXPECT_EQ(q.d.to_float(), 1.0f);
  EXPECT_EQ(q.qs[0], 127);
  EXPECT_EQ(q.qs[1], -64);
  EXPECT_EQ(q.qs[2], 0);
  EXPECT_EQ(q.qs[3], 2);
  quant::block_q8_1 q1{};
  quant::quantize_q8_1(x.data(), &q1, 32);
  EXPECT_EQ(q1.s.to_float(), 127.0f - 64.0f + 2.0f);
}

TEST(QuantActivations, Q8_KKeepsTheSignOfTheLargestValue) {
  auto x = random_floats(256, 3);
  x[17] = -10.0f;
  quant::block_q8_k q{};
  quant::quantize_q8_k(x.data(), &q, 256);
  EXPECT_EQ(q.qs[17], -127);  // the largest magnitude maps to -127 whatever its sign
  EXPECT_FLOAT_EQ(q.d, 10.0f / 127.0f);
  for (int g = 0; g < 16; ++g) {
    int sum = 0;
    for (int i = 0; i < 16; ++i) sum += q.qs[g * 16 + i];
    EXPECT_EQ(q.bsums[g], sum);
  }
}

TEST(QuantDispatch, UnknownAndMissingFormats) {
  EXPECT_TRUE(quant::is_compiled_in(gguf::tensor_type::q4_k));
  EXPECT_FALSE(quant::is_compiled_in(gguf::tensor_type::iq2_xxs));
  try {
    quant::dispatch(gguf::tensor_type::iq2_xxs, [](auto) {});
    FAIL();
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), errc::unsupported);
    EXPECT_NE(std::string(e.what()).find("IQ2_XXS"), std::string::npos) << e.what();
  }
}

// The blk.* weights of every tiny-llama-spm512 file come from the same float weights, so each
// quantized tensor must dequantize close to the F16 file's: a wrong bit layout gives ~1.4.
TEST(QuantRealModels, EveryTensorMatchesTheF16Model) {
  const auto reference = gguf::file::open(chorus_test::model_path("tiny-llama-spm512-F16.gguf"));
  const std::map<gguf::tensor_type, double> bound = {
      {gguf::tensor_type::q8_0, 0.007}, {gguf::tensor_type::q4_0, 0.11}, {gguf::tensor_type::q4_1, 0.10},
      {gguf::tensor_type::q5_0, 0.055}, {gguf::tensor_type::q5_1, 0.05}, {gguf::tensor_type::q2_k, 0.38},
      {gguf::tensor_type::q3_k, 0.19},  {gguf::tensor_type::q4_k, 0.09}, {gguf::tensor_type::q5_k, 0.045},
      {gguf::tensor_type::q6_k, 0.023}, {gguf::tensor_type::f16, 0.0}};
  std::size_t checked = 0;
  for (const char* format : {"Q2_K", "Q3_K_M", "Q4_0", "Q4_1", "Q4_K_M", "Q5_0", "Q5_1", "Q5_K_M", "Q6_K", "Q8_0"}) {
    const auto model = gguf::file::open(chorus_test::model_path(std::string("tiny-llama-spm512-") + format + ".gguf"));
    for (const auto& tensor : model.tensors()) {
      if (!tensor.name.starts_with("blk.") || tensor.n_dims != 2) continue;
      const double error = relative_rms(dequantize_tensor(tensor), dequantize_tensor(reference.tensor(tensor.name)));
      EXPECT_LT(error, bound.at(tensor.type)) << format << " " << tensor.name << " " << gguf::type_name(tensor.type);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 10u * 4u * 7u);
}

TEST(SimdFloat, KernelsMatchTheirReferences) {
  for (std::size_t n : {1u, 7u, 16u, 31u, 64u, 257u, 1000u}) {
    const auto a = random_floats(n, 1);
    const auto b = random_floats(n, 2);
    EXPECT_NEAR(simd::dot<>(a.data(), b.data(), n), simd::reference::dot(a.data(), b.data(), n), 1e-4 * n);

    std::vector<float> fast(n), slow(n);
    simd::rmsnorm<>(a.data(), b.data(), fast.data(), n, 1e-5f);
    simd::reference::rmsnorm(a.data(), b.data(), slow.data(), n, 1e-5f);
    for (std::size_t i = 0; i < n; ++i) EXPECT_NEAR(fast[i], slow[i], 1e-4f * (1 + std::fabs(slow[i])));

    fast = a;
    slow = a;
    simd::softmax<>(fast.data(), n);
    simd::reference::softmax(slow.data(), n);
    float total = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_NEAR(fast[i], slow[i], 1e-6f);
      total += fast[i];
    }
    EXPECT_NEAR(total, 1.0f, 1e-5f);

    simd::swiglu<>(a.data(), b.data(), fast.data(), n);
    simd::reference::swiglu(a.data(), b.data(), slow.data(), n);
    for (std::size_t i = 0; i < n; ++i) EXPECT_NEAR(fast[i], slow[i], 1e-5f * (1 + std::fabs(slow[i])));

    fast = a;
    simd::add<>(fast.data(), b.data(), n);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(fast[i], a[i] + b[i]);
    fast = a;
    simd::scale<>(fast.data(), 0.5f, n);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(fast[i], a[i] * 0.5f);
  }
}

TEST(SimdFloat, RopeRotatesAdjacentPairs) {
  std::vector<float> x = {1.0f, 0.0f, 0.0f, 2.0f};  // one head of 4: pairs (1,0) and (0,2)
  const float angle0 = 0.5f, angle1 = 0.25f;
  const float cos[2] = {std::cos(angle0), std::cos(angle1)};
  const float sin[2] = {std::sin(angle0), std::sin(angle1)};
  simd::rope(x.data(), 1, 4, 4, cos, sin);
  EXPECT_FLOAT_EQ(x[0], std::cos(angle0));
  EXPECT_FLOAT_EQ(x[1], std::sin(angle0));
  EXPECT_FLOAT_EQ(x[2], -2.0f * std::sin(angle1));
  EXPECT_FLOAT_EQ(x[3], 2.0f * std::cos(angle1));
}

TEST(SimdInt8, PrimitivesMatchTheReference) {
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> dist(-127, 127);
  for (int trial = 0; trial < 1000; ++trial) {
    std::int8_t a[32], b[32];
    for (int i = 0; i < 32; ++i) {
      a[i] = static_cast<std::int8_t>(trial % 2 ? dist(rng) : -128 + (i % 3));  // extremes too
      b[i] = static_cast<std::int8_t>(dist(rng));
    }
    EXPECT_EQ(simd::dot_s8_32(a, b), simd::dot_s8_32_reference(a, b));
    std::int32_t low = 0, high = 0;
    simd::dot_s8_2x16(a, b, low, high);
    EXPECT_EQ(low + high, simd::dot_s8_32_reference(a, b));
    std::int32_t expected_low = 0;
    for (int i = 0; i < 16; ++i) expected_low += a[i] * b[i];
    EXPECT_EQ(low, expected_low);
  }
}

}  // namespace
