// Tests of fusion/: orchestration (quorum, deadline, degraded panels, cancellation), the
// judges and their parsing of malformed judge output, the report, real local members.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

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
    c.generated_tokens = 3;
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
  const fusion::request r{"q"};
  const auto c = run([&] { return fusion::gather(members, std::span(&r, 1), fusion::policy::all()); });
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].member, "slow");
  EXPECT_EQ(c[0].text, "s");
  EXPECT_EQ(c[1].text, "f");
  EXPECT_GE(c[0].latency_ms, 25.0);
  EXPECT_LT(c[1].latency_ms, c[0].latency_ms);
}

TEST(FusionGather, QuorumCancelsTheRest) {
  const std::vector<fusion::any_member> members = {scripted("a", 1ms), scripted("b", 2ms), scripted("never", 60s)};
  const fusion::request r{"q"};
  const auto start = std::chrono::steady_clock::now();
  const auto c = run([&] { return fusion::gather(members, std::span(&r, 1), fusion::policy::first(2)); });
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(c[0].status, fusion::member_status::ok);
  EXPECT_EQ(c[1].status, fusion::member_status::ok);
  EXPECT_EQ(c[2].status, fusion::member_status::cancelled);
  EXPECT_EQ(c[2].text, "partial");  // it stopped when told and returned what it had
}

TEST(FusionGather, DeadlineTimesOutSlowMembers) {
  const std::vector<fusion::any_member> members = {scripted("quick", 1ms), scripted("late", 60s)};
  const fusion::request r{"q"};
  const auto c = run([&] { return fusion::gather(members, std::span(&r, 1), fusion::policy::within(50ms)); });
  EXPECT_EQ(c[0].status, fusion::member_status::ok);
  EXPECT_EQ(c[1].status, fusion::member_status::timed_out);
  EXPECT_EQ(c[1].error, "the deadline passed");
}

TEST(FusionGather, FailedMemberLeavesADegradedPanel) {
  const std::vector<fusion::any_member> members = {scripted("ok", 1ms, "fine", -0.5), scripted("down", 1ms, "", 0, true)};
  fusion::confidence_judge judge;
  const fusion::request r{"q"};
  const auto report = run([&] { return fusion::fuse(members, judge, r); });
  EXPECT_EQ(report.answered(), 1u);
  EXPECT_EQ(report.members[1].status, fusion::member_status::failed);
  EXPECT_NE(report.members[1].error.find("endpoint unreachable"), std::string::npos);
  EXPECT_EQ(report.verdict.answer, "fine");
}

TEST(FusionGather, TooFewAnswersFailWithAnExplanation) {
  const std::vector<fusion::any_member> members = {scripted("x", 1ms, "", 0, true), scripted("y", 1ms, "", 0, true)};
  const fusion::request r{"q"};
  try {
    run([&] { return fusion::gather(members, std::span(&r, 1), fusion::policy::all()); });
    FAIL();
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), errc::not_enough_answers);
    EXPECT_NE(std::string(e.what()).find("0 of 2 members answered"), std::string::npos) << e.what();
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
          const fusion::request r{"q" + std::to_string(i)};
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
  const fusion::request r{"which?"};
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
  const fusion::request r{"capital of France?"};
  const auto d = run([&] { return judge.decide(r, c); });
  EXPECT_EQ(d.answer, "Paris, on the Seine river, is the capital of France.");
  EXPECT_EQ(d.contributors, (std::vector<std::size_t>{0, 1}));
  auto empty = std::make_shared<scripted_judge_model>(scripted_judge_model{{"..."}});
  fusion::merge_judge failing{empty};
  EXPECT_TRUE(run([&] { return failing.decide(r, c); }).fell_back);
}

// --- real local models ------------------------------------------------------------------

std::shared_ptr<const generate::language_model> stories() {
  static const auto model = generate::language_model::load(chorus_test::model_path("stories260K.gguf"));
  return model;
}

fusion::any_member local(fusion::compute& compute, std::uint64_t seed, std::int32_t max_tokens = 24,
                         std::uint32_t n_ctx = 256) {
  fusion::local_member_options o;
  o.generation.sampling.seed = seed;
  o.generation.max_tokens = max_tokens;
  o.n_ctx = n_ctx;
  return std::make_shared<fusion::local_member>(stories(), o, compute);
}

