// chorus fuse — several local models answer one prompt concurrently; a judge decides.
#include <chorus/chorus.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <iostream>
#include <map>

#include "command.hpp"
#include "common.hpp"

namespace {

namespace asio = boost::asio;
using namespace chorus;

// "model.gguf:seed=2,temp=0.8,name=x" -> path + options
struct member_spec {
  std::string path;
  fusion::local_member_options options;
};

member_spec parse_member(const std::string& text, const sample::sampling_params& defaults, std::int32_t max_tokens) {
  member_spec spec;
  spec.options.generation.sampling = defaults;
  spec.options.generation.max_tokens = max_tokens;
  const auto colon = text.rfind(':');
  spec.path = text.substr(0, colon);
  if (colon == std::string::npos) return spec;
  std::string rest = text.substr(colon + 1);
  std::size_t pos = 0;
  while (pos <= rest.size()) {
    const auto comma = rest.find(',', pos);
    const std::string item = rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? rest.size() + 1 : comma + 1;
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos) throw chorus_cli::usage_error("member option '" + item + "' needs key=value");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    auto& s = spec.options.generation.sampling;
    if (key == "seed") s.seed = chorus_cli::arguments::parse_number<std::uint64_t>(value, "member seed");
    else if (key == "temp") s.temperature = chorus_cli::arguments::parse_number<float>(value, "member temp");
    else if (key == "top-k") s.top_k = chorus_cli::arguments::parse_number<std::int32_t>(value, "member top-k");
    else if (key == "top-p") s.top_p = chorus_cli::arguments::parse_number<float>(value, "member top-p");
    else if (key == "name") spec.options.name = value;
    else if (key == "system") spec.options.system_prompt = value;
    else throw chorus_cli::usage_error("unknown member option '" + key + "' (seed, temp, top-k, top-p, name, system)");
  }
  return spec;
}

// A member that prints one status line when it starts and one when it finishes: shows how a
// plain struct wraps another member.
struct reporting_member {
  fusion::any_member inner;
  bool quiet = false;
  std::string name() const { return inner.name(); }
  asio::awaitable<fusion::candidate> answer(const fusion::request& r) {
    if (!quiet) std::fprintf(stderr, "  [%s] generating...\n", inner.name().c_str());
    fusion::candidate c = co_await inner.answer(r);
    if (!quiet) {
      std::fprintf(stderr, "  [%s] %s: %zu tokens in %.0f ms (%.1f tok/s)\n", c.member.c_str(),
                   std::string(fusion::to_string(c.status)).c_str(), c.generated_tokens, c.compute_ms, c.tokens_per_second());
    }
    co_return c;
  }
};

