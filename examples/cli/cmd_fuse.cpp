// chorus fuse — several models answer one prompt concurrently; a judge decides. Members of one
// model file decode as one batch; a member whose model does not load is reported as failed and
// the others answer (exit 0); only when no member answers does the command fail (exit 1).
// With --tools the members may call functions and `--mode vote` votes on the calls themselves;
// `--agree all|K` refuses to decide (exit 2) unless that many members make the same call.
#include <chorus/chorus.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>

#include <unistd.h>

#include "command.hpp"
#include "common.hpp"
#include "panel.hpp"

namespace cmd_fuse {

namespace asio = boost::asio;
using namespace chorus;

std::string call_name(const fusion::candidate& c, std::size_t samples) {
  return samples > 1 ? c.member + "/" + std::to_string(c.sample) : c.member;
}

// Status lines on stderr: one when a member call produces its first token and one when it ends.
// Called on the batcher threads, hence the lock (per first token only, not per token).
struct progress {
  std::mutex lock;
  std::map<std::pair<std::string, std::size_t>, bool> started;
  std::chrono::steady_clock::time_point begin = std::chrono::steady_clock::now();
  bool quiet = false;
  std::size_t samples = 1;

  static void on_token(void* self, std::string_view member, std::size_t sample, const generate::token_event&) {
    auto& p = *static_cast<progress*>(self);
    if (p.quiet) return;
    std::lock_guard guard(p.lock);
    auto& seen = p.started[{std::string(member), sample}];
    if (seen) return;
    seen = true;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - p.begin).count();
    std::fprintf(stderr, "  [%.*s%s] first token at %.0f ms\n", static_cast<int>(member.size()), member.data(),
                 p.samples > 1 ? ("/" + std::to_string(sample)).c_str() : "", ms);
  }
};

void print_report(const fusion::report& r) {
  const std::size_t samples = r.asked.n;
  std::printf("\n=== members\n");
  for (std::size_t i = 0; i < r.members.size(); ++i) {
    const auto& c = r.members[i];
    std::printf("--- %s (%s, %s)%s\n%s\n", call_name(c, samples).c_str(), std::string(fusion::to_string(c.status)).c_str(),
                c.path.empty() ? "-" : c.path.c_str(), r.verdict.chosen == i ? "  <- chosen" : "",
                c.status == fusion::member_status::ok ? c.text.c_str() : c.error.c_str());
  }
  std::printf("\n=== decision (%s)%s\n%s\n\nwhy: %s\n", r.verdict.method.c_str(), r.verdict.fell_back ? " [fallback]" : "",
              r.verdict.answer.c_str(), r.verdict.rationale.c_str());
  std::printf("\n| member | status | finish | tokens | latency ms | tok/s | mean logprob | score |\n|---|---|---|---:|---:|---:|---:|---:|\n");
  for (std::size_t i = 0; i < r.members.size(); ++i) {
    const auto& c = r.members[i];
    std::printf("| %s | %s | %s | %zu | %.0f | %.1f | %.3f | %s |\n", call_name(c, samples).c_str(),
                std::string(fusion::to_string(c.status)).c_str(), std::string(fusion::to_string(c.finish)).c_str(),
                c.tokens.completion_tokens, c.latency_ms, c.tokens_per_second(), c.mean_logprob,
                i < r.verdict.scores.size() ? std::to_string(r.verdict.scores[i]).substr(0, 5).c_str() : "-");
  }
  const auto failed = r.members.size() - r.answered();
  if (failed > 0) {
    std::printf("\n%zu of %zu member calls gave no answer:\n", failed, r.members.size());
    for (const auto& c : r.members) {
      if (c.status != fusion::member_status::ok) {
        std::printf("  %s: %s (%s)\n", call_name(c, samples).c_str(), std::string(fusion::to_string(c.status)).c_str(), c.error.c_str());
      }
    }
  }
  if (!r.stopped_because.empty()) {
    std::printf("\nstopped %zu call(s) early: %s (about %zu tokens saved)\n", r.stopped_early, r.stopped_because.c_str(), r.tokens_saved);
  }
  std::printf("\nwall %.0f ms | judge %.0f ms | %zu tokens generated | orchestration overhead %.2f ms\n", r.wall_ms,
              r.verdict.judge_ms, r.completion_tokens(), r.overhead_ms);
}

using text_extractor = std::optional<std::string> (*)(std::string_view);
using call_extractor = std::optional<std::string> (*)(const fusion::candidate&);

