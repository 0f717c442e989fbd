// Compile-time probe (bench/compile_time.sh): what a program that runs one model compiles.
// Includes the inference-only header and runs one generation.
#include <chorus/inference.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const auto model = chorus::generate::language_model::load(argv[1]);
  chorus::generate::session session(model);
  chorus::generate::options opts;
  opts.max_tokens = 8;
  const auto result = session.complete("Once upon a time", opts);
  std::printf("%s\n", result.text.c_str());
}
