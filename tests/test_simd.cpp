// Tests of simd/: at every instruction-set level this build has and the CPU runs
// (chorus_test::for_each_level), the 32-element-block dot kernels against the traits' scalar
// reference with the documented summation-order bound, the vector decoders against the traits'
// unpack(), gemv/gemm against dot, the int8 multiply-accumulate on extreme values, the float
// kernels against their scalar references on many sizes (1, odd, not multiples of the SIMD
// width), and the choice of the level (CHORUS_ISA).
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace chorus;

// n draws of N(mean, stddev)
std::vector<float> gaussian(std::size_t n, std::uint32_t seed, float mean = 0.0f, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

template <class Block>
struct quantized_row {
  using traits = quant::block_traits<Block>;
  using activation = typename traits::activation;
  std::vector<Block> w;
  std::vector<activation> a;
  quantized_row(std::size_t n_blocks, std::uint32_t seed, float weight_mean) : w(n_blocks), a(n_blocks) {
    const std::size_t n = n_blocks * 32;
    traits::quantize(gaussian(n, seed, weight_mean).data(), w.data(), n);
    simd::quantize_activation<Block>(gaussian(n, seed + 1000).data(), a.data(), n);
  }
};

// The bound of dot_small.hpp: eps * (n_blocks + 8) * M, M the sum of the magnitudes of the
// element products and offset terms, recomputed here from the traits' unpack().
template <class Block>
double summation_bound(const Block* w, const typename quant::block_traits<Block>::activation* a, std::size_t n) {
  using traits = quant::block_traits<Block>;
  double magnitude = 0.0;
  for (std::size_t b = 0; b < n; ++b) {
    std::int8_t q[32];
    traits::unpack(w[b], q);
    double products = 0.0;
    for (int i = 0; i < 32; ++i) products += std::abs(q[i] * a[b].qs[i]);
    magnitude += std::fabs(products * w[b].d.to_float() * a[b].d.to_float());
    if constexpr (traits::kind == quant::block_kind::affine) magnitude += std::fabs(w[b].m.to_float() * a[b].s.to_float());
  }
  return std::numeric_limits<float>::epsilon() * static_cast<double>(n + 8) * magnitude;
}

template <class Block>
class SmallBlockKernels : public ::testing::Test {};
using small_blocks = ::testing::Types<quant::block_q4_0, quant::block_q4_1, quant::block_q5_0, quant::block_q5_1, quant::block_q8_0>;
TYPED_TEST_SUITE(SmallBlockKernels, small_blocks);

TYPED_TEST(SmallBlockKernels, DotMatchesTheReferenceWithinTheSummationBound) {
  CHORUS_TEST_IF_COMPILED(TypeParam) {
    using Block = TypeParam;
    using traits = quant::block_traits<Block>;
    chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
      for (std::size_t n : {1u, 2u, 3u, 7u, 16u, 33u, 64u, 65u, 130u, 448u}) {
        for (float mean : {0.0f, 0.7f}) {  // a weight offset exercises the affine formats' m * s term
          const quantized_row<Block> row(n, static_cast<std::uint32_t>(n * 7 + (mean != 0.0f)), mean);
          const double reference = traits::dot_reference(row.w.data(), row.a.data(), n);
          const double fast = k.of<Block>().dot(row.w.data(), row.a.data(), n);
          EXPECT_LE(std::fabs(fast - reference), summation_bound(row.w.data(), row.a.data(), n))
              << gguf::type_name(traits::type) << " blocks " << n << " mean " << mean;
        }
      }
    });
  }
}

TYPED_TEST(SmallBlockKernels, VectorDecoderEqualsTraitsUnpack) {
  CHORUS_TEST_IF_COMPILED(TypeParam) {
    using Block = TypeParam;
    chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
      std::mt19937 rng(3);
      for (int trial = 0; trial < 500; ++trial) {
        Block b;
        auto* bytes = reinterpret_cast<unsigned char*>(&b);
        for (std::size_t i = 0; i < sizeof(Block); ++i) bytes[i] = static_cast<unsigned char>(rng());  // every bit pattern
        b.d = fp16(1.0f);  // any scale: only the quants are compared
        std::int8_t expected[32];
        simd::quants32 decoded;
        quant::block_traits<Block>::unpack(b, expected);
        k.of<Block>().unpack(b, decoded);
        ASSERT_EQ(std::memcmp(expected, decoded.q, 32), 0) << gguf::type_name(quant::block_traits<Block>::type);
      }
    });
  }
}

