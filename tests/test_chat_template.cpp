// Tests of tokenizer/chat_template.hpp: each family's exact prompt text, detection of real
// template sources, choice by name, fallbacks and errors.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>

#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace chorus;
using tokenizer::chat_message;
using tokenizer::chat_template_kind;
using kind = tokenizer::chat_template_kind;

// system + user + assistant + user: the conversation every family is checked with.
const std::vector<chat_message> conversation = {
    {"system", "You are terse."},
    {"user", "Hi there"},
    {"assistant", "Hello."},
    {"user", "What is 2+2?"},
};
const std::vector<chat_message> without_system(conversation.begin() + 1, conversation.end());

std::string apply(kind k, const std::vector<chat_message>& messages, bool generation_prompt = true, bool bos = false) {
  return tokenizer::apply_chat_template(k, messages, {.add_generation_prompt = generation_prompt, .add_bos = bos});
}

using chorus_test::expect_error;

TEST(ChatTemplate, ChatML) {
  const std::string body =
      "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
      "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n";
  EXPECT_EQ(apply(kind::chatml, conversation, false), body);
  EXPECT_EQ(apply(kind::chatml, conversation), body + "<|im_start|>assistant\n");
  EXPECT_EQ(apply(kind::chatml, conversation, true, true), body + "<|im_start|>assistant\n");  // no BOS text
  // Other roles are written as given (tool results).
  EXPECT_EQ(apply(kind::chatml, {{"tool", "42"}}, false), "<|im_start|>tool\n42<|im_end|>\n");
  // Contents are kept byte for byte.
  EXPECT_EQ(apply(kind::chatml, {{"user", "  spaced \n"}}, false), "<|im_start|>user\n  spaced \n<|im_end|>\n");
}

