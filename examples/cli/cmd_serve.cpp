// chorus serve — an OpenAI-compatible HTTP server for local models and fusions. It listens at
// once (GET /health answers 503 while the models load), then serves POST /v1/chat/completions
// for each --model (continuous batching per model) and each --fusion as "fusion/NAME", until
// SIGINT or SIGTERM. See docs/server.md.
// The tool is built with CHORUS_NETWORK (examples/CMakeLists.txt): <chorus/chorus.hpp> then has
// the remote members and the server, from the modular headers and from the single header alike.
#if !defined(CHORUS_NETWORK)
#error "the chorus tool is compiled with CHORUS_NETWORK defined"
#endif
#include <chorus/chorus.hpp>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <pthread.h>
#include <sys/resource.h>

#include "command.hpp"
#include "common.hpp"
#include "panel.hpp"

namespace cmd_serve {

using namespace chorus;

// "--model NAME=path" or "--model path" (name: the file's stem).
struct model_arg {
  std::string name;
  std::string path;
};

model_arg parse_model(const std::string& text) {
  const auto eq = text.find('=');
  if (eq != std::string::npos && text.find(".gguf") != std::string::npos && eq < text.find(".gguf")) {
    model_arg m{text.substr(0, eq), text.substr(eq + 1)};
    if (m.name.empty() || m.path.empty()) throw chorus_cli::usage_error("--model '" + text + "': write NAME=path or path");
    return m;
  }
  return {std::filesystem::path(text).stem().string(), text};
}

// "--fusion NAME=mode=vote;member=A;member=B;judge=J;samples=2;quorum=1;deadline-ms=5000;vote=number;rounds=2"
struct fusion_arg {
  std::string name;
  std::string spec;
  std::string mode = "confidence";
  std::vector<std::string> members;
  std::optional<std::string> judge;
  std::size_t samples = 1;
  std::size_t quorum = 0;
  long deadline_ms = 0;
  std::string vote = "text";
  std::string agree;  // "all" or a count
  int rounds = 2;
};

fusion_arg parse_fusion(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw chorus_cli::usage_error("--fusion '" + text + "': write NAME=SPEC (docs/server.md)");
  fusion_arg f;
  f.name = text.substr(0, eq);
  f.spec = text.substr(eq + 1);
  std::size_t pos = 0;
  const std::string& s = f.spec;
  while (pos <= s.size()) {
    const auto semi = s.find(';', pos);
    const std::string item = s.substr(pos, semi == std::string::npos ? std::string::npos : semi - pos);
    pos = semi == std::string::npos ? s.size() + 1 : semi + 1;
    if (item.empty()) continue;
    const auto e = item.find('=');
    if (e == std::string::npos) throw chorus_cli::usage_error("--fusion " + f.name + ": '" + item + "' needs key=value");
    const std::string key = item.substr(0, e), value = item.substr(e + 1);
    if (key == "mode") f.mode = value;
    else if (key == "member") f.members.push_back(value);
    else if (key == "judge") f.judge = value;
    else if (key == "samples") f.samples = chorus_cli::arguments::parse_number<std::size_t>(value, "fusion samples");
    else if (key == "quorum") f.quorum = chorus_cli::arguments::parse_number<std::size_t>(value, "fusion quorum");
    else if (key == "deadline-ms") f.deadline_ms = chorus_cli::arguments::parse_number<long>(value, "fusion deadline-ms");
    else if (key == "vote") f.vote = value;
    else if (key == "agree") f.agree = value;
    else if (key == "rounds") f.rounds = chorus_cli::arguments::parse_number<int>(value, "fusion rounds");
    else throw chorus_cli::usage_error("--fusion " + f.name + ": unknown key '" + key + "' (mode, member, judge, samples, quorum, deadline-ms, vote, agree, rounds)");
  }
  if (f.members.empty()) throw chorus_cli::usage_error("--fusion " + f.name + ": give at least one member=...");
  return f;
}

// Lets a fusion name a served model instead of its file: "stories:seed=2" -> "<path>:seed=2".
std::string resolve_served(const std::string& member, const std::map<std::string, std::string>& served) {
  if (member.starts_with("http://") || member.starts_with("https://")) return member;
  const auto colon = member.find(':');
  const std::string head = member.substr(0, colon);
  const auto it = served.find(head);
  if (it == served.end()) return member;
  return colon == std::string::npos ? it->second : it->second + member.substr(colon);
}

std::string read_key_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw chorus_cli::usage_error("--api-key-file " + path + ": cannot read it");
  std::string key;
  std::getline(in, key);
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ' || key.back() == '\n')) key.pop_back();
  if (key.empty()) throw chorus_cli::usage_error("--api-key-file " + path + ": the first line is empty");
  return key;
}

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments a(args, {"quiet"});
  const auto model_texts = a.get_all("model");
  const auto fusion_texts = a.get_all("fusion");
  server::server_options o;
  o.host = a.get("host").value_or("127.0.0.1");
  o.port = a.number<std::uint16_t>("port", 8080);
  if (auto key = a.get("api-key")) o.api_keys.push_back(*key);
  if (auto file = a.get("api-key-file")) o.api_keys.push_back(read_key_file(*file));
  o.tls_cert = a.get("tls-cert").value_or("");
  o.tls_key = a.get("tls-key").value_or("");
  o.max_body = a.number<std::size_t>("max-body", o.max_body);
  o.header_timeout = std::chrono::milliseconds(a.number<long>("timeout-header-ms", o.header_timeout.count()));
  o.body_timeout = std::chrono::milliseconds(a.number<long>("timeout-body-ms", o.body_timeout.count()));
  o.write_timeout = std::chrono::milliseconds(a.number<long>("timeout-write-ms", o.write_timeout.count()));
  o.request_timeout = std::chrono::milliseconds(a.number<long>("timeout-request-ms", 0));
  o.max_connections = a.number<std::size_t>("max-connections", o.max_connections);
  o.max_queued = a.number<std::size_t>("max-queued", o.max_queued);
  o.max_fusions = a.number<std::size_t>("max-fusions", o.max_fusions);
  o.io_threads = a.number<std::size_t>("io-threads", o.io_threads);
  const auto parallel = a.number<std::size_t>("parallel", 8);
  const auto threads = a.number<std::size_t>("threads", 0);
  const auto n_ctx = a.number<std::uint32_t>("ctx", 1024);
  const auto max_tokens = a.number<std::int32_t>("n", 256);
  const bool quiet = a.flag("quiet");
  const auto sampling = chorus_cli::sampling_from(a);
  a.reject_unknown();
  if (model_texts.empty() && fusion_texts.empty()) throw chorus_cli::usage_error("give at least one --model or --fusion");
  if (parallel == 0 || parallel > 64) throw chorus_cli::usage_error("--parallel must be between 1 and 64");

  std::vector<model_arg> models;
  std::map<std::string, std::string> served_paths;
  for (const auto& t : model_texts) {
    models.push_back(parse_model(t));
    if (!served_paths.emplace(models.back().name, models.back().path).second) {
      throw chorus_cli::usage_error("two --model are named " + models.back().name + " (write NAME=path)");
    }
  }
  std::vector<fusion_arg> fusions;
  for (const auto& t : fusion_texts) fusions.push_back(parse_fusion(t));

  // Signals go to the thread that waits for them below, not to the server's threads.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  // One descriptor per connection: take what the system allows.
  if (rlimit lim{}; getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }

  server::server srv(o);
  const auto port = srv.start();
  std::printf("chorus serve: listening on %s://%s:%u (loading %zu model(s))\n", srv.tls() ? "https" : "http", o.host.c_str(),
              static_cast<unsigned>(port), models.size());
  std::fflush(stdout);

  chorus_cli::panel_builder panel(threads, n_ctx);
  for (const auto& m : models) panel.expect(m.path, parallel);
  struct planned {
    fusion_arg arg;
    std::vector<chorus_cli::member_spec> specs;
    std::optional<std::string> judge_path;
  };
  std::vector<planned> plans;
  for (const auto& f : fusions) {
    planned p{f, {}, {}};
    for (const auto& m : f.members) {
      p.specs.push_back(chorus_cli::parse_member(resolve_served(m, served_paths), sampling, max_tokens));
      if (!p.specs.back().remote) panel.expect(p.specs.back().path, f.samples);
    }
    if (f.judge) {
      p.judge_path = resolve_served(*f.judge, served_paths);
      panel.expect(*p.judge_path, 1);
    }
    plans.push_back(std::move(p));
  }
  int failures = 0;
  for (const auto& m : models) {
    auto local = panel.load(m.path, !quiet);
    if (!local) {
      ++failures;
      continue;
    }
    fusion::local_member_options defaults;
    defaults.generation.sampling = sampling;
    defaults.generation.max_tokens = max_tokens;
    srv.add_model({m.name, local, defaults});
  }
  for (auto& p : plans) {
    fusion::plan plan;
    try {
      plan.mode = fusion::fusion_mode_from(p.arg.mode);
      plan.vote_extractor = fusion::extractor_from(p.arg.vote);
    } catch (const chorus::error& e) {
      throw chorus_cli::usage_error("--fusion " + p.arg.name + ": " + e.what());
    }
    for (const auto& spec : p.specs) plan.members.push_back(panel.member(spec, !quiet));
    if (p.judge_path) plan.judge_model.emplace(panel.judge(*p.judge_path));
    plan.samples = p.arg.samples;
    plan.quorum = p.arg.quorum;
    if (p.arg.deadline_ms > 0) plan.deadline = std::chrono::milliseconds(p.arg.deadline_ms);
    plan.rounds = p.arg.rounds;
    if (p.arg.agree == "all") plan.unanimous = true;
    else if (!p.arg.agree.empty()) plan.agree = chorus_cli::arguments::parse_number<std::size_t>(p.arg.agree, "fusion agree");
    try {
      srv.add_fusion({p.arg.name, std::move(plan), p.arg.spec});
    } catch (const chorus::error& e) {
      throw chorus_cli::usage_error("--fusion " + p.arg.name + ": " + e.what());
    }
  }
  if (failures > 0 && static_cast<std::size_t>(failures) == models.size() && fusions.empty()) {
    std::fprintf(stderr, "chorus serve: no model loaded\n");
    return 1;
  }
  srv.set_ready();
  std::printf("chorus serve: ready (%zu model(s), %zu fusion(s))\n", models.size() - static_cast<std::size_t>(failures), fusions.size());
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  if (!quiet) std::fprintf(stderr, "chorus serve: signal %d, stopping\n", signal_number);
  srv.stop();
  return 0;
}

