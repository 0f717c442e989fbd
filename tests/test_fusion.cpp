// Tests of fusion/: orchestration (quorum, deadline, degraded panels, cancellation), the
// judges and their parsing of malformed judge output, the report, real local members.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <array>
#include <fstream>
#include <map>
#include <mutex>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "test_support.hpp"

namespace {

using namespace chorus;
namespace asio = boost::asio;
using namespace std::chrono_literals;

// Test doubles for the orchestration: a member that answers after a delay (or throws, or
// waits until it is cancelled). Real models are used further down.
struct scripted_member {
  std::string label;
  std::chrono::milliseconds delay{0};
  std::string text = "answer";
  double logprob = -1.0;
  bool throws = false;
  std::string name() const { return label; }
  asio::awaitable<fusion::candidate> answer(const fusion::request&) {
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (throws) throw chorus::error(errc::network, label + ": endpoint unreachable");
    fusion::candidate c;
    c.member = label;
    c.text = ec ? "partial" : text;
    c.mean_logprob = logprob;
    c.tokens.completion_tokens = ec ? 1 : 3;
    co_return c;
  }
};
static_assert(fusion::member<scripted_member>);
static_assert(fusion::judge<fusion::confidence_judge>);
static_assert(fusion::judge<fusion::vote_judge<>>);
static_assert(fusion::judge<fusion::best_of_judge>);
static_assert(fusion::judge<fusion::merge_judge>);
static_assert(fusion::judge<fusion::debate_judge<fusion::best_of_judge>>);

// A judge "model" whose replies are given in advance, to exercise the parsing paths.
struct scripted_judge_model {
  std::vector<std::string> replies;
  std::size_t calls = 0;
  std::string name() const { return "scripted-judge"; }
  asio::awaitable<fusion::candidate> answer(const fusion::request&) {
    fusion::candidate c;
    c.member = "judge";
    c.text = replies.at(std::min(calls, replies.size() - 1));
    ++calls;
    co_return c;
  }
};

fusion::any_member scripted(std::string label, std::chrono::milliseconds delay, std::string text = "answer",
                            double logprob = -1.0, bool throws = false) {
  return std::make_shared<scripted_member>(scripted_member{std::move(label), delay, std::move(text), logprob, throws});
}

template <class Body>
auto run(Body body) {
  asio::io_context io;
  std::optional<decltype(std::declval<Body>()().await_resume())> out;
  std::exception_ptr failure;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> { out.emplace(co_await body()); }, [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
  return std::move(*out);
}

TEST(FusionGather, AllMembersAnswerInMemberOrder) {
  const std::vector<fusion::any_member> members = {scripted("slow", 30ms, "s"), scripted("fast", 1ms, "f")};
  const auto r = fusion::request::from_prompt("q");
  const auto c = run([&] { return fusion::gather(members, std::span(&r, 1), fusion::policy::all()); }).candidates;
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].member, "slow");
  EXPECT_EQ(c[0].text, "s");
  EXPECT_EQ(c[1].text, "f");
  EXPECT_GE(c[0].latency_ms, 25.0);
  EXPECT_LT(c[1].latency_ms, c[0].latency_ms);
}

TEST(FusionGather, QuorumCancelsTheRest) {
  const std::vector<fusion::any_member> members = {scripted("a", 1ms), scripted("b", 2ms), scripted("never", 60s)};
  const auto r = fusion::request::from_prompt("q");
  const auto start = std::chrono::steady_clock::now();
  const auto got = run([&] { return fusion::gather(members, std::span(&r, 1), fusion::policy::first(2)); });
  const auto& c = got.candidates;
  EXPECT_EQ(got.stopped_early, 1u);
  EXPECT_EQ(got.stopped_because, "2 answered (first 2)");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(c[0].status, fusion::member_status::ok);
  EXPECT_EQ(c[1].status, fusion::member_status::ok);
  EXPECT_EQ(c[2].status, fusion::member_status::cancelled);
  EXPECT_EQ(c[2].text, "partial");  // it stopped when told and returned what it had
}

TEST(FusionGather, DeadlineTimesOutSlowMembers) {
  const std::vector<fusion::any_member> members = {scripted("quick", 1ms), scripted("late", 60s)};
  const auto r = fusion::request::from_prompt("q");
  const auto c = run([&] { return fusion::gather(members, std::span(&r, 1), fusion::policy::within(50ms)); }).candidates;
  EXPECT_EQ(c[0].status, fusion::member_status::ok);
  EXPECT_EQ(c[1].status, fusion::member_status::timed_out);
  EXPECT_EQ(c[1].error, "the deadline passed");
}

