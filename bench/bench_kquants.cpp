// K-quant kernel benchmarks: gemv of Q2_K..Q6_K weights with a Q8_K activation row at real
// layer shapes (rows x cols = outputs x inputs), single thread, reported as weight bytes
// streamed per second; gemm with 512 activation rows (prompt processing) in GFLOP/s; at the
// level that runs (CHORUS_ISA forces one; bench_kernels compares every level side by side).
#include <benchmark/benchmark.h>

#include <chorus/chorus.hpp>

#include <memory>
#include <random>
#include <vector>

namespace {

using namespace chorus;

template <class Block>
struct k_matrix {
  using traits = quant::block_traits<Block>;
  std::size_t rows, cols, per_row;
  std::vector<Block> w;
  std::vector<quant::block_q8_k> x;
  std::vector<float> y;
  k_matrix(std::size_t rows_, std::size_t cols_, std::size_t n_x) : rows(rows_), cols(cols_), per_row(cols_ / 256) {
    std::mt19937 rng(1);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    std::vector<float> row(cols);
    w.resize(rows * per_row);
    for (std::size_t r = 0; r < rows; ++r) {
      for (auto& v : row) v = dist(rng);
      traits::quantize(row.data(), w.data() + r * per_row, cols);
    }
    x.resize(per_row * n_x);
    for (std::size_t i = 0; i < n_x; ++i) {
      for (auto& v : row) v = dist(rng);
      quant::quantize_q8_k(row.data(), x.data() + i * per_row, cols);
    }
    y.resize(rows * n_x);
  }
  double weight_bytes() const { return static_cast<double>(w.size() * sizeof(Block)); }
};

// The matrix of the current shape, kept across repetitions (quantizing it takes longer than
// measuring it); one per block type, replaced when the shape changes.
template <class Block>
k_matrix<Block>& matrix(const benchmark::State& state, std::size_t n_x) {
  static std::unique_ptr<k_matrix<Block>> cached;
  const auto rows = static_cast<std::size_t>(state.range(0)), cols = static_cast<std::size_t>(state.range(1));
  if (!cached || cached->rows != rows || cached->cols != cols || cached->y.size() != rows * n_x) {
    cached.reset();
    cached = std::make_unique<k_matrix<Block>>(rows, cols, n_x);
  }
  return *cached;
}

template <class Block>
void gemv(benchmark::State& state) {
  auto& m = matrix<Block>(state, 1);
  for (auto _ : state) {
    simd::gemv(m.w.data(), 0, m.rows, m.cols, m.x.data(), m.y.data());
    benchmark::DoNotOptimize(m.y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] = benchmark::Counter(m.weight_bytes(), benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

template <class Block>
void gemm(benchmark::State& state) {
  const std::size_t n_x = 512;
  auto& m = matrix<Block>(state, n_x);
  for (auto _ : state) {
    simd::gemm(m.w.data(), 0, m.rows, m.cols, m.x.data(), n_x, m.per_row, m.y.data(), m.rows);
    benchmark::DoNotOptimize(m.y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(m.rows * m.cols * n_x),
                                                 benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

#define CHORUS_K_SHAPES ->Args({4096, 4096})->Args({4096, 14336})->Args({14336, 4096})->Unit(benchmark::kMillisecond)
BENCHMARK(gemv<quant::block_q4_k>) CHORUS_K_SHAPES;
BENCHMARK(gemv<quant::block_q5_k>) CHORUS_K_SHAPES;
BENCHMARK(gemv<quant::block_q6_k>) CHORUS_K_SHAPES;
BENCHMARK(gemv<quant::block_q2_k>) CHORUS_K_SHAPES;
BENCHMARK(gemv<quant::block_q3_k>) CHORUS_K_SHAPES;
#define CHORUS_K_GEMM ->Args({4096, 4096})->Unit(benchmark::kMillisecond)->MinTime(1.0)
BENCHMARK(gemm<quant::block_q4_k>) CHORUS_K_GEMM;
BENCHMARK(gemm<quant::block_q5_k>) CHORUS_K_GEMM;
BENCHMARK(gemm<quant::block_q6_k>) CHORUS_K_GEMM;
BENCHMARK(gemm<quant::block_q2_k>) CHORUS_K_GEMM;
BENCHMARK(gemm<quant::block_q3_k>) CHORUS_K_GEMM;

}  // namespace

BENCHMARK_MAIN();
