// Constrained decoding: the cost of the token mask per generated token, on a 32k SentencePiece
// vocabulary (llama-spm), a 50k byte-level BPE one (gpt-2), a 102k one (deepseek-llm) and a
// synthetic 131072-token one (the token texts of deepseek-llm, gpt-2, falcon, llama-spm and
// phi-3, merged without repeats: the size of Mistral's tekken vocabulary, with real token texts), over a
// realistic tool-call grammar (three tools in the Hermes <tool_call> syntax, tool_choice
// required) and over a plain JSON schema. Also the schema compile time and the token index
// build time (once per vocabulary).
//
// A "generation" is a random walk: each step computes the mask, picks an allowed token
// uniformly (end of generation, when allowed, with probability 1/4), and accepts it; a
// random-weight model does the same in effect. Reported over all steps of 200 walks: median,
// p99 and max of the mask computation (allowed()), and of accept(); the first walk (cold cache
// of parser states) is reported apart.
#include <benchmark/benchmark.h>

#include <chorus/chorus.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace chorus;
using sample::ordered_json;

tokenizer::tokenizer load_vocab(const std::string& name) {
  return tokenizer::tokenizer::from_gguf(gguf::file::open(std::string(CHORUS_SHARED_DIR) + "/golden/tokenizer/ggml-vocab-" + name + ".gguf"));
}

// 131072 byte-level BPE token texts from the five real vocabularies of ../shared/golden (the
// SentencePiece pieces written in the byte-level form), topped up with space-prefixed forms of
// them, the last one an end-of-text control token. No merges: only the token bytes matter to
// the constraint.
tokenizer::tokenizer synthetic_131k() {
  tokenizer::vocab_data d;
  d.kind = tokenizer::model_kind::bpe;
  d.pre = "gpt-2";
  std::set<std::string> seen;
  // GPT-2's byte-to-unicode map, for the SentencePiece vocabularies' pieces
  std::string byte_text[256];
  for (std::uint32_t b = 0, next = 256; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    sample::detail::append_utf8(byte_text[b], printable ? b : next++);
  }
  for (const char* name : {"deepseek-llm", "gpt-2", "falcon", "llama-spm", "phi-3"}) {
    const auto file = gguf::file::open(std::string(CHORUS_SHARED_DIR) + "/golden/tokenizer/ggml-vocab-" + name + ".gguf");
    const bool spm = file.get<std::string>("tokenizer.ggml.model") == "llama";
    const auto texts = file.get_array<std::string_view>("tokenizer.ggml.tokens");
    const auto types = file.get_array<std::int32_t>("tokenizer.ggml.token_type");
    for (std::size_t i = 0; i < texts.size() && d.tokens.size() < 131071; ++i) {
      if (types[i] != 1) continue;  // normal tokens only
      std::string text(texts[i]);
      if (spm) {  // "\u2581the" -> " the" -> its byte-level form
        std::string bytes, mapped;
        for (std::size_t k = 0; k < text.size(); ++k) {
          if (text.compare(k, 3, "\xE2\x96\x81") == 0) {
            bytes += ' ';
            k += 2;
          } else {
            bytes += text[k];
          }
        }
        for (const unsigned char c : bytes) mapped += byte_text[c];
        text = std::move(mapped);
      }
      if (seen.insert(text).second) d.tokens.push_back(std::move(text));
    }
  }
  // topped up with space-prefixed forms of the words ("\u0120" is the byte-level space)
  for (std::size_t i = 0; d.tokens.size() < 131071 && i < d.tokens.size(); ++i) {
    std::string spaced = "\xC4\xA0" + d.tokens[i];
    if (seen.insert(spaced).second) d.tokens.push_back(std::move(spaced));
  }
  d.types.assign(d.tokens.size(), 1);
  d.tokens.emplace_back("<|endoftext|>");
  d.types.push_back(3);
  d.eos = static_cast<std::int64_t>(d.tokens.size() - 1);
  d.bos = d.eos;
  d.add_bos = false;
  return tokenizer::tokenizer(tokenizer::vocab(std::move(d)));
}

const tokenizer::tokenizer& vocab(const std::string& name) {
  static std::map<std::string, std::unique_ptr<tokenizer::tokenizer>> cache;
  auto& slot = cache[name];
  if (!slot) slot = std::make_unique<tokenizer::tokenizer>(name == "synthetic-131k" ? synthetic_131k() : load_vocab(name));
  return *slot;
}
std::shared_ptr<const sample::token_index> index_of(const std::string& name) {
  static std::map<std::string, std::shared_ptr<const sample::token_index>> cache;
  auto& slot = cache[name];
  if (!slot) slot = std::make_shared<const sample::token_index>(vocab(name));
  return slot;
}

const char* tools_json = R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a place",
    "parameters": {"type": "object", "properties": {
      "location": {"type": "string", "description": "City and country"},
      "unit": {"enum": ["celsius", "fahrenheit"]},
      "days": {"type": "integer", "minimum": 1, "maximum": 14}},
     "required": ["location"]}}},
  {"type": "function", "function": {"name": "search_files", "description": "Search a repository",
    "parameters": {"type": "object", "properties": {
      "query": {"type": "string", "maxLength": 200},
      "paths": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
      "case_sensitive": {"type": "boolean"},
      "max_results": {"type": "integer", "minimum": 1, "maximum": 1000}},
     "required": ["query"]}}},
  {"type": "function", "function": {"name": "send_email", "description": "Send an email",
    "parameters": {"type": "object", "properties": {
      "to": {"type": "array", "items": {"type": "string", "maxLength": 100}, "minItems": 1, "maxItems": 10},
      "subject": {"type": "string", "maxLength": 120},
      "body": {"type": "string"},
      "priority": {"enum": ["low", "normal", "high"]}},
     "required": ["to", "subject", "body"]}}}
])";