TEST(FusionGather, FailedMemberLeavesADegradedPanel) {
  const std::vector<fusion::any_member> members = {scripted("ok", 1ms, "fine", -0.5), scripted("down", 1ms, "", 0, true)};
  fusion::confidence_judge judge;
  const auto r = fusion::request::from_prompt("q");
  const auto report = run([&] { return fusion::fuse(members, judge, r); });
  EXPECT_EQ(report.answered(), 1u);
  EXPECT_EQ(report.members[1].status, fusion::member_status::failed);
  EXPECT_NE(report.members[1].error.find("endpoint unreachable"), std::string::npos);
  EXPECT_EQ(report.verdict.answer, "fine");
}

TEST(FusionGather, TooFewAnswersFailWithAnExplanation) {
  const std::vector<fusion::any_member> members = {scripted("x", 1ms, "", 0, true), scripted("y", 1ms, "", 0, true)};
  const auto r = fusion::request::from_prompt("q");
  try {
    run([&] { return fusion::gather(members, std::span(&r, 1), fusion::policy::all()); });
    FAIL();
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), errc::not_enough_answers);
    EXPECT_NE(std::string(e.what()).find("0 of 2 answers"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("x: failed"), std::string::npos) << e.what();
  }
}

TEST(FusionGather, FiftyRequestsInFlightOnOneContext) {
  asio::io_context io;
  std::size_t completed = 0;
  for (int i = 0; i < 50; ++i) {
    asio::co_spawn(
        io,
        [&, i]() -> asio::awaitable<void> {
          const std::vector<fusion::any_member> members = {scripted("a", std::chrono::milliseconds(i % 7), "x", -1.0),
                                                           scripted("b", std::chrono::milliseconds(i % 5), "x", -2.0),
                                                           scripted("c", std::chrono::milliseconds(i % 3), "y", -0.5)};
          fusion::vote_judge<> judge;
          const auto r = fusion::request::from_prompt("q" + std::to_string(i));
          const auto report = co_await fusion::fuse(members, judge, r, fusion::policy::all());
          if (report.verdict.answer == "x") ++completed;
        },
        asio::detached);
  }
  io.run();
  EXPECT_EQ(completed, 50u);
}

TEST(FusionJudges, ConfidenceAndVote) {
  std::vector<fusion::candidate> c(4);
  c[0].text = "The answer is 42.";
  c[0].mean_logprob = -2.0;
  c[1].text = "I think it's 41";
  c[1].mean_logprob = -0.1;
  c[2].text = "42";
  c[2].mean_logprob = -1.0;
  c[3].status = fusion::member_status::failed;
  c[3].mean_logprob = 0.0;
  const auto confident = fusion::confidence_judge::pick(c);
  EXPECT_EQ(confident.chosen, 1u);
  fusion::vote_judge<> numbers{&fusion::extract::number};
  const auto voted = numbers.pick(c);
  EXPECT_EQ(voted.chosen, 2u);  // two votes for 42; the more confident of them
  EXPECT_EQ(voted.rationale, "2 of 3 answers agree on '42'");

  EXPECT_EQ(fusion::extract::number("costs $1,234.50 total"), "1234.5");
  EXPECT_EQ(fusion::extract::number("from -3 to 7"), "7");
  EXPECT_EQ(fusion::extract::number("none"), std::nullopt);
  EXPECT_EQ(fusion::extract::letter("A is wrong, the answer is (C)."), "C");
  EXPECT_EQ(fusion::extract::letter("B"), "B");
  EXPECT_EQ(fusion::extract::normalised_text("  Paris.\n"), "paris");
}

TEST(FusionJudges, ScoreParsingToleratesFormatsAndRejectsGarbage) {
  const auto ok = fusion::parse::scores("Here are my scores:\n**A**: 7 - clear\nCandidate B = 9/10, best\n- C: 3 - wrong", 3);
  ASSERT_TRUE(ok);
  EXPECT_EQ((*ok)[0].score, 7);
  EXPECT_EQ((*ok)[1].score, 9);
  EXPECT_EQ((*ok)[1].reason, "best");
  EXPECT_EQ((*ok)[2].score, 3);
  EXPECT_FALSE(fusion::parse::scores("A: 7\nB: eleven", 2));
  EXPECT_FALSE(fusion::parse::scores("A: 11\nB: 3", 2));
  EXPECT_FALSE(fusion::parse::scores("Once upon a time there was a cat.", 2));
  EXPECT_FALSE(fusion::parse::scores("", 1));
  EXPECT_FALSE(fusion::parse::scores("Apple: 5\nB: 4", 2));  // a word, not the label A
}

