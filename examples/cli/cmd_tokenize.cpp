// chorus tokenize — the token ids and pieces of a text.
#include <chorus/chorus.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "command.hpp"
#include "common.hpp"

namespace cmd_tokenize {

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments a(args, {"json", "no-bos", "special"});
  const auto model_path = a.require("model");
  const auto text_arg = a.get("text");
  const auto file_arg = a.get("file");
  const bool json = a.flag("json"), no_bos = a.flag("no-bos"), special = a.flag("special");
  a.reject_unknown();
  if (text_arg.has_value() == file_arg.has_value()) throw chorus_cli::usage_error("give exactly one of --text and --file");
  std::string text;
  if (text_arg) {
    text = *text_arg;
  } else {
    std::ifstream in(*file_arg, std::ios::binary);
    if (!in) throw chorus::error(chorus::errc::file_not_found, "cannot read '" + *file_arg + "'");
    std::stringstream s;
    s << in.rdbuf();
    text = s.str();
  }
  const auto file = chorus::gguf::file::open(model_path);
  const auto tk = chorus::tokenizer::tokenizer::from_gguf(file);
  chorus_cli::warn_about(tk.vocabulary(), model_path);
  const auto ids = tk.encode(text, !no_bos, special);
  if (json) {
    // Pieces are strings: valid UTF-8 as is, other bytes (a byte token's half character) as U+FFFD.
    chorus_cli::json pieces = chorus_cli::json::array();
    for (const auto id : ids) pieces.push_back(tk.token_to_piece(id, true));
    std::cout << chorus_cli::dump({{"ids", ids}, {"pieces", std::move(pieces)}}) << "\n";
  } else {
    for (const auto id : ids) {
      const std::string piece = chorus_cli::dump(tk.token_to_piece(id, true));  // quoted, escapes visible
      std::printf("%6d %s\n", id, piece.c_str());
    }
  }
  return 0;
}

const chorus_cli::registration tokenize_command{"tokenize", "print the token ids and pieces of a text",
                                                "--model M.gguf (--text T | --file F) [--no-bos] [--special] [--json]",
                                                &run};

}  // namespace cmd_tokenize
