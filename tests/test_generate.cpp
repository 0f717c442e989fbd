// Tests of sample/ and generate/: sampler semantics and reproducibility, stop strings,
// greedy generation equal to the reference continuation, cancellation, timings.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "test_support.hpp"

namespace {

using namespace chorus;
using json = nlohmann::json;

TEST(Sampler, GreedyTakesTheArgmaxWithTiesToTheLowestId) {
  sample::sampling_params p;
  p.temperature = 0.0f;
  sample::sampler<> s(p, 5);
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, -1.0f, 0.0f};
  EXPECT_EQ(s.sample(logits).id, 1);
}

TEST(Sampler, LogprobIsTheLogSoftmaxOfTheUnmodifiedLogits) {
  sample::sampling_params p;
  p.temperature = 0.0f;
  p.top_logprobs = 3;
  sample::sampler<> s(p, 4);
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f, 3.0f};
  const auto r = s.sample(logits);
  double z = 0.0;
  for (float l : logits) z += std::exp(l);
  EXPECT_NEAR(r.logprob, 3.0 - std::log(z), 1e-5);
  ASSERT_EQ(r.top.size(), 3u);
  EXPECT_EQ(r.top[0].id, 3);
  EXPECT_EQ(r.top[1].id, 2);
  EXPECT_EQ(r.top[2].id, 1);
}

TEST(Sampler, SameSeedSameTokensAndFrequenciesFollowTheSoftmax) {
  sample::sampling_params p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 1234;
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};  // p = .1 .2 .3 .4
  sample::sampler<> a(p, 4), b(p, 4);
  std::vector<int> counts(4, 0);
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const auto x = a.sample(logits).id;
    ASSERT_EQ(x, b.sample(logits).id);
    ++counts[static_cast<std::size_t>(x)];
  }
  for (int k = 0; k < 4; ++k) {
    const double expected = n * (k + 1) / 10.0;
    EXPECT_NEAR(counts[static_cast<std::size_t>(k)], expected, 5 * std::sqrt(expected)) << k;
  }
}

TEST(Sampler, TruncationStages) {
  std::vector<sample::candidate> items = {{0, 1.0f, 0}, {1, 4.0f, 0}, {2, 3.0f, 0}, {3, 2.0f, 0}};
  sample::candidates c{items};
  sample::top_k{2}.apply(c);
  ASSERT_EQ(c.items.size(), 2u);
  EXPECT_EQ(c.items[0].id, 1);
  EXPECT_EQ(c.items[1].id, 2);

  std::vector<sample::candidate> more = {{0, std::log(0.5f), 0}, {1, std::log(0.3f), 0}, {2, std::log(0.2f), 0}};
  sample::candidates d{more};
  sample::top_p{0.7f}.apply(d);
  EXPECT_EQ(d.items.size(), 2u);

  std::vector<sample::candidate> third = {{0, std::log(0.5f), 0}, {1, std::log(0.3f), 0}, {2, std::log(0.01f), 0}};
  sample::candidates e{third};
  sample::min_p{0.1f}.apply(e);
  EXPECT_EQ(e.items.size(), 2u);
}

TEST(Sampler, RepetitionPenaltyDiscouragesRecentTokens) {
  sample::sampling_params p;
  p.temperature = 0.0f;
  p.repeat_penalty = 2.0f;
  sample::sampler<> s(p, 3);
  const std::vector<float> logits = {3.0f, 2.0f, 0.0f};
  const std::vector<std::int32_t> history = {0};
  EXPECT_EQ(s.sample(logits, history).id, 1);  // 3 / 2 = 1.5 < 2
}