TEST(FusionJudges, BestOfAveragesTwoOrdersAndRetriesThenFallsBack) {
  std::vector<fusion::candidate> c(2);
  c[0].member = "m0";
  c[0].text = "first";
  c[0].mean_logprob = -3.0;
  c[1].member = "m1";
  c[1].text = "second";
  c[1].mean_logprob = -1.0;
  const auto r = fusion::request::from_prompt("which?");
  // the judge prefers whichever candidate is shown first: averaging both orders ties them,
  // and the tie goes to the more confident member
  auto biased = std::make_shared<scripted_judge_model>(scripted_judge_model{{"A: 9 - first shown\nB: 5 - second"}});
  fusion::best_of_judge judge{biased};
  const auto d = run([&] { return judge.decide(r, c); });
  EXPECT_FALSE(d.fell_back);
  EXPECT_EQ(d.scores[0], 7.0);
  EXPECT_EQ(d.scores[1], 7.0);
  EXPECT_EQ(d.chosen, 1u);
  EXPECT_EQ(biased->calls, 2u);

  auto garbage_then_good = std::make_shared<scripted_judge_model>(scripted_judge_model{{"no idea", "A: 2\nB: 8"}});
  fusion::best_of_judge retrying{garbage_then_good};
  const auto retried = run([&] { return retrying.decide(r, c); });
  EXPECT_FALSE(retried.fell_back);
  EXPECT_EQ(garbage_then_good->calls, 3u);  // pass 1 retried once, pass 2 parsed at once

  auto garbage = std::make_shared<scripted_judge_model>(scripted_judge_model{{"Once upon a time"}});
  fusion::best_of_judge failing{garbage};
  const auto fallback = run([&] { return failing.decide(r, c); });
  EXPECT_TRUE(fallback.fell_back);
  EXPECT_EQ(fallback.chosen, 1u);  // confidence
  EXPECT_EQ(garbage->calls, 2u);
  EXPECT_NE(fallback.rationale.find("fell back to confidence"), std::string::npos);
}

TEST(FusionJudges, MergeReportsContributors) {
  std::vector<fusion::candidate> c(3);
  c[0].text = "Paris is the capital of France";
  c[1].text = "France's capital city: Paris, on the Seine river";
  c[2].text = "Bananas grow quickly";
  auto model = std::make_shared<scripted_judge_model>(scripted_judge_model{{"Paris, on the Seine river, is the capital of France."}});
  fusion::merge_judge judge{model};
  const auto r = fusion::request::from_prompt("capital of France?");
  const auto d = run([&] { return judge.decide(r, c); });
  EXPECT_EQ(d.answer, "Paris, on the Seine river, is the capital of France.");
  EXPECT_EQ(d.details["contributors"].size(), 2u);
  EXPECT_GE(d.scores[0], 0.3);
  EXPECT_GE(d.scores[1], 0.3);
  EXPECT_LT(d.scores[2], 0.3);
  auto empty = std::make_shared<scripted_judge_model>(scripted_judge_model{{"..."}});
  fusion::merge_judge failing{empty};
  EXPECT_TRUE(run([&] { return failing.decide(r, c); }).fell_back);
}

// --- real local models ------------------------------------------------------------------

using chorus_test::load;
using chorus_test::stories;

std::shared_ptr<fusion::local_model> on_one_batch(std::shared_ptr<const generate::language_model> m, std::uint32_t parallel = 8,
                                                  std::uint32_t n_ctx = 256) {
  return std::make_shared<fusion::local_model>(std::move(m), fusion::local_model_options{.n_ctx = n_ctx, .parallel = parallel, .threads = 2});
}

fusion::any_member local(const std::shared_ptr<fusion::local_model>& m, std::uint64_t seed, std::int32_t max_tokens = 24) {
  fusion::local_member_options o;
  o.generation.sampling.seed = seed;
  o.generation.max_tokens = max_tokens;
  return std::make_shared<fusion::local_member>(m, o);
}

std::string alone(const std::string& prompt, std::uint64_t seed, std::int32_t max_tokens) {
  generate::session s(stories(), {.n_ctx = 256, .threads = 1});
  generate::options o;
  o.sampling.seed = seed;
  o.max_tokens = max_tokens;
  return s.complete(prompt, o).text;
}

TEST(FusionLocal, MembersOfOneModelAreOneBatchAndEachAnswersAsAlone) {
  auto model = on_one_batch(stories());
  const std::vector<fusion::any_member> members = {local(model, 1), local(model, 10), local(model, 20)};
  fusion::confidence_judge judge;
  auto r = fusion::request::from_prompt("Once upon a time", "", 24);
  r.n = 2;  // two samples per member: seeds s and s + 1
  const auto first = run([&] { return fusion::fuse(members, judge, r); });
  const auto second = run([&] { return fusion::fuse(members, judge, r); });
  ASSERT_EQ(first.members.size(), 6u);
  ASSERT_EQ(first.answered(), 6u);
  for (std::size_t i = 0; i < 6; ++i) {
    const auto& c = first.members[i];
    EXPECT_EQ(c.text, second.members[i].text);
    const std::uint64_t seed = std::array<std::uint64_t, 3>{1, 10, 20}[i / 2] + c.sample;
    EXPECT_EQ(c.sample, i % 2);
    EXPECT_EQ(c.text, alone("Once upon a time", seed, 24)) << c.member << " sample " << c.sample;
    EXPECT_EQ(c.path, "completion");  // stories260K names no chat template
    EXPECT_EQ(c.finish, fusion::finish_reason::length);
    EXPECT_EQ(c.tokens.completion_tokens, 24u);
  }
  EXPECT_NE(first.members[0].text, first.members[1].text);
  EXPECT_EQ(first.verdict.chosen, second.verdict.chosen);
  const auto json = first.to_json();
  EXPECT_EQ(json["mode"], "confidence");
  EXPECT_EQ(json["members"].size(), 6u);
  EXPECT_EQ(json["failed_members"].size(), 0u);
  EXPECT_TRUE(json.contains("overhead_ms"));
}

