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
const wrong = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong', maxRetries: 0 });
await expectStatus(401, () => wrong.models.list());
console.log('openai client: all checks passed');