TYPED_TEST(SmallBlockKernels, ExtremeQuantsDoNotSaturate) {
  CHORUS_TEST_IF_COMPILED(TypeParam) {
    // Largest weight and activation magnitudes everywhere: the int16 pair sums of maddubs and the
    // sign trick must still give the exact integers.
    using Block = TypeParam;
    using traits = quant::block_traits<Block>;
    const std::size_t n = 5;
    std::vector<float> w(n * 32), x(n * 32);
    for (std::size_t i = 0; i < w.size(); ++i) {
      w[i] = (i % 3 == 0) ? -1.0f : 1.0f;
      x[i] = (i % 2 == 0) ? -1.0f : 1.0f;
    }
    std::vector<Block> wq(n);
    std::vector<typename traits::activation> aq(n);
    traits::quantize(w.data(), wq.data(), w.size());
    simd::quantize_activation<Block>(x.data(), aq.data(), x.size());
    const double reference = traits::dot_reference(wq.data(), aq.data(), n);
    chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
      EXPECT_LE(std::fabs(k.of<Block>().dot(wq.data(), aq.data(), n) - reference), summation_bound(wq.data(), aq.data(), n));
    });
  }
}

TYPED_TEST(SmallBlockKernels, GemvAndGemmAreDotRowByRow) {
  CHORUS_TEST_IF_COMPILED(TypeParam) {
    using Block = TypeParam;
    using traits = quant::block_traits<Block>;
    using activation = typename traits::activation;
    // (columns, activation rows): 3 and 8 rows take gemv_small's few-rows path, 67 the tiles in two groups
    // of activation rows; 4096 columns: two gemm tiles of 2048
    for (const auto& shape : {std::pair<std::size_t, std::size_t>{32, 67}, {96, 67}, {4096, 67}, {96, 3}, {4096, 8}}) {
      const std::size_t cols = shape.first, n_x = shape.second;
      const std::size_t rows = 17, per_row = cols / 32;  // 17: two groups of 8 weight rows and one alone
      std::vector<Block> w(rows * per_row);
      traits::quantize(gaussian(rows * cols, 17, 0.3f).data(), w.data(), rows * cols);
      std::vector<activation> x(n_x * per_row);
      for (std::size_t i = 0; i < n_x; ++i) {
        simd::quantize_activation<Block>(gaussian(cols, 40 + static_cast<std::uint32_t>(i)).data(), x.data() + i * per_row,
                                         cols);
      }
      chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
        const auto& f = k.of<Block>();
        std::vector<float> y(rows, -1.0f), z(n_x * rows, -1.0f);
        f.gemv(w.data(), 1, rows - 1, cols, x.data(), y.data());
        EXPECT_EQ(y.front(), -1.0f);  // outside the row range: untouched
        EXPECT_EQ(y.back(), -1.0f);
        for (std::size_t r = 1; r + 1 < rows; ++r) EXPECT_EQ(y[r], f.dot(w.data() + r * per_row, x.data(), per_row));
        f.gemm(w.data(), 0, rows, cols, x.data(), n_x, per_row, z.data(), rows);
        for (std::size_t i = 0; i < n_x; ++i) {
          for (std::size_t r = 0; r < rows; ++r) {
            const Block* wr = w.data() + r * per_row;
            const activation* xi = x.data() + i * per_row;
            const double reference = traits::dot_reference(wr, xi, per_row);
            ASSERT_LE(std::fabs(z[i * rows + r] - reference), summation_bound(wr, xi, per_row))
                << gguf::type_name(traits::type) << " cols " << cols << " x row " << i << " w row " << r;
            // a batch changes no token: the same bits as dot()
            ASSERT_EQ(z[i * rows + r], f.dot(wr, xi, per_row))
                << gguf::type_name(traits::type) << " cols " << cols << " n_x " << n_x << " x row " << i << " w row " << r;
          }
        }
      });
    }
  }
}

