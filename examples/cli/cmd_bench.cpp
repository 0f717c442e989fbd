// chorus bench — prompt processing and generation speed of a model (median over repeats).
#include <chorus/chorus.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>
#include <type_traits>
#include <vector>

#include "command.hpp"
#include "common.hpp"

namespace cmd_bench {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments a(args, {"json"});
  const auto model_path = a.require("model");
  const auto n_prompt = a.number<std::size_t>("p", 512);
  const auto n_gen = a.number<std::size_t>("n", 128);
  const auto repeats = a.number<std::size_t>("r", 5);
  const auto threads = a.number<std::size_t>("threads", 0);
  const auto parallel = a.number<std::size_t>("parallel", 1);
  // Tokens per forward step, like llama-bench's -ub: a longer prompt is evaluated in steps of this
  // many, so that the step buffers (which grow with it) stay small beside the weights.
  const auto batch = a.number<std::size_t>("batch", 512);
  const bool json = a.flag("json");
  return chorus_cli::with_kv_type(a, [&](auto kv_element) {
    using context = chorus::model::basic_context<decltype(kv_element)>;
    a.reject_unknown();
    if (repeats == 0) throw chorus_cli::usage_error("-r must be at least 1");
    if (parallel == 0 || parallel > 64) throw chorus_cli::usage_error("--parallel must be between 1 and 64");
    if (batch == 0) throw chorus_cli::usage_error("--batch must be at least 1");

    const auto start = std::chrono::steady_clock::now();
    const chorus::model::model model(model_path);
    const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const auto& h = model.params();
    context ctx(model, {.n_ctx = static_cast<std::uint32_t>(std::max<std::size_t>(n_prompt, n_gen) + 1),
                        .n_batch = static_cast<std::uint32_t>(std::max(std::min(n_prompt, batch), parallel)),
                        .n_seq = static_cast<std::uint32_t>(parallel),
                        .threads = threads});
    std::mt19937 rng(42);
    std::uniform_int_distribution<std::int32_t> token(0, static_cast<std::int32_t>(h.n_vocab) - 1);
    std::vector<std::int32_t> prompt(n_prompt);
    for (auto& t : prompt) t = token(rng);

    auto seconds = [](auto t0) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    std::vector<double> pp, tg;
    for (std::size_t r = 0; r < repeats + 1; ++r) {  // the first round warms up and is not counted
      if (n_prompt > 0) {
        ctx.reset();
        const auto t0 = std::chrono::steady_clock::now();
        ctx.decode(prompt);
        if (r > 0) pp.push_back(static_cast<double>(n_prompt) / seconds(t0));
      }
      if (n_gen > 0 && parallel > 1) {
        // --parallel N: N sequences, one token each per step, in one decode_batch (weights read once)
        for (std::size_t s = 0; s < parallel; ++s) ctx.reset(s);
        std::vector<typename context::batch_token> batch(parallel);
        for (std::size_t s = 0; s < parallel; ++s) batch[s] = {static_cast<std::int32_t>((1 + s) % h.n_vocab), s};
        const auto t0 = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < n_gen; ++i) {
          const auto logits = ctx.decode_batch(batch);
          for (std::size_t s = 0; s < parallel; ++s) {
            const auto row = logits.subspan(s * h.n_vocab, h.n_vocab);
            batch[s].token = static_cast<std::int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
          }
        }
        if (r > 0) tg.push_back(static_cast<double>(n_gen * parallel) / seconds(t0));
      } else if (n_gen > 0) {
        ctx.reset();
        std::int32_t next = 1 % static_cast<std::int32_t>(h.n_vocab);
        const auto t0 = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < n_gen; ++i) {
          const auto logits = ctx.decode(std::span(&next, 1));
          next = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        }
        if (r > 0) tg.push_back(static_cast<double>(n_gen) / seconds(t0));
      }
    }
    std::uint64_t weight_bytes = 0;
    for (const auto& t : model.file().tensors()) weight_bytes += t.n_bytes;
    const double pp_median = pp.empty() ? 0.0 : median(pp);
    const double tg_median = tg.empty() ? 0.0 : median(tg);
    if (json) {
      const chorus_cli::json out = {
          {"model", model_path},
          {"threads", ctx.pool().size()},
          {"weight_bytes", weight_bytes},
          {"load_ms", load_ms},
          {"prompt_tokens", n_prompt},
          {"prompt_tokens_per_second", pp_median},
          {"generated_tokens", n_gen},
          {"generation_tokens_per_second", tg_median},
          {"repeats", repeats},
          {"parallel_sequences", parallel},
          {"kv_type", std::is_same_v<decltype(kv_element), float> ? "f32" : "f16"},
          {"isa", std::string(chorus::simd::isa_name(chorus::simd::active_isa()))},
      };
      std::cout << chorus_cli::dump(out) << "\n";
    } else {
      const std::string isa(chorus::simd::isa_name(chorus::simd::active_isa()));
      std::printf("| model | size | threads | isa | test | tokens/s (median of %zu) |\n|---|---:|---:|---|---|---:|\n", repeats);
      if (n_prompt) {
        std::printf("| %s | %.1f MiB | %zu | %s | pp%zu | %.2f |\n", model_path.c_str(), weight_bytes / 1048576.0, ctx.pool().size(),
                    isa.c_str(), n_prompt, pp_median);
      }
      if (n_gen && parallel == 1) {
        std::printf("| %s | %.1f MiB | %zu | %s | tg%zu | %.2f |\n", model_path.c_str(), weight_bytes / 1048576.0, ctx.pool().size(),
                    isa.c_str(), n_gen, tg_median);
      }
      if (n_gen && parallel > 1) {
        std::printf("| %s | %.1f MiB | %zu | %s | tg%zu x %zu sequences (all tokens) | %.2f |\n", model_path.c_str(),
                    weight_bytes / 1048576.0, ctx.pool().size(), isa.c_str(), n_gen, parallel, tg_median);
      }
    }
    return 0;
  });
}

const chorus_cli::registration bench_command{
    "bench", "measure prompt processing and generation speed",
    "--model M.gguf [-p 512] [-n 128] [-r 5] [--threads N] [--parallel SEQUENCES] [--batch 512] [--kv f16|f32] [--json]", &run};

}  // namespace cmd_bench
