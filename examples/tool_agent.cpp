// tool_agent — three models must agree on a tool call before the action runs.
//   tool_agent [--agree K] [--chat FORMAT] MODEL.gguf [MODEL2.gguf MODEL3.gguf]
// With one file, three samples of it (seeds 1, 2, 3) are the panel. Each member writes its call
// under the tool grammar of its chat format (so the call always parses), the vote compares the
// calls in canonical JSON (key order and spacing do not count), and nothing happens unless K of
// them (default: all three) are the same call.
#include <chorus/chorus.hpp>  // fusion: members, judges, fuse(); Boost.Asio for the panel

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace fusion = chorus::fusion;

// The action the agent may take: it runs only on an agreed call.
void move_player(const std::string& direction) { std::printf("ACTION: the player moves %s\n", direction.c_str()); }

const char* move_tool = R"({"type": "function", "function": {
  "name": "move", "description": "Move the player one step.",
  "parameters": {"type": "object", "properties": {"direction": {"type": "string", "enum": ["north", "south"]}},
                 "required": ["direction"]}}})";

int main(int argc, char** argv) try {
  std::size_t agree = 3;
  std::optional<chorus::tokenizer::chat_template_kind> chat;  // for a model whose template names none
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--agree" && i + 1 < argc) agree = std::stoul(argv[++i]);
    else if (arg == "--chat" && i + 1 < argc) chat = chorus::tokenizer::chat_template_from_name(argv[++i]);
    else files.push_back(arg);
  }
  if (files.empty() || files.size() == 2 || files.size() > 3 || agree < 1 || agree > 3) {
    return std::fprintf(stderr, "usage: %s [--agree 1..3] [--chat FORMAT] MODEL.gguf [MODEL2.gguf MODEL3.gguf]\n", argv[0]), 2;
  }

  // One batched engine per model file; the members of one file decode together.
  std::vector<std::shared_ptr<fusion::local_model>> models;
  for (const auto& f : files) {
    models.push_back(std::make_shared<fusion::local_model>(chorus::generate::language_model::load(f),
                                                           fusion::local_model_options{.n_ctx = 1024, .parallel = 3}));
  }
  std::vector<fusion::any_member> panel;
  for (std::uint64_t i = 0; i < 3; ++i) {
    fusion::local_member_options o;
    o.name = files.size() == 3 ? files[i] : "seed" + std::to_string(i + 1);
    o.generation.sampling.seed = i + 1;
    o.generation.sampling.temperature = 0.8f;
    o.generation.max_tokens = 300;
    o.chat_format = chat;
    panel.push_back(std::make_shared<fusion::local_member>(models[files.size() == 3 ? i : 0], o));
  }

  auto request = fusion::request::from_prompt("The exit is to the north. Move the player towards it.", "", 300);
  request.tools = {fusion::json::parse(move_tool)};
  request.tool_choice = "required";  // every member must answer with a call

  // Vote over the calls themselves; fewer than `agree` identical calls decide nothing.
  fusion::vote_judge<std::optional<std::string> (*)(const fusion::candidate&)> judge{&fusion::extract::tool_calls};
  judge.required_agreement = agree;

  boost::asio::io_context io;
  auto done = boost::asio::co_spawn(io, fusion::fuse(panel, judge, request), boost::asio::use_future);
  io.run();
  const fusion::report report = done.get();

  for (const auto& c : report.members) {
    std::printf("%-8s %-9s %s\n", c.member.c_str(), std::string(to_string(c.status)).c_str(),
                c.tool_calls.empty() ? c.error.c_str() : (c.tool_calls[0].name + c.tool_calls[0].arguments).c_str());
  }
  if (!report.verdict.chosen) {  // no agreement: the agent does nothing and says why
    std::printf("no agreement, no action: %s\n", report.verdict.rationale.c_str());
    return 3;
  }
  const auto& call = report.verdict.tool_calls.at(0);
  std::printf("agreed on %s%s\n", call.name.c_str(), call.arguments.c_str());
  move_player(fusion::json::parse(call.arguments).at("direction").get<std::string>());
} catch (const chorus::error& e) {  // a bad file, an unknown chat format, ...
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
