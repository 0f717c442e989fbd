// Tests of generate/engine.hpp and generate/batcher.hpp: several sequences of one model decoded
// together make exactly the tokens each makes alone; prompts are shared (evaluated once); a
// sequence that finishes, is cancelled or joins late changes nothing for the others; the
// batcher feeds an engine from other threads.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "test_support.hpp"

namespace {

using namespace chorus;

using chorus_test::load;

generate::options sampled(std::uint64_t seed, std::int32_t max_tokens) {
  generate::options o;
  o.max_tokens = max_tokens;
  o.sampling.seed = seed;
  o.sampling.temperature = 0.9f;
  return o;
}

generate::result alone(const std::string& file, const std::string& prompt, const generate::options& o) {
  generate::session s(load(file), {.n_ctx = 256, .threads = 2});
  return s.complete(prompt, o);
}

std::vector<std::int32_t> encode(const std::string& file, const std::string& prompt) {
  return load(file)->tokens().encode(prompt, true, false);
}

class EngineOnEveryFormat : public ::testing::TestWithParam<std::string> {};

// The panel guarantee: batching changes no token. Checked on a float model and on quantized
// ones, so that the batched matrix products must sum each row exactly as the single-row one.
TEST_P(EngineOnEveryFormat, EachSequenceMakesTheTokensItMakesAlone) {
  const std::string file = GetParam();
  const std::string prompt = "Once upon a time";
  generate::engine e(load(file), {.n_ctx = 256, .n_seq = 4, .threads = 2});
  std::vector<generate::engine::handle> h;
  for (std::uint64_t seed = 1; seed <= 4; ++seed) h.push_back(e.start({encode(file, prompt), sampled(seed, 24 + 4 * seed)}));
  while (e.active() > 0) e.step();
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    const auto batched = e.take(h[seed - 1]);
    const auto single = alone(file, prompt, sampled(seed, 24 + 4 * seed));
    EXPECT_EQ(batched.ids, single.ids) << file << " seed " << seed;
    EXPECT_EQ(batched.text, single.text) << file << " seed " << seed;
    EXPECT_EQ(batched.reason, single.reason);
    ASSERT_EQ(batched.logprobs.size(), single.logprobs.size());
    for (std::size_t i = 0; i < batched.logprobs.size(); ++i) EXPECT_EQ(batched.logprobs[i], single.logprobs[i]);
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, EngineOnEveryFormat,
                         ::testing::Values("stories260K.gguf", "tiny-llama-spm512-Q4_0.gguf", "tiny-llama-spm512-Q8_0.gguf",
                                           "tiny-llama-spm512-Q4_K_M.gguf", "tiny-llama-spm512-Q6_K.gguf",
                                           "tiny-llama-spm512-F16.gguf"),
                         [](const auto& info) {
                           std::string name = info.param.substr(0, info.param.find(".gguf"));
                           for (auto& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(Engine, AnIdenticalPromptIsEvaluatedOnce) {
  const std::string file = "stories260K.gguf";
  generate::engine e(load(file), {.n_ctx = 256, .n_seq = 3, .threads = 2});
  const auto prompt = encode(file, "Once upon a time there was a cat");
  std::vector<generate::engine::handle> h;
  for (std::uint64_t seed = 0; seed < 3; ++seed) h.push_back(e.start({prompt, sampled(seed, 8)}));
  while (e.active() > 0) e.step();
  EXPECT_EQ(e.take(h[0]).time.prompt_tokens, prompt.size());
  EXPECT_EQ(e.take(h[1]).time.prompt_tokens, 0u);  // shared copy-on-write, logits kept
  EXPECT_EQ(e.take(h[2]).time.prompt_tokens, 0u);
}

TEST(Engine, PromptsShareTheirCommonPrefix) {
  const std::string file = "stories260K.gguf";
  const std::string first = "Once upon a time there was a cat", second = "Once upon a time there was a dog named Rex";
  generate::engine e(load(file), {.n_ctx = 256, .n_seq = 2, .threads = 2});
  const auto a = encode(file, first), b = encode(file, second);
  std::size_t common = 0;
  while (common < a.size() && common < b.size() && a[common] == b[common]) ++common;
  ASSERT_GT(common, 3u);
  const auto ha = e.start({a, sampled(1, 12)});
  e.step();  // a's prompt is in the cache; b arrives one step later
  const auto hb = e.start({b, sampled(2, 12)});
  while (e.active() > 0) e.step();
  const auto ra = e.take(ha), rb = e.take(hb);
  EXPECT_EQ(rb.time.prompt_tokens, b.size() - common);
  EXPECT_EQ(ra.ids, alone(file, first, sampled(1, 12)).ids);
  EXPECT_EQ(rb.ids, alone(file, second, sampled(2, 12)).ids);
}

// The verifier's shape: several prompts that share a question nobody has evaluated yet, started
// together: the first is evaluated whole, the others from its keys and values, in one batch.
TEST(Engine, PromptsStartedTogetherShareTheirPrefixInTwoWaves) {
  const std::string file = "tiny-llama-spm512-Q4_K_M.gguf";
  const std::string question = "Once upon a time there was a little girl who";
  const std::vector<std::string> prompts = {question + " liked red", question + " lived far away", question + " had a dog",
                                            question};
  generate::engine e(load(file), {.n_ctx = 256, .n_seq = 4, .threads = 2});
  std::vector<generate::engine::handle> h;
  for (std::size_t i = 0; i < prompts.size(); ++i) h.push_back(e.start({encode(file, prompts[i]), sampled(i, 8)}));
  const auto shared = encode(file, question).size();
  while (e.active() > 0) e.step();
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const auto r = e.take(h[i]);
    EXPECT_EQ(r.ids, alone(file, prompts[i], sampled(i, 8)).ids) << prompts[i];
    if (i == 0) {
      EXPECT_EQ(r.time.prompt_tokens, r.prompt_ids.size());
    } else {
      EXPECT_LE(r.time.prompt_tokens, r.prompt_ids.size() - shared + 2) << prompts[i];  // + a token merged across the join
      EXPECT_GE(r.time.prompt_tokens, 1u);
    }
  }
}

TEST(Engine, SequencesLeaveAndJoinWithoutChangingTheOthers) {
  const std::string file = "tiny-llama-spm512-Q4_0.gguf";
  const std::string prompt = "Once upon a time";
  generate::engine e(load(file), {.n_ctx = 256, .n_seq = 3, .threads = 2});
  const auto longest = e.start({encode(file, prompt), sampled(1, 40)});
  const auto shortest = e.start({encode(file, prompt), sampled(2, 3)});
  std::stop_source cancel;
  const auto cancelled = e.start({encode(file, prompt), sampled(3, 40), {}, cancel.get_token()});
  std::optional<generate::engine::handle> late;
  for (int step = 0; e.active() > 0; ++step) {
    e.step();
    if (step == 6) cancel.request_stop();
    if (e.finished(shortest) && !late) {
      EXPECT_EQ(e.take(shortest).ids, alone(file, prompt, sampled(2, 3)).ids);
      late = e.start({encode(file, "A different start"), sampled(4, 10)});  // takes the freed slot
    }
  }
  EXPECT_EQ(e.take(longest).ids, alone(file, prompt, sampled(1, 40)).ids);
  const auto c = e.take(cancelled);
  EXPECT_EQ(c.reason, generate::stop_reason::cancelled);
  const auto full = alone(file, prompt, sampled(3, 40));
  ASSERT_LE(c.ids.size(), full.ids.size());
  EXPECT_TRUE(std::equal(c.ids.begin(), c.ids.end(), full.ids.begin()));  // what it made before the stop
  ASSERT_TRUE(late);
  EXPECT_EQ(e.take(*late).ids, alone(file, "A different start", sampled(4, 10)).ids);
}

TEST(Engine, RequestsAreChecked) {
  const std::string file = "stories260K.gguf";
  generate::engine e(load(file), {.n_ctx = 32, .n_seq = 1, .threads = 1});
  chorus_test::expect_error(errc::invalid_argument, "prompt is empty", [&] { e.start({{}, sampled(1, 4)}); });
  chorus_test::expect_error(errc::out_of_range, "the context holds 32",
                            [&] { e.start({std::vector<std::int32_t>(40, 1), sampled(1, 4)}); });
  chorus_test::expect_error(errc::invalid_argument, "outside the vocabulary",
                            [&] { e.start({{1, 1 << 20}, sampled(1, 4)}); });
  auto bad = sampled(1, 4);
  bad.sampling.top_p = 2.0f;
  chorus_test::expect_error(errc::invalid_argument, "top_p", [&] { e.start({encode(file, "x"), bad}); });
  const auto h = e.start({encode(file, "Once"), sampled(1, 40)});
  chorus_test::expect_error(errc::out_of_range, "in use", [&] { e.start({encode(file, "x"), sampled(1, 4)}); });
  while (!e.finished(h)) e.step();
  const auto r = e.take(h);
  EXPECT_EQ(r.reason, generate::stop_reason::context_full);
  EXPECT_TRUE(e.has_free_slot());
}

TEST(Engine, ASmallPagePoolFailsTheSequenceThatCannotGrowNotTheEngine) {
  const std::string file = "stories260K.gguf";
  // Two pages of 32 positions for two sequences: the first prompt fills a page, each sequence
  // then needs pages of its own to grow.
  generate::engine e(load(file), {.n_ctx = 256, .n_seq = 2, .threads = 1, .kv_pages = 2});
  const auto a = e.start({encode(file, "Once upon a time"), sampled(1, 60)});
  const auto b = e.start({encode(file, "Once upon a time"), sampled(2, 60)});
  while (e.active() > 0) e.step();
  const auto ra = e.take(a), rb = e.take(b);
  const int errors = (ra.reason == generate::stop_reason::error) + (rb.reason == generate::stop_reason::error);
  EXPECT_GE(errors, 1);
  for (const auto* r : {&ra, &rb}) {
    if (r->reason == generate::stop_reason::error) {
      EXPECT_NE(r->error.find("KV cache"), std::string::npos) << r->error;
    }
  }
}

TEST(Batcher, SequencesFromManyThreadsMakeWhatTheyMakeAlone) {
  const std::string file = "stories260K.gguf";
  generate::batcher b(load(file), {.engine = {.n_ctx = 256, .n_seq = 4, .threads = 2}, .max_queued = 64});
  constexpr int n = 12;  // more than the slots: the rest wait in the queue
  std::vector<std::promise<generate::result>> done(n);
  std::vector<std::thread> submitters;
  for (int i = 0; i < n; ++i) {
    submitters.emplace_back([&, i] {
      b.submit({encode(file, "Once upon a time"), sampled(static_cast<std::uint64_t>(i), 10 + i)},
               [&, i](generate::result r) { done[static_cast<std::size_t>(i)].set_value(std::move(r)); });
    });
  }
  for (auto& t : submitters) t.join();
  for (int i = 0; i < n; ++i) {
    const auto r = done[static_cast<std::size_t>(i)].get_future().get();
    EXPECT_EQ(r.ids, alone(file, "Once upon a time", sampled(static_cast<std::uint64_t>(i), 10 + i)).ids) << i;
  }
}

TEST(Batcher, RefusalsCancellationAndShutdownAllComplete) {
  const std::string file = "stories260K.gguf";
  std::vector<generate::result> results;
  std::mutex lock;
  auto keep = [&](generate::result r) {
    std::lock_guard guard(lock);
    results.push_back(std::move(r));
  };
  std::stop_source cancel;
  cancel.request_stop();
  {
    generate::batcher b(load(file), {.engine = {.n_ctx = 64, .n_seq = 1, .threads = 1}, .max_queued = 2});
    b.submit({{}, sampled(1, 4)}, keep);                              // refused by the engine: empty prompt
    b.submit({encode(file, "Once"), sampled(1, 4), {}, cancel.get_token()}, keep);  // cancelled before it runs
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (int i = 0; i < 2; ++i) b.submit({encode(file, "Once"), sampled(1, 2000)}, keep);  // still going at shutdown
    chorus_test::expect_error(errc::out_of_range, "already wait",
                              [&] { for (int i = 0; i < 4; ++i) b.submit({encode(file, "Once"), sampled(1, 4)}, keep); });
  }
  // Every accepted submission completed exactly once, whatever happened to it.
  std::size_t errors = 0, cancelled = 0;
  for (const auto& r : results) {
    errors += r.reason == generate::stop_reason::error;
    cancelled += r.reason == generate::stop_reason::cancelled;
  }
  EXPECT_GE(results.size(), 4u);
  EXPECT_EQ(errors, 1u);
  EXPECT_GE(cancelled, 1u);
}

}  // namespace
