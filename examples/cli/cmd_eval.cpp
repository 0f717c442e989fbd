// chorus eval — does fusion help? Every member alone (its greedy answer, and a sample) against
// every fusion mode over the members' samples, on a JSON-lines file of questions with known
// answers. Questions run one after another so that each phase's time is its own; within a
// phase the calls of one model decode as one batch.
#include <chorus/chorus.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include <unistd.h>

#include "command.hpp"
#include "common.hpp"
#include "panel.hpp"

namespace cmd_eval {

namespace asio = boost::asio;
using namespace chorus;
using json = nlohmann::ordered_json;
using clock_type = std::chrono::steady_clock;

struct question {
  std::string prompt;
  std::string answer;
};

std::vector<question> read_questions(const std::string& path, std::size_t limit) {
  std::ifstream in(path);
  if (!in) fail(errc::file_not_found, "eval: cannot open '", path, "'");
  std::vector<question> out;
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = parse_json(line, path + ":" + std::to_string(number));
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string() || !j.contains("answer")) {
      fail(errc::bad_format, "eval: ", path, ":", number, ": each line needs a string \"prompt\" and an \"answer\"");
    }
    const auto& a = j["answer"];
    out.push_back({j["prompt"].get<std::string>(), a.is_string() ? a.get<std::string>() : a.dump()});
    if (limit && out.size() == limit) break;
  }
  if (out.empty()) fail(errc::bad_format, "eval: ", path, " holds no questions");
  return out;
}

using extractor_fn = std::optional<std::string> (*)(std::string_view);

extractor_fn extractor_named(const std::string& kind) {
  if (kind == "number") return &fusion::extract::number;
  if (kind == "letter") return &fusion::extract::letter;
  if (kind == "text") return &fusion::extract::normalised_text;
  throw chorus_cli::usage_error("--extract must be number, letter or text, not '" + kind + "'");
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, sep);) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// One mode's or member's running totals.
struct tally {
  std::size_t correct = 0;
  std::size_t sampled_correct = 0;
  double tokens = 0.0;
  double seconds = 0.0;
};

// A progress bar on a terminal (stderr), nothing otherwise.
struct progress_bar {
  bool enabled = isatty(STDERR_FILENO) != 0;
  clock_type::time_point start = clock_type::now();
  void show(std::size_t done, std::size_t total, double tokens) const {
    if (!enabled) return;
    const double s = std::chrono::duration<double>(clock_type::now() - start).count();
    const int width = 30, filled = static_cast<int>(width * done / std::max<std::size_t>(total, 1));
    std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu questions  %.0f tok/s ", filled, "##############################", width - filled, "",
                 done, total, s > 0 ? tokens / s : 0.0);
    if (done == total) std::fputc('\n', stderr);
  }
};