const char* schema_json = R"({"type": "object", "properties": {
    "title": {"type": "string"}, "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
    "rating": {"type": "number", "minimum": 0, "maximum": 10},
    "genres": {"type": "array", "items": {"enum": ["drama", "comedy", "action", "documentary"]}, "maxItems": 4},
    "cast": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "role": {"type": "string"}},
                                        "required": ["name"]}, "maxItems": 5}},
  "required": ["title", "year"]})";

sample::grammar tool_grammar() {
  const auto tools = ordered_json::parse(tools_json);
  const std::vector<ordered_json> specs(tools.begin(), tools.end());
  return sample::tool_call_grammar(tokenizer::chat_template_kind::qwen2_5, specs, sample::tool_choice::parse("required"));
}
sample::grammar schema_grammar() { return sample::compile_json_schema(schema_json, {.max_fraction_digits = 6}); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void mask_cost(benchmark::State& state, const char* vocab_name, sample::grammar (*make)()) {
  const auto& tok = vocab(vocab_name);
  const auto index = index_of(vocab_name);
  const auto grammar = std::make_shared<const sample::grammar>(make());
  std::vector<double> mask_us, accept_us, cold_mask_us;
  std::size_t steps = 0, states = 0;
  for (auto _ : state) {
    sample::grammar_constraint c(grammar, index, tok);
    std::mt19937_64 rng(1234);
    std::vector<sample::token_id> ids;
    mask_us.clear();
    accept_us.clear();
    cold_mask_us.clear();
    for (int walk = 0; walk < 200; ++walk) {
      c.reset();
      for (int n = 0; n < 2000 && !c.finished(); ++n) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto mask = c.allowed();
        const auto t1 = std::chrono::steady_clock::now();
        (walk == 0 ? cold_mask_us : mask_us).push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        ids.clear();
        for (std::size_t w = 0; w < mask.size(); ++w) {
          for (std::uint64_t bits = mask[w]; bits; bits &= bits - 1) ids.push_back(static_cast<sample::token_id>(w * 64 + std::countr_zero(bits)));
        }
        sample::token_id id = ids[rng() % ids.size()];
        if (c.accepting() && rng() % 4 == 0) id = index->end_of_generation().front();
        const auto t2 = std::chrono::steady_clock::now();
        c.accept(id);
        const auto t3 = std::chrono::steady_clock::now();
        accept_us.push_back(std::chrono::duration<double, std::micro>(t3 - t2).count());
      }
    }
    steps = mask_us.size() + cold_mask_us.size();
    states = c.cached_states();
  }
  state.counters["vocab"] = static_cast<double>(index->size());
  state.counters["steps"] = static_cast<double>(steps);
  state.counters["mask_median_us"] = percentile(mask_us, 0.5);
  state.counters["mask_p99_us"] = percentile(mask_us, 0.99);
  state.counters["mask_max_us"] = percentile(mask_us, 1.0);
  state.counters["cold_median_us"] = percentile(cold_mask_us, 0.5);
  state.counters["cold_p99_us"] = percentile(cold_mask_us, 0.99);
  state.counters["accept_median_us"] = percentile(accept_us, 0.5);
  state.counters["accept_p99_us"] = percentile(accept_us, 0.99);
  state.counters["parser_states"] = static_cast<double>(states);
}
BENCHMARK_CAPTURE(mask_cost, tools_spm_32k, "llama-spm", &tool_grammar)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(mask_cost, tools_bpe_50k, "gpt-2", &tool_grammar)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(mask_cost, tools_bpe_102k, "deepseek-llm", &tool_grammar)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(mask_cost, tools_bpe_131k, "synthetic-131k", &tool_grammar)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(mask_cost, schema_spm_32k, "llama-spm", &schema_grammar)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(mask_cost, schema_bpe_131k, "synthetic-131k", &schema_grammar)->Iterations(1)->Unit(benchmark::kMillisecond);

// Compiling the tool-call grammar (three schemas) and setting up a constraint on it.
void compile_tools(benchmark::State& state) {
  const auto& tok = vocab("synthetic-131k");
  const auto index = index_of("synthetic-131k");
  for (auto _ : state) {
    auto g = std::make_shared<const sample::grammar>(tool_grammar());
    sample::grammar_constraint c(g, index, tok);
    benchmark::DoNotOptimize(c.accepting());
  }
}
BENCHMARK(compile_tools)->Unit(benchmark::kMicrosecond);

void compile_schema(benchmark::State& state) {
  for (auto _ : state) {
    auto g = schema_grammar();
    benchmark::DoNotOptimize(g.elements().data());
  }
}
BENCHMARK(compile_schema)->Unit(benchmark::kMicrosecond);

// The per-vocabulary index (token bytes, tries, slices): built once, shared by constraints.
void build_index(benchmark::State& state, const char* vocab_name) {
  const auto& tok = vocab(vocab_name);
  for (auto _ : state) {
    sample::token_index index(tok);
    benchmark::DoNotOptimize(index.size());
  }
}
BENCHMARK_CAPTURE(build_index, spm_32k, "llama-spm")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(build_index, bpe_131k, "synthetic-131k")->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
