// The official OpenAI client for Node against `chorus serve` (started by test_server.cpp's
// ServerNode test, which installs the `openai` package into a temporary folder first).
// Usage: node client.mjs BASE_URL   (e.g. http://127.0.0.1:8080/v1). Exits 1 on the first failure.
import assert from "node:assert/strict";
import OpenAI from "openai";

const baseURL = process.argv[2];
const client = new OpenAI({ baseURL, apiKey: process.env.CHORUS_TEST_API_KEY ?? "unused", maxRetries: 0, timeout: 120000 });
const ask = (content) => [{ role: "user", content }];
const results = [];
const check = async (name, body) => {
  await body();
  results.push(name);
  console.log(`ok - ${name}`);
};

await check("models lists models and fusions", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes("stories"), ids.join(","));
  assert.ok(ids.includes("fusion/pair"), ids.join(","));
});

let whole;
await check("chat", async () => {
  whole = await client.chat.completions.create({ model: "stories", messages: ask("Once upon a time"), max_tokens: 16, seed: 5 });
  assert.equal(whole.object, "chat.completion");
  assert.equal(whole.choices.length, 1);
  assert.equal(whole.choices[0].message.role, "assistant");
  assert.equal(typeof whole.choices[0].message.content, "string");
  assert.ok(["stop", "length"].includes(whole.choices[0].finish_reason));
  assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + whole.usage.completion_tokens);
});

await check("streaming adds up to the same answer", async () => {
  const stream = await client.chat.completions.create({
    model: "stories", messages: ask("Once upon a time"), max_tokens: 16, seed: 5, stream: true, stream_options: { include_usage: true },
  });
  let text = "", finish = null, usage = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text += c.delta?.content ?? "";
      if (c.finish_reason) finish = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

await check("n samples", async () => {
  const r = await client.chat.completions.create({ model: "stories", messages: ask("The dog"), max_tokens: 8, n: 3, seed: 1 });
  assert.equal(r.choices.length, 3);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
});

await check("logprobs", async () => {
  const r = await client.chat.completions.create({ model: "stories", messages: ask("The dog"), max_tokens: 6, logprobs: true, top_logprobs: 2 });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, r.usage.completion_tokens);
  assert.ok(lp.every((t) => t.logprob <= 0 && t.top_logprobs.length === 2));
});

const tools = [{ type: "function", function: { name: "get_weather", description: "Weather of a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
await check("tools and a tool result", async () => {
  const plain = await client.chat.completions.create({ model: "qwen-tools", messages: ask("Weather in Paris?"), max_tokens: 4 });
  const r = await client.chat.completions.create({ model: "qwen-tools", messages: ask("Weather in Paris?"), max_tokens: 4, tools, tool_choice: "auto" });
  assert.ok(r.usage.prompt_tokens > plain.usage.prompt_tokens, "the tool spec is in the prompt");
  const turn = await client.chat.completions.create({
    model: "qwen-tools", max_tokens: 4, tools,
    messages: [...ask("Weather in Paris?"),
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
      { role: "tool", tool_call_id: "call_1", content: "sunny" }],
  });
  assert.ok(turn.usage.prompt_tokens > r.usage.prompt_tokens);
});

await check("a fusion as a model, with its report", async () => {
  const r = await client.chat.completions.create({ model: "fusion/pair", messages: ask("Once upon a time"), max_tokens: 8 });
  assert.equal(r.model, "fusion/pair");
  assert.equal(r.chorus_fusion.members.length, 2);
  assert.equal(r.choices[0].message.content, r.chorus_fusion.decision.answer);
});

await check("errors are APIError with status and code", async () => {
  const expectError = async (promise, status, code) => {
    try {
      await promise;
    } catch (e) {
      assert.ok(e instanceof OpenAI.APIError, String(e));
      assert.equal(e.status, status, e.message);
      assert.equal(e.code, code, e.message);
      return;
    }
    assert.fail(`no error; expected ${status} ${code}`);
  };
  await expectError(client.chat.completions.create({ model: "no-such-model", messages: ask("x") }), 404, "model_not_found");
  await expectError(client.chat.completions.create({ model: "stories", messages: ask("x"), temperature: 9 }), 400, "invalid_request");
  await expectError(client.chat.completions.create({ model: "mistral", messages: ask("x"), tools }), 400, "invalid_request");
});

console.log(JSON.stringify({ passed: results.length }));
