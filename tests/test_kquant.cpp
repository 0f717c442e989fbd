// Tests of the K-quant formats (Q2_K..Q6_K) and their activation format Q8_K: byte layouts,
// the bit placement of pack/unpack, quantize/dequantize error, every level's vector decoder and
// dot against the scalar ones and float64, and every K-quant tensor of the shipped spm512 models.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace chorus;
using quant::block_q2_k;
using quant::block_q3_k;
using quant::block_q4_k;
using quant::block_q5_k;
using quant::block_q6_k;
using quant::block_q8_k;

// Byte offsets of every field as the GGUF files store them.
static_assert(offsetof(block_q2_k, scales) == 0 && offsetof(block_q2_k, qs) == 16 && offsetof(block_q2_k, d) == 80 &&
              offsetof(block_q2_k, dmin) == 82 && sizeof(block_q2_k) == 84);
static_assert(offsetof(block_q3_k, hmask) == 0 && offsetof(block_q3_k, qs) == 32 && offsetof(block_q3_k, scales) == 96 &&
              offsetof(block_q3_k, d) == 108 && sizeof(block_q3_k) == 110);
static_assert(offsetof(block_q4_k, d) == 0 && offsetof(block_q4_k, dmin) == 2 && offsetof(block_q4_k, scales) == 4 &&
              offsetof(block_q4_k, qs) == 16 && sizeof(block_q4_k) == 144);
static_assert(offsetof(block_q5_k, d) == 0 && offsetof(block_q5_k, dmin) == 2 && offsetof(block_q5_k, scales) == 4 &&
              offsetof(block_q5_k, qh) == 16 && offsetof(block_q5_k, qs) == 48 && sizeof(block_q5_k) == 176);
static_assert(offsetof(block_q6_k, ql) == 0 && offsetof(block_q6_k, qh) == 128 && offsetof(block_q6_k, scales) == 192 &&
              offsetof(block_q6_k, d) == 208 && sizeof(block_q6_k) == 210);
static_assert(offsetof(block_q8_k, d) == 0 && offsetof(block_q8_k, qs) == 4 && offsetof(block_q8_k, bsums) == 260 &&
              sizeof(block_q8_k) == 292);

using chorus_test::dequantized;
using chorus_test::random_floats;
using chorus_test::relative_rms;

template <class Block>
std::vector<Block> quantized(const std::vector<float>& x) {
  std::vector<Block> blocks(x.size() / 256);
  quant::block_traits<Block>::quantize(x.data(), blocks.data(), x.size());
  return blocks;
}

std::vector<block_q8_k> activations(const std::vector<float>& x) {
  std::vector<block_q8_k> blocks(x.size() / 256);
  quant::quantize_q8_k(x.data(), blocks.data(), x.size());
  return blocks;
}

// |a.d| * (|d * sumi| + |dmin * summ|) for one block: the size of the products that the
// reference's float expression a.d * (d * sumi - dmin * summ) rounds. Kernels with the same
// integers may still contract that expression into fused multiply-adds differently (the compiler
// decides per call site and target), which moves the result by a few roundings of those products:
// with sumi and summ nearly cancelling, far more than a few ulp of the result.
template <class Block>
double term_magnitude(const Block& w, const block_q8_k& a) {
  using traits = quant::block_traits<Block>;
  constexpr int sub = traits::sub_block_elements;
  quant::k_block::unpacked u;
  traits::unpack(w, u);
  double sumi = 0, summ = 0;
  for (int s = 0; s < 256 / sub; ++s) {
    double dot = 0, group_sum = 0;
    for (int i = s * sub; i < (s + 1) * sub; ++i) dot += u.q[i] * a.qs[i];
    for (int g = s * sub / 16; g < (s + 1) * sub / 16; ++g) group_sum += a.bsums[g];
    sumi += u.scales[s] * dot;
    summ += u.mins[s] * group_sum;
  }
  return std::fabs(a.d) * (std::fabs(u.d * sumi) + std::fabs(u.dmin * summ));
}
constexpr double float_eps = std::numeric_limits<float>::epsilon();

template <class Block>
class KQuant : public ::testing::Test {};
using k_formats = ::testing::Types<block_q2_k, block_q3_k, block_q4_k, block_q5_k, block_q6_k>;
struct format_name {
  template <class Block>
  static std::string GetName(int) {
    return std::string(gguf::type_name(quant::block_traits<Block>::type));
  }
};
TYPED_TEST_SUITE(KQuant, k_formats, format_name);

