// The official `openai` npm client against the gateway: models, chat completions
// (plain and streamed, with usage), completions, and the errors it must raise.
// Usage: node openai_client.mjs BASE_URL API_KEY
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const [base, key] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 60000 });

const models = await client.models.list();
assert.equal(models.data.length, 1);
const model = models.data[0].id;

const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello! Who are you?' }];
const whole = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
assert.equal(whole.object, 'chat.completion');
assert.equal(whole.choices[0].message.role, 'assistant');
assert.ok(['length', 'stop'].includes(whole.choices[0].finish_reason));
assert.ok(whole.usage.prompt_tokens > 5);
assert.ok(whole.usage.completion_tokens >= 1 && whole.usage.completion_tokens <= 12);
assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + whole.usage.completion_tokens);

// Streamed, greedy: the same text, in pieces, then the usage chunk.
const stream = await client.chat.completions.create({
  model, messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let text = '';
let finish = null;
let usage = null;
let chunks = 0;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta?.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
  ++chunks;
}
assert.ok(chunks >= 3, `streamed in ${chunks} chunks`);
assert.equal(text, whole.choices[0].message.content);
assert.equal(finish, whole.choices[0].finish_reason);
assert.deepEqual(usage, whole.usage);

// Sampling with a seed is repeatable.
const a = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0.9, top_p: 0.9, seed: 7 });
const b = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0.9, top_p: 0.9, seed: 7 });
assert.equal(a.choices[0].message.content, b.choices[0].message.content);

const comp = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 6 });
assert.equal(comp.object, 'text_completion');
assert.equal(typeof comp.choices[0].text, 'string');
assert.equal(comp.usage.completion_tokens, 6);

// The prefix cache: a long system prompt that a second conversation shares,
// and a conversation's next turn, are served from the cache.
const system = { role: 'system', content: Array.from({ length: 30 }, (_, i) => `Rule ${i + 1}: answer plainly, name the rule you follow, keep to the facts.`).join(' ') };
const ask = (msgs) => client.chat.completions.create({ model, messages: msgs, max_tokens: 8, temperature: 0 });
const turn1 = [system, { role: 'user', content: 'What is rule 3?' }];
const r1 = await ask(turn1);
assert.equal(r1.usage.prompt_tokens_details.cached_tokens, 0, 'nothing of this prompt was seen before');
assert.ok(r1.usage.prompt_tokens > 300, `a long system prompt: ${r1.usage.prompt_tokens} tokens`);
// Another conversation: shares all but the first one's user words (under 10 tokens).
const other = await ask([system, { role: 'user', content: 'And rule 12, if you would?' }]);
const sharedSystem = r1.usage.prompt_tokens - 10;
assert.ok(other.usage.prompt_tokens_details.cached_tokens >= 0.8 * sharedSystem, JSON.stringify([r1.usage, other.usage]));
// The next turn: the whole first turn is its prefix.
const turn2 = [...turn1, { role: 'assistant', content: r1.choices[0].message.content }, { role: 'user', content: 'And rule 4?' }];
const r2 = await ask(turn2);
assert.ok(r2.usage.prompt_tokens_details.cached_tokens >= 0.8 * r1.usage.prompt_tokens, JSON.stringify([r1.usage, r2.usage]));
// Streamed usage reports it too.
const s2 = await client.chat.completions.create({ model, messages: turn2, max_tokens: 2, temperature: 0, stream: true, stream_options: { include_usage: true } });
let streamedUsage = null;
for await (const chunk of s2) if (chunk.usage) streamedUsage = chunk.usage;
assert.ok(streamedUsage.prompt_tokens_details.cached_tokens >= 0.8 * r1.usage.prompt_tokens, JSON.stringify(streamedUsage));

// Errors come back as the client's typed errors with the right status.
const expectStatus = async (status, f) => {
  try {
    await f();
  } catch (e) {
    assert.equal(e.status, status, `${e.status} ${e.message}`);
    return;
  }
  assert.fail(`expected HTTP ${status}`);
};
await expectStatus(400, () => client.chat.completions.create({ model, messages, max_tokens: -1 }));
await expectStatus(400, () => client.chat.completions.create({ model, messages: [] }));
await expectStatus(400, () => client.chat.completions.create({ model, messages: [{ role: 'wizard', content: 'hi' }] }));
await expectStatus(400, () => client.chat.completions.create({ model, messages, temperature: 'hot' }));
// Log-probabilities: at temperature 0 the chosen token is the top one; streamed the same.
const withLp = await client.chat.completions.create({ model, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2 });
const content = withLp.choices[0].logprobs.content;
assert.equal(content.length, withLp.usage.completion_tokens);
for (const t of content) {
  assert.ok(t.logprob <= 0, JSON.stringify(t));
  assert.equal(t.top_logprobs.length, 2);
  assert.deepEqual(t.top_logprobs[0].bytes, t.bytes, 'greedy: the chosen token is the most likely');
  assert.equal(t.top_logprobs[0].logprob, t.logprob);
  assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
}
const lpStream = await client.chat.completions.create({ model, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2, stream: true });
const streamed = [];
for await (const chunk of lpStream) for (const c of chunk.choices) if (c.logprobs?.content) streamed.push(...c.logprobs.content);
assert.deepEqual(streamed, content);
const compLp = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 4, temperature: 0, logprobs: 3 });
assert.equal(compLp.choices[0].logprobs.tokens.length, 4);
assert.equal(compLp.choices[0].logprobs.token_logprobs.length, 4);
assert.equal(Object.keys(compLp.choices[0].logprobs.top_logprobs[0]).length <= 3, true);
assert.deepEqual(compLp.choices[0].logprobs.text_offset.slice(0, 1), [0]);

// /tokenize and /detokenize (vLLM's shape) and max_model_len.
assert.ok(models.data[0].max_model_len > 0);
const post = async (path, body) => {
  const r = await fetch(`${base}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
};
const tk = await post('/tokenize', { prompt: 'Hello world', add_special_tokens: false });
assert.equal(tk.status, 200);
assert.ok(tk.body.count >= 2 && tk.body.tokens.length === tk.body.count, JSON.stringify(tk.body));
assert.equal(tk.body.max_model_len, models.data[0].max_model_len);
assert.equal((await post('/detokenize', { tokens: tk.body.tokens })).body.prompt, 'Hello world');
assert.equal((await post('/tokenize', { messages })).body.count, whole.usage.prompt_tokens, 'the chat route counts the same prompt');
assert.equal((await post('/tokenize', { prompt: 'x', frobnicate: 1 })).status, 400);
assert.equal((await post('/detokenize', { tokens: [-1] })).status, 400);

// Bad parameters are refused by name, never ignored (tests/e2e/parameters.mjs has the whole table).
for (const extra of [{ frobnicate_level: 3 }, { top_logprobs: 2 }, { n: 'two' }, { presence_penalty: 5 }]) {
  try {
    await client.chat.completions.create({ model, messages, max_tokens: 2, ...extra });
    assert.fail(`accepted ${JSON.stringify(extra)}`);
  } catch (e) {
    assert.equal(e.status, 400, `${JSON.stringify(extra)}: ${e.message}`);
    assert.ok(Object.keys(extra).includes(e.param), `${JSON.stringify(extra)}: param ${e.param}`);
  }
}
const wrong = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong', maxRetries: 0 });
await expectStatus(401, () => wrong.models.list());
console.log('openai client: all checks passed');
