// Tests of model/: the forward pass against llama.cpp's logits for every shipped model and
// prompt (../shared/golden/logits), teacher-forced generation, the KV cache and load errors.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <unistd.h>

#include "derived_models.hpp"
#include "test_support.hpp"

namespace {

using namespace chorus;
using json = nlohmann::json;  // golden files: order of members does not matter

json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

using chorus_test::ids_of;

// Tolerance on the recorded top-k logits (golden README: llama.cpp quantizes activations to
// 8 bits, so a correct implementation differs by up to a logit or two on quantized models).
double tolerance_for(const std::string& model) {
  if (model == "stories260K") return 0.1;
  if (model.ends_with("F16")) return 0.1;
  if (model == "tiny-llama-bpe-Q4_K_M") return 3.0;
  if (model.find("_K") != std::string::npos) return 2.0;
  // llama-quantize's IQ4 files are mixes like the K-quant ones (attn_v Q5_K, output Q6_K).
  if (model.find("-IQ4_") != std::string::npos) return 2.0;
  return 1.5;
}
constexpr double argmax_margin = 1.5;  // arg-max must agree where the golden top-1/top-2 gap is at least this

std::int32_t argmax(std::span<const float> logits) {
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

struct golden_case {
  std::string model;   // file stem
  std::filesystem::path file;
};

// The model file of a golden case: a shipped model, a file of tests/data/models (quantized by
// llama.cpp's llama-quantize into formats ../shared lacks), or one derived from a shipped model
// by tests/derived_models.hpp ("<variant>-of-<shipped stem>"), written once per test run.
std::filesystem::path model_file_of(const std::string& stem) {
  if (const auto committed = chorus_test::test_data_dir() / "models" / (stem + ".gguf"); std::filesystem::exists(committed)) {
    return committed;
  }
  const auto of = stem.find("-of-");
  if (of == std::string::npos) return chorus_test::model_path(stem + ".gguf");
  const std::string variant = stem.substr(0, of);
  const auto base = chorus_test::model_path(stem.substr(of + 4) + ".gguf");
  static std::mutex mutex;
  static std::map<std::string, std::filesystem::path> written;
  const std::lock_guard lock(mutex);
  if (const auto found = written.find(stem); found != written.end()) return found->second;
  // ctest runs the cases of one model in parallel processes: each writes its own file and
  // renames it into place (atomic), so none ever maps a half-written one.
  const auto dir = std::filesystem::path(CHORUS_BINARY_DIR) / "test-scratch" / "derived-models";
  std::filesystem::create_directories(dir);
  const auto out = dir / (stem + ".gguf");
  const auto partial = dir / (stem + ".gguf." + std::to_string(::getpid()));
  if (variant == "qwen2") chorus_test::write_qwen2_variant(base, partial);
  else if (variant == "yarn") chorus_test::write_yarn_variant(base, partial);
  else if (variant == "ropefreqs") chorus_test::write_rope_freqs_variant(base, partial);
  else if (variant == "window") chorus_test::write_sliding_window_variant(base, partial);
  else throw std::runtime_error("unknown derived model variant '" + variant + "'");
  std::filesystem::rename(partial, out);
  return written[stem] = out;
}

std::vector<golden_case> golden_cases() {
  std::vector<golden_case> cases;
  std::vector<std::filesystem::path> model_dirs;
  for (const auto& root : {chorus_test::golden_dir() / "logits", chorus_test::test_data_dir() / "golden-logits"}) {
    for (const auto& dir : std::filesystem::directory_iterator(root)) model_dirs.push_back(dir.path());
  }
  for (const auto& dir : model_dirs) {
    for (const auto& file : std::filesystem::directory_iterator(dir)) {
      if (file.path().extension() != ".json") continue;
#if defined(__SANITIZE_ADDRESS__)
      // Under the sanitizers the long prompts take minutes; the short ones cover the code.
      if (file.path().filename().string().starts_with("p3")) continue;
#endif
      cases.push_back({dir.filename().string(), file.path()});
    }
  }
  std::sort(cases.begin(), cases.end(), [](auto& a, auto& b) { return a.file < b.file; });
  return cases;
}

// The prompt's logits at every position, then teacher-forced generation, against the golden
// file, with a KV cache of KvElement.
template <class KvElement>
void expect_golden_logits(const golden_case& c) {
  const auto golden = read_json(c.file);
  const model::model m(model_file_of(c.model));
  const std::size_t n_vocab = m.params().n_vocab;
  ASSERT_EQ(static_cast<std::int64_t>(n_vocab), golden.at("n_vocab").get<std::int64_t>());
  const auto prompt = ids_of(golden.at("tokens"));
  model::basic_context<KvElement> ctx(m, {.n_ctx = 1024, .threads = 2});
  const auto logits = ctx.decode(prompt, 0, true);
  const double tolerance = tolerance_for(c.model);

  double max_error = 0.0;
  const auto& rows = golden.at("prompt_top");
  ASSERT_EQ(rows.size(), prompt.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto row = logits.subspan(i * n_vocab, n_vocab);
    const auto& top = rows[i];
    for (const auto& pair : top) {
      const double error = std::fabs(pair.at(1).get<double>() - row[static_cast<std::size_t>(pair.at(0).get<std::int64_t>())]);
      max_error = std::max(max_error, error);
      ASSERT_LE(error, tolerance) << "position " << i << " token " << pair.at(0).get<std::int64_t>();
    }
    if (top[0].at(1).get<double>() - top[1].at(1).get<double>() >= argmax_margin) {
      EXPECT_EQ(argmax(row), top[0].at(0).get<std::int64_t>()) << "position " << i;
    }
  }

  // Teacher-forced: feed the golden tokens one by one (the decode path) and compare each step.
  std::vector<float> last(logits.end() - static_cast<std::ptrdiff_t>(n_vocab), logits.end());
  double max_generation_error = 0.0;
  for (const auto& step : golden.at("generation").at("steps")) {
    for (const auto& pair : step.at("top")) {
      const double error = std::fabs(pair.at(1).get<double>() - last[static_cast<std::size_t>(pair.at(0).get<std::int64_t>())]);
      max_generation_error = std::max(max_generation_error, error);
      ASSERT_LE(error, tolerance) << "generation step at position " << step.at("pos").get<std::int64_t>();
    }
    if (step.at("margin").get<double>() >= argmax_margin) {
      EXPECT_EQ(argmax(last), step.at("token").get<std::int64_t>());
    }
    const auto token = static_cast<std::int32_t>(step.at("token").get<std::int64_t>());
    const auto next = ctx.decode(std::span(&token, 1));
    last.assign(next.begin(), next.end());
  }
  ::testing::Test::RecordProperty("max_prompt_error", std::to_string(max_error));
  ::testing::Test::RecordProperty("max_generation_error", std::to_string(max_generation_error));
  std::printf("[ accuracy ] %s %s, %s KV cache: max |dlogit| prompt %.4f, generation %.4f (tolerance %.2f)\n", c.model.c_str(),
              c.file.filename().string().c_str(), std::is_same_v<KvElement, float> ? "f32" : "f16", max_error,
              max_generation_error, tolerance);
}

class GoldenLogits : public ::testing::TestWithParam<golden_case> {};

TEST_P(GoldenLogits, PromptAndTeacherForcedGenerationMatchTheReference) { expect_golden_logits<fp16>(GetParam()); }

// A float KV cache rounds nothing the reference rounds to fp16, and stays within the same
// tolerances (which the 8-bit activations dominate). The short prompt of each model.
class GoldenLogitsFloatKv : public ::testing::TestWithParam<golden_case> {};

TEST_P(GoldenLogitsFloatKv, MatchTheReferenceWithAFloatKvCache) { expect_golden_logits<float>(GetParam()); }

std::vector<golden_case> short_golden_cases() {
  auto cases = golden_cases();
  std::erase_if(cases, [](const golden_case& c) { return !c.file.filename().string().starts_with("p1"); });
  return cases;
}

std::string golden_case_name(const ::testing::TestParamInfo<golden_case>& info) {
  std::string name = info.param.model + "_" + info.param.file.stem().string();
  for (auto& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}
INSTANTIATE_TEST_SUITE_P(AllModels, GoldenLogits, ::testing::ValuesIn(golden_cases()), golden_case_name);
INSTANTIATE_TEST_SUITE_P(AllModels, GoldenLogitsFloatKv, ::testing::ValuesIn(short_golden_cases()), golden_case_name);

TEST(ModelContext, PrefillThenDecodeEqualsOneBatch) {
  const model::model m(chorus_test::model_path("stories260K.gguf"));
  const std::vector<std::int32_t> tokens = {1, 400, 261, 300, 270, 411, 262, 290};
  model::context batch(m, {.n_ctx = 64, .threads = 2});
  const auto all = batch.decode(tokens);
  const std::vector<float> one_batch(all.begin(), all.end());
  model::context stepwise(m, {.n_ctx = 64, .threads = 1});
  std::vector<float> last;
  for (const auto t : tokens) {
    const auto l = stepwise.decode(std::span(&t, 1));
    last.assign(l.begin(), l.end());
  }
  ASSERT_EQ(last.size(), one_batch.size());
  for (std::size_t i = 0; i < last.size(); ++i) EXPECT_NEAR(last[i], one_batch[i], 1e-3) << i;
  EXPECT_EQ(stepwise.position(), tokens.size());
}

// Attention runs in tiles of consecutive tokens (model.hpp), whose bounds move with n_batch; each
// query must still get the bits of a query evaluated alone, with and without a sliding window.
TEST(ModelContext, AttentionTilesGiveTheBitsOfOneTokenAtATime) {
  const std::vector<std::string> stems = {"tiny-llama-spm512-Q4_K_M", "window-of-tiny-llama-spm512-Q4_K_M"};
  std::vector<std::int32_t> prompt(70);
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<std::int32_t>(1 + (i * 37) % 500);
  std::vector<std::vector<float>> whole_prompt_of;
  for (const auto& stem : stems) {
    SCOPED_TRACE(stem);
    const model::model m(model_file_of(stem));
    const std::size_t n_vocab = m.params().n_vocab;
    model::context whole(m, {.n_ctx = 128, .n_batch = 128, .threads = 2});
    const auto all = whole.decode(prompt, 0, true);
    const std::vector<float> expected(all.begin(), all.end());
    model::context steps_of_7(m, {.n_ctx = 128, .n_batch = 7, .threads = 2});
    const auto chunked = steps_of_7.decode(prompt, 0, true);
    ASSERT_EQ(chunked.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) ASSERT_EQ(chunked[i], expected[i]) << "n_batch 7, value " << i;
    model::context one_by_one(m, {.n_ctx = 128, .n_batch = 1, .threads = 2});
    for (std::size_t t = 0; t < prompt.size(); ++t) {
      const auto row = one_by_one.decode(std::span(&prompt[t], 1));
      for (std::size_t v = 0; v < n_vocab; ++v) ASSERT_EQ(row[v], expected[t * n_vocab + v]) << "token " << t << ", logit " << v;
    }
    whole_prompt_of.push_back(expected);
  }
  // The window is in force: from its sixth token on, the prompt's logits differ from full attention's.
  const std::size_t n_vocab = whole_prompt_of[0].size() / prompt.size();
  EXPECT_TRUE(std::equal(whole_prompt_of[0].begin(), whole_prompt_of[0].begin() + 5 * n_vocab, whole_prompt_of[1].begin()));
  EXPECT_FALSE(std::equal(whole_prompt_of[0].begin() + 5 * n_vocab, whole_prompt_of[0].end(), whole_prompt_of[1].begin() + 5 * n_vocab));
}

TEST(ModelContext, SequencesAreIndependentAndPrefixesCopy) {
  const model::model m(chorus_test::model_path("tiny-llama-spm512-Q8_0.gguf"));
  const std::vector<std::int32_t> prompt = {1, 300, 301, 302};
  const std::vector<std::int32_t> a = {310, 311};
  model::context single(m, {.n_ctx = 32, .threads = 2});
  single.decode(prompt);
  const auto expected_span = single.decode(a);
  const std::vector<float> expected(expected_span.begin(), expected_span.end());

  model::context multi(m, {.n_ctx = 32, .n_seq = 3, .threads = 2});
  multi.decode(prompt, 0);
  multi.copy_prefix(0, 2, prompt.size());
  multi.decode(std::vector<std::int32_t>{5, 6, 7}, 1);  // unrelated sequence in between
  const auto got = multi.decode(a, 2);
  for (std::size_t i = 0; i < expected.size(); ++i) ASSERT_EQ(got[i], expected[i]) << i;
  EXPECT_EQ(multi.position(0), 4u);
  EXPECT_EQ(multi.position(1), 3u);
  EXPECT_EQ(multi.position(2), 6u);
  multi.truncate(2, 4);
  const auto again = multi.decode(a, 2);
  for (std::size_t i = 0; i < expected.size(); ++i) ASSERT_EQ(again[i], expected[i]) << i;
}

// Shared prompts are not copied: the sequences refer to the same KV pages until one of them
// writes into a shared page, which it then copies (only that page).
TEST(ModelContext, PrefixesAreSharedCopyOnWrite) {
  const model::model m(chorus_test::model_path("tiny-llama-spm512-Q8_0.gguf"));
  std::vector<std::int32_t> prompt;
  for (std::int32_t i = 0; i < 70; ++i) prompt.push_back(3 + (i * 7) % 500);  // pages 0-31, 32-63, 64-69
  const std::vector<std::int32_t> a = {310, 311}, b = {320};
  auto expected_after = [&](const std::vector<std::int32_t>& continuation) {
    model::context single(m, {.n_ctx = 128, .threads = 2});
    single.decode(prompt);
    const auto logits = single.decode(continuation);
    return std::vector<float>(logits.begin(), logits.end());
  };
  const auto expected_a = expected_after(a), expected_b = expected_after(b);
  auto equal = [](std::span<const float> got, const std::vector<float>& want) {
    return std::equal(got.begin(), got.end(), want.begin(), want.end());
  };

  model::context ctx(m, {.n_ctx = 128, .n_seq = 4, .threads = 2});
  ctx.decode(prompt, 0);
  EXPECT_EQ(ctx.cache().pages_in_use(), 3u);
  for (std::size_t seq = 1; seq < 4; ++seq) ctx.copy_prefix(0, seq, prompt.size());
  EXPECT_EQ(ctx.cache().pages_in_use(), 3u) << "sharing copies nothing";
  EXPECT_TRUE(equal(ctx.decode(a, 1), expected_a));
  EXPECT_EQ(ctx.cache().pages_in_use(), 4u) << "the written page, and only it, is copied";
  EXPECT_TRUE(equal(ctx.decode(b, 0), expected_b));  // the owner writes too: it copies as well
  EXPECT_EQ(ctx.cache().pages_in_use(), 5u);
  EXPECT_TRUE(equal(ctx.decode(b, 2), expected_b));   // the shared page was not touched by 0 or 1
  EXPECT_TRUE(equal(ctx.decode(a, 3), expected_a));   // the last user writes into it in place
  EXPECT_EQ(ctx.cache().pages_in_use(), 6u);
  ctx.truncate(3, 0);
  ctx.truncate(2, 0);
  ctx.truncate(1, 0);
  EXPECT_EQ(ctx.cache().pages_in_use(), 3u);
  ctx.reset(0);
  EXPECT_EQ(ctx.cache().pages_in_use(), 0u);

  // A pool smaller than n_seq full contexts: sharing is what makes it fit; running out is an
  // error that leaves the cache usable.
  model::context small(m, {.n_ctx = 128, .n_seq = 3, .threads = 2, .kv_pages = 4});
  small.decode(prompt, 0);
  small.copy_prefix(0, 1, prompt.size());
  small.copy_prefix(0, 2, prompt.size());
  EXPECT_TRUE(equal(small.decode(a, 1), expected_a));
  try {
    small.decode(b, 2);
    ADD_FAILURE() << "a fifth page was handed out";
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), errc::out_of_range);
    EXPECT_NE(std::string(e.what()).find("no free page"), std::string::npos) << e.what();
  }
  EXPECT_EQ(small.position(2), prompt.size());
  small.truncate(1, 0);
  EXPECT_TRUE(equal(small.decode(b, 2), expected_b));
}

// Several sequences decoded in one step give the logits each would get alone.
TEST(ModelContext, BatchedDecodeOfSeveralSequencesEqualsSeparateDecodes) {
  const model::model m(chorus_test::model_path("tiny-llama-spm512-Q4_K_M.gguf"));
  const std::vector<std::int32_t> prompt = {1, 300, 301, 302, 303};
  const std::vector<std::vector<std::int32_t>> continuations = {{10, 11, 12}, {20, 21, 22}, {30, 31, 32}};
  const std::size_t n_vocab = m.params().n_vocab;

  std::vector<std::vector<std::vector<float>>> expected(3);  // [sequence][step] -> logits
  for (std::size_t s = 0; s < 3; ++s) {
    model::context alone(m, {.n_ctx = 64, .threads = 2});
    alone.decode(prompt);
    for (const auto token : continuations[s]) {
      const auto logits = alone.decode(std::span(&token, 1));
      expected[s].emplace_back(logits.begin(), logits.end());
    }
  }

  model::context ctx(m, {.n_ctx = 64, .n_seq = 3, .threads = 2});
  ctx.decode(prompt, 0);
  ctx.copy_prefix(0, 1, prompt.size());
  ctx.copy_prefix(0, 2, prompt.size());
  for (std::size_t step = 0; step < 3; ++step) {
    std::vector<model::context::batch_token> batch;
    for (std::size_t s = 0; s < 3; ++s) batch.push_back({continuations[s][step], s});
    const auto logits = ctx.decode_batch(batch);
    ASSERT_EQ(logits.size(), 3 * n_vocab);
    for (std::size_t s = 0; s < 3; ++s) {
      double worst = 0.0;
      for (std::size_t v = 0; v < n_vocab; ++v) {
        worst = std::max(worst, std::fabs(static_cast<double>(logits[s * n_vocab + v]) - expected[s][step][v]));
      }
      EXPECT_LT(worst, 1e-3) << "sequence " << s << " step " << step;  // gemm and gemv sum in other orders
    }
  }
  EXPECT_EQ(ctx.position(0), prompt.size() + 3);
  EXPECT_EQ(ctx.position(2), prompt.size() + 3);

  // Two tokens of one sequence in one batch take consecutive positions.
  model::context pair(m, {.n_ctx = 64, .n_seq = 2, .threads = 2});
  pair.decode(prompt, 0);
  const std::vector<model::context::batch_token> two = {{10, 0}, {11, 0}};
  const auto both = pair.decode_batch(two);
  double worst = 0.0;
  for (std::size_t v = 0; v < n_vocab; ++v) worst = std::max(worst, std::fabs(static_cast<double>(both[n_vocab + v]) - expected[0][1][v]));
  EXPECT_LT(worst, 1e-3);
  EXPECT_EQ(pair.position(0), prompt.size() + 2);

  const std::vector<model::context::batch_token> bad = {{10, 5}};
  EXPECT_THROW(pair.decode_batch(bad), chorus::error);
  const std::vector<model::context::batch_token> bad_token = {{-1, 0}};
  EXPECT_THROW(pair.decode_batch(bad_token), chorus::error);
  EXPECT_EQ(pair.position(0), prompt.size() + 2);
}

TEST(ModelContext, ErrorsNameTheProblem) {
  const model::model m(chorus_test::model_path("stories260K.gguf"));
  model::context ctx(m, {.n_ctx = 8, .threads = 1});
  try {
    ctx.decode(std::vector<std::int32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9});
    FAIL();
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), errc::out_of_range);
    EXPECT_NE(std::string(e.what()).find("context full"), std::string::npos);
  }
  try {
    ctx.decode(std::vector<std::int32_t>{512});
    FAIL();
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("512"), std::string::npos);
  }
  EXPECT_THROW(ctx.decode(std::vector<std::int32_t>{1}, 5), chorus::error);
}

