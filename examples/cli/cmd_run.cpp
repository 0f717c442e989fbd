// chorus run — generate text from a prompt, or chat, streaming to the terminal.
#include <chorus/chorus.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "command.hpp"
#include "common.hpp"

namespace cmd_run {

void print_timings(const chorus::generate::language_model& model, const chorus::generate::result& result) {
  std::fprintf(stderr, "\n[load %.1f ms | prompt %zu tokens, %.1f tok/s | generated %zu tokens, %.1f tok/s | first token %.1f ms | stop: %s]\n",
               model.load_ms(), result.time.prompt_tokens, result.time.prompt_tokens_per_second(),
               result.time.generated_tokens, result.time.generation_tokens_per_second(),
               result.time.time_to_first_token_ms, std::string(chorus::generate::to_string(result.reason)).c_str());
}

void print_json(const chorus::generate::result& result) {
  const chorus_cli::json out = {{"prompt_ids", result.prompt_ids}, {"ids", result.ids}, {"text", result.text}};
  std::cout << chorus_cli::dump(out) << "\n";
}


// --tools: the specs as chorus's template JSON (for the prompt) and as nlohmann JSON (schemas).
struct tool_set {
  std::vector<chorus::sample::ordered_json> for_template;
  std::vector<chorus::sample::ordered_json> specs;
  chorus::sample::tool_choice choice;
};

tool_set read_tools(const std::string& path, const std::string& choice) {
  tool_set t;
  for (const auto& spec : chorus_cli::read_tool_specs(path)) {
    t.specs.push_back(spec);
    t.for_template.push_back(spec);
  }
  t.choice = chorus::sample::tool_choice::parse(choice);
  return t;
}

// The calls in a reply, as one JSON line in the shape of OpenAI's message (arguments as a JSON
// string), with the finish reason and the calls that could not be read.
chorus::sample::ordered_json reply_json(const chorus::tokenizer::parsed_reply& reply) {
  chorus::sample::ordered_json out;
  out["finish_reason"] = reply.finish_reason();
  out["content"] = reply.content;
  out["tool_calls"] = chorus::sample::ordered_json::array();
  for (const auto& call : reply.calls) {
    out["tool_calls"].push_back({{"id", call.id}, {"type", "function"}, {"function", {{"name", call.name}, {"arguments", call.arguments.dump()}}}});
  }
  if (!reply.malformed.empty()) {
    out["malformed_tool_calls"] = chorus::sample::ordered_json::array();
    for (const auto& m : reply.malformed) out["malformed_tool_calls"].push_back({{"raw", m.raw}, {"reason", m.reason}});
  }
  return out;
}

// --chat: one user turn per line of standard input (or the single --prompt), answered in the
// model's chat format, the conversation kept (and its KV cache reused) from turn to turn. With
// --tools, each reply's calls are parsed and printed as a JSON line.
template <class Session>
int chat(Session& session, const chorus::generate::options& opts, const std::optional<std::string>& system,
         const std::optional<std::string>& single_prompt, bool json, bool quiet, const std::optional<tool_set>& tools) {
  std::vector<chorus::tokenizer::chat_message> conversation;
  if (system) conversation.push_back({"system", *system});
  const bool interactive = !single_prompt && !json && isatty(STDIN_FILENO);
  if (!quiet) {
    std::fprintf(stderr, "[chat format: %s%s]\n", std::string(chorus::tokenizer::to_string(session.chat_format())).c_str(),
                 session.model().chat_format().fell_back ? " (the model names none chorus recognises; --chat-template NAME to choose)" : "");
  }
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
    const bool parse_calls = tools && tools->choice.kind != chorus::sample::tool_choice::mode::none;
    if (parse_calls) {
      // with special tokens written: "[TOOL_CALLS]" is a control token in real Mistral vocabularies
      const auto reply = chorus::tokenizer::parse_tool_calls(session.chat_format(), session.model().tokens().decode(result.ids, true));
      if (!reply.calls.empty()) {
        conversation.back().content = reply.content;
        conversation.back().tool_calls = chorus::tokenizer::to_chat_tool_calls(reply.calls);
      }
      if (!json) std::cout << "\n";
      // a random model's text may hold invalid UTF-8: written as U+FFFD rather than refused
      std::cout << reply_json(reply).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    if (json) {
      print_json(result);
    } else {
      if (!parse_calls) std::cout << "\n";
      if (!quiet) print_timings(session.model(), result);
    }
  }
  return 0;
}

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments a(args, {"json", "special", "chat", "quiet"});
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
  const bool quiet = a.flag("quiet");
  const auto schema_path = a.get("json-schema");
  const auto grammar_path = a.get("grammar");
  const auto tools_path = a.get("tools");
  const auto tool_choice = a.get("tool-choice");
  return chorus_cli::with_kv_type(a, [&](auto kv_element) {
    a.reject_unknown();
    const bool chatting = chat_mode || tools_path.has_value();  // tools go into a chat prompt
    if (!chatting && !prompt) throw chorus_cli::usage_error("give --prompt P, or --chat");
    if (!chatting && (system || format)) throw chorus_cli::usage_error("--system and --chat-template need --chat");
    if (tool_choice && !tools_path) throw chorus_cli::usage_error("--tool-choice needs --tools");
    if (schema_path && grammar_path) throw chorus_cli::usage_error("give --json-schema or --grammar, not both");
    const auto format_kind = format ? std::optional(chorus::tokenizer::chat_template_from_name(*format)) : std::nullopt;
    std::optional<tool_set> tools;
    if (tools_path) tools = read_tools(*tools_path, tool_choice.value_or("auto"));
    if (tools && tools->choice.constrained() && (schema_path || grammar_path)) {
      throw chorus_cli::usage_error("--tool-choice required/NAME constrains the reply already; drop --json-schema/--grammar");
    }
    std::optional<chorus::sample::grammar> grammar;
    if (schema_path) grammar = chorus::sample::compile_json_schema(chorus_cli::read_text_file(*schema_path, "--json-schema"));
    if (grammar_path) grammar = chorus::sample::parse_grammar(chorus_cli::read_text_file(*grammar_path, "--grammar"));

    const auto model = chorus::generate::language_model::load(model_path);
    if (!quiet) chorus_cli::warn_about(model->tokens().vocabulary(), model_path);
    chorus::generate::basic_session<decltype(kv_element)> session(model, {.n_ctx = n_ctx, .threads = threads});
    if (format_kind) session.set_chat_format(*format_kind);
    if (tools && tools->choice.kind != chorus::sample::tool_choice::mode::none) opts.tools = tools->for_template;
    if (tools && tools->choice.constrained()) grammar = chorus::sample::tool_call_grammar(session.chat_format(), tools->specs, tools->choice);
    if (grammar) {
      opts.constraint = std::make_shared<chorus::sample::grammar_constraint>(
          std::make_shared<const chorus::sample::grammar>(std::move(*grammar)), std::make_shared<const chorus::sample::token_index>(model->tokens()),
          model->tokens());
    }
    if (chatting) return chat(session, opts, system, prompt, json, quiet, tools);
    const auto result = session.complete(*prompt, opts, [&](const chorus::generate::token_event& e) {
      if (!json) std::cout << e.text << std::flush;
      return true;
    });
    if (json) {
      print_json(result);
    } else if (!quiet) {
      print_timings(*model, result);
    } else {
      std::cout << "\n";
    }
    return 0;
  });
}

const chorus_cli::registration run_command{
    "run", "generate text from a prompt, or chat (one turn per input line), streaming it",
    "--model M.gguf (--prompt P | --chat [--prompt P] [--system S] [--chat-template NAME]) [-n N] [--temp T] "
    "[--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--stop STR]... [--special] [--ctx N] "
    "[--threads N] [--kv f16|f32] [--json] [--quiet] [--json-schema S.json | --grammar G.gbnf] "
    "[--tools TOOLS.json [--tool-choice auto|none|required|NAME]]",
    &run};

}  // namespace cmd_run