// The int8 multiply-accumulate of each level, through Q8_0 blocks with unit scales: every weight
// byte (-128 included) against activations in [-127, 127], extremes first. The per-block sums are
// below 2^24, so the float result is the exact integer.
TEST(SimdInt8, MultiplyAccumulateIsExactForEveryInt8) {
  [&]<class Q8_0 = quant::block_q8_0>() {
  CHORUS_TEST_IF_COMPILED(Q8_0) {
  chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
    std::mt19937 rng(9);
    std::uniform_int_distribution<int> weight(-128, 127), activation(-127, 127);
    for (int trial = 0; trial < 300; ++trial) {
      Q8_0 w[2], a[2];
      std::int64_t exact = 0;
      for (int b = 0; b < 2; ++b) {
        w[b].d = fp16(1.0f);
        a[b].d = fp16(1.0f);
        for (int i = 0; i < 32; ++i) {
          w[b].qs[i] = static_cast<std::int8_t>(trial < 2 ? (trial == 0 ? -128 : 127) : weight(rng));
          a[b].qs[i] = static_cast<std::int8_t>(trial < 2 ? (i % 2 ? 127 : -127) : activation(rng));
          exact += w[b].qs[i] * a[b].qs[i];
        }
      }
      ASSERT_EQ(k.of<Q8_0>().dot(w, a, 2), static_cast<float>(exact)) << "trial " << trial;
    }
  });
  }
  }();
}

// Sizes: 1, below/above/not multiples of the 16-float AVX-512 width, and large.
const std::size_t float_sizes[] = {1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 257, 1000, 4096};

TEST(SimdFloat, DotWithinTheSummationBound) {
  chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
  for (std::size_t n : float_sizes) {
    const auto a = gaussian(n, 1), b = gaussian(n, 2);
    double magnitude = 0.0;
    for (std::size_t i = 0; i < n; ++i) magnitude += std::fabs(static_cast<double>(a[i]) * b[i]);
    // both sums err by at most n * eps * magnitude (a looser but simple bound than the
    // lane-wise one): their difference by twice that
    const double bound = 2.0 * static_cast<double>(n) * std::numeric_limits<float>::epsilon() * magnitude;
    EXPECT_LE(std::fabs(k.floats.dot(a.data(), b.data(), n) - simd::reference::dot(a.data(), b.data(), n)), bound) << n;
  }
  });
}

TEST(SimdFloat, ElementwiseKernelsMatchTheirReferences) {
  chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
  const auto& f = k.floats;
  for (std::size_t n : float_sizes) {
    const auto a = gaussian(n, 3, 0.0f, 3.0f), b = gaussian(n, 4);
    std::vector<float> fast(n), slow(n);
    auto expect_close = [&](float relative, const char* what) {
      for (std::size_t i = 0; i < n; ++i) ASSERT_NEAR(fast[i], slow[i], relative * (1e-6f + std::fabs(slow[i]))) << what << " n " << n << " i " << i;
    };

    f.rmsnorm(a.data(), b.data(), fast.data(), n, 1e-5f);
    simd::reference::rmsnorm(a.data(), b.data(), slow.data(), n, 1e-5f);
    expect_close(1e-5f, "rmsnorm");
    fast = a;  // in place
    f.rmsnorm(fast.data(), b.data(), fast.data(), n, 1e-5f);
    expect_close(1e-5f, "rmsnorm in place");

    f.swiglu(a.data(), nullptr, fast.data(), n);
    simd::reference::silu(a.data(), slow.data(), n);
    expect_close(1e-5f, "silu");

    f.swiglu(a.data(), b.data(), fast.data(), n);
    simd::reference::swiglu(a.data(), b.data(), slow.data(), n);
    expect_close(1e-5f, "swiglu");

    fast = a;
    slow = a;
    f.softmax(fast.data(), n);
    simd::reference::softmax(slow.data(), n);
    expect_close(1e-5f, "softmax");
    double total = 0.0;
    for (float v : fast) total += v;
    EXPECT_NEAR(total, 1.0, 1e-5);

    fast = a;
    f.add(fast.data(), b.data(), n);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(fast[i], a[i] + b[i]);
    fast = a;
    f.scale(fast.data(), 0.37f, n);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(fast[i], a[i] * 0.37f);
    fast = a;
    f.axpy(fast.data(), 0.37f, b.data(), n);
    for (std::size_t i = 0; i < n; ++i) ASSERT_NEAR(fast[i], a[i] + 0.37f * b[i], 1e-6f * (1.0f + std::fabs(fast[i])));
  }
  });
}