TEST(ModelLoad, MissingTensorsAndBadShapesAreReported) {
  const auto source = gguf::file::open(chorus_test::model_path("stories260K.gguf"));
  auto rebuild = [&](const std::string& skip, const std::string& reshape) {
    gguf::writer w;
    for (const auto& e : source.metadata()) {
      if (e.type == gguf::value_type::array) {
        if (e.element_type == gguf::value_type::string) w.set_array(e.key, source.get_array<std::string>(e.key));
        else if (e.element_type == gguf::value_type::float32) w.set_array(e.key, source.get_array<float>(e.key));
        else w.set_array(e.key, source.get_array<std::int32_t>(e.key));
      } else if (e.type == gguf::value_type::string) {
        w.set(e.key, source.get<std::string>(e.key));
      } else if (e.type == gguf::value_type::float32) {
        w.set(e.key, source.get<float>(e.key));
      } else if (e.type == gguf::value_type::boolean) {
        w.set(e.key, source.get<bool>(e.key));
      } else {
        w.set(e.key, source.get<std::uint32_t>(e.key));
      }
    }
    for (const auto& t : source.tensors()) {
      if (t.name == skip) continue;
      std::vector<std::uint64_t> dims(t.dims.begin(), t.dims.begin() + t.n_dims);
      if (t.name == reshape) std::swap(dims[0], dims[1]);
      w.add_tensor(t.name, t.type, dims, t.data);
    }
    return w.to_bytes();
  };
  const auto missing = rebuild("blk.3.ffn_up.weight", "");
  try {
    model::model bad(gguf::file::parse(missing, "missing.gguf"));
    FAIL();
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), errc::not_found);
    EXPECT_NE(std::string(e.what()).find("blk.3.ffn_up.weight"), std::string::npos) << e.what();
  }
  const auto reshaped = rebuild("", "blk.1.ffn_gate.weight");
  try {
    model::model bad(gguf::file::parse(reshaped, "reshaped.gguf"));
    FAIL();
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), errc::bad_format);
    EXPECT_NE(std::string(e.what()).find("blk.1.ffn_gate.weight"), std::string::npos) << e.what();
  }
  const auto intact = rebuild("", "");
  EXPECT_NO_THROW(model::model ok(gguf::file::parse(intact, "intact.gguf")));
}

}  // namespace
