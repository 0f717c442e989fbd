// chorus chat MODEL — an interactive conversation: one user turn per input line, answers
// streamed, the conversation (and its KV cache) kept from turn to turn, /commands to steer it.
// Piped input works the same (no prompt marker, no colours): `printf 'Hi\n/quit\n' | chorus chat M`.
#include <chorus/inference.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "command.hpp"
#include "common.hpp"
#include "terminal.hpp"

namespace cmd_chat {

using chorus::tokenizer::chat_message;

constexpr std::string_view help_text =
    "commands:\n"
    "  /help            this list\n"
    "  /system [TEXT]   show the system message, or set it (and start over)\n"
    "  /reset           start over (the system message stays)\n"
    "  /undo            forget the last question and its answer\n"
    "  /history         print the conversation so far\n"
    "  /save FILE       write the conversation as JSON\n"
    "  /quit, /exit     leave (so does end of input)\n"
    "A line ending in '\\' continues on the next. Start a message with '//' to send one that begins with '/'.\n"
    "On a terminal, Ctrl-C stops an answer; at the prompt it leaves.\n";

// Ctrl-C: during an answer it stops the answer; at the prompt it ends the program (exit 130).
std::atomic<bool> interrupted = false;
void on_interrupt(int) { interrupted.store(true); }

void catch_interrupts() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: a read at the prompt returns, so that Ctrl-C leaves
  sigaction(SIGINT, &action, nullptr);
}

struct chat_settings {
  chorus::generate::options generation;
  std::optional<std::string> system;
  bool quiet = false;
};

template <class Session>
class repl {
 public:
  repl(Session& session, chat_settings settings)
      : session_(session), settings_(std::move(settings)), interactive_(chorus_cli::is_terminal(stdin)),
        out_colours_(chorus_cli::palette::for_stream(stdout)), err_colours_(chorus_cli::palette::for_stream(stderr)) {
    start_over();
  }

  int run() {
    if (interactive_) catch_interrupts();
    if (!settings_.quiet) {
      note("chat format " + std::string(chorus::tokenizer::to_string(session_.chat_format())) +
           (session_.model().chat_format().fell_back ? " (the model names none chorus recognises; --chat-template NAME chooses)" : "") +
           (interactive_ ? "; /help lists the commands" : ""));
    }
    for (;;) {
      const auto line = read_turn();
      if (!line) return interrupted.load() ? 130 : 0;
      if (line->empty()) continue;
      if ((*line)[0] == '/' && !line->starts_with("//")) {
        if (!command(*line)) return 0;
        continue;
      }
      answer(line->starts_with("//") ? line->substr(1) : *line);
    }
  }

 private:
  // One turn of input: a line, or several joined where a line ends in '\'. Nothing at the end
  // of input or on Ctrl-C at the prompt.
  std::optional<std::string> read_turn() {
    std::string turn, line;
    for (;;) {
      if (interactive_) {
        std::fprintf(stderr, "%.*s%s%.*s", static_cast<int>(err_colours_.prompt.size()), err_colours_.prompt.data(),
                     turn.empty() ? "> " : ". ", static_cast<int>(err_colours_.reset.size()), err_colours_.reset.data());
        std::fflush(stderr);
      }
      if (!std::getline(std::cin, line)) {
        if (interactive_) std::fputc('\n', stderr);
        if (turn.empty() || interrupted.load()) return std::nullopt;
        return turn;
      }
      if (line.ends_with('\\')) {
        turn += line.substr(0, line.size() - 1);
        turn += '\n';
        continue;
      }
      return turn + line;
    }
  }

  // A /command; false for /quit.
  bool command(const std::string& line) {
    const auto space = line.find(' ');
    const std::string name = line.substr(0, space);
    const std::string argument = space == std::string::npos ? "" : line.substr(space + 1);
    if (name == "/quit" || name == "/exit") return false;
    if (name == "/help") {
      std::fputs(help_text.data(), stderr);
    } else if (name == "/reset") {
      start_over();
      note("conversation reset");
    } else if (name == "/system") {
      if (argument.empty()) {
        note(settings_.system ? "system: " + *settings_.system : "no system message");
      } else {
        settings_.system = argument;
        start_over();
        note("system message set; conversation reset");
      }
    } else if (name == "/undo") {
      // The last user turn and everything after it (its answer).
      std::size_t last_user = conversation_.size();
      for (std::size_t i = conversation_.size(); i-- > 0;) {
        if (conversation_[i].role == "user") {
          last_user = i;
          break;
        }
      }
      if (last_user == conversation_.size()) {
        note("nothing to undo");
      } else {
        conversation_.resize(last_user);
        note("last exchange forgotten");
      }
    } else if (name == "/history") {
      for (const auto& m : conversation_) std::printf("%s: %s\n", m.role.c_str(), m.content.c_str());
      std::fflush(stdout);
    } else if (name == "/save") {
      if (argument.empty()) {
        error("/save needs a file name");
      } else {
        save(argument);
      }
    } else {
      error("unknown command " + name + "; /help lists the commands");
    }
    return true;
  }