text_extractor extractor_named(const std::string& kind) {
  if (kind == "number") return &fusion::extract::number;
  if (kind == "letter") return &fusion::extract::letter;
  if (kind == "text") return &fusion::extract::normalised_text;
  throw chorus_cli::usage_error("--vote must be number, letter, text or tool, not '" + kind + "'");
}

// The agreed call, or why there is none, on stdout as one JSON object (OpenAI's shape: the
// arguments as a JSON string).
void print_action(const fusion::report& r) {
  fusion::json out;
  out["agreed"] = r.verdict.chosen.has_value() && !r.verdict.tool_calls.empty();
  out["tool_calls"] = fusion::openai::tool_calls_json(r.verdict.tool_calls);
  if (!r.verdict.chosen) out["reason"] = r.verdict.rationale;
  if (r.verdict.details.contains("dissent")) out["dissent"] = r.verdict.details["dissent"];
  std::cout << chorus_cli::dump(out) << "\n";
}

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments a(args, {"json", "adaptive", "quiet"});
  const auto member_texts = a.get_all("member");
  const auto judge_path = a.get("judge");
  const auto mode = a.get("mode").value_or("best-of");
  const auto prompt = a.require("prompt");
  const auto system = a.get("system");
  const auto rounds = a.number<int>("rounds", 2);
  const auto quorum = a.number<std::size_t>("quorum", 0);
  const auto deadline_ms = a.number<long>("deadline-ms", 0);
  const auto max_tokens = a.number<std::int32_t>("n", 64);
  const auto samples = a.number<std::size_t>("samples", 1);
  const auto threads = a.number<std::size_t>("threads", 0);
  const auto n_ctx = a.number<std::uint32_t>("ctx", 1024);
  const auto tools_path = a.get("tools");
  const auto tool_choice = a.get("tool-choice").value_or("auto");
  const auto vote_kind = a.get("vote").value_or(tools_path ? "tool" : "text");
  const auto agree = a.get("agree");
  const bool json = a.flag("json");
  const bool quiet = a.flag("quiet") || json;
  const bool adaptive = a.flag("adaptive");
  const auto sampling = chorus_cli::sampling_from(a);
  a.reject_unknown();
  if (member_texts.empty()) throw chorus_cli::usage_error("give at least one --member");
  const bool needs_judge = mode == "best-of" || mode == "merge" || mode == "debate";
  if (!needs_judge && mode != "vote" && mode != "confidence") {
    throw chorus_cli::usage_error("--mode must be best-of, merge, debate, vote or confidence, not '" + mode + "'");
  }
  if (needs_judge && !judge_path) throw chorus_cli::usage_error("--mode " + mode + " needs --judge MODEL.gguf");
  if (samples == 0 || samples > 64) throw chorus_cli::usage_error("--samples must be between 1 and 64");
  if (mode == "debate" && samples > 1) throw chorus_cli::usage_error("--mode debate takes one sample per member (--samples 1)");
  if (quorum > member_texts.size() * samples) throw chorus_cli::usage_error("--quorum is larger than the number of member calls");
  if (!tools_path && a.get("tool-choice")) throw chorus_cli::usage_error("--tool-choice needs --tools");
  if (vote_kind == "tool" && !tools_path) throw chorus_cli::usage_error("--vote tool needs --tools");
  const bool vote_on_calls = vote_kind == "tool";
  const text_extractor extractor = vote_on_calls ? nullptr : extractor_named(vote_kind);
  // --agree all | K: the vote decides only when that many calls agree (and stops once they do,
  // or once they no longer can)
  std::size_t required = 0;
  bool unanimous = false;
  if (agree) {
    if (mode != "vote") throw chorus_cli::usage_error("--agree is for --mode vote");
    if (*agree == "all") {
      unanimous = true;
    } else {
      required = chorus_cli::arguments::parse_number<std::size_t>(*agree, "agree");
      if (required == 0 || required > member_texts.size() * samples) {
        throw chorus_cli::usage_error("--agree must be 'all' or between 1 and the number of member calls");
      }
    }
  }
  if (adaptive && vote_on_calls) throw chorus_cli::usage_error("--adaptive votes on text answers; with --tools use --agree");

  chorus_cli::panel_builder panel(threads, n_ctx);
  std::vector<chorus_cli::member_spec> specs;
  for (const auto& text : member_texts) {
    specs.push_back(chorus_cli::parse_member(text, sampling, max_tokens));
    if (!specs.back().remote) panel.expect(specs.back().path, samples);
  }
  if (judge_path) panel.expect(*judge_path, 1);
  std::vector<fusion::any_member> members;
  for (const auto& spec : specs) members.push_back(panel.member(spec, !json));
  std::optional<fusion::any_member> judge_model;
  if (judge_path) judge_model.emplace(panel.judge(*judge_path));

  fusion::policy rule = fusion::policy::all();
  if (quorum > 0) rule = fusion::policy::first(quorum);
  if (deadline_ms > 0) rule = rule || fusion::policy::within(std::chrono::milliseconds(deadline_ms));
  if (adaptive) rule = rule || fusion::adaptive_consistency(extractor);
  if (agree) {
    rule = rule || (vote_on_calls ? fusion::until_agreement<call_extractor>(&fusion::extract::tool_calls, required)
                                  : fusion::until_agreement(extractor, required));
  }

  fusion::request req = fusion::request::from_prompt(prompt, system.value_or(""), max_tokens);
  req.n = samples;
  if (tools_path) {
    req.tools = chorus_cli::read_tool_specs(*tools_path);
    sample::tool_choice::parse(tool_choice);  // names what is wrong with it here, not per member
    req.tool_choice = tool_choice;
  }
  progress live;
  live.quiet = quiet;
  live.samples = samples;
  req.stream = {&progress::on_token, &live};

  asio::io_context io;
  std::optional<fusion::report> result;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        if (!quiet) std::fprintf(stderr, "fusing %zu member(s) x %zu sample(s), mode %s\n", members.size(), samples, mode.c_str());
        if (mode == "best-of") {
          fusion::best_of_judge j{*judge_model};
          result = co_await fusion::fuse(members, j, req, rule);
        } else if (mode == "merge") {
          fusion::merge_judge j{*judge_model};
          result = co_await fusion::fuse(members, j, req, rule);
        } else if (mode == "debate") {
          fusion::debate_judge<fusion::best_of_judge> j{members, fusion::best_of_judge{*judge_model}, rounds};
          result = co_await fusion::fuse(members, j, req, rule);
        } else if (mode == "vote" && vote_on_calls) {
          fusion::vote_judge<call_extractor> j{&fusion::extract::tool_calls, {}, required, unanimous};
          result = co_await fusion::fuse(members, j, req, rule);
        } else if (mode == "vote") {
          fusion::vote_judge<> j{extractor, {}, required, unanimous};
          result = co_await fusion::fuse(members, j, req, rule);
        } else {
          fusion::confidence_judge j;
          result = co_await fusion::fuse(members, j, req, rule);
        }
      },
      [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);  // e.g. errc::not_enough_answers, listing every member's reason
  if (json) {
    std::cout << result->to_json().dump(2, ' ', false, fusion::json::error_handler_t::replace) << "\n";
  } else {
    if (!quiet) print_report(*result);
    if (tools_path) print_action(*result);
    else if (quiet) std::cout << result->verdict.answer << "\n";
  }
  return agree && !result->verdict.chosen ? 2 : 0;
}

const chorus_cli::registration fuse_command{
    "fuse", "several models answer one prompt; a judge decides",
    "--member M.gguf[:seed=S,temp=T,top-k=K,top-p=P,min-p=M,name=N,system=TEXT,path=chat|completion,chat=FORMAT] ... "
    "--member http[s]://HOST:PORT/v1#MODEL[,name=N,key-env=VAR,stream=1,timeout-ms=T,retries=R,max-in-flight=K,ca=FILE,insecure=1,temp=T,seed=S] ... "
    "[--samples N] [--judge J.gguf] --mode best-of|merge|debate|vote|confidence --prompt P [--system S] [-n N] "
    "[--rounds R] [--quorum K] [--deadline-ms D] [--adaptive] [--vote number|letter|text|tool] [--tools tools.json] "
    "[--tool-choice auto|none|required|NAME] [--agree all|K] [--temp T] [--top-k K] [--top-p P] [--min-p M] [--seed S] "
    "[--threads N] [--ctx N] [--quiet] [--json]\n"
    "  exit 0 with an answer when at least one member answers (failed members are listed), 1 when none does, "
    "2 when --agree is not met (the dissenting calls are listed); with --tools the agreed call is printed as JSON",
    &run};

}  // namespace cmd_fuse