TEST(SimdFloat, SoftmaxIsStableForLargeInputs) {
  chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
    for (std::size_t n : {3u, 40u}) {  // the scalar tail, and whole vectors
      std::vector<float> x(n, -1000.0f);
      x[0] = x[n - 1] = 1000.0f;
      k.floats.softmax(x.data(), x.size());
      EXPECT_FLOAT_EQ(x[0], 0.5f);
      EXPECT_FLOAT_EQ(x[n - 1], 0.5f);
      EXPECT_EQ(x[1], 0.0f);
    }
  });
}

TEST(SimdFloat, Fp16RowConversionsAreBitExact) {
  // The F16C row conversion against the exact scalar one, including subnormals, overflow,
  // ties and NaN.
  auto x = gaussian(1001, 5, 0.0f, 100.0f);
  const float specials[] = {0.0f, -0.0f, 65504.0f, 65520.0f, 1e6f, -1e6f, 6e-8f, 3e-8f, 1e-5f, -2.98e-8f,
                            1.0f + 1.0f / 2048.0f, 1.0f + 3.0f / 2048.0f, std::numeric_limits<float>::infinity()};
  for (std::size_t i = 0; i < std::size(specials); ++i) x[i * 7] = specials[i];
  chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
    std::vector<fp16> fast(x.size());
    k.floats.float_to_fp16(x.data(), fast.data(), x.size());
    for (std::size_t i = 0; i < x.size(); ++i) ASSERT_EQ(fast[i].bits, fp16(x[i]).bits) << x[i];
    std::vector<float> back(x.size());
    k.floats.fp16_to_float(fast.data(), back.data(), x.size());
    for (std::size_t i = 0; i < x.size(); ++i) ASSERT_EQ(back[i], fp16_bits_to_float(fast[i].bits));
    // every half, NaNs and subnormals included, through the row conversion (whole vectors and tail)
    std::vector<fp16> all(65536 + 3);
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = fp16::from_bits(static_cast<std::uint16_t>(i));
    std::vector<float> wide(all.size());
    k.floats.fp16_to_float(all.data(), wide.data(), all.size());
    for (std::size_t i = 0; i < all.size(); ++i) {
      const float expected = fp16_bits_to_float(all[i].bits);
      if (std::isnan(expected)) {
        ASSERT_TRUE(std::isnan(wide[i])) << i;
      } else {
        ASSERT_EQ(std::bit_cast<std::uint32_t>(wide[i]), std::bit_cast<std::uint32_t>(expected)) << i;
      }
    }
  });
}

// The activation oracle of Block's weights: the portable quantizers of quant/.
template <class Block>
void quantize_by_oracle(const float* x, typename quant::block_traits<Block>::activation* out, std::size_t n) {
  using activation = typename quant::block_traits<Block>::activation;
  if constexpr (std::is_same_v<activation, quant::block_q8_0>) {
    quant::block_traits<quant::block_q8_0>::quantize(x, out, n);
  } else if constexpr (std::is_same_v<activation, quant::block_q8_1>) {
    quant::quantize_q8_1(x, out, n);
  } else if constexpr (std::is_same_v<activation, quant::block_q8_k>) {
    quant::quantize_q8_k(x, out, n);
  } else {
    for (std::size_t i = 0; i < n; ++i) out[i] = activation(x[i]);
  }
}