TEST(ChatTemplate, Llama3) {
  const std::string body =
      "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>";
  EXPECT_EQ(apply(kind::llama3, conversation, false), body);
  EXPECT_EQ(apply(kind::llama3, conversation), body + "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(apply(kind::llama3, conversation, false, true), "<|begin_of_text|>" + body);
  // The Llama 3 template trims contents.
  EXPECT_EQ(apply(kind::llama3, {{"user", "  x \n"}}, false), "<|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
  EXPECT_EQ(apply(kind::llama3, {{"ipython", "{}"}}, false), "<|start_header_id|>ipython<|end_header_id|>\n\n{}<|eot_id|>");
}

TEST(ChatTemplate, Llama2) {
  const std::string expected =
      "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST] Hello. </s><s>[INST] What is 2+2? [/INST]";
  EXPECT_EQ(apply(kind::llama2, conversation, false), expected);
  EXPECT_EQ(apply(kind::llama2, conversation), expected);  // already ends with the request for an answer
  EXPECT_EQ(apply(kind::llama2, conversation, true, true), "<s>" + expected);
  EXPECT_EQ(apply(kind::llama2, without_system), "[INST] Hi there [/INST] Hello. </s><s>[INST] What is 2+2? [/INST]");
  EXPECT_EQ(apply(kind::llama2, {{"user", " padded  "}}), "[INST] padded [/INST]");
}

TEST(ChatTemplate, MistralV1) {
  // What the Mistral-7B-Instruct v0.1/v0.2 template renders (also tiny-mistral's, see below);
  // that template has no system role: the system message joins the first user message.
  const std::string expected = "[INST] You are terse.\n\nHi there [/INST]Hello.</s>[INST] What is 2+2? [/INST]";
  EXPECT_EQ(apply(kind::mistral_v1, conversation, false), expected);
  EXPECT_EQ(apply(kind::mistral_v1, conversation), expected);
  EXPECT_EQ(apply(kind::mistral_v1, conversation, true, true), "<s>" + expected);
  EXPECT_EQ(apply(kind::mistral_v1, without_system), "[INST] Hi there [/INST]Hello.</s>[INST] What is 2+2? [/INST]");
}

TEST(ChatTemplate, MistralV3) {
  // v0.3: the system message goes into the LAST user message; answers follow a space.
  const std::string expected = "[INST] Hi there[/INST] Hello.</s>[INST] You are terse.\n\nWhat is 2+2?[/INST]";
  EXPECT_EQ(apply(kind::mistral_v3, conversation, false), expected);
  EXPECT_EQ(apply(kind::mistral_v3, conversation), expected);
  EXPECT_EQ(apply(kind::mistral_v3, without_system), "[INST] Hi there[/INST] Hello.</s>[INST] What is 2+2?[/INST]");
  EXPECT_EQ(apply(kind::mistral_v3, {{"system", "S"}, {"user", "U"}}), "[INST] S\n\nU[/INST]");
}

TEST(ChatTemplate, MistralV3Tekken) {
  const std::string expected = "[INST]Hi there[/INST]Hello.</s>[INST]You are terse.\n\nWhat is 2+2?[/INST]";
  EXPECT_EQ(apply(kind::mistral_v3_tekken, conversation, false), expected);
  EXPECT_EQ(apply(kind::mistral_v3_tekken, conversation), expected);
  EXPECT_EQ(apply(kind::mistral_v3_tekken, without_system), "[INST]Hi there[/INST]Hello.</s>[INST]What is 2+2?[/INST]");
}

TEST(ChatTemplate, MistralV7) {
  const std::string expected =
      "[SYSTEM_PROMPT]You are terse.[/SYSTEM_PROMPT][INST]Hi there[/INST]Hello.</s>[INST]What is 2+2?[/INST]";
  EXPECT_EQ(apply(kind::mistral_v7, conversation, false), expected);
  EXPECT_EQ(apply(kind::mistral_v7, conversation), expected);
  EXPECT_EQ(apply(kind::mistral_v7, conversation, true, true), "<s>" + expected);
  EXPECT_EQ(apply(kind::mistral_v7, without_system), "[INST]Hi there[/INST]Hello.</s>[INST]What is 2+2?[/INST]");
  // A later system message stays where it was put.
  EXPECT_EQ(apply(kind::mistral_v7, {{"user", "a"}, {"system", "b"}}), "[INST]a[/INST][SYSTEM_PROMPT]b[/SYSTEM_PROMPT]");
}

TEST(ChatTemplate, Phi3) {
  const std::string body =
      "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\nHello.<|end|>\n"
      "<|user|>\nWhat is 2+2?<|end|>\n";
  EXPECT_EQ(apply(kind::phi3, conversation, false), body);
  EXPECT_EQ(apply(kind::phi3, conversation), body + "<|assistant|>\n");
  EXPECT_EQ(apply(kind::phi3, conversation, true, true), "<s>" + body + "<|assistant|>\n");
}

TEST(ChatTemplate, Gemma) {
  const std::string body =
      "<start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
      "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n";
  EXPECT_EQ(apply(kind::gemma, conversation, false), body);
  EXPECT_EQ(apply(kind::gemma, conversation), body + "<start_of_turn>model\n");
  EXPECT_EQ(apply(kind::gemma, conversation, false, true), "<bos>" + body);
  EXPECT_EQ(apply(kind::gemma, {{"system", "S"}}, true), "<start_of_turn>user\nS<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, EmptyConversation) {
  EXPECT_EQ(apply(kind::chatml, {}), "<|im_start|>assistant\n");
  EXPECT_EQ(apply(kind::chatml, {}, false), "");
  EXPECT_EQ(apply(kind::mistral_v1, {}), "");
  EXPECT_EQ(apply(kind::gemma, {}), "<start_of_turn>model\n");
}

// Distinctive pieces of the published templates of each family (the parts that matter for
// detection), as they appear in the models' tokenizer_config.json / GGUF metadata.
TEST(ChatTemplate, DetectsKnownTemplates) {
  struct sample {
    std::string_view source;
    kind expected;
  };
  const sample samples[] = {
      {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
       "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
       kind::chatml},
      // Qwen2.5-Instruct: ChatML with its default system line and Hermes-style tool tags.
      {"{%- else %}{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
       "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
       "{%- endif %}{%- endif %}{%- for tool_call in message.tool_calls %}{{- '\\n<tool_call>\\n{\"name\": \"' }}",
       kind::qwen2_5},
      // Hermes-style tool tags without Qwen's default system line are plain ChatML here.
      {"{{- '<|im_start|>' + message.role }}{{- '\\n<tool_call>\\n' }}{{- '<|im_end|>\\n' }}", kind::chatml},
      {"{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
       "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}",
       kind::llama3},
      // Llama 3.1 / 3.2 / 3.3: the knowledge-date system header.
      {"{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{%- if tools is not none %}{{- \"Environment: ipython\\n\" }}"
       "{%- endif %}{{- \"Cutting Knowledge Date: December 2023\\n\" }}{{- \"Today Date: \" + date_string + \"\\n\\n\" }}",
       kind::llama3_1},
      {"{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
       "'\\n<</SYS>>\\n\\n' + message['content'] %}{% endif %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}",
       kind::llama2},
      {"{%- if loop.last and system_message is defined %}{{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + "
       "\"[/INST]\" }}{%- else %}{{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}{%- endif %}",
       kind::mistral_v3},
      {"{%- if loop.last and system_message is defined %}{{- '[INST]' + system_message + '\\n\\n' + message['content'] + "
       "'[/INST]' }}{%- else %}{{- '[INST]' + message['content'] + '[/INST]' }}{%- endif %}",
       kind::mistral_v3_tekken},
      {"{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}{%- for message in loop_messages %}"
       "{%- if message['role'] == 'user' %}{{- '[INST]' + message['content'] + '[/INST]' }}",
       kind::mistral_v7},
      {"{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}"
       "{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}",
       kind::phi3},
      {"{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
       "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}",
       kind::gemma},
  };
  for (const auto& s : samples) {
    EXPECT_EQ(tokenizer::detect_chat_template(s.source), s.expected) << s.source;
    const auto choice = tokenizer::choose_chat_template(s.source);
    EXPECT_EQ(choice.kind, s.expected);
    EXPECT_FALSE(choice.fell_back);
    EXPECT_TRUE(choice.warning.empty());
  }
}

TEST(ChatTemplate, DetectsTheTinyMistralTemplate) {
  const auto file = gguf::file::open(chorus_test::model_path("tiny-mistral-Q8_0.gguf"));
  const auto source = file.find<std::string_view>("tokenizer.chat_template");
  ASSERT_TRUE(source.has_value());
  EXPECT_EQ(tokenizer::detect_chat_template(*source), kind::mistral_v1);
  const auto choice = tokenizer::choose_chat_template(file);
  EXPECT_EQ(choice.kind, kind::mistral_v1);
  EXPECT_FALSE(choice.fell_back);
  // The format this template renders for user/assistant/user (bos_token "<s>", eos_token "</s>").
  EXPECT_EQ(apply(kind::mistral_v1, without_system, true, true),
            "<s>[INST] Hi there [/INST]Hello.</s>[INST] What is 2+2? [/INST]");
}

TEST(ChatTemplate, DetectsThePhi3VocabTemplateAndTokenizesItsMarkers) {
  const auto file = gguf::file::open(chorus_test::golden_dir() / "tokenizer" / "ggml-vocab-phi-3.gguf");
  EXPECT_EQ(tokenizer::choose_chat_template(file).kind, kind::phi3);
  // With parse_special the markers are single control tokens.
  const auto tok = tokenizer::tokenizer::from_gguf(file);
  const auto plain = tok.encode("<|user|>", false, true);
  ASSERT_EQ(plain.size(), 1u);
  const auto ids = tok.encode(apply(kind::phi3, {{"user", "Hi"}}), false, true);
  EXPECT_EQ(ids.front(), plain.front());
  EXPECT_EQ(tok.encode("<|assistant|>", false, true).size(), 1u);
}

TEST(ChatTemplate, ModelsWithoutATemplateFallBackToChatML) {
  const auto file = gguf::file::open(chorus_test::model_path("stories260K.gguf"));
  const auto choice = tokenizer::choose_chat_template(file);
  EXPECT_EQ(choice.kind, kind::chatml);
  EXPECT_TRUE(choice.fell_back);
  EXPECT_NE(choice.warning.find("no chat template"), std::string::npos);
}

TEST(ChatTemplate, UnknownTemplatesFallBackWithAWarning) {
  for (std::string_view source : {"", "{{ messages }}", "### Instruction:\n{{ prompt }}\n### Response:", "<|turn|>user"}) {
    EXPECT_EQ(tokenizer::detect_chat_template(source), kind::unknown) << source;
    const auto choice = tokenizer::choose_chat_template(source);
    EXPECT_EQ(choice.kind, tokenizer::default_chat_template);
    EXPECT_EQ(choice.kind, kind::chatml);
    EXPECT_TRUE(choice.fell_back);
    EXPECT_FALSE(choice.warning.empty());
  }
}

TEST(ChatTemplate, ChoiceByName) {
  for (const auto k : {kind::chatml, kind::qwen2_5, kind::llama2, kind::llama3, kind::llama3_1, kind::mistral_v1, kind::mistral_v3,
                       kind::mistral_v3_tekken, kind::mistral_v7, kind::phi3, kind::gemma}) {
    EXPECT_EQ(tokenizer::chat_template_from_name(tokenizer::to_string(k)), k);
  }
  EXPECT_EQ(tokenizer::chat_template_from_name("ChatML"), kind::chatml);
  EXPECT_EQ(tokenizer::chat_template_from_name("mistral_v3_tekken"), kind::mistral_v3_tekken);
  EXPECT_EQ(tokenizer::chat_template_from_name("qwen2"), kind::chatml);
  EXPECT_EQ(tokenizer::chat_template_from_name("Qwen2.5"), kind::qwen2_5);
  EXPECT_EQ(tokenizer::chat_template_from_name("qwen-2.5"), kind::qwen2_5);
  EXPECT_EQ(tokenizer::chat_template_from_name("Llama-3.2"), kind::llama3_1);
  EXPECT_EQ(tokenizer::chat_template_from_name("gemma3"), kind::gemma);
  EXPECT_EQ(tokenizer::to_string(kind::unknown), "unknown");
  expect_error(errc::invalid_argument, "unknown name 'vicuna' (valid: chatml, qwen2.5, llama2, llama3, llama3.1, mistral-v1",
               [] { (void)tokenizer::chat_template_from_name("vicuna"); });
  expect_error(errc::invalid_argument, "''", [] { (void)tokenizer::chat_template_from_name(""); });
}

TEST(ChatTemplate, RejectsWhatAFormatCannotExpress) {
  expect_error(errc::invalid_argument, "message 1 has role 'tool'",
               [] { (void)apply(kind::mistral_v1, {{"user", "a"}, {"tool", "b"}}); });
  expect_error(errc::invalid_argument, "role 'narrator'", [] { (void)apply(kind::gemma, {{"narrator", "x"}}); });
  expect_error(errc::invalid_argument, "role 'tool'", [] { (void)apply(kind::phi3, {{"tool", "x"}}); });
  expect_error(errc::invalid_argument, "message 0 has role ''", [] { (void)apply(kind::chatml, {{"", "x"}}); });
  for (const auto k : {kind::llama2, kind::mistral_v1, kind::mistral_v3, kind::mistral_v3_tekken, kind::gemma}) {
    expect_error(errc::invalid_argument, "message 2 is a system message",
                 [k] { (void)apply(k, {{"user", "a"}, {"assistant", "b"}, {"system", "c"}}); });
  }
  expect_error(errc::invalid_argument, "no format chosen", [] { (void)apply(kind::unknown, conversation); });
}

// A conversation with tool use: the model calls two tools, reads their results, answers, and
// is asked again.
std::vector<chat_message> tool_conversation() {
  std::vector<chat_message> m = {
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
  return m;
}

std::vector<nlohmann::ordered_json> weather_tool() {
  return {parse_json(R"({"type":"function","function":{"name":"get_weather","description":"Current weather",)"
                     R"("parameters":{"type":"object","properties":{"city":{"type":"string"}}}}})")};
}

TEST(ChatTemplate, MistralToolCallsAndResults) {
  const auto messages = tool_conversation();
  // What Mistral-Nemo-Instruct-2407's Jinja template (llama.cpp c392e50, models/templates/)
  // renders for this conversation under jinja2 3.1 with trim_blocks and lstrip_blocks, as
  // transformers runs it, less the leading BOS.
  const std::string tekken =
      R"([INST]What's the weather in Paris?[/INST][TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "units": ["c"]}, "id": "abc123XYZ"}, )"
      R"({"name": "get_time", "arguments": {}, "id": "def456UVW"}]</s>[TOOL_RESULTS]{"content": {"temp": 21}, "call_id": "abc123XYZ"}[/TOOL_RESULTS])"
      R"([TOOL_RESULTS]{"content": "12:00", "call_id": "def456UVW"}[/TOOL_RESULTS]It is 21 degrees.</s>)"
      R"([AVAILABLE_TOOLS][{"type": "function", "function": {"name": "get_weather", "description": "Current weather", )"
      R"("parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}][/AVAILABLE_TOOLS][INST]S)"
      "\n\n"
      R"(And tomorrow?[/INST])";
  EXPECT_EQ(tokenizer::apply_chat_template(kind::mistral_v3_tekken, messages, {.tools = weather_tool()}), tekken);
  // Mistral-7B-Instruct-v0.3: the same with a space after "[INST]", "[TOOL_CALLS]",
  // "[TOOL_RESULTS]", "[AVAILABLE_TOOLS]" and before an answer.
  const std::string v3 =
      R"([INST] What's the weather in Paris?[/INST][TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris", "units": ["c"]}, "id": "abc123XYZ"}, )"
      R"({"name": "get_time", "arguments": {}, "id": "def456UVW"}]</s>[TOOL_RESULTS] {"content": {"temp": 21}, "call_id": "abc123XYZ"}[/TOOL_RESULTS])"
      R"([TOOL_RESULTS] {"content": "12:00", "call_id": "def456UVW"}[/TOOL_RESULTS] It is 21 degrees.</s>)"
      R"([AVAILABLE_TOOLS] [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", )"
      R"("parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}][/AVAILABLE_TOOLS][INST] S)"
      "\n\n"
      R"(And tomorrow?[/INST])";
  EXPECT_EQ(tokenizer::apply_chat_template(kind::mistral_v3, messages, {.tools = weather_tool()}), v3);
  // A bare function object is a spec too; without tools there is no [AVAILABLE_TOOLS] block.
  const auto bare = std::vector<nlohmann::ordered_json>{weather_tool()[0].at("function")};
  EXPECT_EQ(tokenizer::apply_chat_template(kind::mistral_v3_tekken, messages, {.tools = bare}), tekken);
  EXPECT_EQ(tokenizer::apply_chat_template(kind::mistral_v3_tekken, messages).find("AVAILABLE_TOOLS"), std::string::npos);
}

