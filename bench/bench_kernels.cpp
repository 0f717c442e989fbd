// Kernel benchmarks: gemv for every weight format at real layer shapes (weight bytes streamed
// per second, one thread), gemm at 512 activation rows, and the float kernels.
#include <benchmark/benchmark.h>

#include <chorus/chorus.hpp>

#include <random>
#include <vector>

namespace {

using namespace chorus;

template <class Block>
struct matrix_fixture {
  using traits = quant::block_traits<Block>;
  using activation = typename traits::activation;
  std::size_t rows, cols;
  std::vector<Block> w;
  std::vector<activation> x;
  std::vector<float> y;
  matrix_fixture(std::size_t rows_, std::size_t cols_, std::size_t n_x) : rows(rows_), cols(cols_) {
    std::mt19937 rng(1);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> row(cols);
    w.resize(rows * cols / traits::block_elements);
    for (std::size_t r = 0; r < rows; ++r) {
      for (auto& v : row) v = dist(rng);
      traits::quantize(row.data(), w.data() + r * (cols / traits::block_elements), cols);
    }
    const std::size_t per_row = simd::activation_bytes<Block>(cols) / sizeof(activation);
    x.resize(per_row * n_x);
    for (std::size_t i = 0; i < n_x; ++i) {
      for (auto& v : row) v = dist(rng);
      simd::quantize_activation<Block>(row.data(), x.data() + i * per_row, cols);
    }
    y.resize(rows * n_x);
  }
};

template <class Block>
void gemv(benchmark::State& state) {
  matrix_fixture<Block> f(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)), 1);
  for (auto _ : state) {
    simd::gemv(f.w.data(), 0, f.rows, f.cols, f.x.data(), f.y.data());
    benchmark::DoNotOptimize(f.y.data());
  }
  const double bytes = static_cast<double>(f.w.size() * sizeof(Block));
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

template <class Block>
void gemm(benchmark::State& state) {
  const std::size_t n_x = 512;
  matrix_fixture<Block> f(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)), n_x);
  const std::size_t per_row = simd::activation_bytes<Block>(f.cols) / sizeof(typename quant::block_traits<Block>::activation);
  for (auto _ : state) {
    simd::gemm(f.w.data(), 0, f.rows, f.cols, f.x.data(), n_x, per_row, f.y.data(), f.rows);
    benchmark::DoNotOptimize(f.y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * f.rows * f.cols * n_x, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

#define CHORUS_GEMV_SHAPES ->Args({4096, 4096})->Args({14336, 4096})->Args({4096, 14336})->Unit(benchmark::kMillisecond)
BENCHMARK(gemv<quant::block_q4_0>) CHORUS_GEMV_SHAPES;
BENCHMARK(gemv<quant::block_q4_1>) CHORUS_GEMV_SHAPES;
BENCHMARK(gemv<quant::block_q5_0>) CHORUS_GEMV_SHAPES;
BENCHMARK(gemv<quant::block_q5_1>) CHORUS_GEMV_SHAPES;
BENCHMARK(gemv<quant::block_q8_0>) CHORUS_GEMV_SHAPES;
BENCHMARK(gemv<quant::block_q2_k>) CHORUS_GEMV_SHAPES;
BENCHMARK(gemv<quant::block_q3_k>) CHORUS_GEMV_SHAPES;
BENCHMARK(gemv<quant::block_q4_k>) CHORUS_GEMV_SHAPES;
BENCHMARK(gemv<quant::block_q5_k>) CHORUS_GEMV_SHAPES;
BENCHMARK(gemv<quant::block_q6_k>) CHORUS_GEMV_SHAPES;
BENCHMARK(gemv<fp16>) CHORUS_GEMV_SHAPES;
BENCHMARK(gemv<bf16>) CHORUS_GEMV_SHAPES;
BENCHMARK(gemv<float>) CHORUS_GEMV_SHAPES;
BENCHMARK(gemm<quant::block_q4_0>)->Args({4096, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK(gemm<quant::block_q4_1>)->Args({4096, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK(gemm<quant::block_q5_0>)->Args({4096, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK(gemm<quant::block_q5_1>)->Args({4096, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK(gemm<quant::block_q8_0>)->Args({4096, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK(gemm<quant::block_q4_k>)->Args({4096, 4096})->Unit(benchmark::kMillisecond);

void rmsnorm(benchmark::State& state) {
  std::vector<float> x(4096, 0.5f), w(4096, 1.0f), out(4096);
  for (auto _ : state) {
    simd::rmsnorm<>(x.data(), w.data(), out.data(), x.size(), 1e-5f);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(rmsnorm);

}  // namespace

BENCHMARK_MAIN();
