// Tests of gguf/: reading every shipped model and vocab file, the writer, and malformed files.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using chorus::errc;
using chorus::gguf::file;
using chorus::gguf::tensor_type;
using chorus::gguf::value_type;
using chorus::gguf::writer;

std::vector<std::filesystem::path> gguf_files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".gguf") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

using chorus_test::expect_error;

TEST(GgufRead, EveryShippedModelIsConsistent) {
  const auto models = gguf_files_in(chorus_test::models_dir());
  ASSERT_GE(models.size(), 17u);
  for (const auto& path : models) {
    SCOPED_TRACE(path.filename().string());
    const auto f = file::open(path);
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), 32u);
    EXPECT_EQ(f.get<std::string_view>("general.architecture"), "llama");
    EXPECT_EQ(f.data_offset() % 32, 0u);
    const auto n_layer = f.get<std::uint32_t>("llama.block_count");
    const auto n_embd = f.get<std::uint32_t>("llama.embedding_length");
    const auto n_vocab = f.array_size("tokenizer.ggml.tokens");
    const auto& embd = f.tensor("token_embd.weight");
    EXPECT_EQ(embd.n_dims, 2u);
    EXPECT_EQ(embd.dims[0], n_embd);
    EXPECT_EQ(embd.dims[1], n_vocab);
    EXPECT_EQ(embd.rows(), n_vocab);
    for (std::uint32_t layer = 0; layer < n_layer; ++layer) {
      const auto prefix = "blk." + std::to_string(layer) + ".";
      for (const char* name : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate",
                               "ffn_up", "ffn_down"}) {
        EXPECT_NE(f.find_tensor(prefix + name + ".weight"), nullptr) << prefix << name;
      }
      EXPECT_EQ(f.tensor(prefix + "attn_norm.weight").type, tensor_type::f32);
    }
    for (const auto& t : f.tensors()) {
      EXPECT_GE(t.data.data(), f.bytes().data());
      EXPECT_LE(t.data.data() + t.data.size(), f.bytes().data() + f.bytes().size());
      EXPECT_EQ(static_cast<std::uint64_t>(t.data.data() - f.bytes().data()) % 32, 0u);
      const auto info = chorus::gguf::type_info(t.type);
      ASSERT_TRUE(info);
      EXPECT_EQ(t.n_bytes, t.n_elements / info->block_elements * info->block_bytes);
    }
  }
}