TYPED_TEST(KQuant, TraitsMatchTheGgufGeometry) {
  using traits = quant::block_traits<TypeParam>;
  const auto info = gguf::type_info(traits::type);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->block_elements, 256u);
  EXPECT_EQ(traits::block_elements, 256u);
  EXPECT_EQ(traits::block_bytes, info->block_bytes);
  EXPECT_TRUE((std::is_same_v<typename traits::activation, block_q8_k>));
  EXPECT_EQ(gguf::type_info(gguf::tensor_type::q8_k)->block_bytes, sizeof(block_q8_k));
}

// Every valid unpacked block (quants, scales, minimums within the format's ranges) survives
// pack -> unpack unchanged: the bit placement is a bijection, so no field overlaps another.
TYPED_TEST(KQuant, PackThenUnpackIsTheIdentity) {
  using traits = quant::block_traits<TypeParam>;
  std::mt19937 rng(42);
  const int q_lo = -traits::quant_offset, q_hi = traits::quant_levels - 1 - traits::quant_offset;
  const int s_lo = traits::has_mins ? 0 : -traits::scale_levels / 2, s_hi = traits::has_mins ? traits::scale_levels - 1 : traits::scale_levels / 2 - 1;
  for (int round = 0; round < 200; ++round) {
    quant::k_block::unpacked u{}, back{};
    for (auto& q : u.q) q = static_cast<std::int8_t>(std::uniform_int_distribution<int>(q_lo, q_hi)(rng));
    // extremes in the first rounds, random afterwards
    for (int s = 0; s < 256 / traits::sub_block_elements; ++s) {
      u.scales[s] = round == 0 ? s_lo : round == 1 ? s_hi : std::uniform_int_distribution<int>(s_lo, s_hi)(rng);
      if constexpr (traits::has_mins) {
        u.mins[s] = round == 0 ? 0 : round == 1 ? traits::scale_levels - 1 : std::uniform_int_distribution<int>(0, traits::scale_levels - 1)(rng);
      }
    }
    u.d = 0.5f;
    u.dmin = traits::has_mins ? 0.25f : 0.0f;
    TypeParam block{};
    traits::pack(u, block);
    traits::unpack(block, back);
    for (int i = 0; i < 256; ++i) ASSERT_EQ(back.q[i], u.q[i]) << "element " << i << " round " << round;
    for (int s = 0; s < 256 / traits::sub_block_elements; ++s) {
      ASSERT_EQ(back.scales[s], u.scales[s]) << "scale " << s << " round " << round;
      ASSERT_EQ(back.mins[s], u.mins[s]) << "min " << s << " round " << round;
    }
    ASSERT_EQ(back.d, u.d);
    ASSERT_EQ(back.dmin, u.dmin);
  }
}

// Quantize -> dequantize on Gaussian data, with outliers, with a constant offset, and zeros.
TYPED_TEST(KQuant, QuantizeDequantizeRoundTrip) {
  using traits = quant::block_traits<TypeParam>;
  // Measured (relative RMS; the worst of the three data sets below): Q2_K 0.27, Q3_K 0.143,
  // Q4_K 0.094, Q5_K 0.045, Q6_K 0.030.
  const std::map<gguf::tensor_type, double> bound = {{gguf::tensor_type::q2_k, 0.30}, {gguf::tensor_type::q3_k, 0.16},
                                                     {gguf::tensor_type::q4_k, 0.105}, {gguf::tensor_type::q5_k, 0.051},
                                                     {gguf::tensor_type::q6_k, 0.034}};
  const std::size_t n = 256 * 64;
  auto x = random_floats(n, 7, 0.02f);
  EXPECT_LT(relative_rms(dequantized(quantized<TypeParam>(x).data(), n), x), bound.at(traits::type));

  // a few large outliers: the sub-blocks without them must keep their precision
  auto y = x;
  for (std::size_t i = 100; i < n; i += 997) y[i] *= 40.0f;
  const auto yd = dequantized(quantized<TypeParam>(y).data(), n);
  EXPECT_LT(relative_rms(yd, y), bound.at(traits::type));

  // all-positive data (mins/offsets carry the mean)
  auto z = random_floats(n, 9, 0.1f);
  for (auto& v : z) v = std::fabs(v) + 0.5f;
  EXPECT_LT(relative_rms(dequantized(quantized<TypeParam>(z).data(), n), z), bound.at(traits::type));

  const std::vector<float> zero(n, 0.0f);
  for (float v : dequantized(quantized<TypeParam>(zero).data(), n)) ASSERT_EQ(v, 0.0f);
}

