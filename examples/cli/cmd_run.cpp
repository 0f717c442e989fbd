// chorus run — generate text from a prompt, streaming to the terminal.
#include <chorus/chorus.hpp>

#include <cstdio>
#include <iostream>

#include "command.hpp"
#include "common.hpp"

namespace {

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments a(args, {"json", "special"});
  const auto model_path = a.require("model");
  const auto prompt = a.require("prompt");
  chorus::generate::options opts;
  opts.max_tokens = a.number<std::int32_t>("n", 128);
  opts.sampling = chorus_cli::sampling_from(a);
  opts.stop = a.get_all("stop");
  opts.parse_special = a.flag("special");
  const auto threads = a.number<std::size_t>("threads", 0);
  const bool json = a.flag("json");
  a.reject_unknown();

  const auto model = chorus::generate::language_model::load(model_path);
  chorus_cli::warn_about(model->tokens().vocabulary(), model_path);
  chorus::generate::session session(model, {.threads = threads});
  const auto result = session.complete(prompt, opts, [&](const chorus::generate::token_event& e) {
    if (!json) {
      std::cout << e.text << std::flush;
    }
    return true;
  });
  if (json) {
    chorus::json::value out;
    chorus::json::array prompt_ids, ids;
    for (auto id : result.prompt_ids) prompt_ids.emplace_back(id);
    for (auto id : result.ids) ids.emplace_back(id);
    out.set("prompt_ids", std::move(prompt_ids));
    out.set("ids", std::move(ids));
    out.set("text", result.text);
    std::cout << chorus::json::dump(out) << "\n";
    return 0;
  }
  std::fprintf(stderr, "\n[load %.1f ms | prompt %zu tokens, %.1f tok/s | generated %zu tokens, %.1f tok/s | first token %.1f ms | stop: %s]\n",
               model->load_ms(), result.time.prompt_tokens, result.time.prompt_tokens_per_second(),
               result.time.generated_tokens, result.time.generation_tokens_per_second(),
               result.time.time_to_first_token_ms, std::string(chorus::generate::to_string(result.reason)).c_str());
  return 0;
}

const chorus_cli::registration run_command{
    "run", "generate text from a prompt, streaming it",
    "--model M.gguf --prompt P [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] "
    "[--seed S] [--stop STR]... [--special] [--threads N] [--json]",
    &run};

}  // namespace