TEST(FusionLocal, InstructModelsAreAskedInTheirChatFormat) {
  const auto mistral = load("tiny-mistral-Q4_0.gguf");
  ASSERT_TRUE(mistral->has_chat_template());
  auto model = on_one_batch(mistral, 2);
  fusion::local_member_options o;
  o.name = "mistral";
  o.generation.max_tokens = 8;
  o.system_prompt = "Be brief.";
  auto member = std::make_shared<fusion::local_member>(model, o);
  const std::vector<fusion::any_member> members = {member, local(on_one_batch(stories(), 1), 1, 8)};
  fusion::confidence_judge judge;
  const auto r = fusion::request::from_prompt("What is 2+2?", "Answer with a number.", 8);
  const auto report = run([&] { return fusion::fuse(members, judge, r); });
  const auto kind = mistral->chat_format().kind;
  EXPECT_EQ(report.members[0].path, "chat (" + std::string(tokenizer::to_string(kind)) + ")");
  EXPECT_EQ(report.members[1].path, "completion");
  // the member's system prompt goes before the request's, in the model's own template
  const auto rendered = tokenizer::apply_chat_template(
      kind, {{"system", "Be brief.\n\nAnswer with a number."}, {"user", "What is 2+2?"}}, {});
  EXPECT_EQ(report.members[0].tokens.prompt_tokens, mistral->tokens().encode(rendered, true, true).size());
  // and a plain model reads the same conversation as text
  EXPECT_EQ(report.members[1].tokens.prompt_tokens, stories()->tokens().encode("Answer with a number.\n\nWhat is 2+2?", true, false).size());
}

TEST(FusionLocal, TokensStreamPerMemberCall) {
  auto model = on_one_batch(stories());
  const std::vector<fusion::any_member> members = {local(model, 1, 16), local(model, 2, 16)};
  struct counter {
    std::mutex lock;
    std::map<std::pair<std::string, std::size_t>, std::size_t> tokens;
    static void on(void* self, std::string_view member, std::size_t sample, const generate::token_event& e) {
      auto& c = *static_cast<counter*>(self);
      std::lock_guard guard(c.lock);
      if (e.id >= 0) ++c.tokens[{std::string(member), sample}];
    }
  } seen;
  auto r = fusion::request::from_prompt("Once upon a time", "", 16);
  r.n = 2;
  r.stream = {&counter::on, &seen};
  fusion::confidence_judge judge;
  const auto report = run([&] { return fusion::fuse(members, judge, r); });
  ASSERT_EQ(seen.tokens.size(), 4u);
  for (const auto& c : report.members) EXPECT_EQ((seen.tokens[{c.member, c.sample}]), c.tokens.completion_tokens);
}

TEST(FusionLocal, LogprobsWhenAsked) {
  auto model = on_one_batch(stories());
  auto r = fusion::request::from_prompt("Once upon a time", "", 6);
  r.generation.top_logprobs = 3;
  const std::vector<fusion::any_member> members = {local(model, 1, 6)};
  fusion::confidence_judge judge;
  const auto report = run([&] { return fusion::fuse(members, judge, r); });
  const auto& c = report.members[0];
  ASSERT_EQ(c.logprobs.size(), 6u);
  std::string joined;
  double sum = 0;
  for (const auto& t : c.logprobs) {
    joined += t.token;
    sum += t.logprob;
    ASSERT_EQ(t.top.size(), 3u);
    EXPECT_GE(t.top[0].logprob, t.top[1].logprob);
    EXPECT_GE(t.top[0].logprob, t.logprob);
  }
  EXPECT_NEAR(sum / 6.0, c.mean_logprob, 1e-5);
  EXPECT_NE(joined.find(c.text.substr(1, 4)), std::string::npos);
}

TEST(FusionLocal, DeadlineStopsGenerationBetweenTokens) {
  // An instant member makes the panel viable whatever the build's speed; the local member
  // would write 2000 tokens, far longer than the deadline even in an optimised build.
  const std::vector<fusion::any_member> members = {scripted("instant", 0ms, "ready", -0.1),
                                                   local(on_one_batch(stories(), 1, 2048), 2, 2000)};
  fusion::confidence_judge judge;
  const auto r = fusion::request::from_prompt("Once upon a time");
  const auto report = run([&] { return fusion::fuse(members, judge, r, fusion::policy::within(150ms)); });
  EXPECT_EQ(report.members[0].status, fusion::member_status::ok);
  EXPECT_EQ(report.members[1].status, fusion::member_status::timed_out);
  EXPECT_LT(report.members[1].tokens.completion_tokens, 2000u);  // it stopped between tokens
  EXPECT_EQ(report.verdict.chosen, 0u);
  EXPECT_EQ(report.stopped_because, "the deadline passed");
}

