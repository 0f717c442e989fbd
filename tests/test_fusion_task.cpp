// Tests of fusion quality on the trained arithmetic models (../shared/models/task): the verifier
// judge (its score is the judge model's P(yes), the asks of one decision form one batch and score
// as each does alone), the agreement judge (SLM-MUX), weighted votes, and `chorus eval`.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "test_support.hpp"

namespace {

using namespace chorus;
namespace asio = boost::asio;
using json = nlohmann::json;

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

std::filesystem::path task_path(const std::string& file) { return chorus_test::models_dir() / "task" / file; }

struct dev_question {
  std::string prompt;
  std::string answer;
};

std::vector<dev_question> dev_set(std::size_t limit) {
  std::ifstream in(task_path("arith-dev.jsonl"));
  std::vector<dev_question> out;
  for (std::string line; out.size() < limit && std::getline(in, line);) {
    const auto j = json::parse(line);
    out.push_back({j["prompt"].get<std::string>(), j["answer"].is_string() ? j["answer"].get<std::string>() : j["answer"].dump()});
  }
  return out;
}

std::shared_ptr<fusion::local_model> task_model(const std::string& file) {
  static std::mutex lock;
  static std::map<std::string, std::shared_ptr<fusion::local_model>> cache;
  std::lock_guard guard(lock);
  auto& m = cache[file];
  if (!m) {
    m = std::make_shared<fusion::local_model>(generate::language_model::load(task_path(file)),
                                              fusion::local_model_options{.n_ctx = 256, .parallel = 16, .threads = 2});
  }
  return m;
}

fusion::any_member task_member(const std::string& file, std::string name, float temperature, std::uint64_t seed = 1) {
  fusion::local_member_options o;
  o.name = std::move(name);
  o.generation.max_tokens = 128;
  o.generation.sampling.temperature = temperature;
  o.generation.sampling.top_k = 0;
  o.generation.sampling.top_p = 1.0f;
  o.generation.sampling.min_p = 0.0f;
  o.generation.sampling.seed = seed;
  return std::make_shared<fusion::local_member>(task_model(file), o);
}

fusion::verifier_judge<> task_verifier() { return {task_member("arith-verifier.gguf", "verifier", 0.0f)}; }

bool correct(const fusion::candidate& c, const dev_question& q) {
  const auto got = fusion::extract::number(c.text);
  return c.status == fusion::member_status::ok && got && got == fusion::extract::number(q.answer);
}

// Each generator's greedy answer to each of the first questions.
std::vector<std::vector<fusion::candidate>> greedy_answers(const std::vector<dev_question>& questions) {
  const std::vector<fusion::any_member> generators = {task_member("arith-gen-s.gguf", "s", 0.0f),
                                                      task_member("arith-gen-m.gguf", "m", 0.0f),
                                                      task_member("arith-gen-l.gguf", "l", 0.0f)};
  std::vector<std::vector<fusion::candidate>> out;
  for (const auto& q : questions) {
    const auto r = fusion::request::from_prompt(q.prompt, "", 128);
    out.push_back(run([&] { return fusion::gather(generators, std::span(&r, 1), fusion::policy::all()); }).candidates);
  }
  return out;
}

// The task verifier's P(" yes") over the whole vocabulary, from the model's logits directly.
double p_yes_directly(const std::string& question, const std::string& answer) {
  static const auto verifier = generate::language_model::load(task_path("arith-verifier.gguf"));
  const auto& tokens = verifier->tokens();
  const auto ids = tokens.encode(question + answer + "\nCorrect?", true, false);
  model::context ctx(verifier->network(), {.n_ctx = 256, .threads = 1});
  const auto logits = ctx.decode(ids);  // the last position's
  const std::size_t yes = 6;  // "▁yes" (../shared/models/task/README.md)
  EXPECT_EQ(tokens.token_to_piece(static_cast<tokenizer::token_id>(yes)), " yes");
  const float top = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (const float l : logits) sum += std::exp(static_cast<double>(l - top));
  return std::exp(static_cast<double>(logits[yes] - top)) / sum;
}

TEST(FusionTaskVerifier, ScoresAreTheJudgesYesProbabilityAndTheBatchScoresAsAlone) {
  const auto questions = dev_set(4);
  const auto answers = greedy_answers(questions);
  auto verifier = task_verifier();
  for (std::size_t q = 0; q < questions.size(); ++q) {
    const auto r = fusion::request::from_prompt(questions[q].prompt, "", 128);
    const auto together = run([&] { return verifier.decide(r, answers[q]); });
    ASSERT_EQ(together.scores.size(), 3u);
    ASSERT_EQ(together.details["p_yes"].size(), 3u);
    ASSERT_TRUE(together.chosen.has_value());
    EXPECT_FALSE(together.fell_back);
    EXPECT_EQ(together.method, "verifier");
    for (std::size_t i = 0; i < 3; ++i) {
      const double p_yes = together.details["p_yes"][i].get<double>();
      const double p_no = together.details["p_no"][i].get<double>();
      EXPECT_NEAR(p_yes, p_yes_directly(questions[q].prompt, answers[q][i].text), 1e-4) << "question " << q << " candidate " << i;
      EXPECT_DOUBLE_EQ(together.scores[i], p_yes / (p_yes + p_no));
      // the three asks were one batch sharing the question's prefix; each alone scores the same
      const auto alone = run([&] { return verifier.decide(r, std::span(&answers[q][i], 1)); });
      EXPECT_DOUBLE_EQ(alone.scores[0], together.scores[i]) << "question " << q << " candidate " << i;
    }
    // the highest score wins (equal scores: the more confident candidate)
    EXPECT_EQ(together.scores[*together.chosen], *std::max_element(together.scores.begin(), together.scores.end()));
    // deterministic: a second decision is the same to the bit
    const auto again = run([&] { return verifier.decide(r, answers[q]); });
    EXPECT_EQ(again.scores, together.scores);
    EXPECT_EQ(again.chosen, together.chosen);
  }
}

TEST(FusionTaskVerifier, PrefersTheCorrectCandidateWhereOneIsRight) {
  // Dev questions where the generators' greedy answers disagree and one or two are right: the
  // verifier, trained to check these answers, must score a right answer above a wrong one.
  const auto questions = dev_set(40);
  const auto answers = greedy_answers(questions);
  auto verifier = task_verifier();
  std::size_t mixed = 0, picked_right = 0, pairs = 0, pairs_ordered = 0;
  for (std::size_t q = 0; q < questions.size(); ++q) {
    std::size_t right = 0;
    for (const auto& c : answers[q]) right += correct(c, questions[q]);
    if (right == 0 || right == 3) continue;
    ++mixed;
    const auto r = fusion::request::from_prompt(questions[q].prompt, "", 128);
    const auto d = run([&] { return verifier.decide(r, answers[q]); });
    picked_right += correct(answers[q][*d.chosen], questions[q]);
    for (std::size_t i = 0; i < 3; ++i) {
      for (std::size_t j = 0; j < 3; ++j) {
        if (correct(answers[q][i], questions[q]) && !correct(answers[q][j], questions[q])) {
          ++pairs;
          pairs_ordered += d.scores[i] > d.scores[j];
        }
      }
    }
  }
  ASSERT_GE(mixed, 5u) << "too few dev questions where the generators disagree";
  EXPECT_GT(2 * picked_right, mixed) << picked_right << " of " << mixed;
  EXPECT_GT(3 * pairs_ordered, 2 * pairs) << pairs_ordered << " of " << pairs << " right/wrong pairs ordered";
}

TEST(FusionTaskVerifier, WeightedVoteAddsTheScoresOfAgreeingCandidates) {
  std::vector<fusion::candidate> c(4);
  const char* texts[] = {"= 7", "so 7", "= 9", "?"};
  for (std::size_t i = 0; i < 4; ++i) {
    c[i].member = "m" + std::to_string(i);
    c[i].text = texts[i];
  }
  fusion::decision d;
  d.scores = {0.3, 0.35, 0.6, 0.9};
  fusion::verifier_judge<>::vote_by_scores(c, &fusion::extract::number, d);
  ASSERT_TRUE(d.chosen.has_value());
  EXPECT_EQ(*d.chosen, 1u);  // 7 sums 0.65 > 9's 0.6; the unextractable 0.9 is no answer
  EXPECT_DOUBLE_EQ(d.details["groups"]["7"].get<double>(), 0.65);
  EXPECT_EQ(d.details["groups"].size(), 2u);
}

// --- agreement (SLM-MUX) ----------------------------------------------------------------

fusion::candidate sampled(std::string member, std::string text, double logprob) {
  fusion::candidate c;
  c.member = std::move(member);
  c.text = std::move(text);
  c.mean_logprob = logprob;
  return c;
}

TEST(FusionTaskAgreement, TheMostSelfConsistentMemberWinsTiesByLogprob) {
  fusion::agreement_judge<> judge{&fusion::extract::number};
  // "big" says 5 twice of 4; "small" says 8 three times of 4 but is less sure per token
  const std::vector<fusion::candidate> c = {sampled("big", "= 5", -0.1),  sampled("big", "= 5", -0.2),  sampled("big", "= 6", -0.1),
                                            sampled("big", "= 4", -0.1),  sampled("small", "= 8", -0.9), sampled("small", "= 8", -0.5),
                                            sampled("small", "= 8", -0.7), sampled("small", "= 1", -0.3)};
  const auto d = judge.pick(c);
  ASSERT_TRUE(d.chosen.has_value());
  EXPECT_EQ(*d.chosen, 5u);  // small's most confident sample of 8
  EXPECT_EQ(d.details["members"][0]["name"], "big");
  EXPECT_DOUBLE_EQ(d.details["members"][0]["confidence"].get<double>(), 0.5);
  EXPECT_EQ(d.details["members"][1]["top_answer"], "8");
  EXPECT_DOUBLE_EQ(d.details["members"][1]["confidence"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(d.scores[0], 0.5);
  EXPECT_DOUBLE_EQ(d.scores[7], 0.75);
  // equal confidence: the member whose samples were surer
  const std::vector<fusion::candidate> tie = {sampled("a", "= 1", -0.8), sampled("a", "= 1", -0.8), sampled("b", "= 2", -0.2),
                                              sampled("b", "= 2", -0.4)};
  EXPECT_EQ(fusion::extract::number(judge.pick(tie).answer), "2");
  // failed samples do not count; a member with no extractable answer cannot win
  std::vector<fusion::candidate> partial = {sampled("a", "no idea", -0.1), sampled("b", "= 3", -2.0), sampled("b", "= 4", -2.0)};
  partial.push_back(sampled("b", "= 4", -2.0));
  partial.back().status = fusion::member_status::failed;
  const auto p = judge.pick(partial);
  EXPECT_EQ(fusion::extract::number(p.answer), "3");
  EXPECT_DOUBLE_EQ(p.details["members"][1]["confidence"].get<double>(), 0.5);
  EXPECT_FALSE(judge.pick({}).chosen.has_value());
}

TEST(FusionTaskAgreement, SampledTaskModelsDecideTheSameWayTwice) {
  const std::vector<fusion::any_member> members = {task_member("arith-gen-s.gguf", "s", 0.8f, 7),
                                                   task_member("arith-gen-m.gguf", "m", 0.8f, 7)};
  fusion::agreement_judge<> judge{&fusion::extract::number};
  for (const auto& q : dev_set(3)) {
    auto r = fusion::request::from_prompt(q.prompt, "", 128);
    r.n = 4;
    const auto first = run([&] { return fusion::fuse(members, judge, r); });
    const auto second = run([&] { return fusion::fuse(members, judge, r); });
    ASSERT_EQ(first.members.size(), 8u);
    for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(first.members[i].text, second.members[i].text);
    EXPECT_EQ(first.verdict.chosen, second.verdict.chosen);
    const auto& view = first.verdict.details["members"];
    ASSERT_EQ(view.size(), 2u);
    // the winner is the member with the highest share of its own top answer
    const auto winner = first.members[*first.verdict.chosen].member;
    const double best = std::max(view[0]["confidence"].get<double>(), view[1]["confidence"].get<double>());
    EXPECT_DOUBLE_EQ(view[winner == "s" ? 0 : 1]["confidence"].get<double>(), best);
    EXPECT_EQ(fusion::extract::number(first.verdict.answer), view[winner == "s" ? 0 : 1]["top_answer"].get<std::string>());
  }
}

// --- chorus eval --------------------------------------------------------------------------

bool have_cli() { return std::string(CHORUS_CLI_PATH).size() > 0 && std::filesystem::exists(CHORUS_CLI_PATH); }

struct cli_result {
  int status = -1;
  std::string out;
};

cli_result cli(const std::string& args) {
  cli_result r;
  FILE* p = ::popen((std::string(CHORUS_CLI_PATH) + " " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  r.status = ::pclose(p);
  return r;
}

TEST(ChorusEval, TenQuestionsEveryMemberAndModeAsJson) {
  if (!have_cli()) GTEST_SKIP() << "the chorus tool is not built";
  const auto dir = chorus_test::scratch_dir("eval");
  const auto data = dir / "ten.jsonl";
  {
    std::ifstream in(task_path("arith-dev.jsonl"));
    std::ofstream out(data);
    std::string line;
    for (int i = 0; i < 10 && std::getline(in, line); ++i) out << line << "\n";
  }
  const std::string args = "eval --data " + data.string() + " --member " + task_path("arith-gen-s.gguf").string() +
                           ":name=s --member " + task_path("arith-gen-m.gguf").string() + ":name=m --verifier " +
                           task_path("arith-verifier.gguf").string() +
                           " --samples 3 --temp 0.8 --seed 5 --mode vote,confidence,agreement,verifier,vote@m,adaptive --json"
                           " --dump " + (dir / "dump.jsonl").string() + " --plot " + (dir / "plot.svg").string();
  const auto first = cli(args);
  ASSERT_EQ(first.status, 0) << first.out;
  const auto j = json::parse(first.out);
  EXPECT_EQ(j["questions"], 10);
  ASSERT_EQ(j["members"].size(), 2u);
  EXPECT_EQ(j["members"][0]["name"], "s");
  for (const auto& m : j["members"]) {
    for (const char* field : {"accuracy", "sampled_accuracy"}) {
      const double a = m[field].get<double>();
      EXPECT_GE(a, 0.0);
      EXPECT_LE(a, 1.0);
      EXPECT_NEAR(a * 10, std::round(a * 10), 1e-9) << field << " is a share of 10 questions";
    }
    EXPECT_GT(m["tokens_per_question"].get<double>(), 5.0);
    EXPECT_GT(m["seconds_per_question"].get<double>(), 0.0);
  }
  std::vector<std::string> modes;
  for (const auto& m : j["modes"]) modes.push_back(m["mode"]);
  EXPECT_EQ(modes, (std::vector<std::string>{"vote", "confidence", "agreement", "verifier", "vote@m", "adaptive"}));
  // the oracle (any sample right) bounds every mode that picks one of those samples
  const double oracle = j["oracle"].get<double>();
  for (const auto& m : j["modes"]) EXPECT_LE(m["accuracy"].get<double>(), oracle + 1e-9) << m["mode"];
  // the dump has one line per question with each member's greedy answer and 3 samples each
  std::ifstream dump(dir / "dump.jsonl");
  std::size_t lines = 0, greedy_right = 0;
  for (std::string line; std::getline(dump, line); ++lines) {
    const auto record = json::parse(line);
    ASSERT_EQ(record["greedy"].size(), 2u);
    EXPECT_EQ(record["samples"].size(), 6u);
    greedy_right += record["greedy"][1]["correct"].get<bool>();
  }
  EXPECT_EQ(lines, 10u);
  EXPECT_NEAR(j["members"][1]["accuracy"].get<double>(), static_cast<double>(greedy_right) / 10.0, 1e-9);
  std::ifstream svg(dir / "plot.svg");
  std::string head(5, '\0');
  svg.read(head.data(), 5);
  EXPECT_EQ(head, "<svg ");
  // fixed seeds: the same figures again
  const auto second = json::parse(cli(args).out);
  for (std::size_t i = 0; i < j["modes"].size(); ++i) EXPECT_EQ(second["modes"][i]["accuracy"], j["modes"][i]["accuracy"]);
}

TEST(ChorusEval, BadInputsAreNamed) {
  if (!have_cli()) GTEST_SKIP() << "the chorus tool is not built";
  const auto dir = chorus_test::scratch_dir("eval-bad");
  const auto member = " --member " + task_path("arith-gen-s.gguf").string();
  auto missing = cli("eval --data " + (dir / "nope.jsonl").string() + member);
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.out.find("nope.jsonl"), std::string::npos) << missing.out;
  std::ofstream(dir / "bad.jsonl") << "{\"prompt\": \"Q: 1+1\\nA:\", \"answer\": 2}\n{\"prompt\": 3}\n";
  auto bad = cli("eval --data " + (dir / "bad.jsonl").string() + member);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("bad.jsonl:2"), std::string::npos) << bad.out;
  auto mode = cli("eval --data " + (dir / "bad.jsonl").string() + member + " --mode verifier");
  EXPECT_NE(mode.status, 0);
  EXPECT_NE(mode.out.find("needs --verifier"), std::string::npos) << mode.out;
}

}  // namespace
