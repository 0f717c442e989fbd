// chorus run — generate text from a prompt, or chat, streaming to the terminal.
#include <chorus/chorus.hpp>

#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include "command.hpp"
#include "common.hpp"

namespace {

void print_timings(const chorus::generate::language_model& model, const chorus::generate::result& result) {
  std::fprintf(stderr, "\n[load %.1f ms | prompt %zu tokens, %.1f tok/s | generated %zu tokens, %.1f tok/s | first token %.1f ms | stop: %s]\n",
               model.load_ms(), result.time.prompt_tokens, result.time.prompt_tokens_per_second(),
               result.time.generated_tokens, result.time.generation_tokens_per_second(),
               result.time.time_to_first_token_ms, std::string(chorus::generate::to_string(result.reason)).c_str());
}

void print_json(const chorus::generate::result& result) {
  chorus::json::value out;
  chorus::json::array prompt_ids, ids;
  for (auto id : result.prompt_ids) prompt_ids.emplace_back(id);
  for (auto id : result.ids) ids.emplace_back(id);
  out.set("prompt_ids", std::move(prompt_ids));
  out.set("ids", std::move(ids));
  out.set("text", result.text);
  std::cout << chorus::json::dump(out) << "\n";
}

// --chat: one user turn per line of standard input (or the single --prompt), answered in the
// model's chat format, the conversation kept (and its KV cache reused) from turn to turn.
template <class Session>
int chat(Session& session, const chorus::generate::options& opts, const std::optional<std::string>& system,
         const std::optional<std::string>& single_prompt, bool json) {
  std::vector<chorus::tokenizer::chat_message> conversation;
  if (system) conversation.push_back({"system", *system});
  const bool interactive = !single_prompt && !json && isatty(STDIN_FILENO);
  std::fprintf(stderr, "[chat format: %s%s]\n", std::string(chorus::tokenizer::to_string(session.chat_format())).c_str(),
               session.model().chat_format().fell_back ? " (the model names none chorus recognises; --chat-template NAME to choose)" : "");
  std::string line;
  for (;;) {
    if (single_prompt) {
      if (!conversation.empty() && conversation.back().role == "assistant") break;
      line = *single_prompt;
    } else {
      if (interactive) std::fputs("> ", stderr);
      if (!std::getline(std::cin, line)) break;
      if (line.empty()) continue;
    }
    conversation.push_back({"user", line});
    const auto result = session.chat(conversation, opts, [&](const chorus::generate::token_event& e) {
      if (!json) std::cout << e.text << std::flush;
      return true;
    });
    conversation.push_back({"assistant", result.text});
    if (json) {
      print_json(result);
    } else {
      std::cout << "\n";
      print_timings(session.model(), result);
    }
  }
  return 0;
}

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments a(args, {"json", "special", "chat"});
  const auto model_path = a.require("model");
  const bool chat_mode = a.flag("chat");
  const auto prompt = a.get("prompt");
  const auto system = a.get("system");
  const auto format = a.get("chat-template");
  chorus::generate::options opts;
  opts.max_tokens = a.number<std::int32_t>("n", chat_mode ? 512 : 128);
  opts.sampling = chorus_cli::sampling_from(a);
  opts.stop = a.get_all("stop");
  opts.parse_special = a.flag("special");
  const auto threads = a.number<std::size_t>("threads", 0);
  const auto n_ctx = a.number<std::uint32_t>("ctx", 0);
  const bool json = a.flag("json");
  return chorus_cli::with_kv_type(a, [&](auto kv_element) {
    a.reject_unknown();
    if (!chat_mode && !prompt) throw chorus_cli::usage_error("give --prompt P, or --chat");
    if (!chat_mode && (system || format)) throw chorus_cli::usage_error("--system and --chat-template need --chat");
    const auto format_kind = format ? std::optional(chorus::tokenizer::chat_template_from_name(*format)) : std::nullopt;

    const auto model = chorus::generate::language_model::load(model_path);
    chorus_cli::warn_about(model->tokens().vocabulary(), model_path);
    chorus::generate::basic_session<decltype(kv_element)> session(model, {.n_ctx = n_ctx, .threads = threads});
    if (chat_mode) {
      if (format_kind) session.set_chat_format(*format_kind);
      return chat(session, opts, system, prompt, json);
    }
    const auto result = session.complete(*prompt, opts, [&](const chorus::generate::token_event& e) {
      if (!json) std::cout << e.text << std::flush;
      return true;
    });
    if (json) {
      print_json(result);
    } else {
      print_timings(*model, result);
    }
    return 0;
  });
}

const chorus_cli::registration run_command{
    "run", "generate text from a prompt, or chat (one turn per input line), streaming it",
    "--model M.gguf (--prompt P | --chat [--prompt P] [--system S] [--chat-template NAME]) [-n N] [--temp T] "
    "[--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--stop STR]... [--special] [--ctx N] "
    "[--threads N] [--kv f16|f32] [--json]",
    &run};

}  // namespace
