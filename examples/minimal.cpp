// minimal — load a model, ask it one question in its chat format, stream the answer.
//   minimal MODEL.gguf ["question"]
#include <chorus/inference.hpp>  // models, tokenizers, sessions; no Boost

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) try {
  if (argc < 2) return std::fprintf(stderr, "usage: %s MODEL.gguf [question]\n", argv[0]), 2;
  // Maps the file (no copy) and reads the tokenizer and chat template from it.
  const auto model = chorus::generate::language_model::load(argv[1]);
  chorus::generate::session session(model);  // one conversation: its KV cache
  const std::vector<chorus::tokenizer::chat_message> chat = {
      {"system", "You are a helpful assistant."},
      {"user", argc > 2 ? argv[2] : "Tell me a short story."},
  };
  chorus::generate::options opts;
  opts.max_tokens = 64;
  // Rendered in the model's own chat format; each piece of text arrives as whole UTF-8 characters.
  session.chat(chat, opts, [](const chorus::generate::token_event& e) {
    std::fwrite(e.text.data(), 1, e.text.size(), stdout);
    return true;  // false would stop here
  });
  std::printf("\n");
} catch (const chorus::error& e) {  // a missing file, a bad model, ...: never an abort
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