template <class... Blocks>
void for_each_format(quant::formats<Blocks...>*, auto&& body) {
  (body(std::type_identity<Blocks>{}), ...);
}

// Every level's activation quantizer writes the oracle's bytes: scales, quants, the Q8_1 sums
// and the Q8_K group sums, on rows with ties (x * 127 / max|x| halfway between integers), a zero
// block, the largest magnitude at both signs (the first one sets Q8_K's sign), wide ranges and a NaN.
TEST(SimdQuantize, ActivationsAreTheOraclesBytesAtEveryLevel) {
  constexpr std::size_t n = 1024;
  std::vector<std::vector<float>> rows = {gaussian(n, 11), gaussian(n, 12, 0.5f, 1e-3f), gaussian(n, 13, 0.0f, 1e4f)};
  std::vector<float> special(n, 0.0f);  // block 0..255 of zeros
  for (std::size_t i = 256; i < 512; ++i) special[i] = static_cast<float>(static_cast<int>(i % 255) - 127) + 0.5f;  // ties
  special[256] = 127.0f;  // max|x| = 127: x * 127 / max = x
  for (std::size_t i = 512; i < 768; ++i) special[i] = (i % 3 == 0) ? -4.0f : 1.0f;  // -max first, then +max
  special[520] = 4.0f;
  for (std::size_t i = 768; i < n; ++i) special[i] = std::ldexp(1.0f, static_cast<int>(i % 40) - 20) * ((i % 2) ? 1.0f : -1.0f);
  rows.push_back(special);
  // A NaN (a broken model's activations): the blocks without one keep the oracle's bytes, and the
  // one with it stays within its row (the Q8_K quantizer looks for the largest magnitude's sign).
  std::vector<float> with_nan = gaussian(n, 14);
  with_nan[250] = std::numeric_limits<float>::quiet_NaN();  // in the last vector of a Q8_K block: amax NaN
  rows.push_back(with_nan);
  const auto has_nan = [](const float* x, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      if (std::isnan(x[i])) return true;
    }
    return false;
  };
  chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
    for_each_format(static_cast<quant::compiled_formats*>(nullptr), [&]<class Block>(std::type_identity<Block>) {
      using activation = typename quant::block_traits<Block>::activation;
      SCOPED_TRACE(std::string("format ") + std::string(gguf::type_name(quant::block_traits<Block>::type)));
      const std::size_t count = simd::activation_bytes<Block>(n) / sizeof(activation);
      for (std::size_t r = 0; r < rows.size(); ++r) {
        // (the oracles turn a NaN into an int by a cast that is undefined: they see a 0 there,
        // which changes no other block)
        std::vector<float> oracle_input = rows[r];
        for (float& v : oracle_input) v = std::isnan(v) ? 0.0f : v;
        std::vector<activation> expected(count), got(count);
        quantize_by_oracle<Block>(oracle_input.data(), expected.data(), n);
        k.template of<Block>().quantize(rows[r].data(), got.data(), n);
        const std::size_t per_block = n / count;
        for (std::size_t b = 0; b < count; ++b) {
          if (has_nan(rows[r].data() + b * per_block, per_block)) continue;
          ASSERT_EQ(std::memcmp(&expected[b], &got[b], sizeof(activation)), 0) << "row " << r << ", block " << b;
        }
      }
    });
  });
}

