// Tokenizer throughput: 1 MB of English text and 1 MB of mixed-script text, with the
// SentencePiece (llama-spm) and byte-level BPE (gpt-2) vocabularies of ../shared/golden.
#include <benchmark/benchmark.h>

#include <chorus/chorus.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

namespace {

using namespace chorus;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string megabyte_of(const std::string& seed) {
  std::string text;
  while (text.size() < (1u << 20)) text += seed;
  text.resize(1u << 20);
  return text;
}

const std::string& english() {
  static const std::string text = megabyte_of(
      nlohmann::json::parse(slurp(std::string(CHORUS_SHARED_DIR) + "/golden/logits/stories260K/p3-long.json")).at("prompt").get<std::string>() + "\n");
  return text;
}
const std::string& mixed() {
  static const std::string text = [] {
    std::string seed;
    for (const auto& c : nlohmann::json::parse(slurp(std::string(CHORUS_SHARED_DIR) + "/golden/tokenizer/ggml-vocab-gpt-2.extra.json")).at("cases")) {
      if (c.contains("text") && c.value("valid_utf8", true)) seed += c["text"].get<std::string>() + " ";
    }
    return megabyte_of(seed);
  }();
  return text;
}

void encode(benchmark::State& state, const char* vocab, const std::string& (*text)()) {
  const auto tk = tokenizer::tokenizer::from_gguf(gguf::file::open(std::string(CHORUS_SHARED_DIR) + "/golden/tokenizer/" + vocab));
  const std::string& input = text();
  std::size_t tokens = 0;
  for (auto _ : state) {
    const auto ids = tk.encode(input, false, false);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(input.size()) / 1e6, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK_CAPTURE(encode, spm_english, "ggml-vocab-llama-spm.gguf", &english)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, spm_mixed, "ggml-vocab-llama-spm.gguf", &mixed)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, bpe_english, "ggml-vocab-gpt-2.gguf", &english)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, bpe_mixed, "ggml-vocab-gpt-2.gguf", &mixed)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