TEST(Sampler, InvalidParametersAreNamed) {
  auto expect_named = [](auto mutate, const char* name) {
    sample::sampling_params p;
    mutate(p);
    try {
      p.validate();
      FAIL() << name;
    } catch (const chorus::error& e) {
      EXPECT_EQ(e.kind(), errc::invalid_argument);
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  expect_named([](auto& p) { p.temperature = -1.0f; }, "temperature");
  expect_named([](auto& p) { p.top_p = 0.0f; }, "top_p");
  expect_named([](auto& p) { p.top_p = 1.5f; }, "top_p");
  expect_named([](auto& p) { p.min_p = 2.0f; }, "min_p");
  expect_named([](auto& p) { p.top_k = -3; }, "top_k");
}

TEST(StopStrings, HoldBackPartialMatchesAndCutAtTheFirstMatch) {
  generate::stop_string_filter f({"\nUser:", "END"});
  std::string shown;
  for (const char* piece : {"Hello", " wor", "ld\nU", "se", "r: more"}) shown += f.push(piece);
  EXPECT_EQ(shown, "Hello world");
  EXPECT_TRUE(f.stopped());
  EXPECT_EQ(f.text(), "Hello world");

  generate::stop_string_filter g({"END"});
  EXPECT_EQ(g.push("abcE"), "abc");
  EXPECT_EQ(g.push("N"), "");
  EXPECT_EQ(g.push("x"), "ENx");
  EXPECT_EQ(g.flush(), "");
  EXPECT_FALSE(g.stopped());
}

using chorus_test::stories;

// golden/README: greedy decoding after "Hello" continues " was a big, red ball. ..."; with
// either KV cache element type.
template <class KvElement>
void expect_reference_continuation() {
  std::ifstream in(chorus_test::golden_dir() / "logits/stories260K/p1-short.json");
  std::stringstream text;
  text << in.rdbuf();
  const auto golden = json::parse(text.str());
  generate::basic_session<KvElement> s(stories(), {.threads = 2});
  generate::options o;
  o.sampling.temperature = 0.0f;
  const auto& steps = golden.at("generation").at("steps");
  o.max_tokens = static_cast<std::int32_t>(steps.size());
  std::string streamed;
  const auto r = s.complete(golden.at("prompt").get<std::string>(), o, [&](const generate::token_event& e) {
    streamed += e.text;
    return true;
  });
  EXPECT_EQ(r.prompt_ids.size(), golden.at("tokens").size());
  // compare up to the first step whose golden margin is too small to be decisive
  for (std::size_t k = 0; k < steps.size() && k < r.ids.size(); ++k) {
    if (steps[k].at("margin").get<double>() < 0.5) break;
    ASSERT_EQ(r.ids[k], steps[k].at("token").get<std::int64_t>()) << "step " << k;
  }
  EXPECT_EQ(streamed, r.text);
  EXPECT_TRUE(r.text.starts_with(" was a big, red ball.")) << r.text;
  EXPECT_EQ(r.reason, generate::stop_reason::max_tokens);
  EXPECT_EQ(r.logprobs.size(), r.ids.size());
  EXPECT_LT(r.mean_logprob(), 0.0);
  EXPECT_GT(r.time.generated_tokens, 0u);
}

TEST(Generate, GreedyReproducesTheReferenceContinuation) { expect_reference_continuation<fp16>(); }
TEST(Generate, GreedyReproducesTheReferenceContinuationWithAFloatKvCache) { expect_reference_continuation<float>(); }

TEST(Generate, SeedsAreReproducibleAndDiffer) {
  generate::session s(stories(), {.threads = 2});
  generate::options o;
  o.max_tokens = 24;
  o.sampling.temperature = 1.0f;
  o.sampling.seed = 7;
  const auto a = s.complete("Once upon a time", o);
  const auto b = s.complete("Once upon a time", o);  // reuses the cached prompt
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.text, b.text);
  EXPECT_LT(b.time.prompt_tokens, a.time.prompt_tokens);
  o.sampling.seed = 8;
  const auto c = s.complete("Once upon a time", o);
  EXPECT_NE(a.ids, c.ids);
}

TEST(Generate, StopStringsCallbacksAndCancellation) {
  generate::session s(stories(), {.threads = 2});
  generate::options o;
  o.sampling.temperature = 0.0f;
  o.max_tokens = 64;
  o.stop = {"red"};
  const auto r = s.complete("Hello", o);
  EXPECT_EQ(r.reason, generate::stop_reason::stop_string);
  EXPECT_EQ(r.text, " was a big, ");

  o.stop.clear();
  int calls = 0;
  const auto stopped = s.complete("Hello", o, [&](const generate::token_event&) { return ++calls < 5; });
  EXPECT_EQ(stopped.reason, generate::stop_reason::cancelled);
  EXPECT_EQ(stopped.ids.size(), 5u);

  std::stop_source source;
  source.request_stop();
  const auto cancelled = s.complete("Hello", o, nullptr, source.get_token());
  EXPECT_EQ(cancelled.reason, generate::stop_reason::cancelled);
  EXPECT_TRUE(cancelled.ids.empty());
}

TEST(Generate, ContextFullAndBadArguments) {
  generate::session s(stories(), {.n_ctx = 16, .threads = 1});
  generate::options o;
  o.max_tokens = 100;
  o.sampling.temperature = 0.0f;
  const auto r = s.complete("Hello", o);
  EXPECT_EQ(r.reason, generate::stop_reason::context_full);
  EXPECT_LE(r.prompt_ids.size() + r.ids.size(), 17u);
  EXPECT_THROW(s.complete(std::string(200, 'a'), o), chorus::error);
  o.max_tokens = -1;
  EXPECT_THROW(s.complete("Hello", o), chorus::error);
}

}  // namespace

