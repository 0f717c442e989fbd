// Tool calls out: every family's calls rendered by the chat template and parsed back, malformed
// calls reported with their text, the canonical form used for equality, the Mistral v7 template,
// and calls generated under tool_choice required / named by random-weight models, which must
// always parse.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace chorus;
using chorus_test::expect_error;
using kind = tokenizer::chat_template_kind;
using sample::ordered_json;

const char* tools_text = R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {
      "location": {"type": "string", "maxLength": 20},
      "unit": {"enum": ["celsius", "fahrenheit"]},
      "days": {"type": "integer", "minimum": 1, "maximum": 14}}, "required": ["location"]}}},
  {"type": "function", "function": {"name": "get_time", "description": "Local time",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string", "maxLength": 10}}, "required": ["tz"]}}}
])";

std::vector<ordered_json> tool_specs() {
  const auto all = ordered_json::parse(tools_text);
  return {all.begin(), all.end()};
}
std::vector<ordered_json> template_tools() { return tool_specs(); }

// The text of the last assistant turn of a rendered conversation, as the model would write it.
std::string assistant_part(kind k, const std::string& rendered) {
  std::string_view r = rendered;
  auto between = [&](std::string_view open, std::string_view close) {
    const auto at = r.rfind(open);
    EXPECT_NE(at, std::string_view::npos) << rendered;
    auto rest = r.substr(at + open.size());
    return std::string(rest.substr(0, rest.rfind(close)));
  };
  switch (k) {
    case kind::qwen2_5: return between("<|im_start|>assistant", "<|im_end|>");
    case kind::llama3_1: return between("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>");
    default: return between("[/INST]", "</s>");
  }
}

TEST(ToolCalls, EveryFamilyRoundTrips) {
  const std::vector<tokenizer::chat_tool_call> two = {{"abc123XYZ", "get_weather", R"({"location":"Paris","unit":"celsius","days":3})"},
                                                       {"def456UVW", "get_time", R"({"tz":"Europe/Paris"})"}};
  for (const auto k : {kind::mistral_v3, kind::mistral_v3_tekken, kind::mistral_v7, kind::qwen2_5, kind::llama3_1}) {
    std::vector<tokenizer::chat_message> messages = {{"user", "What's the weather in Paris, and the time?"}, {"assistant", ""}};
    messages[1].tool_calls = two;
    if (k == kind::llama3_1) messages[1].tool_calls.resize(1);  // one call per message there
    const std::string rendered = tokenizer::apply_chat_template(k, messages, {.add_generation_prompt = false, .tools = template_tools()});
    const std::string reply = assistant_part(k, rendered);
    const auto parsed = tokenizer::parse_tool_calls(k, reply);
    SCOPED_TRACE(std::string(tokenizer::to_string(k)) + ": " + reply);
    ASSERT_TRUE(parsed.malformed.empty()) << parsed.malformed[0].reason;
    ASSERT_EQ(parsed.calls.size(), messages[1].tool_calls.size());
    EXPECT_EQ(parsed.finish_reason(), "tool_calls");
    EXPECT_TRUE(parsed.content.empty()) << parsed.content;
    for (std::size_t i = 0; i < parsed.calls.size(); ++i) {
      const auto& want = messages[1].tool_calls[i];
      EXPECT_EQ(parsed.calls[i].name, want.name);
      const tokenizer::tool_call expected{want.id, want.name, ordered_json::parse(want.arguments)};
      EXPECT_TRUE(tokenizer::same_call(parsed.calls[i], expected)) << tokenizer::canonical_call(parsed.calls[i]);
      // the Mistral formats carry the id; the others get a generated one of the same shape
      if (k == kind::mistral_v3 || k == kind::mistral_v3_tekken || k == kind::mistral_v7) {
        EXPECT_EQ(parsed.calls[i].id, want.id);
      }
      EXPECT_EQ(parsed.calls[i].id.size(), 9u);
    }
    // the parsed calls render again into the same text
    messages[1].tool_calls = tokenizer::to_chat_tool_calls(parsed.calls);
    EXPECT_EQ(tokenizer::apply_chat_template(k, messages, {.add_generation_prompt = false, .tools = template_tools()}), rendered);
  }
}