TEST(GgufRead, FactsFromTheModelsReadme) {
  const auto spm512 = file::open(chorus_test::model_path("tiny-llama-spm512-Q4_K_M.gguf"));
  EXPECT_EQ(spm512.get<std::uint32_t>("llama.block_count"), 4u);
  EXPECT_EQ(spm512.get<std::int64_t>("llama.embedding_length"), 256);
  EXPECT_EQ(spm512.get<std::uint32_t>("llama.attention.head_count"), 8u);
  EXPECT_EQ(spm512.get<std::uint32_t>("llama.attention.head_count_kv"), 2u);
  EXPECT_EQ(spm512.get<std::uint32_t>("llama.feed_forward_length"), 768u);
  EXPECT_FLOAT_EQ(spm512.get<float>("llama.rope.freq_base"), 10000.0f);
  EXPECT_FLOAT_EQ(spm512.get<float>("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(spm512.get<std::string>("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(spm512.get<bool>("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(spm512.get<std::uint32_t>("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(spm512.get<std::uint32_t>("general.file_type"), 15u);
  EXPECT_EQ(spm512.tensor("blk.2.attn_v.weight").type, tensor_type::q6_k);
  EXPECT_EQ(spm512.tensor("blk.0.attn_v.weight").type, tensor_type::q4_k);
  EXPECT_EQ(spm512.tensor("output.weight").type, tensor_type::q6_k);
  const auto tokens = spm512.get_array<std::string_view>("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ(tokens[3], "<0x00>");
  EXPECT_EQ(tokens[258], "<0xFF>");
  const auto scores = spm512.get_array<float>("tokenizer.ggml.scores");
  EXPECT_EQ(scores.size(), 512u);
  const auto types = spm512.get_array<std::int32_t>("tokenizer.ggml.token_type");
  EXPECT_EQ(types[1], 3);  // control
  EXPECT_EQ(types[3], 6);  // byte

  const auto bpe = file::open(chorus_test::model_path("tiny-llama-bpe-Q8_0.gguf"));
  EXPECT_EQ(bpe.find_tensor("output.weight"), nullptr);
  EXPECT_EQ(bpe.array_size("tokenizer.ggml.tokens"), 50257u);
  EXPECT_EQ(bpe.array_size("tokenizer.ggml.merges"), 50000u);
  EXPECT_EQ(bpe.get<std::string_view>("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_FALSE(bpe.has("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(bpe.find<bool>("tokenizer.ggml.add_bos_token"), std::nullopt);
  EXPECT_EQ(bpe.get<std::uint32_t>("llama.attention.head_count_kv"), 4u);
  EXPECT_FLOAT_EQ(bpe.get<float>("llama.rope.freq_base"), 500000.0f);

  const auto mistral = file::open(chorus_test::model_path("tiny-mistral-Q4_0.gguf"));
  EXPECT_EQ(mistral.get<std::string_view>("general.name"), "Mistral");
  EXPECT_NE(mistral.get<std::string_view>("tokenizer.chat_template").find("[INST]"), std::string_view::npos);
  EXPECT_EQ(mistral.get<std::uint32_t>("llama.context_length"), 2048u);
}

TEST(GgufRead, VocabOnlyFiles) {
  const auto vocabs = gguf_files_in(chorus_test::golden_dir() / "tokenizer");
  ASSERT_EQ(vocabs.size(), 5u);
  for (const auto& path : vocabs) {
    SCOPED_TRACE(path.filename().string());
    const auto f = file::open(path);
    EXPECT_TRUE(f.tensors().empty());
    EXPECT_GT(f.array_size("tokenizer.ggml.tokens"), 30000u);
    EXPECT_EQ(f.get_array<std::string_view>("tokenizer.ggml.tokens").size(), f.array_size("tokenizer.ggml.tokens"));
  }
}

TEST(GgufRead, TypedAccessErrorsNameTheKey) {
  const auto f = file::open(chorus_test::model_path("stories260K.gguf"));
  expect_error(errc::not_found, "'no.such.key'", [&] { f.get<std::uint32_t>("no.such.key"); });
  expect_error(errc::type_mismatch, "'general.architecture'", [&] { f.get<std::uint32_t>("general.architecture"); });
  expect_error(errc::type_mismatch, "'llama.block_count'", [&] { f.get<std::string>("llama.block_count"); });
  expect_error(errc::type_mismatch, "'llama.block_count'", [&] { f.get<float>("llama.block_count"); });
  expect_error(errc::type_mismatch, "not an array", [&] { f.get_array<int>("llama.block_count"); });
  expect_error(errc::type_mismatch, "'tokenizer.ggml.tokens'", [&] { f.get_array<int>("tokenizer.ggml.tokens"); });
  expect_error(errc::not_found, "tensor 'nope'", [&] { f.tensor("nope"); });
  EXPECT_EQ(f.get<std::uint8_t>("llama.block_count"), 5);
}

writer sample_writer() {
  writer w;
  w.set("general.architecture", std::string_view("llama"));
  w.set("u8", std::uint8_t{200});
  w.set("i8", std::int8_t{-100});
  w.set("u16", std::uint16_t{60000});
  w.set("i16", std::int16_t{-30000});
  w.set("u32", std::uint32_t{4000000000u});
  w.set("i32", std::int32_t{-2000000000});
  w.set("u64", std::uint64_t{1} << 60);
  w.set("i64", std::int64_t{-5});
  w.set("f32", 1.5f);
  w.set("f64", 2.25);
  w.set("yes", true);
  w.set("name", std::string("chorus"));
  w.set_array("strings", std::vector<std::string>{"a", "", "ccc"});
  w.set_array("floats", std::vector<float>{1.0f, -2.0f});
  w.set_array("ints", std::vector<std::int32_t>{1, -2, 3});
  std::vector<std::byte> q8(34 * 2);
  w.add_tensor("t.q8", tensor_type::q8_0, {32, 2}, q8);
  std::vector<float> f32(8, 1.0f);
  w.add_tensor("t.f32", tensor_type::f32, {8}, std::as_bytes(std::span(f32)));
  return w;
}

TEST(GgufWriter, RoundTripsEveryValueType) {
  const auto bytes = sample_writer().to_bytes();
  const auto f = file::parse(bytes, "sample");
  EXPECT_EQ(f.get<std::uint8_t>("u8"), 200);
  EXPECT_EQ(f.get<std::int8_t>("i8"), -100);
  EXPECT_EQ(f.get<std::uint16_t>("u16"), 60000);
  EXPECT_EQ(f.get<std::int16_t>("i16"), -30000);
  EXPECT_EQ(f.get<std::uint32_t>("u32"), 4000000000u);
  EXPECT_EQ(f.get<std::int64_t>("u32"), 4000000000);
  EXPECT_EQ(f.get<std::int32_t>("i32"), -2000000000);
  EXPECT_EQ(f.get<std::uint64_t>("u64"), std::uint64_t{1} << 60);
  EXPECT_EQ(f.get<std::int64_t>("i64"), -5);
  EXPECT_EQ(f.get<float>("f32"), 1.5f);
  EXPECT_EQ(f.get<double>("f64"), 2.25);
  EXPECT_EQ(f.get<bool>("yes"), true);
  EXPECT_EQ(f.get<std::string>("name"), "chorus");
  EXPECT_EQ(f.get_array<std::string>("strings"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(f.get_array<float>("floats"), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(f.get_array<int>("ints"), (std::vector<int>{1, -2, 3}));
  expect_error(errc::type_mismatch, "'i64'", [&] { f.get<std::uint32_t>("i64"); });
  expect_error(errc::type_mismatch, "'u32'", [&] { f.get<std::int16_t>("u32"); });
  expect_error(errc::type_mismatch, "'ints'", [&] { f.get_array<std::uint8_t>("ints"); });
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensor("t.q8").n_bytes, 68u);
  EXPECT_EQ(f.tensor("t.f32").n_elements, 8u);
  EXPECT_EQ(f.get<std::string_view>("general.architecture"), "llama");
}

TEST(GgufWriter, AlignmentIsHonoured) {
  for (std::uint32_t alignment : {32u, 64u, 256u}) {
    writer w = sample_writer();
    w.set_alignment(alignment);
    const auto bytes = w.to_bytes();
    const auto f = file::parse(bytes);
    EXPECT_EQ(f.alignment(), alignment);
    for (const auto& t : f.tensors()) {
      EXPECT_EQ(static_cast<std::size_t>(t.data.data() - bytes.data()) % alignment, 0u);
    }
  }
  writer w;
  expect_error(errc::invalid_argument, "power of two", [&] { w.set_alignment(48); });
  std::vector<std::byte> wrong(10);
  expect_error(errc::invalid_argument, "needs 68 bytes", [&] { w.add_tensor("x", tensor_type::q8_0, {32, 2}, wrong); });
  expect_error(errc::invalid_argument, "block size 32", [&] { w.add_tensor("x", tensor_type::q8_0, {16}, wrong); });
}

TEST(GgufWriter, WritesAFileThatReadsBack) {
  const auto path = chorus_test::scratch_dir("gguf_writer") / "sample.gguf";
  sample_writer().write(path);
  const auto f = file::open(path);
  EXPECT_EQ(f.get<std::string>("name"), "chorus");
}

// --- malformed files ------------------------------------------------------------------

template <class T>
void poke(std::vector<std::byte>& bytes, std::size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
}

TEST(GgufMalformed, EveryTruncationIsAnError) {
  const auto bytes = sample_writer().to_bytes();
  const auto full = file::parse(bytes);
  const std::size_t data_end = full.data_offset() + full.tensor("t.f32").offset + 32;
  for (std::size_t size = 0; size < data_end; ++size) {
    const std::span<const std::byte> prefix(bytes.data(), size);
    try {
      (void)file::parse(prefix, "truncated");
      ADD_FAILURE() << "a file cut at " << size << " bytes parsed";
    } catch (const chorus::error& e) {
      EXPECT_TRUE(e.kind() == errc::truncated || e.kind() == errc::bad_format) << size << ": " << e.what();
    }
  }
}

TEST(GgufMalformed, BadMagicAndVersions) {
  auto bytes = sample_writer().to_bytes();
  auto bad_magic = bytes;
  bad_magic[0] = std::byte{'X'};
  expect_error(errc::bad_format, "not a GGUF file", [&] { file::parse(bad_magic); });
  for (std::uint32_t version : {1u, 4u, 0xffffffffu}) {
    auto copy = bytes;
    poke(copy, 4, version);
    expect_error(errc::unsupported, "version " + std::to_string(version), [&] { file::parse(copy); });
  }
  auto v2 = bytes;
  poke(v2, 4, std::uint32_t{2});
  EXPECT_EQ(file::parse(v2).version(), 2u);
}

TEST(GgufMalformed, HugeCountsFailFast) {
  auto bytes = sample_writer().to_bytes();
  auto many_kv = bytes;
  poke(many_kv, 16, std::uint64_t{1} << 60);
  expect_error(errc::bad_format, "metadata count", [&] { file::parse(many_kv); });
  auto many_tensors = bytes;
  poke(many_tensors, 8, std::uint64_t{1} << 62);
  expect_error(errc::bad_format, "tensor count", [&] { file::parse(many_tensors); });
  auto long_key = bytes;
  poke(long_key, 24, std::uint64_t{1} << 50);  // length of the first key
  expect_error(errc::truncated, "metadata key", [&] { file::parse(long_key); });
}

// Parses bytes that are expected to be rejected.
void parse_and_discard(const std::vector<std::byte>& bytes) { (void)file::parse(std::span<const std::byte>(bytes)); }

// Builds a file whose only metadata value is `type` + `payload`.
std::vector<std::byte> file_with_raw_value(value_type type, const std::vector<std::byte>& payload) {
  writer w;
  w.set_raw("odd", type, payload);
  return w.to_bytes();
}

template <class... T>
std::vector<std::byte> pack(T... values) {
  std::vector<std::byte> out;
  (
      [&] {
        const auto* p = reinterpret_cast<const std::byte*>(&values);
        out.insert(out.end(), p, p + sizeof(values));
      }(),
      ...);
  return out;
}

TEST(GgufMalformed, BadValues) {
  expect_error(errc::bad_format, "unknown value type 13", [&] {
    parse_and_discard(file_with_raw_value(static_cast<value_type>(13), {}));
  });
  // array of 2^61 uint64: would be 16 EiB
  expect_error(errc::truncated, "'odd'", [&] {
    parse_and_discard(file_with_raw_value(value_type::array, pack(std::uint32_t{10}, std::uint64_t{1} << 61)));
  });
  // array of 2^40 strings
  expect_error(errc::truncated, "'odd'", [&] {
    parse_and_discard(file_with_raw_value(value_type::array, pack(std::uint32_t{8}, std::uint64_t{1} << 40)));
  });
  // nesting bomb: arrays of one array each, 100 deep
  std::vector<std::byte> bomb;
  for (int i = 0; i < 100; ++i) {
    const auto level = pack(std::uint32_t{9}, std::uint64_t{1});
    bomb.insert(bomb.end(), level.begin(), level.end());
  }
  expect_error(errc::bad_format, "nests arrays deeper", [&] { parse_and_discard(file_with_raw_value(value_type::array, bomb)); });
  // a nested array is fine when shallow, but cannot be read as a flat array
  const auto nested_bytes = file_with_raw_value(
      value_type::array, pack(std::uint32_t{9}, std::uint64_t{1}, std::uint32_t{4}, std::uint64_t{1}, std::uint32_t{7}));
  const auto nested = file::parse(nested_bytes);
  EXPECT_EQ(nested.array_size("odd"), 1u);
  expect_error(errc::type_mismatch, "array of arrays", [&] { nested.get_array<int>("odd"); });
}

TEST(GgufMalformed, DuplicatesAndAlignment) {
  writer dup;
  dup.set("k", std::uint32_t{1});
  dup.set("k", std::uint32_t{2});
  expect_error(errc::bad_format, "'k' appears twice", [&] { parse_and_discard(dup.to_bytes()); });

  for (std::uint32_t alignment : {0u, 3u, 48u}) {
    writer w;
    w.set("general.alignment", alignment);
    expect_error(errc::bad_format, "general.alignment", [&] { parse_and_discard(w.to_bytes()); });
  }
  writer wrong_type;
  wrong_type.set("general.alignment", std::uint64_t{32});
  expect_error(errc::bad_format, "must be uint32", [&] { parse_and_discard(wrong_type.to_bytes()); });
}

// Offset of the first tensor info's fields in sample_writer()'s output.
std::size_t first_tensor_info_offset(const std::vector<std::byte>& bytes) {
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return text.find("t.q8") - 8;  // the name's length prefix
}

TEST(GgufMalformed, BadTensorInfos) {
  const auto bytes = sample_writer().to_bytes();
  const std::size_t info = first_tensor_info_offset(bytes);
  const std::size_t n_dims_at = info + 8 + 4;
  const std::size_t dims_at = n_dims_at + 4;
  const std::size_t type_at = dims_at + 16;
  const std::size_t offset_at = type_at + 4;

  auto too_many_dims = bytes;
  poke(too_many_dims, n_dims_at, std::uint32_t{5});
  expect_error(errc::bad_format, "'t.q8' has 5 dimensions", [&] { file::parse(too_many_dims); });

  auto unknown_type = bytes;
  poke(unknown_type, type_at, std::uint32_t{99});
  expect_error(errc::unsupported, "'t.q8' has unknown tensor type id 99", [&] { file::parse(unknown_type); });

  auto bad_row = bytes;
  poke(bad_row, dims_at, std::uint64_t{33});
  expect_error(errc::bad_format, "not a multiple of its block size", [&] { file::parse(bad_row); });

  auto overflow = bytes;
  poke(overflow, dims_at, std::uint64_t{1} << 40);
  poke(overflow, dims_at + 8, std::uint64_t{1} << 40);
  expect_error(errc::bad_format, "impossible shape", [&] { file::parse(overflow); });

  auto misaligned = bytes;
  poke(misaligned, offset_at, std::uint64_t{8});
  expect_error(errc::bad_format, "not a multiple of the alignment", [&] { file::parse(misaligned); });

  auto past_end = bytes;
  poke(past_end, offset_at, std::uint64_t{1} << 40);
  expect_error(errc::truncated, "'t.q8': data", [&] { file::parse(past_end); });

  auto huge_rows = bytes;
  poke(huge_rows, dims_at + 8, std::uint64_t{1} << 20);
  expect_error(errc::truncated, "runs past the end", [&] { file::parse(huge_rows); });

  // t.f32 (1 dim) moved to offset 64: aligned and inside the file, but inside t.q8's 68 bytes
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  const std::size_t f32_offset_at = text.find("t.f32") + 5 + 4 + 8 + 4;
  auto overlapping = bytes;
  poke(overlapping, f32_offset_at, std::uint64_t{64});
  expect_error(errc::bad_format, "'t.f32': data", [&] { file::parse(overlapping); });
  expect_error(errc::bad_format, "overlaps tensor 't.q8'", [&] { file::parse(overlapping); });
  auto same_offset = bytes;
  poke(same_offset, f32_offset_at, std::uint64_t{0});
  expect_error(errc::bad_format, "overlaps", [&] { file::parse(same_offset); });
}

TEST(GgufMalformed, ArrayElementTypeIsCheckedBeforeDecoding) {
  const auto bytes = sample_writer().to_bytes();
  const auto f = file::parse(bytes);
  expect_error(errc::type_mismatch, "'ints' holds an array of int32, not of a string", [&] { f.get_array<std::string>("ints"); });
  expect_error(errc::type_mismatch, "'strings' holds an array of string", [&] { f.get_array<int>("strings"); });
  expect_error(errc::type_mismatch, "'floats' holds an array of float32", [&] { f.get_array<std::int64_t>("floats"); });
  expect_error(errc::type_mismatch, "'ints' holds an array of int32", [&] { f.get_array<bool>("ints"); });
  expect_error(errc::type_mismatch, "'u8' holds uint8, not an array", [&] { f.get_array<int>("u8"); });
  // a large uint8 array read as strings must fail before reserving count * sizeof(std::string)
  writer w;
  w.set_array("big", std::vector<std::uint8_t>(1 << 20, 7));
  const auto big_bytes = w.to_bytes();
  const auto big = file::parse(big_bytes);
  expect_error(errc::type_mismatch, "'big'", [&] { big.get_array<std::string>("big"); });
  EXPECT_EQ(big.get_array<std::uint8_t>("big").size(), 1u << 20);
  // values that do not fit the requested integer type still name the key
  expect_error(errc::type_mismatch, "'ints' = -2", [&] { f.get_array<unsigned>("ints"); });
}

TEST(GgufMalformed, NotAGgufFile) {
  const auto json = chorus_test::golden_dir() / "README.md";
  expect_error(errc::bad_format, "README.md", [&] { file::open(json); });
  expect_error(errc::file_not_found, "missing.gguf", [&] { file::open(chorus_test::models_dir() / "missing.gguf"); });
}

}  // namespace