TEST(FusionLocal, BestOfWithARealJudgeModelScoresUnderItsSchema) {
  // stories260K writes stories, not scores: under the best-of schema its reply still parses.
  auto model = on_one_batch(stories());
  const std::vector<fusion::any_member> members = {local(model, 1, 16), local(model, 2, 16)};
  fusion::local_member_options o;
  o.name = "judge";
  o.generation.sampling.temperature = 0.0f;
  fusion::best_of_judge judge{std::make_shared<fusion::local_member>(on_one_batch(stories(), 1, 1024), o)};
  const auto r = fusion::request::from_prompt("Once upon a time", "", 16);
  const auto report = run([&] { return fusion::fuse(members, judge, r); });
  EXPECT_FALSE(report.verdict.fell_back) << report.verdict.details.dump();
  ASSERT_EQ(report.verdict.details["judge_outputs"].size(), 2u);  // one reply per pass, no retry
  for (const auto& out : report.verdict.details["judge_outputs"]) {
    const auto j = fusion::json::parse(out.get<std::string>());
    for (const char* label : {"A", "B"}) {
      EXPECT_GE(j[label]["score"].get<int>(), 1);
      EXPECT_LE(j[label]["score"].get<int>(), 10);
      EXPECT_TRUE(j[label]["reason"].is_string());
    }
  }
  EXPECT_TRUE(report.verdict.chosen.has_value());
  EXPECT_GE(report.wall_ms, report.verdict.judge_ms);
  // asked for free text instead, the story model gives no scores: the judge says it fell back
  judge.structured = false;
  const auto free = run([&] { return fusion::fuse(members, judge, r); });
  EXPECT_TRUE(free.verdict.fell_back);
  EXPECT_EQ(free.verdict.details["judge_outputs"].size(), 2u);  // the first pass tried twice, then gave up
}

TEST(FusionLocal, DebateKeepsEveryRound) {
  auto model = on_one_batch(stories());
  const std::vector<fusion::any_member> members = {local(model, 1, 12), local(model, 2, 12)};
  auto judge_model = std::make_shared<scripted_judge_model>(scripted_judge_model{{"A: 6 - fine\nB: 8 - better"}});
  fusion::debate_judge<fusion::best_of_judge> judge{members, fusion::best_of_judge{judge_model}, 2};
  const auto r = fusion::request::from_prompt("Once upon a time", "", 12);
  const auto report = run([&] { return fusion::fuse(members, judge, r); });
  EXPECT_EQ(report.verdict.details["rounds"].size(), 3u);  // the first answers + 2 rounds
  EXPECT_EQ(report.verdict.method, "debate+best_of");
  EXPECT_FALSE(report.verdict.fell_back);
}

// --- policies ---------------------------------------------------------------------------

TEST(FusionPolicy, AUserRuleStopsWhenThreeAgree) {
  const std::vector<fusion::any_member> members = {scripted("a", 1ms, "x"), scripted("b", 2ms, "x"), scripted("c", 3ms, "y"),
                                                   scripted("d", 4ms, "x"), scripted("slow", 60s, "x")};
  const auto three_agree = fusion::policy::when([](const fusion::panel& p) -> std::optional<std::string> {
    std::map<std::string, int> count;
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (p.finished[i] && p.answers[i].status == fusion::member_status::ok && ++count[p.answers[i].text] == 3) {
        return "three say " + p.answers[i].text;
      }
    }
    return std::nullopt;
  });
  fusion::vote_judge<> judge;
  const auto r = fusion::request::from_prompt("q");
  const auto start = std::chrono::steady_clock::now();
  const auto report = run([&] { return fusion::fuse(members, judge, r, three_agree); });
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(report.stopped_because, "three say x");
  EXPECT_EQ(report.members[4].status, fusion::member_status::cancelled);
  EXPECT_EQ(report.members[4].error, "not needed: three say x");
  EXPECT_EQ(report.verdict.answer, "x");
}

TEST(FusionPolicy, CombinedRulesAndMinimum) {
  const std::vector<fusion::any_member> members = {scripted("a", 1ms), scripted("b", 60s), scripted("c", 60s)};
  const auto r = fusion::request::from_prompt("q");
  // the deadline comes first, and 1 answer is below the minimum of 2
  const auto rule = (fusion::policy::first(3) || fusion::policy::within(30ms)).at_least(2);
  chorus_test::expect_error(errc::not_enough_answers, "b: timed out (the deadline passed)",
                            [&] { run([&] { return fusion::gather(members, std::span(&r, 1), rule); }); });
}