  void answer(std::string question) {
    conversation_.push_back({"user", std::move(question)});
    try {
      // A long prompt (a pasted document, a long conversation after /system) shows its
      // evaluation; short ones are evaluated by chat() directly.
      std::size_t prompt_tokens = 0;
      const auto prefill_start = std::chrono::steady_clock::now();
      {
        chorus_cli::progress_bar bar("prompt tokens", !settings_.quiet);
        prompt_tokens = session_.prefill_chat(conversation_, settings_.generation, [&](std::size_t done, std::size_t total) {
          if (total > 2 * Session::prefill_step) bar.update(done, total);
        });
      }
      const double prefill_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - prefill_start).count();
      interrupted.store(false);
      std::fwrite(out_colours_.answer.data(), 1, out_colours_.answer.size(), stdout);
      const auto result = session_.chat(conversation_, settings_.generation, [&](const chorus::generate::token_event& e) {
        std::fwrite(e.text.data(), 1, e.text.size(), stdout);
        std::fflush(stdout);
        return !interrupted.load();
      });
      std::fwrite(out_colours_.reset.data(), 1, out_colours_.reset.size(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
      interrupted.store(false);
      conversation_.push_back({"assistant", result.text});
      if (!settings_.quiet) {
        char line[160];
        // The prompt was evaluated by prefill_chat() (chat() evaluated its last token again).
        std::snprintf(line, sizeof line, "%zu prompt tokens at %.0f tok/s, %zu generated at %.1f tok/s, stop: %s",
                      prompt_tokens, prefill_ms > 0 ? 1000.0 * static_cast<double>(prompt_tokens) / prefill_ms : 0.0,
                      result.time.generated_tokens, result.time.generation_tokens_per_second(),
                      std::string(chorus::generate::to_string(result.reason)).c_str());
        note(line);
      }
    } catch (const chorus::error& e) {
      // The conversation stays as it was (a full context: /undo or /reset makes room).
      conversation_.pop_back();
      error(std::string(e.what()) + (e.kind() == chorus::errc::out_of_range ? " (/undo or /reset makes room)" : ""));
    }
  }

  void save(const std::string& path) {
    chorus_cli::json messages = chorus_cli::json::array();
    for (const auto& m : conversation_) messages.push_back({{"role", m.role}, {"content", m.content}});
    const chorus_cli::json document = {{"chat_format", chorus::tokenizer::to_string(session_.chat_format())},
                                       {"messages", std::move(messages)}};
    std::ofstream file(path, std::ios::binary);
    file << chorus_cli::dump(document, 2) << "\n";
    if (!file) {
      error("cannot write '" + path + "'");
      return;
    }
    note("saved " + std::to_string(conversation_.size()) + " messages to " + path);
  }

  void start_over() {
    conversation_.clear();
    if (settings_.system) conversation_.push_back({"system", *settings_.system});
  }

  void note(const std::string& text) const {
    if (settings_.quiet) return;
    std::fprintf(stderr, "%.*s[%s]%.*s\n", static_cast<int>(err_colours_.note.size()), err_colours_.note.data(), text.c_str(),
                 static_cast<int>(err_colours_.reset.size()), err_colours_.reset.data());
  }
  void error(const std::string& text) const {
    std::fprintf(stderr, "%.*serror:%.*s %s\n", static_cast<int>(err_colours_.error.size()), err_colours_.error.data(),
                 static_cast<int>(err_colours_.reset.size()), err_colours_.reset.data(), text.c_str());
  }

  Session& session_;
  chat_settings settings_;
  bool interactive_;
  chorus_cli::palette out_colours_, err_colours_;
  std::vector<chat_message> conversation_;
};

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments a(args, {"quiet"});
  std::string model_path;
  if (const auto named = a.get("model")) {
    model_path = *named;
  } else if (a.positional().size() == 1) {
    model_path = a.positional()[0];
  } else {
    throw chorus_cli::usage_error(a.positional().empty() ? "give the model: chorus chat MODEL.gguf" : "one model only");
  }
  chat_settings settings;
  settings.system = a.get("system");
  settings.quiet = a.flag("quiet");
  const auto format = a.get("chat-template");
  settings.generation.max_tokens = a.number<std::int32_t>("n", 512);
  settings.generation.sampling = chorus_cli::sampling_from(a);
  settings.generation.stop = a.get_all("stop");
  const auto threads = a.number<std::size_t>("threads", 0);
  const auto n_ctx = a.number<std::uint32_t>("ctx", 0);
  return chorus_cli::with_kv_type(a, [&](auto kv_element) {
    a.reject_unknown();
    const auto format_kind = format ? std::optional(chorus::tokenizer::chat_template_from_name(*format)) : std::nullopt;
    const auto model = chorus::generate::language_model::load(model_path);
    if (!settings.quiet) chorus_cli::warn_about(model->tokens().vocabulary(), model_path);
    chorus::generate::basic_session<decltype(kv_element)> session(model, {.n_ctx = n_ctx, .threads = threads});
    if (format_kind) session.set_chat_format(*format_kind);
    return repl(session, settings).run();
  });
}

const chorus_cli::registration chat_command{
    "chat", "talk with a model: a conversation on standard input, /commands, streamed answers",
    "MODEL.gguf [--system S] [--chat-template NAME] [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] "
    "[--repeat-penalty R] [--seed S] [--stop STR]... [--ctx N] [--threads N] [--kv f16|f32] [--quiet]",
    &run};

}  // namespace cmd_chat