TEST(FusionLocal, MembersEqualSingleModelRunsAndAreDeterministic) {
  fusion::compute compute(3, 2);
  const std::vector<fusion::any_member> members = {local(compute, 1), local(compute, 2), local(compute, 3)};
  fusion::confidence_judge judge;
  const fusion::request r{"Once upon a time", "", 24};
  const auto first = run([&] { return fusion::fuse(members, judge, r); });
  const auto second = run([&] { return fusion::fuse(members, judge, r); });
  ASSERT_EQ(first.answered(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(first.members[i].text, second.members[i].text);
    // the same as generating alone with that seed
    generate::session alone(stories(), {.n_ctx = 256, .threads = 1});
    generate::options o;
    o.sampling.seed = i + 1;
    o.max_tokens = 24;
    EXPECT_EQ(alone.complete("Once upon a time", o).text, first.members[i].text) << i;
  }
  EXPECT_NE(first.members[0].text, first.members[1].text);
  EXPECT_EQ(first.verdict.chosen, second.verdict.chosen);
  const auto json = json::dump(first.to_json());
  EXPECT_NE(json.find("\"mode\":\"confidence\""), std::string::npos);
  EXPECT_NE(json.find("\"overhead_ms\""), std::string::npos);
}

TEST(FusionLocal, DeadlineStopsGenerationBetweenTokens) {
  fusion::compute compute(2, 1);
  // An instant member makes the panel viable whatever the build's speed; the local member
  // would write 2000 tokens, far longer than the deadline even in an optimised build.
  const std::vector<fusion::any_member> members = {scripted("instant", 0ms, "ready", -0.1),
                                                   local(compute, 2, 2000, 2048)};
  fusion::confidence_judge judge;
  fusion::request r{"Once upon a time", "", 0};
  fusion::policy rule;
  rule.deadline = 150ms;
  const auto report = run([&] { return fusion::fuse(members, judge, r, rule); });
  EXPECT_EQ(report.members[0].status, fusion::member_status::ok);
  EXPECT_EQ(report.members[1].status, fusion::member_status::timed_out);
  EXPECT_LT(report.members[1].generated_tokens, 2000u);  // it stopped between tokens
  EXPECT_EQ(report.verdict.chosen, 0u);
}

TEST(FusionLocal, BestOfWithARealJudgeModelFallsBackVisibly) {
  // stories260K writes stories, not scores: the judge path must notice and fall back.
  fusion::compute compute(3, 2);
  const std::vector<fusion::any_member> members = {local(compute, 1), local(compute, 2)};
  fusion::local_member_options o;
  o.generation.sampling.temperature = 0.0f;
  o.n_ctx = 1024;
  fusion::best_of_judge judge{std::make_shared<fusion::local_member>(stories(), o, compute)};
  const fusion::request r{"Once upon a time", "", 16};
  const auto report = run([&] { return fusion::fuse(members, judge, r); });
  EXPECT_TRUE(report.verdict.fell_back);
  EXPECT_EQ(report.verdict.judge_outputs.size(), 2u);
  EXPECT_TRUE(report.verdict.chosen.has_value());
  EXPECT_GE(report.wall_ms, report.verdict.judge_ms);
}

TEST(FusionLocal, DebateKeepsEveryRound) {
  fusion::compute compute(3, 2);
  const std::vector<fusion::any_member> members = {local(compute, 1, 12), local(compute, 2, 12)};
  auto judge_model = std::make_shared<scripted_judge_model>(scripted_judge_model{{"A: 6 - fine\nB: 8 - better"}});
  fusion::debate_judge<fusion::best_of_judge> judge{members, fusion::best_of_judge{judge_model}, 2};
  const fusion::request r{"Once upon a time", "", 12};
  const auto report = run([&] { return fusion::fuse(members, judge, r); });
  EXPECT_EQ(report.verdict.rounds.size(), 3u);  // the first answers + 2 rounds
  EXPECT_EQ(report.verdict.method, "debate+best_of");
  EXPECT_FALSE(report.verdict.fell_back);
}

}  // namespace
