// The official `openai` npm client against a running `strata serve`, unchanged: models, completions and chat,
// streamed and not, and the errors it must surface. Exits 1 on the first mismatch.
//   npm install openai@4            (in a scratch folder; NODE_PATH or run from there)
//   strata serve -m ../shared/models/stories260K.gguf --port 8080 --api-key sekret &
//   BASE=http://127.0.0.1:8080/v1 API_KEY=sekret node scripts/openai-client-check.mjs
import OpenAI from "openai";
import assert from "node:assert/strict";

const client = new OpenAI({ baseURL: process.env.BASE, apiKey: process.env.API_KEY ?? "none", maxRetries: 0 });
const model = (await client.models.list()).data[0].id;
const c = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 12, temperature: 0 });
assert.equal(c.usage.completion_tokens, 12);
assert.equal(c.choices[0].finish_reason, "length");
let t = "";
for await (const ch of await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 12,
                                                          temperature: 0, stream: true }))
  t += ch.choices[0]?.text ?? "";
assert.equal(t, c.choices[0].text, "streamed completion = whole completion");

const messages = [{ role: "user", content: "Tell me a story" }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
assert.equal(chat.choices[0].message.role, "assistant");
let ct = "", usage = null;
for await (const ch of await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0,
                                                              stream: true, stream_options: { include_usage: true } })) {
  ct += ch.choices[0]?.delta?.content ?? "";
  if (ch.usage) usage = ch.usage;
}
assert.equal(ct, chat.choices[0].message.content, "streamed chat = whole chat");
assert.equal(usage.completion_tokens, chat.usage.completion_tokens);
assert.ok(usage.prompt_tokens_details.cached_tokens > 0, "the second identical chat prompt hits the prefix cache");

const status = async (f) => { try { await f(); return 200; } catch (e) { return e.status; } };
assert.equal(await status(() => client.completions.create({ model: "gpt-4", prompt: "x" })), 404);
assert.equal(await status(() => client.chat.completions.create({ model, messages: [] })), 400);
assert.equal(await status(() => client.completions.create({ model, prompt: "x", max_tokens: 1e9 })), 400);
if (process.env.API_KEY) {
  const bad = new OpenAI({ baseURL: process.env.BASE, apiKey: "wrong", maxRetries: 0 });
  assert.equal(await status(() => bad.models.list()), 401);
}
console.log("openai client check: OK");