void print_report(const fusion::report& r) {
  std::printf("\n=== members\n");
  for (std::size_t i = 0; i < r.members.size(); ++i) {
    const auto& c = r.members[i];
    std::printf("--- %s (%s)%s\n%s\n", c.member.c_str(), std::string(fusion::to_string(c.status)).c_str(),
                r.verdict.chosen == i ? "  <- chosen" : "", c.status == fusion::member_status::ok ? c.text.c_str() : c.error.c_str());
  }
  std::printf("\n=== decision (%s)%s\n%s\n\nwhy: %s\n", r.verdict.method.c_str(), r.verdict.fell_back ? " [fallback]" : "",
              r.verdict.answer.c_str(), r.verdict.rationale.c_str());
  std::printf("\n| member | status | tokens | latency ms | tok/s | mean logprob | score |\n|---|---|---:|---:|---:|---:|---:|\n");
  for (std::size_t i = 0; i < r.members.size(); ++i) {
    const auto& c = r.members[i];
    std::printf("| %s | %s | %zu | %.0f | %.1f | %.3f | %s |\n", c.member.c_str(), std::string(fusion::to_string(c.status)).c_str(),
                c.generated_tokens, c.latency_ms, c.tokens_per_second(), c.mean_logprob,
                i < r.verdict.scores.size() ? std::to_string(r.verdict.scores[i]).substr(0, 5).c_str() : "-");
  }
  std::printf("\nwall %.0f ms | judge %.0f ms | orchestration overhead %.2f ms\n", r.wall_ms, r.verdict.judge_ms, r.overhead_ms);
}

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments a(args, {"json"});
  const auto member_texts = a.get_all("member");
  const auto judge_path = a.get("judge");
  const auto mode = a.get("mode").value_or("best-of");
  const auto prompt = a.require("prompt");
  const auto rounds = a.number<int>("rounds", 2);
  const auto quorum = a.number<std::size_t>("quorum", 0);
  const auto deadline_ms = a.number<long>("deadline-ms", 0);
  const auto max_tokens = a.number<std::int32_t>("n", 64);
  const auto threads = a.number<std::size_t>("threads", 0);
  const auto vote_kind = a.get("vote").value_or("text");
  const bool json = a.flag("json");
  const auto sampling = chorus_cli::sampling_from(a);
  a.reject_unknown();
  if (member_texts.empty()) throw chorus_cli::usage_error("give at least one --member");
  const bool needs_judge = mode == "best-of" || mode == "merge" || mode == "debate";
  if (!needs_judge && mode != "vote" && mode != "confidence") {
    throw chorus_cli::usage_error("--mode must be best-of, merge, debate, vote or confidence, not '" + mode + "'");
  }
  if (needs_judge && !judge_path) throw chorus_cli::usage_error("--mode " + mode + " needs --judge MODEL.gguf");
  if (quorum > member_texts.size()) throw chorus_cli::usage_error("--quorum is larger than the number of members");

  fusion::compute compute(member_texts.size() + 1, threads);
  std::map<std::string, std::shared_ptr<const generate::language_model>> loaded;  // one copy per file
  auto load = [&](const std::string& path) {
    auto& m = loaded[path];
    if (!m) {
      m = generate::language_model::load(path);
      chorus_cli::warn_about(m->tokens().vocabulary(), path);
    }
    return m;
  };
  std::vector<fusion::any_member> members;
  for (const auto& text : member_texts) {
    auto spec = parse_member(text, sampling, max_tokens);
    auto local = std::make_shared<fusion::local_member>(load(spec.path), spec.options, compute);
    members.emplace_back(std::make_shared<reporting_member>(reporting_member{local, json}));
  }
  std::optional<fusion::any_member> judge_model;
  if (judge_path) {
    fusion::local_member_options o;
    o.name = "judge";
    o.generation.sampling.temperature = 0.0f;
    judge_model.emplace(std::make_shared<fusion::local_member>(load(*judge_path), o, compute));
  }
  fusion::policy rule;
  rule.quorum = quorum;
  rule.minimum = std::max<std::size_t>(1, quorum);
  if (deadline_ms > 0) rule.deadline = std::chrono::milliseconds(deadline_ms);
  const fusion::request req{prompt, "", max_tokens};

  asio::io_context io;
  std::optional<fusion::report> result;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        if (!json) std::fprintf(stderr, "fusing %zu members, mode %s\n", members.size(), mode.c_str());
        if (mode == "best-of") {
          fusion::best_of_judge j{*judge_model};
          result = co_await fusion::fuse(members, j, req, rule);
        } else if (mode == "merge") {
          fusion::merge_judge j{*judge_model};
          result = co_await fusion::fuse(members, j, req, rule);
        } else if (mode == "debate") {
          fusion::debate_judge<fusion::best_of_judge> j{members, fusion::best_of_judge{*judge_model}, rounds};
          result = co_await fusion::fuse(members, j, req, rule);
        } else if (mode == "vote") {
          auto extractor = vote_kind == "number"   ? &fusion::extract::number
                           : vote_kind == "letter" ? &fusion::extract::letter
                                                   : &fusion::extract::normalised_text;
          fusion::vote_judge<> j{extractor};
          result = co_await fusion::fuse(members, j, req, rule);
        } else {
          fusion::confidence_judge j;
          result = co_await fusion::fuse(members, j, req, rule);
        }
      },
      [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
  if (json) {
    std::cout << json::dump(result->to_json(), 2) << "\n";
  } else {
    print_report(*result);
  }
  return 0;
}

const chorus_cli::registration fuse_command{
    "fuse", "several local models answer one prompt; a judge decides",
    "--member M.gguf[:seed=S,temp=T,name=N] ... [--judge J.gguf] --mode best-of|merge|debate|vote|confidence "
    "--prompt P [-n N] [--rounds R] [--quorum K] [--deadline-ms D] [--vote number|letter|text] [--temp T] "
    "[--threads N] [--json]",
    &run};

}  // namespace