namespace {

// chat() writes the conversation in the session's format (with opts.tools where the format has
// tools), parses its special tokens, and refuses tools a format cannot write.
TEST(Generate, ChatWritesTheConversationInTheSessionsFormat) {
  using chorus::tokenizer::chat_message;
  using kind = chorus::tokenizer::chat_template_kind;
  chorus::generate::session s(stories(), {.threads = 2});
  EXPECT_EQ(s.chat_format(), kind::chatml);  // stories260K names no template: the fallback
  chorus::generate::options o;
  o.sampling.temperature = 0.0f;
  o.max_tokens = 4;
  const std::vector<chat_message> conversation = {{"system", "Tell stories."}, {"user", "Once upon a time"}};
  const auto expected_ids = [&](kind k, const chorus::tokenizer::chat_options& options) {
    return stories()->tokens().encode(chorus::tokenizer::apply_chat_template(k, conversation, options), true, true);
  };
  const auto plain = s.chat(conversation, o);
  EXPECT_EQ(plain.prompt_ids, expected_ids(kind::chatml, {}));

  o.tools = {chorus::parse_json(R"({"type":"function","function":{"name":"roll","parameters":{}}})")};
  chorus_test::expect_error(chorus::errc::invalid_argument, "chat template chatml: tool specs given",
                            [&] { (void)s.chat(conversation, o); });
  s.set_chat_format(kind::qwen2_5);
  const auto with_tools = s.chat(conversation, o);
  EXPECT_EQ(with_tools.prompt_ids, expected_ids(kind::qwen2_5, {.tools = o.tools}));
  EXPECT_GT(with_tools.prompt_ids.size(), plain.prompt_ids.size() + 40);
}

// prefill() evaluates a prompt ahead of generation in steps, reporting its progress; the
// generation that follows evaluates nothing more (the prompt's logits are kept) and continues as
// it would have without the prefill.
TEST(Generate, PrefillReportsProgressAndLeavesTheContinuationUnchanged) {
  std::string prompt;
  for (int i = 0; i < 20; ++i) prompt += "Once upon a time, there was a little girl named Lily. ";
  chorus::generate::options o;
  o.sampling.temperature = 0.0f;
  o.max_tokens = 8;
  chorus::generate::session plain(stories(), {.threads = 2});
  const auto expected = plain.complete(prompt, o);
  constexpr std::size_t step = chorus::generate::session::prefill_step;
  ASSERT_GT(expected.prompt_ids.size(), 2 * step);

  chorus::generate::session s(stories(), {.threads = 2});
  std::vector<std::pair<std::size_t, std::size_t>> progress;
  const std::size_t evaluated = s.prefill(prompt, o, [&](std::size_t done, std::size_t total) { progress.emplace_back(done, total); });
  EXPECT_EQ(evaluated, expected.prompt_ids.size());
  ASSERT_EQ(progress.size(), (evaluated + step - 1) / step);
  for (std::size_t k = 0; k < progress.size(); ++k) {
    EXPECT_EQ(progress[k].first, std::min((k + 1) * step, evaluated));
    EXPECT_EQ(progress[k].second, evaluated);
  }
  const auto r = s.complete(prompt, o);
  EXPECT_EQ(r.time.prompt_tokens, 0u);
  EXPECT_EQ(r.ids, expected.ids);
  EXPECT_EQ(s.prefill(prompt, o), 0u);  // already cached: nothing to evaluate

  // prefill_chat() evaluates what chat() would.
  const std::vector<chorus::tokenizer::chat_message> conversation = {{"user", prompt}};
  EXPECT_GT(s.prefill_chat(conversation, o), evaluated);
  EXPECT_EQ(s.chat(conversation, o).time.prompt_tokens, 0u);
}

}  // namespace