std::string svg_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// Bars: the accuracy of every member and mode; lines: accuracy against samples per member.
void write_plot(const std::string& path, const std::vector<std::pair<std::string, double>>& bars,
                const std::map<std::string, std::vector<double>>& curves) {
  std::ofstream out(path);
  if (!out) fail(errc::file_unreadable, "eval: cannot write '", path, "'");
  const double w = 900, h = 420, left = 60, top = 30, plot_h = 300;
  const double bar_w = std::min(60.0, (w / 2 - left) / std::max<std::size_t>(bars.size(), 1));
  out << "<svg xmlns='http://www.w3.org/2000/svg' width='" << w << "' height='" << h << "' font-family='sans-serif' font-size='11'>\n";
  out << "<rect width='100%' height='100%' fill='white'/>\n";
  auto y_of = [&](double acc) { return top + plot_h * (1.0 - acc); };
  for (int p = 0; p <= 100; p += 25) {
    out << "<line x1='" << left << "' x2='" << w - 20 << "' y1='" << y_of(p / 100.0) << "' y2='" << y_of(p / 100.0)
        << "' stroke='#ddd'/><text x='" << left - 30 << "' y='" << y_of(p / 100.0) + 4 << "'>" << p << "%</text>\n";
  }
  out << "<text x='" << left << "' y='18' font-size='13'>accuracy of each member (greedy) and mode</text>\n";
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const double x = left + 10 + static_cast<double>(i) * bar_w;
    const double y = y_of(bars[i].second);
    out << "<rect x='" << x << "' y='" << y << "' width='" << bar_w - 6 << "' height='" << top + plot_h - y
        << "' fill='" << (i < bars.size() && bars[i].first.find(' ') == std::string::npos ? "#4a7ebb" : "#9bbb59") << "'/>\n";
    out << "<text x='" << x << "' y='" << y - 3 << "'>" << static_cast<int>(std::lround(bars[i].second * 1000)) / 10.0 << "</text>\n";
    out << "<text transform='translate(" << x + 8 << "," << top + plot_h + 8 << ") rotate(50)'>" << svg_escape(bars[i].first) << "</text>\n";
  }
  const double lx = w / 2 + 30, lw = w / 2 - 70;
  out << "<text x='" << lx << "' y='18' font-size='13'>accuracy against samples per member</text>\n";
  const char* colours[] = {"#c0504d", "#4f81bd", "#9bbb59", "#8064a2", "#f79646", "#4bacc6"};
  std::size_t c = 0;
  for (const auto& [label, ys] : curves) {
    if (ys.empty()) continue;
    std::string points;
    for (std::size_t k = 0; k < ys.size(); ++k) {
      const double x = lx + (ys.size() == 1 ? 0 : lw * static_cast<double>(k) / static_cast<double>(ys.size() - 1));
      points += std::to_string(x) + "," + std::to_string(y_of(ys[k])) + " ";
    }
    const char* colour = colours[c++ % 6];
    out << "<polyline fill='none' stroke='" << colour << "' stroke-width='2' points='" << points << "'/>\n";
    out << "<text x='" << lx + lw + 4 << "' y='" << y_of(ys.back()) << "' fill='" << colour << "'>" << svg_escape(label) << "</text>\n";
  }
  const std::size_t k_max = curves.empty() ? 1 : curves.begin()->second.size();
  for (std::size_t k = 0; k < k_max; ++k) {
    const double x = lx + (k_max == 1 ? 0 : lw * static_cast<double>(k) / static_cast<double>(k_max - 1));
    out << "<text x='" << x - 3 << "' y='" << top + plot_h + 15 << "'>" << k + 1 << "</text>\n";
  }
  out << "</svg>\n";
}

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments a(args, {"json", "quiet"});
  const auto data = a.require("data");
  const auto member_texts = a.get_all("member");
  const auto judge_path = a.get("judge");
  const auto verifier_path = a.get("verifier");
  const auto samples = a.number<std::size_t>("samples", 5);
  const auto temp = a.number<float>("temp", 0.8f);
  const auto seed = a.number<std::uint64_t>("seed", 1);
  const auto mode_list = split(a.get("mode").value_or("vote,confidence,agreement"), ',');
  const auto max_tokens = a.number<std::int32_t>("n", 128);
  const auto limit = a.number<std::size_t>("limit", 0);
  const auto threads = a.number<std::size_t>("threads", 0);
  const auto extract_kind = a.get("extract").value_or("number");
  const auto plot = a.get("plot");
  const auto dump = a.get("dump");
  const bool json_out = a.flag("json");
  const bool quiet = a.flag("quiet") || json_out;
  auto sampling = chorus_cli::sampling_from(a);
  a.reject_unknown();
  if (member_texts.empty()) throw chorus_cli::usage_error("give at least one --member");
  if (samples == 0 || samples > 64) throw chorus_cli::usage_error("--samples must be between 1 and 64");
  const auto extract = extractor_named(extract_kind);
  // Pure temperature sampling unless asked otherwise: what the task models' figures use.
  if (!a.get("top-k")) sampling.top_k = 0;
  if (!a.get("top-p")) sampling.top_p = 1.0f;
  if (!a.get("min-p")) sampling.min_p = 0.0f;
  sampling.temperature = temp;
  sampling.seed = seed;
  const std::set<std::string> known = {"vote", "confidence", "agreement", "verifier", "verifier-vote", "verifier-agreement",
                                       "vote-agreement", "best-of", "merge", "debate", "adaptive"};
  for (const auto& m : mode_list) {
    if (!known.count(m) && !m.starts_with("vote@")) {
      throw chorus_cli::usage_error("unknown mode '" + m + "' (vote, confidence, agreement, verifier, verifier-vote, "
                                    "verifier-agreement, vote-agreement, best-of, merge, debate, adaptive, vote@NAME)");
    }
    if (m.starts_with("verifier") && !verifier_path) throw chorus_cli::usage_error("--mode " + m + " needs --verifier MODEL.gguf");
    if ((m == "best-of" || m == "merge" || m == "debate") && !judge_path) throw chorus_cli::usage_error("--mode " + m + " needs --judge MODEL.gguf");
  }
  const auto questions = read_questions(data, limit);
  std::ofstream dump_file;
  if (dump) {
    dump_file.open(*dump);
    if (!dump_file) fail(errc::file_unreadable, "eval: cannot write '", *dump, "'");
  }

  chorus_cli::panel_builder panel(threads, 512);
  std::vector<chorus_cli::member_spec> specs;
  for (const auto& text : member_texts) {
    specs.push_back(chorus_cli::parse_member(text, sampling, max_tokens));
    if (specs.back().options.name.empty()) specs.back().options.name = std::filesystem::path(specs.back().path).stem().string();
    panel.expect(specs.back().path, samples + 1);
  }
  std::vector<fusion::any_member> members;
  std::vector<fusion::any_member> greedy;  // the same members at temperature 0
  for (auto spec : specs) {
    members.push_back(panel.member(spec, !quiet));
    spec.options.generation.sampling.temperature = 0.0f;
    greedy.push_back(panel.member(spec, false));
  }
  for (const auto& m : mode_list) {
    if (m.starts_with("vote@") && std::none_of(specs.begin(), specs.end(), [&](const auto& s) { return s.options.name == m.substr(5); })) {
      throw chorus_cli::usage_error("mode " + m + " names no member (members: use name=... in --member)");
    }
  }
  std::optional<fusion::any_member> judge, verifier;
  if (judge_path) {
    panel.expect(*judge_path, 2);
    judge.emplace(panel.judge(*judge_path));
  }
  if (verifier_path) {
    panel.expect(*verifier_path, members.size() * samples);
    chorus_cli::member_spec v;
    v.path = *verifier_path;
    v.options.name = "verifier";
    v.options.generation.sampling.temperature = 0.0f;
    verifier.emplace(panel.member(v, !quiet));
  }

  const std::size_t n_members = members.size();
  std::vector<tally> member_tally(n_members);
  std::map<std::string, tally> mode_tally;
  std::size_t oracle = 0;
  // accuracy of vote over the first k samples of every member, and of the verifier, k = 1..K
  std::vector<std::size_t> vote_at(samples, 0), verifier_at(samples, 0);
  progress_bar bar;
  bar.enabled = bar.enabled && !quiet;
  double all_tokens = 0.0;

  asio::io_context io;
  std::exception_ptr failure;
  auto is_correct = [&](const std::string& text, const std::string& expected) {
    const auto got = extract(text);
    const auto want = extract(expected);
    return got && want && *got == *want;
  };
  auto tokens_of = [](std::span<const fusion::candidate> cs) {
    double t = 0;
    for (const auto& c : cs) t += static_cast<double>(c.tokens.completion_tokens);
    return t;
  };
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (std::size_t qi = 0; qi < questions.size(); ++qi) {
          const auto& q = questions[qi];
          fusion::request ask = fusion::request::from_prompt(q.prompt, "", max_tokens);
          json record = {{"question", qi}, {"answer", q.answer}, {"greedy", json::array()}, {"samples", json::array()}};
          auto describe = [&](const fusion::candidate& c) {
            const auto got = c.status == fusion::member_status::ok ? extract(c.text) : std::nullopt;
            return json{{"member", c.member}, {"sample", c.sample}, {"extracted", got ? json(*got) : json(nullptr)},
                        {"correct", c.status == fusion::member_status::ok && is_correct(c.text, q.answer)},
                        {"mean_logprob", c.mean_logprob}, {"tokens", c.tokens.completion_tokens}};
          };
          // phase 1: every member's greedy answer, each alone
          for (std::size_t m = 0; m < n_members; ++m) {
            const auto t0 = clock_type::now();
            auto got = co_await fusion::gather(std::span(&greedy[m], 1), std::span(&ask, 1), fusion::policy::all().at_least(0));
            const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
            const auto& c = got.candidates[0];
            if (dump) record["greedy"].push_back(describe(c));
            member_tally[m].correct += c.status == fusion::member_status::ok && is_correct(c.text, q.answer);
            member_tally[m].tokens += static_cast<double>(c.tokens.completion_tokens);
            member_tally[m].seconds += s;
            all_tokens += static_cast<double>(c.tokens.completion_tokens);
          }
          // phase 2: K samples per member (one batch per model); the time of each member's own batch
          fusion::request sampled = ask;
          sampled.n = samples;
          std::vector<fusion::candidate> pool;
          std::vector<double> member_seconds(n_members);
          for (std::size_t m = 0; m < n_members; ++m) {
            const auto t0 = clock_type::now();
            auto got = co_await fusion::gather(std::span(&members[m], 1), std::span(&sampled, 1), fusion::policy::all().at_least(0));
            member_seconds[m] = std::chrono::duration<double>(clock_type::now() - t0).count();
            const auto& first = got.candidates[0];
            member_tally[m].sampled_correct += first.status == fusion::member_status::ok && is_correct(first.text, q.answer);
            all_tokens += tokens_of(got.candidates);
            // vote@NAME: one member's self-consistency
            const std::string self = "vote@" + specs[m].options.name;
            if (std::find(mode_list.begin(), mode_list.end(), self) != mode_list.end()) {
              const auto d = fusion::vote_judge<extractor_fn>{extract}.pick(got.candidates);
              auto& t = mode_tally[self];
              t.correct += d.chosen && is_correct(got.candidates[*d.chosen].text, q.answer);
              t.tokens += tokens_of(got.candidates);
              t.seconds += member_seconds[m];
            }
            pool.insert(pool.end(), std::make_move_iterator(got.candidates.begin()), std::make_move_iterator(got.candidates.end()));
          }
          const double pool_seconds = std::accumulate(member_seconds.begin(), member_seconds.end(), 0.0);
          const double pool_tokens = tokens_of(pool);
          oracle += std::any_of(pool.begin(), pool.end(), [&](const auto& c) {
            return c.status == fusion::member_status::ok && is_correct(c.text, q.answer);
          });
          // the first k samples of every member, for the curves
          auto first_k = [&](std::size_t k) {
            std::vector<fusion::candidate> subset;
            for (const auto& c : pool) {
              if (c.sample < k) subset.push_back(c);
            }
            return subset;
          };
          std::optional<fusion::decision> verified;
          double verifier_seconds = 0.0;
          for (const auto& mode : mode_list) {
            if (mode.starts_with("vote@")) continue;
            fusion::decision d;
            double extra_seconds = 0.0, extra_tokens = 0.0;
            const auto t0 = clock_type::now();
            if (mode == "vote") {
              d = fusion::vote_judge<extractor_fn>{extract}.pick(pool);
            } else if (mode == "confidence") {
              d = fusion::confidence_judge::pick(pool);
            } else if (mode == "agreement") {
              d = fusion::agreement_judge<extractor_fn>{extract}.pick(pool);
            } else if (mode == "vote-agreement") {
              // each sample votes with its member's self-consistency on this question
              const auto mux = fusion::agreement_judge<extractor_fn>{extract}.pick(pool);
              fusion::vote_judge<extractor_fn> weighted{extract};
              for (const auto& entry : mux.details["members"]) weighted.weights[entry["name"].get<std::string>()] = entry["confidence"].get<double>();
              d = weighted.pick(pool);
              d.method = "vote-agreement";
            } else if (mode.starts_with("verifier")) {
              // the verifier reads each candidate once; verifier-vote and verifier-agreement reuse its scores
              if (!verified) {
                fusion::verifier_judge<extractor_fn> v{*verifier, {}, false, extract};
                verified = co_await v.decide(ask, pool);
                verifier_seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
              }
              d = *verified;
              if (mode == "verifier-agreement") fusion::verifier_judge<extractor_fn>::weigh_by_agreement(pool, extract, d);
              if (mode != "verifier") fusion::verifier_judge<extractor_fn>::vote_by_scores(pool, extract, d);
              extra_seconds = verifier_seconds - std::chrono::duration<double>(clock_type::now() - t0).count();
            } else if (mode == "best-of") {
              fusion::best_of_judge j{*judge};
              d = co_await j.decide(ask, pool);
            } else if (mode == "merge") {
              fusion::merge_judge j{*judge};
              d = co_await j.decide(ask, pool);
            } else if (mode == "debate") {
              std::vector<fusion::candidate> firsts;
              for (const auto& c : pool) {
                if (c.sample == 0) firsts.push_back(c);
              }
              fusion::debate_judge<fusion::best_of_judge> j{members, fusion::best_of_judge{*judge}, 1};
              d = co_await j.decide(ask, firsts);
            } else if (mode == "adaptive") {
              // a run of its own: the same samples, stopped as soon as the majority is settled
              auto got = co_await fusion::gather(members, std::span(&sampled, 1),
                                                 fusion::adaptive_consistency(extract).at_least(0));
              d = fusion::vote_judge<extractor_fn>{extract}.pick(got.candidates);
              if (d.chosen) d.answer = got.candidates[*d.chosen].text;
              extra_tokens = tokens_of(got.candidates);
              all_tokens += extra_tokens;
            }
            const double judge_seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
            auto& t = mode_tally[mode];
            const std::string answer = d.chosen && mode != "merge" && mode != "adaptive" ? pool[*d.chosen].text : d.answer;
            t.correct += (d.chosen || !d.answer.empty()) && is_correct(mode == "debate" ? d.answer : answer, q.answer);
            if (mode == "adaptive") {
              t.tokens += extra_tokens;
              t.seconds += judge_seconds;
            } else {
              t.tokens += pool_tokens;
              t.seconds += pool_seconds + judge_seconds + extra_seconds;
            }
          }
          for (std::size_t k = 1; k <= samples; ++k) {
            const auto subset = first_k(k);
            const auto v = fusion::vote_judge<extractor_fn>{extract}.pick(subset);
            vote_at[k - 1] += v.chosen && is_correct(subset[*v.chosen].text, q.answer);
            if (verified) {  // the verifier's scores, restricted to the first k samples
              std::optional<std::size_t> best;
              for (std::size_t i = 0; i < pool.size(); ++i) {
                if (pool[i].sample >= k || pool[i].status != fusion::member_status::ok) continue;
                if (!best || verified->scores[i] > verified->scores[*best]) best = i;
              }
              verifier_at[k - 1] += best && is_correct(pool[*best].text, q.answer);
            }
          }
          if (dump) {
            for (std::size_t i = 0; i < pool.size(); ++i) {
              json entry = describe(pool[i]);
              if (verified) entry["verifier"] = verified->scores[i];
              record["samples"].push_back(std::move(entry));
            }
            dump_file << record.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
          }
          bar.show(qi + 1, questions.size(), all_tokens);
        }
      },
      [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);

  const double nq = static_cast<double>(questions.size());
  json out;
  out["questions"] = questions.size();
  out["samples_per_member"] = samples;
  out["temperature"] = temp;
  json members_json = json::array();
  for (std::size_t m = 0; m < n_members; ++m) {
    const auto& t = member_tally[m];
    members_json.push_back({{"name", specs[m].options.name},
                            {"accuracy", t.correct / nq},
                            {"sampled_accuracy", t.sampled_correct / nq},
                            {"tokens_per_question", t.tokens / nq},
                            {"seconds_per_question", t.seconds / nq}});
  }
  out["members"] = members_json;
  json modes_json = json::array();
  for (const auto& mode : mode_list) {
    const auto& t = mode_tally[mode];
    modes_json.push_back({{"mode", mode}, {"accuracy", t.correct / nq}, {"tokens_per_question", t.tokens / nq},
                          {"seconds_per_question", t.seconds / nq}});
  }
  out["modes"] = modes_json;
  out["oracle"] = oracle / nq;
  json curves = json::object();
  std::map<std::string, std::vector<double>> plot_curves;
  for (std::size_t k = 0; k < samples; ++k) {
    plot_curves["vote"].push_back(vote_at[k] / nq);
    if (mode_tally.count("verifier")) plot_curves["verifier"].push_back(verifier_at[k] / nq);
  }
  for (const auto& [label, ys] : plot_curves) curves[label] = ys;
  out["accuracy_by_samples"] = curves;

  if (json_out) {
    std::cout << out.dump(2) << "\n";
  } else {
    std::printf("%zu questions, %zu samples per member at temperature %.2f, answers compared as %s\n\n", questions.size(),
                samples, temp, extract_kind.c_str());
    std::printf("| | accuracy | sampled | tokens / question | seconds / question |\n|---|---:|---:|---:|---:|\n");
    for (const auto& m : members_json) {
      std::printf("| %s (greedy) | %.1f %% | %.1f %% | %.1f | %.4f |\n", m["name"].get<std::string>().c_str(),
                  100 * m["accuracy"].get<double>(), 100 * m["sampled_accuracy"].get<double>(),
                  m["tokens_per_question"].get<double>(), m["seconds_per_question"].get<double>());
    }
    for (const auto& m : modes_json) {
      std::printf("| mode %s | %.1f %% | | %.1f | %.4f |\n", m["mode"].get<std::string>().c_str(), 100 * m["accuracy"].get<double>(),
                  m["tokens_per_question"].get<double>(), m["seconds_per_question"].get<double>());
    }
    std::printf("| oracle (any sample right) | %.1f %% | | | |\n", 100 * oracle / nq);
  }
  if (plot) {
    std::vector<std::pair<std::string, double>> bars;
    for (const auto& m : members_json) bars.emplace_back(m["name"].get<std::string>(), m["accuracy"].get<double>());
    for (const auto& m : modes_json) bars.emplace_back("mode " + m["mode"].get<std::string>(), m["accuracy"].get<double>());
    bars.emplace_back("oracle pass@K", oracle / nq);
    write_plot(*plot, bars, plot_curves);
  }
  return 0;
}

const chorus_cli::registration eval_command{
    "eval", "accuracy of each member alone and of each fusion mode on questions with known answers",
    "--data FILE.jsonl --member SPEC [--member SPEC ...] [--judge J.gguf] [--verifier V.gguf] [--samples K] [--temp T] "
    "[--seed S] [--mode vote,confidence,agreement,verifier,verifier-vote,verifier-agreement,vote-agreement,best-of,merge,debate,adaptive,vote@NAME] "
    "[-n N] [--limit Q] [--extract number|letter|text] [--threads N] [--plot FILE.svg] [--dump FILE.jsonl] [--json]\n"
    "  FILE: one JSON object per line with \"prompt\" (fed as is) and \"answer\"; SPEC as for chorus fuse "
    "(name=... names a member for vote@NAME)",
    &run};

}  // namespace cmd_eval