// The fused SIMD dot against the scalar reference: same integers, so only the compiler's
// contraction of the per-block float expression may differ (bound: a few ulp of the sum of
// per-block magnitudes).
TYPED_TEST(KQuant, SimdDotEqualsTheScalarReference) {
  CHORUS_TEST_IF_COMPILED(TypeParam) {
    using traits = quant::block_traits<TypeParam>;
    std::vector<std::size_t> counts;
    for (std::size_t c = 1; c <= 20; ++c) counts.push_back(c);
    for (std::size_t c : {31u, 56u, 57u, 111u}) counts.push_back(c);
    for (std::size_t count : counts) {
      const std::size_t n = count * 256;
      const auto w = quantized<TypeParam>(random_floats(n, 11 + static_cast<std::uint32_t>(count)));
      const auto a = activations(random_floats(n, 101 + static_cast<std::uint32_t>(count)));
      const float reference = traits::dot_reference(w.data(), a.data(), count);
      double magnitude = 0.0;
      for (std::size_t b = 0; b < count; ++b) magnitude += term_magnitude(w[b], a[b]);
      chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
        const float fast = k.of<TypeParam>().dot(w.data(), a.data(), count);
        // a few roundings per block, and the running sum's roundings of differing partial sums
        EXPECT_NEAR(fast, reference, (4.0 + static_cast<double>(count)) * float_eps * magnitude + 1e-30)
            << gguf::type_name(traits::type) << " blocks " << count;
      });
    }
  }
}

// Every level's vector decoder against the scalar one (exactly: quants, scales, minimums, d,
// dmin), and its dot block by block against the reference (same integers, same float expression).
TYPED_TEST(KQuant, EveryLevelEqualsTheReference) {
  CHORUS_TEST_IF_COMPILED(TypeParam) {
    using traits = quant::block_traits<TypeParam>;
    const std::size_t count = 64;
    auto values = random_floats(count * 256, 3, 0.05f);
    for (std::size_t i = 0; i < 256; ++i) values[i] = 0.0f;  // an all-zero block
    for (std::size_t i = 256; i < 512; ++i) values[i] = 1.0f;  // a constant block
    const auto w = quantized<TypeParam>(values);
    auto x = random_floats(count * 256, 4);
    for (std::size_t i = 512; i < 768; ++i) x[i] = i % 2 ? 127.0f : -127.0f;  // full-range activations
    const auto a = activations(x);
    // and every bit pattern in the quant and scale bytes
    std::vector<TypeParam> random_blocks(32);
    std::mt19937 rng(5);
    for (auto& block : random_blocks) {
      auto* bytes = reinterpret_cast<unsigned char*>(&block);
      for (std::size_t i = 0; i < sizeof(TypeParam); ++i) bytes[i] = static_cast<unsigned char>(rng());
      block.d = fp16(0.001f);
      if constexpr (traits::has_mins) block.dmin = fp16(0.002f);
    }
    chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
      const auto& f = k.of<TypeParam>();
      auto same_decoding = [&](const TypeParam& block, const char* what, std::size_t b) {
        quant::k_block::unpacked expected, decoded;
        traits::unpack(block, expected);
        f.unpack(block, decoded);
        for (int i = 0; i < 256; ++i) ASSERT_EQ(decoded.q[i], expected.q[i]) << what << " block " << b << " element " << i;
        for (int s = 0; s < 256 / traits::sub_block_elements; ++s) {
          ASSERT_EQ(decoded.scales[s], expected.scales[s]) << what << " block " << b << " scale " << s;
          ASSERT_EQ(decoded.mins[s], expected.mins[s]) << what << " block " << b << " min " << s;
        }
        ASSERT_EQ(decoded.d, expected.d);
        ASSERT_EQ(decoded.dmin, expected.dmin);
      };
      for (std::size_t b = 0; b < count; ++b) {
        same_decoding(w[b], "quantized", b);
        const float reference = traits::dot_reference(&w[b], &a[b], 1);
        EXPECT_NEAR(f.dot(&w[b], &a[b], 1), reference, 4.0 * float_eps * term_magnitude(w[b], a[b]) + 1e-30) << "block " << b;
      }
      for (std::size_t b = 0; b < random_blocks.size(); ++b) {
        same_decoding(random_blocks[b], "random bytes", b);
        const float reference = traits::dot_reference(&random_blocks[b], &a[b], 1);
        EXPECT_NEAR(f.dot(&random_blocks[b], &a[b], 1), reference, 4.0 * float_eps * term_magnitude(random_blocks[b], a[b]) + 1e-30)
            << "random block " << b;
      }
    });
  }
}