TEST(ToolCalls, ContentBesideCalls) {
  const auto v7 = tokenizer::parse_tool_calls(kind::mistral_v7, R"(Let me look.[TOOL_CALLS][{"name": "get_time", "arguments": {"tz": "UTC"}}])");
  EXPECT_EQ(v7.content, "Let me look.");
  ASSERT_EQ(v7.calls.size(), 1u);
  EXPECT_EQ(v7.calls[0].arguments["tz"], "UTC");
  const auto hermes = tokenizer::parse_tool_calls(
      kind::qwen2_5, "I will check.\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": \"{\\\"tz\\\": \\\"UTC\\\"}\"}\n</tool_call>");
  EXPECT_EQ(hermes.content, "I will check.");
  ASSERT_EQ(hermes.calls.size(), 1u);  // arguments written as a JSON string are read too
  EXPECT_EQ(hermes.calls[0].arguments["tz"], "UTC");
  const auto prose = tokenizer::parse_tool_calls(kind::llama3_1, "The weather is fine.");
  EXPECT_TRUE(prose.calls.empty());
  EXPECT_EQ(prose.content, "The weather is fine.");
  EXPECT_EQ(prose.finish_reason(), "stop");
  const auto answer = tokenizer::parse_tool_calls(kind::llama3_1, R"({"answer": 42})");  // JSON, not a call
  EXPECT_TRUE(answer.calls.empty() && answer.malformed.empty());
  const auto tagged = tokenizer::parse_tool_calls(kind::llama3_1, R"(<|python_tag|>{"name": "get_time", "arguments": {"tz": "UTC"}})");
  ASSERT_EQ(tagged.calls.size(), 1u);
  const auto no_marker = tokenizer::parse_tool_calls(kind::mistral_v3, R"([{"name": "get_time", "arguments": {"tz": "UTC"}}])");
  EXPECT_EQ(no_marker.calls.size(), 1u);
  const auto chatml = tokenizer::parse_tool_calls(kind::chatml, "  just text ");
  EXPECT_EQ(chatml.content, "just text");
}