TEST(FusionPolicy, AdaptiveConsistencyStopsWhenTheMajorityIsSettled) {
  // Three quick samples agree; the two slow ones could not overturn them.
  const std::vector<fusion::any_member> members = {scripted("s0", 1ms, "= 42"), scripted("s1", 2ms, "is 42"),
                                                   scripted("s2", 3ms, "so 42"), scripted("s3", 4ms, "42"),
                                                   scripted("s4", 60s, "7"), scripted("s5", 60s, "7")};
  fusion::vote_judge<> judge{&fusion::extract::number};
  const auto r = fusion::request::from_prompt("q");
  const auto report = run([&] { return fusion::fuse(members, judge, r, fusion::adaptive_consistency(&fusion::extract::number)); });
  EXPECT_EQ(report.stopped_early, 2u);
  EXPECT_NE(report.stopped_because.find("4 samples agree on '42'"), std::string::npos) << report.stopped_because;
  EXPECT_EQ(fusion::extract::number(report.verdict.answer), "42");
  EXPECT_EQ(report.tokens_saved, 4u);  // 2 calls x the 3 tokens a finished one made, less the 1 each had made
}

// --- failures ---------------------------------------------------------------------------

TEST(FusionFailures, AMemberThatCannotLoadIsAFailedMemberInTheReport) {
  const auto dir = chorus_test::scratch_dir("fusion-failures");
  const auto corrupt = dir / "corrupt.gguf";
  {
    std::ifstream in(chorus_test::model_path("stories260K.gguf"), std::ios::binary);
    std::string head(4000, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    std::ofstream(corrupt, std::ios::binary).write(head.data(), static_cast<std::streamsize>(head.size()));
  }
  std::string why;
  try {
    generate::language_model::load(corrupt);
  } catch (const chorus::error& e) {
    why = e.what();
  }
  ASSERT_FALSE(why.empty());
  auto model = on_one_batch(stories());
  const std::vector<fusion::any_member> members = {local(model, 1, 8), local(model, 2, 8),
                                                   std::make_shared<fusion::failed_member>(fusion::failed_member{"broken", why})};
  fusion::vote_judge<> judge;
  const auto r = fusion::request::from_prompt("Once upon a time", "", 8);
  const auto report = run([&] { return fusion::fuse(members, judge, r); });
  EXPECT_EQ(report.answered(), 2u);
  const auto json = report.to_json();
  ASSERT_EQ(json["failed_members"].size(), 1u);
  EXPECT_EQ(json["failed_members"][0]["name"], "broken");
  EXPECT_EQ(json["members"][2]["status"], "failed");
  EXPECT_EQ(json["members"][2]["error"], why);
  // every member failing fails the request, naming each reason
  const std::vector<fusion::any_member> none = {std::make_shared<fusion::failed_member>(fusion::failed_member{"x", "no file"}),
                                                std::make_shared<fusion::failed_member>(fusion::failed_member{"y", why})};
  chorus_test::expect_error(errc::not_enough_answers, "x: failed (no file); y: failed (" + why + ")",
                            [&] { run([&] { return fusion::fuse(none, judge, r); }); });
}

TEST(FusionFailures, AMemberRefusingTheRequestFailsAloneWithItsReason) {
  auto model = on_one_batch(stories(), 2, 32);
  const std::vector<fusion::any_member> members = {local(model, 1, 4), scripted("fine", 1ms, "ok")};
  fusion::vote_judge<> judge;
  const auto r = fusion::request::from_prompt(std::string(200, 'a'), "", 4);  // longer than the member's context
  const auto report = run([&] { return fusion::fuse(members, judge, r); });
  EXPECT_EQ(report.members[0].status, fusion::member_status::failed);
  EXPECT_NE(report.members[0].error.find("the context holds 32"), std::string::npos) << report.members[0].error;
  EXPECT_EQ(report.verdict.answer, "ok");
}

// --- fusion over actions (tool calls) ------------------------------------------------------

fusion::candidate calling(std::string member, std::string name, std::string arguments, double logprob = -1.0) {
  fusion::candidate c;
  c.member = std::move(member);
  c.tool_calls.push_back({"", std::move(name), std::move(arguments)});
  c.finish = fusion::finish_reason::tool_calls;
  c.mean_logprob = logprob;
  return c;
}

using call_vote = fusion::vote_judge<std::optional<std::string> (*)(const fusion::candidate&)>;

TEST(FusionActions, CallsAgreeAcrossKeyOrderNumberFormatAndWhitespace) {
  EXPECT_EQ(fusion::extract::tool_calls(calling("a", "move", R"({"y": 2, "x": 1.0, "to": {"b": [1, 2.50], "a": "N"}})")),
            R"(move{"to":{"a":"N","b":[1,2.5]},"x":1,"y":2})");
  EXPECT_EQ(fusion::extract::tool_calls(calling("a", "move", " not json ")), "move(not json)");
  fusion::candidate prose;
  prose.text = "I would move north.";
  EXPECT_EQ(fusion::extract::tool_calls(prose), std::nullopt);

  const std::vector<fusion::candidate> c = {calling("a", "move", R"({"x": 1, "y": 2})", -0.5),
                                            calling("b", "move", R"({"y":2,"x":1.0})", -0.2),
                                            calling("c", "delete_file", R"({"path": "/"})", -0.1)};
  const auto d = call_vote{&fusion::extract::tool_calls}.pick(c);
  ASSERT_TRUE(d.chosen.has_value());
  EXPECT_EQ(*d.chosen, 1u);  // the more confident of the agreeing two
  ASSERT_EQ(d.tool_calls.size(), 1u);
  EXPECT_EQ(d.tool_calls[0].name, "move");  // the decision is the call itself
  EXPECT_EQ(d.rationale, R"(2 of 3 answers agree on 'move{"x":1,"y":2}')");
  ASSERT_EQ(d.details["dissent"].size(), 1u);
  EXPECT_EQ(d.details["dissent"][0]["member"], "c");
  EXPECT_EQ(d.details["dissent"][0]["answer"], R"(delete_file{"path":"/"})");
  EXPECT_TRUE(d.details["agreed"].get<bool>());

  // a caller that acts only on unanimity (or on 3 agreeing) gets no decision, and why
  const auto all = call_vote{&fusion::extract::tool_calls, {}, 0, true}.pick(c);
  EXPECT_FALSE(all.chosen.has_value());
  EXPECT_TRUE(all.tool_calls.empty());
  EXPECT_FALSE(all.details["agreed"].get<bool>());
  EXPECT_EQ(all.rationale, R"(no agreement: 2 of 3 answers agree on 'move{"x":1,"y":2}', all required)");
  EXPECT_FALSE((call_vote{&fusion::extract::tool_calls, {}, 3}.pick(c).chosen.has_value()));
  EXPECT_TRUE((call_vote{&fusion::extract::tool_calls, {}, 2}.pick(c).chosen.has_value()));
  // a member that answered in prose instead of calling dissents (it gave no call)
  std::vector<fusion::candidate> with_prose = {c[0], c[1], prose};
  const auto p = call_vote{&fusion::extract::tool_calls, {}, 0, true}.pick(with_prose);
  EXPECT_FALSE(p.chosen.has_value());
  EXPECT_TRUE(p.details["dissent"][0]["answer"].is_null());
}

TEST(FusionActions, UntilAgreementStopsOnceKAgreeOrOnceTheyCannot) {
  const auto r = fusion::request::from_prompt("q");
  fusion::vote_judge<> judge{&fusion::extract::normalised_text, {}, 0, true};
  {  // unanimity is lost at the first dissent: the slow member is not waited for
    const std::vector<fusion::any_member> members = {scripted("a", 1ms, "left"), scripted("b", 5ms, "right"), scripted("slow", 60s, "left")};
    const auto start = std::chrono::steady_clock::now();
    const auto report = run([&] { return fusion::fuse(members, judge, r, fusion::until_agreement(&fusion::extract::normalised_text)); });
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
    EXPECT_EQ(report.stopped_because, "3 cannot agree (1 at most so far, 1 still running)");
    EXPECT_EQ(report.members[2].status, fusion::member_status::cancelled);
    EXPECT_FALSE(report.verdict.chosen.has_value());
  }
  {  // two of three agreeing is enough for k = 2
    const std::vector<fusion::any_member> members = {scripted("a", 1ms, "left"), scripted("b", 5ms, "Left."), scripted("slow", 60s, "right")};
    fusion::vote_judge<> two{&fusion::extract::normalised_text, {}, 2};
    const auto report = run([&] { return fusion::fuse(members, two, r, fusion::until_agreement(&fusion::extract::normalised_text, 2)); });
    EXPECT_EQ(report.stopped_because, "2 agree on 'left'");
    ASSERT_TRUE(report.verdict.chosen.has_value());
    EXPECT_EQ(fusion::extract::normalised_text(report.verdict.answer), "left");
  }
}

const char* move_tool = R"({"type": "function", "function": {"name": "move", "description": "Move the player one step.",
  "parameters": {"type": "object", "properties": {"direction": {"type": "string", "enum": ["north", "south"]}},
                 "required": ["direction"]}}})";