// Against float64 over the dequantized weights and dequantized activations the only difference
// is float rounding (the integer parts are exact); against the unquantized activations, the
// Q8_K rounding error (at most half a step per element, ~0.4 % of the largest value).
TYPED_TEST(KQuant, DotMatchesFloat64) {
  CHORUS_TEST_IF_COMPILED(TypeParam) {
    using traits = quant::block_traits<TypeParam>;
    for (std::size_t count : {1u, 3u, 16u, 56u}) {
      const std::size_t n = count * 256;
      const auto w = quantized<TypeParam>(random_floats(n, 21 + static_cast<std::uint32_t>(count)));
      const auto x = random_floats(n, 201 + static_cast<std::uint32_t>(count));
      const auto a = activations(x);
      const auto wd = dequantized(w.data(), n);
      double exact_q = 0.0, exact = 0.0, magnitude = 0.0, step_bound = 0.0;
      for (std::size_t i = 0; i < n; ++i) {
        const double ad = static_cast<double>(a[i / 256].d) * a[i / 256].qs[i % 256];
        exact_q += static_cast<double>(wd[i]) * ad;
        exact += static_cast<double>(wd[i]) * x[i];
        magnitude += std::fabs(static_cast<double>(wd[i]) * ad);
        step_bound += std::fabs(static_cast<double>(wd[i])) * 0.5 * std::fabs(a[i / 256].d);
      }
      const float fast = simd::dot(w.data(), a.data(), count);
      // float rounding of d, dmin products and of the per-block sums: a few 1e-7 of the terms
      EXPECT_NEAR(fast, exact_q, 2e-6 * magnitude) << gguf::type_name(traits::type) << " blocks " << count;
      EXPECT_NEAR(fast, exact, step_bound + 2e-6 * magnitude) << gguf::type_name(traits::type) << " blocks " << count;
    }
  }
}

TYPED_TEST(KQuant, GemvAndGemmAgreeWithDot) {
  CHORUS_TEST_IF_COMPILED(TypeParam) {
    using traits = quant::block_traits<TypeParam>;
    // up to 8 activation rows: dot_rows, 4, 2 and 1 at a time; 12: the interleaved tiles
    for (const std::size_t n_x : {std::size_t{3}, std::size_t{5}, std::size_t{8}, std::size_t{12}}) {
      const std::size_t rows = 9, cols = 256 * 12, per_row = cols / 256;
      const auto w = quantized<TypeParam>(random_floats(rows * cols, 5));
      std::vector<block_q8_k> x(n_x * per_row);
      for (std::size_t i = 0; i < n_x; ++i) {
        const auto xi = random_floats(cols, 60 + static_cast<std::uint32_t>(i));
        quant::quantize_q8_k(xi.data(), x.data() + i * per_row, cols);
      }
      chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
        std::vector<float> y(rows), z(n_x * rows);
        k.of<TypeParam>().gemv(w.data(), 0, rows, cols, x.data(), y.data());
        k.of<TypeParam>().gemm(w.data(), 0, rows, cols, x.data(), n_x, per_row, z.data(), rows);
        for (std::size_t i = 0; i < n_x; ++i) {
          for (std::size_t r = 0; r < rows; ++r) {
            const float reference = traits::dot_reference(w.data() + r * per_row, x.data() + i * per_row, per_row);
            const float tolerance = 1e-5f * (1.0f + std::fabs(reference));
            if (i == 0) {
              EXPECT_NEAR(y[r], reference, tolerance) << "gemv row " << r;
            }
            EXPECT_NEAR(z[i * rows + r], reference, tolerance) << "gemm row " << r << " x " << i;
            // a batch changes no token: the same bits as dot()
            EXPECT_EQ(z[i * rows + r], k.of<TypeParam>().dot(w.data() + r * per_row, x.data() + i * per_row, per_row))
                << "gemm row " << r << " x " << i << " of " << n_x;
          }
        }
      });
    }
  }
}

