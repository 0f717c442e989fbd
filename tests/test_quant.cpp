// Tests of quant/: block layouts, quantize/dequantize, every format's dot kernel against its
// scalar reference and against float64, dispatch, and the shipped models' tensors (the SIMD
// kernels in detail, and the float kernels, are in test_simd.cpp).
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <cmath>
#include <cstddef>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace chorus;

using chorus_test::dequantized;
using chorus_test::random_floats;
using chorus_test::relative_rms;

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
  quant::dispatch<quant::quantizable_formats>(GetParam().type, [&](auto tag) {
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
  quant::dispatch<quant::quantizable_formats>(GetParam().type, [&](auto tag) {
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
  quant::dispatch<quant::quantizable_formats>(GetParam().type, [&](auto tag) {
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

// The formats chorus writes, as far as this build compiles them in.
std::vector<format_case> compiled_format_cases() {
  std::vector<format_case> cases = {
      {gguf::tensor_type::f32, 1e-7},  {gguf::tensor_type::f16, 1e-3},  {gguf::tensor_type::bf16, 5e-3},
      {gguf::tensor_type::q8_0, 0.01}, {gguf::tensor_type::q4_0, 0.12}, {gguf::tensor_type::q4_1, 0.12},
      {gguf::tensor_type::q5_0, 0.06}, {gguf::tensor_type::q5_1, 0.06}, {gguf::tensor_type::q2_k, 0.45},
      {gguf::tensor_type::q3_k, 0.25}, {gguf::tensor_type::q4_k, 0.12}, {gguf::tensor_type::q5_k, 0.06},
      {gguf::tensor_type::q6_k, 0.03}};
  std::erase_if(cases, [](const format_case& c) { return !quant::is_compiled_in(c.type); });
  return cases;
}
INSTANTIATE_TEST_SUITE_P(AllFormats, QuantFormat, ::testing::ValuesIn(compiled_format_cases()),
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

// The list of compiled-in formats: dispatch folds over it, is_compiled_in answers without an
// exception, and a model whose matrices use a format left out of the list is refused at load
// with an error naming that format (CI builds the tests with a two-format list to see this).
TEST(QuantFormatList, ModelsInFormatsLeftOutAreRefused) {
  std::size_t loaded = 0, refused = 0;
  for (const auto& entry : std::filesystem::directory_iterator(chorus_test::models_dir())) {
    if (entry.path().extension() != ".gguf" || !entry.path().filename().string().starts_with("tiny-llama-spm512-")) continue;
    const auto file = gguf::file::open(entry.path());
    std::string left_out;
    for (const auto& tensor : file.tensors()) {
      EXPECT_EQ(quant::is_compiled_in(tensor.type), quant::compiled_formats::contains(tensor.type));
      if (tensor.n_dims == 2 && !quant::is_compiled_in(tensor.type) && left_out.empty()) left_out = gguf::type_name(tensor.type);
    }
    if (left_out.empty()) {
      EXPECT_NO_THROW(model::model(gguf::file::open(entry.path()))) << entry.path();
      ++loaded;
    } else {
      chorus_test::expect_error(errc::unsupported, left_out + " is not compiled into this build",
                                [&] { model::model m(gguf::file::open(entry.path())); });
      ++refused;
    }
  }
  EXPECT_EQ(loaded + refused, 11u);
  // every shipped format loads in the default build; a shorter list refuses some
  if (quant::compiled_formats::size >= quant::default_formats::size) {
    EXPECT_EQ(refused, 0u);
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


// The kernels on the real tensors: gemv over every blk.* matrix of every format against a
// float64 product of the dequantized weights with the unquantized activations. The difference
// is the activation rounding (8-bit: about 0.6% of the result's RMS; 16-bit: 0.1%).
TEST(QuantRealModels, GemvOnEveryTensorMatchesFloat64) {
  std::size_t checked = 0;
  for (const char* format : {"F16", "Q2_K", "Q3_K_M", "Q4_0", "Q4_1", "Q4_K_M", "Q5_0", "Q5_1", "Q5_K_M", "Q6_K", "Q8_0"}) {
    const auto model = gguf::file::open(chorus_test::model_path(std::string("tiny-llama-spm512-") + format + ".gguf"));
    for (const auto& tensor : model.tensors()) {
      if (!tensor.name.starts_with("blk.") || tensor.n_dims != 2) continue;
      const std::size_t cols = tensor.dims[0], rows = tensor.dims[1];
      const auto x = random_floats(cols, 77);
      const auto w = dequantize_tensor(tensor);
      std::vector<float> exact(rows), fast(rows);
      for (std::size_t r = 0; r < rows; ++r) {
        double sum = 0.0;
        for (std::size_t c = 0; c < cols; ++c) sum += static_cast<double>(w[r * cols + c]) * x[c];
        exact[r] = static_cast<float>(sum);
      }
      quant::dispatch(tensor.type, [&](auto tag) {
        using Block = typename decltype(tag)::type;
        using activation = typename quant::block_traits<Block>::activation;
        std::vector<activation> xq(simd::activation_bytes<Block>(cols) / sizeof(activation));
        simd::quantize_activation<Block>(x.data(), xq.data(), cols);
        simd::gemv(reinterpret_cast<const Block*>(tensor.data.data()), 0, rows, cols, xq.data(), fast.data());
      });
      const double bound = tensor.type == gguf::tensor_type::f16 ? 0.001 : 0.015;
      EXPECT_LT(relative_rms(fast, exact), bound) << format << " " << tensor.name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 11u * 4u * 7u);
}

// Known answers for the bit layouts of the 32-element formats.
TEST(QuantLayout, SmallBlocksDecodeKnownBytes) {
  EXPECT_EQ(offsetof(quant::block_q4_0, qs), 2u);
  EXPECT_EQ(offsetof(quant::block_q4_1, m), 2u);
  EXPECT_EQ(offsetof(quant::block_q4_1, qs), 4u);
  EXPECT_EQ(offsetof(quant::block_q5_0, qh), 2u);
  EXPECT_EQ(offsetof(quant::block_q5_0, qs), 6u);
  EXPECT_EQ(offsetof(quant::block_q5_1, qh), 4u);
  EXPECT_EQ(offsetof(quant::block_q5_1, qs), 8u);
  EXPECT_EQ(offsetof(quant::block_q8_0, qs), 2u);
  EXPECT_EQ(offsetof(quant::block_q8_1, s), 2u);
  EXPECT_EQ(offsetof(quant::block_q8_1, qs), 4u);
  float out[32];
  quant::block_q4_0 q4{};
  q4.d = fp16(0.5f);
  q4.qs[0] = 0xF0;  // element 0: low nibble 0 -> -8; element 16: high nibble 15 -> 7
  q4.qs[15] = 0x9A;  // element 15: 10 -> 2; element 31: 9 -> 1
  quant::block_traits<quant::block_q4_0>::dequantize(&q4, out, 32);
  EXPECT_EQ(out[0], -4.0f);
  EXPECT_EQ(out[16], 3.5f);
  EXPECT_EQ(out[15], 1.0f);
  EXPECT_EQ(out[31], 0.5f);
  quant::block_q5_1 q5{};
  q5.d = fp16(1.0f);
  q5.m = fp16(-16.0f);
  q5.qh[0] = 0x01;  // bit 0: element 0's fifth bit
  q5.qh[3] = 0x80;  // bit 31: element 31's
  q5.qs[0] = 0x21;  // element 0: 1 | 16 = 17; element 16: 2
  q5.qs[15] = 0x30;  // element 15: 0; element 31: 3 | 16 = 19
  quant::block_traits<quant::block_q5_1>::dequantize(&q5, out, 32);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[16], -14.0f);
  EXPECT_EQ(out[15], -16.0f);
  EXPECT_EQ(out[31], 3.0f);
}

}  // namespace