TEST(ChatTemplate, ToolMistakesAreNamed) {
  auto messages = tool_conversation();
  messages[3].tool_call_id = "short";
  expect_error(errc::invalid_argument, "message 3 has tool call id 'short' (this format needs exactly 9 letters or digits)",
               [&] { (void)tokenizer::apply_chat_template(kind::mistral_v3, messages); });
  messages = tool_conversation();
  messages[2].tool_calls[1].arguments = "{city: Paris}";
  expect_error(errc::invalid_argument, "message 2, tool call 'get_time': arguments are not valid JSON",
               [&] { (void)tokenizer::apply_chat_template(kind::mistral_v3_tekken, messages); });
  messages = tool_conversation();
  messages[2].tool_calls[0].id = "abc-23XYZ";
  expect_error(errc::invalid_argument, "tool call id 'abc-23XYZ'",
               [&] { (void)tokenizer::apply_chat_template(kind::mistral_v3_tekken, messages); });
  // Families that do not write tools here say so instead of dropping them.
  expect_error(errc::invalid_argument, "has tool calls; only assistant messages of mistral-v3",
               [] { (void)tokenizer::apply_chat_template(kind::chatml, tool_conversation()); });
  expect_error(errc::invalid_argument, "chat template llama3: tool specs given",
               [] { (void)tokenizer::apply_chat_template(kind::llama3, conversation, {.tools = weather_tool()}); });
  expect_error(errc::invalid_argument, "tool 0 is not a JSON object",
               [] { (void)tokenizer::apply_chat_template(kind::mistral_v3, conversation, {.tools = {nlohmann::ordered_json(3)}}); });
}