TEST(KQuantActivation, Q8_KFollowsTheReference) {
  auto x = random_floats(512, 3);
  x[40] = 6.0f;    // largest of block 0: positive, so d is negative
  x[300] = -9.0f;  // largest of block 1: negative
  std::vector<block_q8_k> q(2);
  quant::quantize_q8_k(x.data(), q.data(), 512);
  EXPECT_EQ(q[0].qs[40], -127);
  EXPECT_EQ(q[1].qs[300 - 256], -127);
  EXPECT_FLOAT_EQ(q[0].d, -6.0f / 127.0f);
  EXPECT_FLOAT_EQ(q[1].d, 9.0f / 127.0f);
  for (int b = 0; b < 2; ++b) {
    for (int i = 0; i < 256; ++i) {
      // |x - d q| at most half a step, and q within [-127, 127]
      EXPECT_LE(std::fabs(x[b * 256 + i] - q[b].d * q[b].qs[i]), 0.5001f * std::fabs(q[b].d));
      EXPECT_GE(q[b].qs[i], -127);
    }
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += q[b].qs[g * 16 + i];
      EXPECT_EQ(q[b].bsums[g], sum);
    }
  }
  std::vector<float> zero(256, 0.0f);
  block_q8_k z{};
  z.d = 1.0f;
  quant::quantize_q8_k(zero.data(), &z, 256);
  EXPECT_EQ(z.d, 0.0f);
  for (auto s : z.bsums) EXPECT_EQ(s, 0);
}

// The blk.* weights of the spm512 files come from the same float weights as the F16 file: each
// K-quant tensor must dequantize close to its F16 counterpart (a wrong bit layout gives ~1.4),
// and a row's SIMD dot with real-sized activations must match float64 over the dequantized row.
TEST(KQuantRealModels, EveryKQuantTensorMatchesTheF16Model) {
  const auto reference = gguf::file::open(chorus_test::model_path("tiny-llama-spm512-F16.gguf"));
  // Measured maxima over all tensors: Q2_K 0.301, Q3_K 0.153, Q4_K 0.072, Q5_K 0.037, Q6_K 0.018.
  const std::map<gguf::tensor_type, double> bound = {{gguf::tensor_type::q2_k, 0.34}, {gguf::tensor_type::q3_k, 0.19},
                                                     {gguf::tensor_type::q4_k, 0.085}, {gguf::tensor_type::q5_k, 0.043},
                                                     {gguf::tensor_type::q6_k, 0.022}};
  std::map<gguf::tensor_type, std::size_t> checked;
  for (const char* format : {"Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"}) {
    const auto model = gguf::file::open(chorus_test::model_path(std::string("tiny-llama-spm512-") + format + ".gguf"));
    for (const auto& tensor : model.tensors()) {
      if (!bound.contains(tensor.type) || !quant::is_compiled_in(tensor.type)) continue;
      const auto& f16 = reference.tensor(tensor.name);
      ASSERT_EQ(f16.n_elements, tensor.n_elements) << tensor.name;
      std::vector<float> expected(f16.n_elements);
      quant::block_traits<fp16>::dequantize(reinterpret_cast<const fp16*>(f16.data.data()), expected.data(), f16.n_elements);
      quant::dispatch(tensor.type, [&](auto tag) {
        using Block = typename decltype(tag)::type;
        if constexpr (std::is_same_v<typename quant::block_traits<Block>::activation, block_q8_k> && quant::quantizable_format<Block>) {
          const auto* blocks = reinterpret_cast<const Block*>(tensor.data.data());
          const auto values = dequantized(blocks, tensor.n_elements);
          const double file_error = relative_rms(values, expected);
          EXPECT_LT(file_error, bound.at(tensor.type)) << format << " " << tensor.name << " " << gguf::type_name(tensor.type);
          // chorus's own quantizer on the same F16 weights: about as good as the file's
          // (measured: at most the file's error over all tensors, +-2 % per tensor)
          std::vector<Block> requantized(tensor.n_elements / 256);
          quant::block_traits<Block>::quantize(expected.data(), requantized.data(), tensor.n_elements);
          EXPECT_LT(relative_rms(dequantized(requantized.data(), tensor.n_elements), expected), 1.05 * file_error)
              << "chorus quantizer " << format << " " << tensor.name;
          // first row against a random activation row
          const std::size_t cols = static_cast<std::size_t>(tensor.dims[0]);
          const auto x = activations(random_floats(cols, 77));
          double exact = 0.0, magnitude = 0.0;
          for (std::size_t i = 0; i < cols; ++i) {
            const double term = static_cast<double>(values[i]) * x[i / 256].d * x[i / 256].qs[i % 256];
            exact += term;
            magnitude += std::fabs(term);
          }
          EXPECT_NEAR(simd::dot(blocks, x.data(), cols / 256), exact, 2e-6 * magnitude) << tensor.name;
        }
      });
      ++checked[tensor.type];
    }
  }
  for (const auto& [type, bound_value] : bound) {
    if (quant::is_compiled_in(type)) {
      EXPECT_GT(checked[type], 0u) << gguf::type_name(type);
    }
  }
}

}  // namespace
