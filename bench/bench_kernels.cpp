// Kernel benchmarks, one thread: gemv for every compiled-in weight format at every
// instruction-set level this CPU runs (weight bytes streamed per second: "gemv/Q4_K/avx2/4096x4096"),
// gemm at 4, 8 and 512 activation rows at the level that runs, and the float kernels (formats chorus can
// quantize: the fixtures are random weights).
#include <benchmark/benchmark.h>

#include <chorus/chorus.hpp>

#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace chorus;

template <class Block>
struct matrix_fixture {
  using traits = quant::block_traits<Block>;
  using activation = typename traits::activation;
  std::size_t rows, cols, n_x, per_row;
  std::vector<Block> w;
  std::vector<activation> x;
  std::vector<float> y;
  matrix_fixture(std::size_t rows_, std::size_t cols_, std::size_t n_x_) : rows(rows_), cols(cols_), n_x(n_x_) {
    std::mt19937 rng(1);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> row(cols);
    w.resize(rows * cols / traits::block_elements);
    for (std::size_t r = 0; r < rows; ++r) {
      for (auto& v : row) v = dist(rng);
      traits::quantize(row.data(), w.data() + r * (cols / traits::block_elements), cols);
    }
    per_row = simd::activation_bytes<Block>(cols) / sizeof(activation);
    x.resize(per_row * n_x);
    for (std::size_t i = 0; i < n_x; ++i) {
      for (auto& v : row) v = dist(rng);
      simd::quantize_activation<Block>(row.data(), x.data() + i * per_row, cols);
    }
    y.resize(rows * n_x);
  }
};

// One matrix per format and shape, kept across the levels (quantizing takes longer than measuring).
template <class Block>
matrix_fixture<Block>& fixture(std::size_t rows, std::size_t cols, std::size_t n_x) {
  static std::unique_ptr<matrix_fixture<Block>> cached;
  if (!cached || cached->rows != rows || cached->cols != cols || cached->n_x != n_x) {
    cached.reset();
    cached = std::make_unique<matrix_fixture<Block>>(rows, cols, n_x);
  }
  return *cached;
}

template <class Block>
void register_format(const std::vector<simd::isa>& levels) {
  const std::string name(gguf::type_name(quant::block_traits<Block>::type));
  for (const auto level : levels) {
    for (const auto& [rows, cols] : {std::pair<std::size_t, std::size_t>{4096, 4096}, {14336, 4096}}) {
      const std::string label = "gemv/" + name + "/" + std::string(simd::isa_name(level)) + "/" + std::to_string(rows) + "x" +
                                std::to_string(cols);
      benchmark::RegisterBenchmark(label.c_str(), [level, rows = rows, cols = cols](benchmark::State& state) {
        auto& f = fixture<Block>(rows, cols, 1);
        const auto& k = simd::kernels_for(level).of<Block>();
        for (auto _ : state) {
          k.gemv(f.w.data(), 0, f.rows, f.cols, f.x.data(), f.y.data());
          benchmark::DoNotOptimize(f.y.data());
          benchmark::ClobberMemory();
        }
        const double bytes = static_cast<double>(f.w.size() * sizeof(Block));
        state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
      })->Unit(benchmark::kMillisecond);
    }
  }
  // A few sequences decoded together (a fusion panel of one model, a server's batch): the gemm at
  // 4 and 8 activation rows, weight bytes streamed per second as in the gemv.
  for (const std::size_t n_x : {4, 8}) {
    const std::string label = "gemm" + std::to_string(n_x) + "/" + name + "/" + std::string(simd::isa_name(simd::active_isa())) +
                              "/14336x4096";
    benchmark::RegisterBenchmark(label.c_str(), [n_x](benchmark::State& state) {
      auto& f = fixture<Block>(14336, 4096, n_x);
      for (auto _ : state) {
        simd::gemm(f.w.data(), 0, f.rows, f.cols, f.x.data(), f.n_x, f.per_row, f.y.data(), f.rows);
        benchmark::DoNotOptimize(f.y.data());
        benchmark::ClobberMemory();
      }
      const double bytes = static_cast<double>(f.w.size() * sizeof(Block));
      state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
    })->Unit(benchmark::kMillisecond);
  }
  const std::string label = "gemm512/" + name + "/" + std::string(simd::isa_name(simd::active_isa())) + "/4096x4096";
  benchmark::RegisterBenchmark(label.c_str(), [](benchmark::State& state) {
    auto& f = fixture<Block>(4096, 4096, 512);
    for (auto _ : state) {
      simd::gemm(f.w.data(), 0, f.rows, f.cols, f.x.data(), f.n_x, f.per_row, f.y.data(), f.rows);
      benchmark::DoNotOptimize(f.y.data());
      benchmark::ClobberMemory();
    }
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(f.rows * f.cols * f.n_x),
                                                   benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  })->Unit(benchmark::kMillisecond);
}

template <class... Blocks>
void register_formats(quant::formats<Blocks...>*, const std::vector<simd::isa>& levels) {
  // formats chorus only decodes (no quantizer: IQ4_NL, IQ4_XS need a real file) are measured by bench_kquants' files
  auto one = [&]<class Block>(std::type_identity<Block>) {
    if constexpr (requires(const float* in, Block* out) { quant::block_traits<Block>::quantize(in, out, std::size_t{}); }) {
      register_format<Block>(levels);
    }
  };
  (one(std::type_identity<Blocks>{}), ...);
}

void rmsnorm(benchmark::State& state) {
  std::vector<float> x(4096, 0.5f), w(4096, 1.0f), out(4096);
  for (auto _ : state) {
    simd::rmsnorm<>(x.data(), w.data(), out.data(), x.size(), 1e-5f);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(rmsnorm);

void softmax(benchmark::State& state) {
  std::vector<float> x(4096);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 97) * 0.1f;
  for (auto _ : state) {
    auto y = x;
    simd::softmax<>(y.data(), y.size());
    benchmark::DoNotOptimize(y.data());
  }
}
BENCHMARK(softmax);

}  // namespace

int main(int argc, char** argv) {
  std::vector<simd::isa> levels;
  for (const auto level : simd::all_isas) {
    if (simd::isa_usable(level)) levels.push_back(level);
  }
  register_formats(static_cast<quant::quantizable_formats*>(nullptr), levels);  // (the fixtures quantize)
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