TEST(ToolCalls, MalformedCallsAreReportedWithTheirText) {
  struct example {
    kind k;
    std::string text;
    std::string raw_part;
    std::string reason_part;
  };
  const example examples[] = {
      {kind::mistral_v3, R"([TOOL_CALLS] [{"name": "get_weather", "arguments": {"location": "Par)", R"({"location": "Par)", "not a complete JSON list"},
      {kind::mistral_v3_tekken, R"([TOOL_CALLS][{"arguments": {}}])", R"("arguments")", "no \"name\""},
      {kind::mistral_v7, R"([TOOL_CALLS][{"name": "f", "arguments": [1]}])", R"([1])", "not a JSON object"},
      {kind::mistral_v7, R"([TOOL_CALLS][{"name": "f", "arguments": {}},])", R"({"name": "f")", "not valid JSON"},
      {kind::mistral_v7, "[TOOL_CALLS]", "", "nothing after [TOOL_CALLS]"},
      {kind::qwen2_5, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}\n", "<tool_call>", "not closed"},
      {kind::qwen2_5, "<tool_call>\n{\"name\": f}\n</tool_call>", "{\"name\": f}", "not valid JSON"},
      {kind::llama3_1, R"({"name": "f", "parameters": {"a": 1})", R"({"name": "f")", "not closed"},
  };
  for (const auto& e : examples) {
    const auto parsed = tokenizer::parse_tool_calls(e.k, e.text);
    SCOPED_TRACE(e.text);
    ASSERT_EQ(parsed.malformed.size(), 1u);
    EXPECT_NE(parsed.malformed[0].raw.find(e.raw_part), std::string::npos) << parsed.malformed[0].raw;
    EXPECT_NE(parsed.malformed[0].reason.find(e.reason_part), std::string::npos) << parsed.malformed[0].reason;
    EXPECT_EQ(parsed.finish_reason(), "malformed_tool_call");
  }
  // one good call beside a bad one: both reported
  const auto mixed = tokenizer::parse_tool_calls(kind::mistral_v3_tekken, R"([TOOL_CALLS][{"name": "a", "arguments": {}}, {"name": 3}])");
  EXPECT_EQ(mixed.calls.size(), 1u);
  EXPECT_EQ(mixed.malformed.size(), 1u);
}

TEST(ToolCalls, CanonicalFormForEquality) {
  EXPECT_EQ(tokenizer::canonical_json(ordered_json::parse(R"({"b": 1, "a": [1.0, 2.5, {"y": -0.0, "x": "\u00e9\n"}], "c": 1e300})")),
            "{\"a\":[1,2.5,{\"x\":\"\xC3\xA9\\n\",\"y\":0}],\"b\":1,\"c\":1e+300}");
  const tokenizer::tool_call a{"id1", "get_weather", ordered_json::parse(R"({"location": "Paris", "days": 2})")};
  const tokenizer::tool_call b{"other", "get_weather", ordered_json::parse(R"({"days":2.0,"location":"Paris"})")};
  const tokenizer::tool_call c{"id1", "get_weather", ordered_json::parse(R"({"location": "Paris", "days": 3})")};
  const tokenizer::tool_call d{"id1", "get_time", ordered_json::parse(R"({"location": "Paris", "days": 2})")};
  EXPECT_TRUE(tokenizer::same_call(a, b));
  EXPECT_FALSE(tokenizer::same_call(a, c));
  EXPECT_FALSE(tokenizer::same_call(a, d));
  EXPECT_EQ(tokenizer::canonical_call(a), R"({"arguments":{"days":2,"location":"Paris"},"name":"get_weather"})");
  // calls written differently by two models agree once parsed
  const auto from_mistral = tokenizer::parse_tool_calls(kind::mistral_v3, R"([TOOL_CALLS] [{"name": "get_weather", "arguments": {"location": "Paris", "days": 2}}])");
  const auto from_qwen = tokenizer::parse_tool_calls(kind::qwen2_5, "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"days\":2.0,\"location\":\"Paris\"}}\n</tool_call>");
  ASSERT_EQ(from_mistral.calls.size(), 1u);
  ASSERT_EQ(from_qwen.calls.size(), 1u);
  EXPECT_TRUE(tokenizer::same_call(from_mistral.calls[0], from_qwen.calls[0]));
}

TEST(ToolCalls, MistralV7Template) {
  // mistral-common's InstructTokenizerV7 encoding of a conversation with tool use (system in
  // place, tools before the last user message, results with [TOOL_CONTENT]), as text.
  std::vector<tokenizer::chat_message> m = {
      {"system", "S"},
      {"user", "What's the weather in Paris?"},
      {"assistant", ""},
      {"tool", R"({"temp": 21})"},
      {"tool", R"("12:00")"},
      {"assistant", "It is 21 degrees."},
      {"user", "And tomorrow?"},
  };
  m[2].tool_calls = {{"abc123XYZ", "get_weather", R"({"city":"Paris","units":["c"]})"}, {"def456UVW", "get_time", "{}"}};
  m[3].tool_call_id = "abc123XYZ";
  m[4].tool_call_id = "def456UVW";
  const std::vector<ordered_json> tools = {ordered_json::parse(R"({"type":"function","function":{"name":"get_weather","description":"Current weather",)"
                                                      R"("parameters":{"type":"object","properties":{"city":{"type":"string"}}}}})")};
  const std::string expected =
      R"([SYSTEM_PROMPT]S[/SYSTEM_PROMPT][INST]What's the weather in Paris?[/INST][TOOL_CALLS][{"name": "get_weather", )"
      R"("arguments": {"city": "Paris", "units": ["c"]}, "id": "abc123XYZ"}, {"name": "get_time", "arguments": {}, "id": "def456UVW"}]</s>)"
      R"([TOOL_RESULTS]abc123XYZ[TOOL_CONTENT]{"temp": 21}[/TOOL_RESULTS][TOOL_RESULTS]def456UVW[TOOL_CONTENT]"12:00"[/TOOL_RESULTS])"
      R"(It is 21 degrees.</s>[AVAILABLE_TOOLS][{"type": "function", "function": {"name": "get_weather", "description": "Current weather", )"
      R"("parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}][/AVAILABLE_TOOLS][INST]And tomorrow?[/INST])";
  EXPECT_EQ(tokenizer::apply_chat_template(kind::mistral_v7, m, {.tools = tools}), expected);
  m[3].tool_call_id = "bad";
  expect_error(errc::invalid_argument, "message 3 has tool call id 'bad'", [&] { (void)tokenizer::apply_chat_template(kind::mistral_v7, m); });
}