// What Qwen2.5-7B-Instruct's Jinja template (llama.cpp c392e50, models/templates/) renders under
// jinja2 3.1 with trim_blocks and lstrip_blocks and transformers' tojson, as transformers runs it.
TEST(ChatTemplate, QwenToolCallsAndResults) {
  const std::string tools_block =
      "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function "
      "signatures within <tools></tools> XML tags:\n<tools>\n"
      R"({"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": )"
      R"({"type": "object", "properties": {"city": {"type": "string"}}}}})"
      "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
      "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
      "<args-json-object>}\n</tool_call><|im_end|>\n";
  const std::string turns =
      "<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n"
      R"({"name": "get_weather", "arguments": {"city": "Paris", "units": ["c"]}})"
      "\n</tool_call>\n<tool_call>\n"
      R"({"name": "get_time", "arguments": {}})"
      "\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n"
      R"({"temp": 21})"
      "\n</tool_response>\n<tool_response>\n\"12:00\"\n</tool_response><|im_end|>\n<|im_start|>assistant\nIt is 21 "
      "degrees.<|im_end|>\n<|im_start|>user\nAnd tomorrow?<|im_end|>\n<|im_start|>assistant\n";
  auto messages = tool_conversation();
  EXPECT_EQ(tokenizer::apply_chat_template(kind::qwen2_5, messages, {.tools = weather_tool()}),
            "<|im_start|>system\nS\n\n" + tools_block + turns);
  // A bare function object is the same spec.
  const auto bare = std::vector<nlohmann::ordered_json>{weather_tool()[0].at("function")};
  EXPECT_EQ(tokenizer::apply_chat_template(kind::qwen2_5, messages, {.tools = bare}),
            "<|im_start|>system\nS\n\n" + tools_block + turns);
  // Without a system message the template's default one; an assistant's text before its calls.
  messages.erase(messages.begin());
  messages[1].content = "Let me check.";
  std::string with_text = turns;
  with_text.replace(with_text.find("<|im_start|>assistant\n<tool_call>"), 22, "<|im_start|>assistant\nLet me check.\n");
  EXPECT_EQ(tokenizer::apply_chat_template(kind::qwen2_5, messages, {.tools = weather_tool()}),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n" + tools_block + with_text);
}

TEST(ChatTemplate, QwenWithoutToolsIsChatMLWithItsDefaultSystemMessage) {
  EXPECT_EQ(apply(kind::qwen2_5, {{"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}}),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(apply(kind::qwen2_5, {{"system", "S"}, {"user", "Hi"}, {"assistant", "A"}, {"system", "late"}, {"user", "V"}}),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
            "<|im_start|>system\nlate<|im_end|>\n<|im_start|>user\nV<|im_end|>\n<|im_start|>assistant\n");
  expect_error(errc::invalid_argument, "message 1 has role 'ipython'",
               [] { (void)apply(kind::qwen2_5, {{"user", "x"}, {"ipython", "y"}}); });
  auto messages = tool_conversation();
  messages[2].tool_calls[0].arguments = "[1,";
  expect_error(errc::invalid_argument, "chat template qwen2.5: message 2, tool call 'get_weather': arguments are not valid JSON",
               [&] { (void)tokenizer::apply_chat_template(kind::qwen2_5, messages); });
}

// What Llama-3.1-8B-Instruct's Jinja template (llama.cpp c392e50, models/templates/; 3.3's is
// the same, 3.2's differs only in taking the day's date) renders, as for Qwen above.
TEST(ChatTemplate, Llama31HeaderToolCallsAndResults) {
  EXPECT_EQ(apply(kind::llama3_1, {{"system", " S "}, {"user", "Hi "}, {"assistant", "A"}, {"user", "V"}}),
            "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
            "S<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
            "\n\nA<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nV<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(tokenizer::apply_chat_template(kind::llama3_1, {{"user", "Hi"}}, {.add_bos = true, .date = "01 Dec 2026"}),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 01 Dec 2026\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");

  auto messages = tool_conversation();
  messages[2].tool_calls.resize(1);  // the Llama templates take one call per message
  messages.erase(messages.begin() + 4);
  const std::string expected =
      "<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\n"
      "Today Date: 26 Jul 2024\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, "
      "please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n"
      "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not "
      "use variables.\n\n{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        "
      "\"description\": \"Current weather\",\n        \"parameters\": {\n            \"type\": \"object\",\n            "
      "\"properties\": {\n                \"city\": {\n                    \"type\": \"string\"\n                }\n"
      "            }\n        }\n    }\n}\n\nWhat's the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
      "\n\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"units\": [\"c\"]}}<|eot_id|>"
      "<|start_header_id|>ipython<|end_header_id|>\n\n\"{\\\"temp\\\": 21}\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
      "\n\nIt is 21 degrees.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd tomorrow?<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\n";
  EXPECT_EQ(tokenizer::apply_chat_template(kind::llama3_1, messages, {.tools = weather_tool()}), expected);
  const auto bare = std::vector<nlohmann::ordered_json>{weather_tool()[0].at("function")};
  EXPECT_EQ(tokenizer::apply_chat_template(kind::llama3_1, messages, {.tools = bare}), expected);

  expect_error(errc::invalid_argument, "chat template llama3.1: message 2 has 2 tool calls; this format takes one per message",
               [] { (void)tokenizer::apply_chat_template(kind::llama3_1, tool_conversation()); });
  expect_error(errc::invalid_argument, "tools go into the first user message, and there is none", [] {
    (void)tokenizer::apply_chat_template(kind::llama3_1, {{"system", "S"}}, {.tools = weather_tool()});
  });
}

// The JSON that the templates embed is what Python's json.dumps(v, ensure_ascii=False) writes
// (transformers' tojson); the expected text below is Python 3.11's output for this document.
TEST(ChatTemplate, JsonIsWrittenAsPythonWritesIt) {
  const auto v = parse_json(R"({"z":[1,2.5,"x",-0.0,1e-7,123456789012,1e300],"b":{"c":null,"d":true,"e":false},"e":[],)"
                            R"("f":{},"s":"tab\t quote\" back\\ nl\n \u0001 \u007f é 漢 🎉 /"})");
  EXPECT_EQ(tokenizer::dump_as_python(v),
            R"({"z": [1, 2.5, "x", -0.0, 1e-07, 123456789012, 1e+300], "b": {"c": null, "d": true, "e": false}, "e": [], )"
            R"("f": {}, "s": "tab\t quote\" back\\ nl\n \u0001 )"
            "\x7f"
            R"( é 漢 🎉 /"})");
  // Bytes that are not UTF-8 (a caller's or a model's) become U+FFFD instead of an exception.
  EXPECT_EQ(tokenizer::dump_as_python(nlohmann::ordered_json{{"k", "a\xFF" "b"}}), "{\"k\": \"a\xEF\xBF\xBD" "b\"}");
}

}  // namespace