const chorus_cli::registration serve_command{
    "serve", "an OpenAI-compatible HTTP server for models and fusions",
    "--model [NAME=]M.gguf ... [--fusion NAME=mode=M;member=A;member=B;judge=J;samples=K;quorum=Q;deadline-ms=D;vote=V;agree=all|K;rounds=R ...] "
    "[--host 127.0.0.1] [--port 8080] [--api-key KEY | --api-key-file F] [--tls-cert C.pem --tls-key K.pem] [--parallel 8] "
    "[--ctx 1024] [--threads N] [-n 256] [--temp T] [--top-k K] [--top-p P] [--min-p M] [--seed S] [--max-body 1048576] "
    "[--timeout-header-ms 15000] [--timeout-body-ms 30000] [--timeout-write-ms 30000] [--timeout-request-ms 0] "
    "[--max-connections 4096] [--max-queued 64] [--max-fusions 16] [--io-threads 1] [--quiet]\n"
    "  members of a fusion: a served model's NAME[:options], a file M.gguf[:options] or http[s]://HOST:PORT/v1#MODEL[,options]\n"
    "  (chorus fuse --help); routes: GET /health, GET /v1/models, POST /v1/chat/completions, GET /metrics (docs/server.md)",
    &run};

}  // namespace cmd_serve