// CHORUS_ISA names a level; a level this CPU lacks, or an unknown name, is refused with the
// levels that would run.
TEST(SimdDispatch, LevelNamesAndRefusals) {
  EXPECT_TRUE(simd::isa_usable(simd::isa::scalar));
  EXPECT_TRUE(simd::isa_usable(simd::best_isa()));
  EXPECT_EQ(simd::kernels_for(simd::isa::scalar).level, simd::isa::scalar);
  for (const auto level : simd::all_isas) {
    if (simd::isa_usable(level)) {
      EXPECT_EQ(simd::parse_isa(simd::isa_name(level)), level);
      EXPECT_EQ(simd::kernels_for(level).level, level);
    } else {
      chorus_test::expect_error(errc::unsupported, std::string(simd::isa_name(level)), [&] { simd::kernels_for(level); });
    }
  }
  chorus_test::expect_error(errc::invalid_argument, "unknown instruction-set level", [] { simd::parse_isa("avx9000"); });
  // the level that runs is the best one unless CHORUS_ISA forces another
  const char* forced = std::getenv("CHORUS_ISA");
  if (forced == nullptr || *forced == '\0') {
    EXPECT_EQ(simd::active_isa(), simd::best_isa());
  } else {
    EXPECT_EQ(simd::isa_name(simd::active_isa()), std::string_view(forced));
  }
  EXPECT_EQ(simd::active_kernels().level, simd::active_isa());
}

// One test per level that this build has and this CPU runs, named after it: the list that
// tools/ci/isa_levels.sh reads (--gtest_list_tests) to run the suite at each level in turn.
std::vector<simd::isa> usable_levels() {
  std::vector<simd::isa> levels;
  for (const auto level : simd::all_isas) {
    if (simd::isa_usable(level)) levels.push_back(level);
  }
  return levels;
}
class SimdLevel : public ::testing::TestWithParam<simd::isa> {};
TEST_P(SimdLevel, RunsHere) {
  const auto& k = simd::kernels_for(GetParam());
  EXPECT_EQ(k.level, GetParam());
  EXPECT_NE(k.floats.dot, nullptr);
  [&]<class Q4_K = quant::block_q4_k>() {
  CHORUS_TEST_IF_COMPILED(Q4_K) {
  std::vector<float> w(4096), x(4096);
  for (std::size_t i = 0; i < w.size(); ++i) {
    w[i] = static_cast<float>(static_cast<int>(i % 15) - 7);
    x[i] = static_cast<float>(static_cast<int>(i % 9) - 4);
  }
  std::vector<Q4_K> wq(16);
  std::vector<quant::block_q8_k> xq(16);
  quant::block_traits<Q4_K>::quantize(w.data(), wq.data(), w.size());
  quant::quantize_q8_k(x.data(), xq.data(), x.size());
  const float reference = quant::block_traits<Q4_K>::dot_reference(wq.data(), xq.data(), 16);
  EXPECT_NEAR(k.of<Q4_K>().dot(wq.data(), xq.data(), 16), reference, 1e-4f * std::fabs(reference));
  }
  }();
}
INSTANTIATE_TEST_SUITE_P(Usable, SimdLevel, ::testing::ValuesIn(usable_levels()),
                         [](const auto& info) { return std::string(simd::isa_name(info.param)); });

TEST(SimdFloat, RopeRotatesAdjacentPairsByThePositionAngle) {
  const std::size_t heads = 3, head_dim = 8, n_rot = 8;
  const double base = 10000.0;
  for (double pos : {0.0, 1.0, 17.0, 4095.0}) {
    std::vector<float> cos(n_rot / 2), sin(n_rot / 2);
    simd::rope_cos_sin(pos, base, n_rot, cos.data(), sin.data());
    const auto x = gaussian(heads * head_dim, 8);
    auto y = x;
    simd::rope(y.data(), heads, head_dim, n_rot, cos.data(), sin.data());
    for (std::size_t h = 0; h < heads; ++h) {
      for (std::size_t i = 0; i < n_rot / 2; ++i) {
        const double angle = pos * std::pow(base, -2.0 * static_cast<double>(i) / n_rot);
        const double a = x[h * head_dim + 2 * i], b = x[h * head_dim + 2 * i + 1];
        EXPECT_NEAR(y[h * head_dim + 2 * i], a * std::cos(angle) - b * std::sin(angle), 1e-5);
        EXPECT_NEAR(y[h * head_dim + 2 * i + 1], a * std::sin(angle) + b * std::cos(angle), 1e-5);
      }
    }
  }
}

}  // namespace