TEST(FusionActions, SeedsOfARealModelCallUnderTheToolGrammarAndVoteOnTheCall) {
  // A random-weight model with tool_choice required: every member's reply is a call of `move`
  // whose arguments follow its schema, parsed into the candidate, and the vote decides on calls.
  auto model = on_one_batch(load("tiny-mistral-Q8_0.gguf"), 4, 1024);
  std::vector<fusion::any_member> members;
  for (std::uint64_t seed : {1, 2, 3}) {
    fusion::local_member_options o;
    o.name = "seed" + std::to_string(seed);
    o.generation.sampling.seed = seed;
    o.generation.sampling.temperature = 1.0f;
    o.generation.max_tokens = 300;  // a 512-token vocabulary spells the call nearly byte by byte
    o.chat_format = tokenizer::chat_template_kind::mistral_v3;
    members.push_back(std::make_shared<fusion::local_member>(model, o));
  }
  auto r = fusion::request::from_prompt("Go north.", "", 300);
  r.tools = {fusion::json::parse(move_tool)};
  r.tool_choice = "required";
  call_vote judge{&fusion::extract::tool_calls};
  const auto report = run([&] { return fusion::fuse(members, judge, r); });
  ASSERT_EQ(report.answered(), 3u) << report.to_json().dump();
  for (const auto& c : report.members) {
    EXPECT_EQ(c.finish, fusion::finish_reason::tool_calls) << c.member << ": " << c.text << " " << c.error;
    ASSERT_EQ(c.tool_calls.size(), 1u) << c.member;
    EXPECT_EQ(c.tool_calls[0].name, "move");
    const auto direction = fusion::json::parse(c.tool_calls[0].arguments).at("direction").get<std::string>();
    EXPECT_TRUE(direction == "north" || direction == "south") << direction;
  }
  // two directions among three calls: some two agree, and the decision is their call
  ASSERT_TRUE(report.verdict.chosen.has_value());
  ASSERT_EQ(report.verdict.tool_calls.size(), 1u);
  const auto agreed = fusion::extract::tool_calls(report.members[*report.verdict.chosen]);
  std::size_t same = 0;
  for (const auto& c : report.members) same += fusion::extract::tool_calls(c) == agreed;
  EXPECT_GE(same, 2u) << report.verdict.rationale;
  const auto json = report.to_json();
  EXPECT_EQ(json["members"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(json["members"][0]["tool_calls"][0]["name"], "move");
  // a member without a chat format cannot call: it fails alone, naming why
  const std::vector<fusion::any_member> mixed = {members[0], local(on_one_batch(stories(), 1), 1, 8)};
  const auto degraded = run([&] { return fusion::fuse(mixed, judge, r); });
  EXPECT_EQ(degraded.members[1].status, fusion::member_status::failed);
  EXPECT_NE(degraded.members[1].error.find("no chat format"), std::string::npos) << degraded.members[1].error;
}

TEST(FusionActions, AResponseFormatHoldsEveryMembersReply) {
  // stories260K writes stories; under a JSON schema its reply is still a valid object.
  auto model = on_one_batch(stories(), 4);
  const std::vector<fusion::any_member> members = {local(model, 1, 96), local(model, 2, 96)};
  auto r = fusion::request::from_prompt("Once upon a time", "", 96);
  r.format = fusion::response_format{"json_schema", "mood",
                                     fusion::json::parse(R"({"type": "object", "properties": {"mood": {"type": "string", "enum": ["happy", "sad"]}}, "required": ["mood"]})")};
  fusion::confidence_judge judge;
  const auto report = run([&] { return fusion::fuse(members, judge, r); });
  for (const auto& c : report.members) {
    ASSERT_EQ(c.status, fusion::member_status::ok) << c.error;
    const auto j = fusion::json::parse(c.text);
    EXPECT_TRUE(j["mood"] == "happy" || j["mood"] == "sad") << c.text;
  }
}

// --- many requests at once --------------------------------------------------------------

// 50 fusion requests in flight on one I/O thread, 3 members each: two of them local members of
// one model (one batched engine for all 100 of their calls) and a scripted one. Every local
// answer must be what that seed makes alone.
TEST(FusionStress, FiftyRequestsThreeMembersEachBatched) {
  auto model = on_one_batch(stories(), 8);
  const std::array<std::string, 3> prompts = {"Once upon a time", "The little dog", "One day, Lily"};
  std::map<std::pair<std::string, std::uint64_t>, std::string> expected;
  for (const auto& p : prompts) {
    for (std::uint64_t seed : {1, 2}) expected[{p, seed}] = alone(p, seed, 10);
  }
  const std::vector<fusion::any_member> members = {local(model, 1, 10), local(model, 2, 10), scripted("c", 2ms, "other", -9)};
  asio::io_context io;
  std::size_t completed = 0, exact = 0;
  for (int i = 0; i < 50; ++i) {
    asio::co_spawn(
        io,
        [&, i]() -> asio::awaitable<void> {
          fusion::confidence_judge judge;
          const std::string prompt = prompts[static_cast<std::size_t>(i) % prompts.size()];
          const auto r = fusion::request::from_prompt(prompt, "", 10);
          const auto report = co_await fusion::fuse(members, judge, r, fusion::policy::all());
          ++completed;
          exact += report.members[0].text == expected[{prompt, 1}] && report.members[1].text == expected[{prompt, 2}];
        },
        asio::detached);
  }
  io.run();
  EXPECT_EQ(completed, 50u);
  EXPECT_EQ(exact, 50u);
}

}  // namespace
