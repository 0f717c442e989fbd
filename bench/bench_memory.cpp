// The machine's memory bandwidth: a streaming read of a buffer far larger than the caches
// (the physical limit of generation speed is bandwidth / bytes read per token).
#include <benchmark/benchmark.h>

#include <xsimd/xsimd.hpp>

#include <cstdint>
#include <vector>

namespace {

void stream_read(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0)) / sizeof(float);
  std::vector<float> buffer(n, 1.0f);
  using batch = xsimd::batch<float>;
  for (auto _ : state) {
    batch a(0.0f), b(0.0f), c(0.0f), d(0.0f);
    for (std::size_t i = 0; i + 4 * batch::size <= n; i += 4 * batch::size) {
      a += batch::load_unaligned(buffer.data() + i);
      b += batch::load_unaligned(buffer.data() + i + batch::size);
      c += batch::load_unaligned(buffer.data() + i + 2 * batch::size);
      d += batch::load_unaligned(buffer.data() + i + 3 * batch::size);
    }
    benchmark::DoNotOptimize(xsimd::hadd(a + b + c + d));
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(n * sizeof(float)),
                                              benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(stream_read)->Arg(1 << 30)->Unit(benchmark::kMillisecond);
BENCHMARK(stream_read)->Arg(1 << 30)->Threads(2)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
