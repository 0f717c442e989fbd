// The per-token path allocates nothing: this test binary replaces the global operator new with
// a counting one, and a generation counts the allocations made between its first and its last
// token (the forward pass on the thread pool, sampling, streaming decoding, stop strings).
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "test_support.hpp"

// GCC flags free() on what its own operator new returned; here both are ours, over malloc.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
std::atomic<std::size_t> allocations{0};
}  // namespace

// Replacements of the global allocation functions (all threads, the pool's workers included).
// Every form is replaced, nothrow ones included: a sanitizer interposes the forms a program
// leaves alone, and its nothrow new paired with this free() is reported as a mismatch.
void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void* operator new(std::size_t size, std::align_val_t align) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t a = static_cast<std::size_t>(align);
  if (void* p = std::aligned_alloc(a, (size + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t align) { return ::operator new(size, align); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept { return ::operator new(size, tag); }
void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t a = static_cast<std::size_t>(align);
  return std::aligned_alloc(a, (size + a - 1) / a * a);
}
void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t& tag) noexcept {
  return ::operator new(size, align, tag);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

using namespace chorus;

struct counted_generation {
  std::size_t tokens = 0;
  std::size_t allocations_between_tokens = 0;
};

counted_generation generate_counting(const std::string& model_file, const generate::options& opts) {
  const auto model = generate::language_model::load(chorus_test::model_path(model_file));
  generate::session session(model, {.n_ctx = 256, .threads = 2});
  counted_generation out;
  std::size_t at_first = 0, at_last = 0;
  const auto result = session.complete("Once upon a time", opts, [&](const generate::token_event& e) {
    if (e.id < 0) return true;  // the final flush, after the loop
    const std::size_t now = allocations.load(std::memory_order_relaxed);
    if (out.tokens++ == 0) at_first = now;
    at_last = now;
    return true;
  });
  EXPECT_EQ(result.ids.size(), out.tokens);
  out.allocations_between_tokens = at_last - at_first;
  return out;
}

TEST(HotPath, GenerationAllocatesNothingPerToken) {
  for (const char* file : {"stories260K.gguf", "tiny-llama-bpe-Q4_K_M.gguf", "tiny-mistral-Q4_0.gguf"}) {
    generate::options opts;
    opts.max_tokens = 48;
    opts.sampling.temperature = 0.8f;
    opts.sampling.top_k = 40;
    opts.sampling.top_p = 0.95f;
    opts.sampling.min_p = 0.02f;
    opts.sampling.repeat_penalty = 1.1f;
    opts.stop = {"no such stop string in this story"};
    const auto counted = generate_counting(file, opts);
    EXPECT_GT(counted.tokens, 8u) << file;
    EXPECT_EQ(counted.allocations_between_tokens, 0u) << file << ": " << counted.tokens << " tokens";
  }
}

// A batched step of several sequences (the fusion panel's and the server's path): once every
// sequence has started, steps allocate nothing, whatever the sequences' sinks are doing.
TEST(HotPath, BatchedStepsAllocateNothing) {
  const auto model = generate::language_model::load(chorus_test::model_path("tiny-llama-spm512-Q4_K_M.gguf"));
  generate::engine engine(model, {.n_ctx = 256, .n_seq = 4, .threads = 2});
  std::size_t events = 0;
  auto count = [&](const generate::token_event&) {
    ++events;
    return true;
  };
  const auto prompt = model->tokens().encode("Once upon a time", true, false);
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    generate::options o;
    o.max_tokens = 40;
    o.sampling.seed = seed;
    o.sampling.top_logprobs = 2;
    o.stop = {"no such stop string"};
    engine.start({prompt, o, generate::token_sink::to(count)});
  }
  engine.step();  // prompts: evaluated once, shared three times
  // Steps in which a sequence finishes are left out: finishing builds its result (once per
  // sequence, not per token).
  std::size_t measured = 0, allocated = 0;
  for (int i = 0; i < 30 && engine.active() > 0; ++i) {
    const std::size_t running = engine.active();
    const std::size_t before = allocations.load(std::memory_order_relaxed);
    engine.step();
    const std::size_t after = allocations.load(std::memory_order_relaxed);
    if (engine.active() != running) continue;
    ++measured;
    allocated += after - before;
  }
  EXPECT_GE(measured, 20u);
  EXPECT_GE(events, measured);
  EXPECT_EQ(allocated, 0u) << "over " << measured << " steps";
  while (engine.active() > 0) engine.step();
}

// Constrained decoding: computing the mask (the trie walk over the cached parser states) and
// advancing the grammar allocate nothing once the constraint exists.
TEST(HotPath, ConstrainedGenerationAllocatesNothingPerToken) {
  const char* schema = R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 40},
      "n": {"type": "integer", "minimum": 0, "maximum": 1000}, "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 4}},
      "required": ["name", "n", "tags"]})";
  for (const char* file : {"tiny-llama-bpe-Q4_K_M.gguf", "tiny-mistral-Q4_0.gguf"}) {
    const auto model = generate::language_model::load(chorus_test::model_path(file));
    generate::options opts;
    opts.max_tokens = 64;
    opts.sampling.temperature = 1.0f;
    opts.sampling.top_k = 0;
    opts.sampling.top_p = 1.0f;
    opts.sampling.min_p = 0.0f;
    opts.constraint = std::make_shared<sample::grammar_constraint>(std::make_shared<const sample::grammar>(sample::compile_json_schema(schema)),
                                                                   std::make_shared<const sample::token_index>(model->tokens()),
                                                                   model->tokens());
    const auto counted = generate_counting(file, opts);
    EXPECT_GT(counted.tokens, 8u) << file;
    EXPECT_EQ(counted.allocations_between_tokens, 0u) << file << ": " << counted.tokens << " tokens";
  }
}

TEST(HotPath, TheCounterSeesAllocations) {
  const std::size_t before = allocations.load();
  auto* p = new std::string(100, 'x');  // a heap buffer beyond the small-string capacity
  delete p;
  EXPECT_GE(allocations.load() - before, 2u);
}

}  // namespace
