// Fusion orchestration cost: requests whose members answer at once (so that all the time is
// orchestration), per member; and a 3-member fusion of real local models against its
// critical path (slowest member + judge).
#include <benchmark/benchmark.h>

#include <chorus/chorus.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

namespace {

using namespace chorus;
namespace asio = boost::asio;

struct instant_member {
  std::string label;
  std::string name() const { return label; }
  asio::awaitable<fusion::candidate> answer(const fusion::request&) {
    fusion::candidate c;
    c.text = "42";
    c.mean_logprob = -1.0;
    co_return c;
  }
};

void orchestration(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<fusion::any_member> members;
  for (std::size_t i = 0; i < n; ++i) members.emplace_back(std::make_shared<instant_member>(instant_member{"m" + std::to_string(i)}));
  fusion::confidence_judge judge;
  const auto r = fusion::request::from_prompt("q");
  asio::io_context io;
  for (auto _ : state) {
    asio::co_spawn(io, [&]() -> asio::awaitable<void> { benchmark::DoNotOptimize(co_await fusion::fuse(members, judge, r)); },
                   asio::detached);
    io.run();
    io.restart();
  }
  state.counters["us/member"] = benchmark::Counter(static_cast<double>(state.iterations() * n),
                                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(orchestration)->Arg(1)->Arg(3)->Arg(8)->Unit(benchmark::kMicrosecond);

// Three stories260K members (seeds 1..3, 64 tokens, one batched engine) and a confidence judge:
// wall time versus the slowest member plus the judge, as the report measures it.
void local_fusion(benchmark::State& state) {
  static const auto model = generate::language_model::load(std::string(CHORUS_SHARED_DIR) + "/models/stories260K.gguf");
  auto local = std::make_shared<fusion::local_model>(model, fusion::local_model_options{.n_ctx = 256, .parallel = 3, .threads = 2});
  std::vector<fusion::any_member> members;
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    fusion::local_member_options o;
    o.generation.sampling.seed = seed;
    o.generation.max_tokens = 64;
    members.emplace_back(std::make_shared<fusion::local_member>(local, o));
  }
  fusion::confidence_judge judge;
  const auto r = fusion::request::from_prompt("Once upon a time", "", 64);
  double overhead = 0.0, wall = 0.0;
  asio::io_context io;
  for (auto _ : state) {
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      const auto report = co_await fusion::fuse(members, judge, r);
      overhead += report.overhead_ms;
      wall += report.wall_ms;
    }, asio::detached);
    io.run();
    io.restart();
  }
  state.counters["overhead_ms"] = overhead / static_cast<double>(state.iterations());
  state.counters["overhead_%"] = 100.0 * overhead / wall;
}
BENCHMARK(local_fusion)->Unit(benchmark::kMillisecond)->Iterations(20);

}  // namespace

BENCHMARK_MAIN();
