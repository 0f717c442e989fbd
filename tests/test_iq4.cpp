// Tests of the decoder-only formats IQ4_NL and IQ4_XS: byte layouts, known bytes through the
// scalar decoder (dequantize), and every level's vector decoder and dot against the scalar ones
// on blocks of random bytes. (Golden logits of IQ4 files quantized by llama-quantize: see
// tests/data/golden-logits, run by tests/test_model.cpp.)
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace chorus;
using quant::block_iq4_nl;
using quant::block_iq4_xs;

static_assert(offsetof(block_iq4_nl, d) == 0 && offsetof(block_iq4_nl, qs) == 2 && sizeof(block_iq4_nl) == 18);
static_assert(offsetof(block_iq4_xs, d) == 0 && offsetof(block_iq4_xs, scales_h) == 2 && offsetof(block_iq4_xs, scales_l) == 4 &&
              offsetof(block_iq4_xs, qs) == 8 && sizeof(block_iq4_xs) == 136);

TEST(Iq4, TraitsMatchTheGgufGeometry) {
  for (const auto type : {gguf::tensor_type::iq4_nl, gguf::tensor_type::iq4_xs}) {
    quant::dispatch(type, [](auto tag) {
      using traits = quant::block_traits<typename decltype(tag)::type>;
      const auto info = gguf::type_info(traits::type);
      ASSERT_TRUE(info);
      EXPECT_EQ(traits::block_elements, info->block_elements);
      EXPECT_EQ(traits::block_bytes, info->block_bytes);
    });
  }
  EXPECT_FALSE(quant::quantizable_format<block_iq4_nl>);
  EXPECT_FALSE(quant::quantizable_formats::contains(gguf::tensor_type::iq4_xs));
}

TEST(Iq4, NlDecodesKnownBytes) {
  block_iq4_nl b{};
  b.d = fp16(0.5f);
  b.qs[0] = 0xF0;   // element 0: index 0 (-127), element 16: index 15 (113)
  b.qs[15] = 0x78;  // element 15: index 8 (1), element 31: index 7 (-10)
  float out[32];
  quant::block_traits<block_iq4_nl>::dequantize(&b, out, 32);
  EXPECT_EQ(out[0], -63.5f);
  EXPECT_EQ(out[16], 56.5f);
  EXPECT_EQ(out[15], 0.5f);
  EXPECT_EQ(out[31], -5.0f);
  EXPECT_EQ(out[1], -63.5f);  // qs[1] = 0: index 0
}

TEST(Iq4, XsDecodesKnownBytes) {
  block_iq4_xs b{};
  b.d = fp16(0.25f);
  // sub-block 0: scale 33 (low 1, high 2: 0x21 - 32 = 1); sub-block 7: scale 0 (low 0, high 0: -32)
  b.scales_l[0] = 0x01;
  b.scales_h = 0x0002;
  b.qs[0] = 0xF8;          // element 0: index 8 (1), element 16: index 15 (113)
  b.qs[16 * 7 + 3] = 0x10; // element 227: index 0 (-127), element 243: index 1 (-104)
  float out[256];
  quant::block_traits<block_iq4_xs>::dequantize(&b, out, 256);
  EXPECT_EQ(out[0], 0.25f * 1.0f * 1.0f);
  EXPECT_EQ(out[16], 0.25f * 1.0f * 113.0f);
  EXPECT_EQ(out[227], 0.25f * -32.0f * -127.0f);
  EXPECT_EQ(out[243], 0.25f * -32.0f * -104.0f);
}

template <class Block>
void randomize(Block& b, std::mt19937& rng) {
  auto* bytes = reinterpret_cast<unsigned char*>(&b);
  for (std::size_t i = 0; i < sizeof(Block); ++i) bytes[i] = static_cast<unsigned char>(rng());
  b.d = fp16(0.01f);
}

TEST(Iq4, NlEveryLevelEqualsTheScalarDecoder) {
  [&]<class Block = block_iq4_nl>() {
    CHORUS_TEST_IF_COMPILED(Block) {
      std::mt19937 rng(7);
      const std::size_t n = 67;
      std::vector<Block> w(n);
      for (auto& b : w) randomize(b, rng);
      std::vector<float> x(n * 32);
      std::normal_distribution<float> dist(0.0f, 1.0f);
      for (auto& v : x) v = dist(rng);
      std::vector<quant::block_q8_0> a(n);
      simd::quantize_activation<Block>(x.data(), a.data(), x.size());
      const double reference = quant::block_traits<Block>::dot_reference(w.data(), a.data(), n);
      double magnitude = 0.0;  // the summation bound of kernels.hpp
      for (std::size_t b = 0; b < n; ++b) {
        std::int8_t q[32];
        quant::block_traits<Block>::unpack(w[b], q);
        double products = 0.0;
        for (int i = 0; i < 32; ++i) products += std::abs(q[i] * a[b].qs[i]);
        magnitude += std::fabs(products * w[b].d.to_float() * a[b].d.to_float());
      }
      chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
        for (const auto& b : w) {
          std::int8_t expected[32];
          simd::quants32 decoded;
          quant::block_traits<Block>::unpack(b, expected);
          k.of<Block>().unpack(b, decoded);
          ASSERT_EQ(std::memcmp(expected, decoded.q, 32), 0);
        }
        const double fast = k.of<Block>().dot(w.data(), a.data(), n);
        EXPECT_LE(std::fabs(fast - reference), std::numeric_limits<float>::epsilon() * (n + 8) * magnitude);
      });
    }
  }();
}

TEST(Iq4, XsEveryLevelEqualsTheScalarDecoder) {
  [&]<class Block = block_iq4_xs>() {
    CHORUS_TEST_IF_COMPILED(Block) {
      std::mt19937 rng(8);
      const std::size_t n = 21;
      std::vector<Block> w(n);
      for (auto& b : w) randomize(b, rng);
      std::vector<float> x(n * 256);
      std::normal_distribution<float> dist(0.0f, 1.0f);
      for (auto& v : x) v = dist(rng);
      x[5] = 40.0f;  // a full-range activation block
      std::vector<quant::block_q8_k> a(n);
      simd::quantize_activation<Block>(x.data(), a.data(), x.size());
      chorus_test::for_each_level([&](simd::isa, const simd::kernel_table& k) {
        for (std::size_t b = 0; b < n; ++b) {
          quant::k_block::unpacked expected, decoded;
          quant::block_traits<Block>::unpack(w[b], expected);
          k.of<Block>().unpack(w[b], decoded);
          for (int i = 0; i < 256; ++i) ASSERT_EQ(decoded.q[i], expected.q[i]) << "block " << b << " element " << i;
          for (int s = 0; s < 8; ++s) ASSERT_EQ(decoded.scales[s], expected.scales[s]) << "block " << b << " scale " << s;
          ASSERT_EQ(decoded.d, expected.d);
          // same integers; one float expression (no minimums: no cancellation)
          const float reference = quant::block_traits<Block>::dot_reference(&w[b], &a[b], 1);
          EXPECT_NEAR(k.of<Block>().dot(&w[b], &a[b], 1), reference, 4 * std::numeric_limits<float>::epsilon() * std::fabs(reference))
              << "block " << b;
        }
      });
    }
  }();
}

}  // namespace