TEST(ToolChoice, ParsesAndRefuses) {
  EXPECT_EQ(sample::tool_choice::parse("auto").kind, sample::tool_choice::mode::automatic);
  EXPECT_EQ(sample::tool_choice::parse("none").kind, sample::tool_choice::mode::none);
  EXPECT_TRUE(sample::tool_choice::parse("required").constrained());
  EXPECT_EQ(sample::tool_choice::parse("get_time").function, "get_time");
  const auto tools = tool_specs();
  expect_error(errc::invalid_argument, "names 'get_date', which is not among the tools (get_weather, get_time)",
               [&] { (void)sample::tool_call_grammar(kind::qwen2_5, tools, sample::tool_choice::parse("get_date")); });
  expect_error(errc::invalid_argument, "the chat format chatml has no tool-call syntax",
               [&] { (void)sample::tool_call_grammar(kind::chatml, tools, sample::tool_choice::parse("required")); });
  expect_error(errc::invalid_argument, "llama3.1 takes one call per reply",
               [&] { (void)sample::tool_call_grammar(kind::llama3_1, tools, sample::tool_choice::parse("required"), {.max_calls = 2}); });
  auto bad = tool_specs();
  bad[1]["function"]["parameters"]["properties"]["tz"]["pattern"] = "^[A-Z]";
  expect_error(errc::unsupported, "function 'get_time' parameters: json schema: keyword 'pattern' at #/properties/tz",
               [&] { (void)sample::tool_call_grammar(kind::qwen2_5, bad, sample::tool_choice::parse("required")); });
}

// With tool_choice required or named, a random-weight model's reply is always a call that
// parses, of the right function, with arguments valid against its parameters.
void expect_generated_calls_parse(const std::string& model_file, kind family, const sample::tool_choice& choice, int seeds,
                                  std::uint32_t max_calls = 1) {
  const auto model = generate::language_model::load(chorus_test::model_path(model_file));
  generate::session session(model, {.n_ctx = 0, .threads = 2});  // the training context: the llama3.1 tool prompt is long in bytes
  session.set_chat_format(family);
  const auto tools = tool_specs();
  auto grammar = std::make_shared<const sample::grammar>(sample::tool_call_grammar(family, tools, choice, {.max_calls = max_calls}));
  auto index = std::make_shared<const sample::token_index>(model->tokens());
  generate::options opts;
  opts.max_tokens = 300 * static_cast<std::int32_t>(max_calls);  // 512-token vocabularies spell the call byte by byte
  opts.sampling.temperature = 1.0f;
  opts.sampling.top_k = 0;
  opts.sampling.top_p = 1.0f;
  opts.sampling.min_p = 0.0f;
  opts.tools = template_tools();
  opts.constraint = std::make_shared<sample::grammar_constraint>(grammar, index, model->tokens());
  const std::vector<tokenizer::chat_message> messages = {{"user", "What's the weather in Paris?"}};
  seeds = chorus_test::seeds_for_this_build(seeds);
  for (int seed = 0; seed < seeds; ++seed) {
    opts.sampling.seed = static_cast<std::uint64_t>(seed);
    const auto result = session.chat(messages, opts);
    const std::string text = model->tokens().decode(result.ids, true);
    SCOPED_TRACE(std::string(tokenizer::to_string(family)) + " seed " + std::to_string(seed) + ": " + text);
    ASSERT_EQ(result.reason, generate::stop_reason::end_of_text);
    const auto parsed = tokenizer::parse_tool_calls(family, text);
    ASSERT_TRUE(parsed.malformed.empty()) << parsed.malformed[0].reason;
    ASSERT_GE(parsed.calls.size(), 1u);
    ASSERT_LE(parsed.calls.size(), max_calls);
    for (const auto& call : parsed.calls) {
      if (choice.kind == sample::tool_choice::mode::named) {
        EXPECT_EQ(call.name, choice.function);
      }
      const auto& spec = call.name == "get_weather" ? tools[0] : tools[1];
      const auto violation = sample::json_schema_validator(spec["function"]["parameters"]).check(call.arguments);
      EXPECT_FALSE(violation) << *violation;
    }
  }
}

TEST(ToolChoiceGeneration, RequiredAndNamedCallsAlwaysParse) {
  for (const auto family : {kind::mistral_v3, kind::mistral_v3_tekken, kind::mistral_v7, kind::qwen2_5, kind::llama3_1}) {
    expect_generated_calls_parse("tiny-mistral-Q8_0.gguf", family, sample::tool_choice::parse("required"), 10);
    expect_generated_calls_parse("tiny-mistral-Q8_0.gguf", family, sample::tool_choice::parse("get_time"), 5);
  }
  expect_generated_calls_parse("tiny-mistral-Q8_0.gguf", kind::qwen2_5, sample::tool_choice::parse("required"), 5, 3);
  expect_generated_calls_parse("tiny-llama-bpe-Q8_0.gguf", kind::mistral_v7, sample::tool_choice::parse("required"), 10);
  expect_generated_calls_parse("tiny-llama-bpe-Q8_0.gguf", kind::llama3_1, sample::tool_choice::parse("get_weather"), 10);
}

}  // namespace
