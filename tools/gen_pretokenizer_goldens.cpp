// Writes the synthetic byte-level BPE vocabularies of tests/synthetic_bpe_vocab.hpp, one per
// tokenizer.ggml.pre name, for tools/gen_pretokenizer_goldens.py to run the reference on.
//   g++ -std=c++20 -O1 -Iinclude -Itests tools/gen_pretokenizer_goldens.cpp -o /tmp/gen_vocab
//   /tmp/gen_vocab OUT_DIR NAME...      (writes OUT_DIR/NAME.gguf)
#include <chorus/chorus.hpp>

#include <cstdio>
#include <filesystem>

#include "synthetic_bpe_vocab.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s OUT_DIR PRE_NAME...\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  for (int i = 2; i < argc; ++i) chorus_test::synthetic_bpe::write(dir / (std::string(argv[i]) + ".gguf"), argv[i]);
  return 0;
}
