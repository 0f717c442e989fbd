// custom_judge — a judge of your own in a few lines: a game wants an NPC line that fits its
// speech bubble. Four samples of one model answer; the judge keeps the lines that fit, and
// among them the one the model was most sure of (highest mean log-probability per token).
//   custom_judge MODEL.gguf [BUBBLE_CHARS=120]
#include <chorus/chorus.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace fusion = chorus::fusion;

// A judge is any type with name() and decide(): no base class to derive from.
struct fits_the_bubble {
  std::size_t max_chars;

  std::string name() const { return "fits-the-bubble"; }

  boost::asio::awaitable<fusion::decision> decide(const fusion::request&, std::span<const fusion::candidate> candidates) {
    fusion::decision d;
    d.method = name();
    d.scores.assign(candidates.size(), 0.0);
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      const auto& c = candidates[i];
      if (c.status != fusion::member_status::ok || c.text.empty() || c.text.size() > max_chars) continue;
      d.scores[i] = c.mean_logprob;
      if (!d.chosen || c.mean_logprob > candidates[*d.chosen].mean_logprob) d.chosen = i;
    }
    if (d.chosen) {
      d.answer = candidates[*d.chosen].text;
      d.rationale = "the most confident of the lines within " + std::to_string(max_chars) + " characters";
    } else {
      d.rationale = "no line fits in " + std::to_string(max_chars) + " characters";
    }
    co_return d;
  }
};

int main(int argc, char** argv) try {
  if (argc < 2) return std::fprintf(stderr, "usage: %s MODEL.gguf [BUBBLE_CHARS]\n", argv[0]), 2;
  const std::size_t bubble = argc > 2 ? std::stoul(argv[2]) : 120;
  auto model = std::make_shared<fusion::local_model>(chorus::generate::language_model::load(argv[1]),
                                                     fusion::local_model_options{.n_ctx = 256, .parallel = 4});
  std::vector<fusion::any_member> samples;
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    fusion::local_member_options o;
    o.name = "sample" + std::to_string(seed);
    o.generation.sampling.seed = seed;
    o.generation.sampling.temperature = 0.9f;
    o.generation.max_tokens = 16 + 12 * static_cast<std::int32_t>(seed);  // short and long lines
    samples.push_back(std::make_shared<fusion::local_member>(model, o));
  }
  const auto request = fusion::request::from_prompt("The old guard looked at the stranger and said");  // each sample its own length
  fits_the_bubble judge{bubble};

  boost::asio::io_context io;
  auto done = boost::asio::co_spawn(io, fusion::fuse(samples, judge, request), boost::asio::use_future);
  io.run();
  const auto report = done.get();
  for (std::size_t i = 0; i < report.members.size(); ++i) {
    const auto& c = report.members[i];
    std::printf("%s (%zu chars, mean log-probability %.3f)%s\n", c.member.c_str(), c.text.size(), c.mean_logprob,
                report.verdict.chosen == i ? "  <- chosen" : "");
  }
  std::printf("%s\n", report.verdict.rationale.c_str());
  if (report.verdict.chosen) std::printf("NPC: %s\n", report.verdict.answer.c_str());
  return report.verdict.chosen ? 0 : 3;
} catch (const chorus::error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
