// What the package must give a user, without a model file: the full header (inference and
// fusion, so every dependency is found), a chat prompt with a tool spec (nlohmann/json),
// and errors as chorus::error.
#include <chorus/chorus.hpp>

#include <cstdio>
#include <vector>

int main() {
  const std::vector<chorus::tokenizer::chat_message> chat = {{"user", "Weather in Paris?"}};
  const auto prompt = chorus::tokenizer::apply_chat_template(
      chorus::tokenizer::chat_template_kind::qwen2_5, chat,
      {.tools = {chorus::parse_json(R"({"type":"function","function":{"name":"get_weather","parameters":{}}})")}});
  try {
    (void)chorus::gguf::file::open("no-such-model.gguf");
    return 1;
  } catch (const chorus::error& e) {
    std::printf("chorus %s: a %zu-byte prompt; a missing model: %s\n", chorus::version_string, prompt.size(), e.what());
  }
  return prompt.find("get_weather") != std::string::npos ? 0 : 1;
}
