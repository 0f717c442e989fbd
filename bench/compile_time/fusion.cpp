// Compile-time probe (bench/compile_time.sh): what a program that fuses compiles. Includes the
// full header and runs one fusion of three members (docs/fusion.md).
#include <chorus/chorus.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>

namespace fusion = chorus::fusion;

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  boost::asio::io_context io;
  // one batched engine: the three members decode together
  const auto model = std::make_shared<fusion::local_model>(chorus::generate::language_model::load(argv[1]));
  std::vector<fusion::any_member> members;
  for (std::uint64_t seed : {1, 2, 3}) {
    fusion::local_member_options o;
    o.generation.sampling.seed = seed;
    o.generation.max_tokens = 8;
    members.emplace_back(std::make_shared<fusion::local_member>(model, o));
  }
  fusion::confidence_judge judge;
  boost::asio::co_spawn(io, [&]() -> boost::asio::awaitable<void> {
    const auto question = fusion::request::from_prompt("Once upon a time");
    const fusion::report r = co_await fusion::fuse(members, judge, question, fusion::policy::all());
    std::printf("%s\n", r.verdict.answer.c_str());
  }, boost::asio::detached);
  io.run();
}
