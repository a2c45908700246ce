// One table of parameter cases, each run three ways: the `openai` npm client
// whole and streamed, and the WebSocket chat protocol. Every way must give the
// same choices (the cases are greedy or seeded), and each case checks what its
// parameter does. Then the refusals, by name, on both protocols.
// Usage: node parameters.mjs BASE_URL API_KEY
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import WebSocket from 'ws';

const [base, key] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 60000 });
const model = (await client.models.list()).data[0].id;
const user = (t) => [{ role: 'user', content: t }];
const messages = user('Tell me about the sea.');

// ---- the three ways, each giving {choices: [{text, finish_reason, logprobs}], usage} ----
async function whole(params) {
  const r = await client.chat.completions.create({ model, messages, ...params });
  return {
    choices: r.choices.sort((a, b) => a.index - b.index)
      .map((c) => ({ text: c.message.content, finish_reason: c.finish_reason, logprobs: c.logprobs?.content ?? null })),
    usage: r.usage,
  };
}
async function streamed(params) {
  const s = await client.chat.completions.create({ model, messages, ...params, stream: true, stream_options: { include_usage: true } });
  const choices = [];
  let usage = null;
  for await (const chunk of s) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      const x = (choices[c.index] ??= { text: '', finish_reason: null, logprobs: null });
      if (c.delta?.content) x.text += c.delta.content;
      if (c.logprobs?.content) x.logprobs = [...(x.logprobs ?? []), ...c.logprobs.content];
      if (c.finish_reason) x.finish_reason = c.finish_reason;
    }
  }
  return { choices, usage };
}
const ws = await new Promise((resolve, reject) => {
  const w = new WebSocket(base.replace('http://', 'ws://') + '/v1/chat/ws', { headers: { authorization: `Bearer ${key}` } });
  w.once('open', () => resolve(w));
  w.once('error', reject);
});
let wsCount = 0;
function overWs(params) {
  const id = `case-${++wsCount}`;
  return new Promise((resolve, reject) => {
    const choices = [];
    const onMessage = (data) => {
      const m = JSON.parse(data.toString());
      if (m.id !== id) return;
      if (m.type === 'delta') {
        const x = (choices[m.index] ??= { text: '', finish_reason: null, logprobs: null });
        x.text += m.content;
        if (m.logprobs) x.logprobs = [...(x.logprobs ?? []), ...m.logprobs.content];
      }
      if (m.type === 'error') { ws.off('message', onMessage); reject(Object.assign(new Error(m.message), { status: m.status })); }
      if (m.type === 'done') {
        ws.off('message', onMessage);
        for (const c of m.choices) (choices[c.index] ??= { text: '', finish_reason: null, logprobs: null }).finish_reason = c.finish_reason;
        resolve({ choices, usage: m.usage });
      }
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ type: 'chat', id, messages, ...params }));
  });
}

const tokenize = async (body) => {
  const r = await fetch(`${base}/tokenize`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return (await r.json()).tokens;
};
// Tokens as the logprobs entries name them, to count repeats.
const repeats = (lp) => lp.length - new Set(lp.map((t) => JSON.stringify(t.bytes))).size;

// ---- the baseline: greedy, with the tokens ----
const N = 16;
const baseline = await whole({ max_tokens: N, temperature: 0, ignore_eos: true, logprobs: true, top_logprobs: 1 });
const baseText = baseline.choices[0].text;
const baseLp = baseline.choices[0].logprobs;
assert.equal(baseLp.length, N);
const [favourite] = await tokenize({ prompt: ' ocean', add_special_tokens: false });
const favouriteText = await (await fetch(`${base}/detokenize`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ tokens: [favourite] }) })).json();
const baseChars = Array.from(baseText);
assert.ok(baseChars.length >= 8, `a long enough greedy answer: ${JSON.stringify(baseText)}`);
const stopString = baseChars.slice(3, 6).join('');

const cases = [
  { name: 'max_tokens', params: { max_tokens: 5, temperature: 0, ignore_eos: true },
    check: (r) => { assert.equal(r.usage.completion_tokens, 5); assert.equal(r.choices[0].finish_reason, 'length'); assert.ok(baseText.startsWith(r.choices[0].text)); } },
  { name: 'max_completion_tokens', params: { max_completion_tokens: 4, temperature: 0, ignore_eos: true },
    check: (r) => assert.equal(r.usage.completion_tokens, 4) },
  { name: 'temperature, top_p, seed', params: { max_tokens: 8, temperature: 0.9, top_p: 0.9, seed: 11, ignore_eos: true },
    check: (r) => assert.equal(r.usage.completion_tokens, 8) },
  { name: 'top_k 1 is greedy', params: { max_tokens: N, temperature: 1.5, top_k: 1, seed: 3, ignore_eos: true },
    check: (r) => assert.equal(r.choices[0].text, baseText) },
  { name: 'min_p 1 is greedy', params: { max_tokens: N, temperature: 1.5, min_p: 1, seed: 5, ignore_eos: true },
    check: (r) => assert.equal(r.choices[0].text, baseText) },
  { name: 'stop', params: { max_tokens: N, temperature: 0, ignore_eos: true, stop: [stopString] },
    check: (r) => { assert.equal(r.choices[0].text, baseText.slice(0, baseText.indexOf(stopString))); assert.equal(r.choices[0].finish_reason, 'stop'); } },
  { name: 'logprobs, top_logprobs', params: { max_tokens: 6, temperature: 0, ignore_eos: true, logprobs: true, top_logprobs: 3 },
    check: (r) => {
      const lp = r.choices[0].logprobs;
      assert.equal(lp.length, 6);
      for (const t of lp) {
        assert.ok(t.logprob <= 0);
        assert.equal(t.top_logprobs.length, 3);
        assert.deepEqual(t.top_logprobs[0].bytes, t.bytes, 'greedy: the chosen token is the most likely');
        assert.ok(t.top_logprobs.reduce((s, x) => s + Math.exp(x.logprob), 0) <= 1 + 1e-6);
      }
    } },
  { name: 'n with a seed', params: { n: 2, max_tokens: 8, temperature: 1, seed: 9, ignore_eos: true },
    check: (r) => {
      assert.equal(r.choices.length, 2);
      assert.notEqual(r.choices[0].text, r.choices[1].text, 'two draws of a random model');
      assert.equal(r.usage.completion_tokens, 16);
    } },
  { name: 'n greedy', params: { n: 3, max_tokens: N, temperature: 0, ignore_eos: true },
    check: (r) => { assert.equal(r.choices.length, 3); for (const c of r.choices) assert.equal(c.text, baseText); } },
  { name: 'logit_bias +100', params: { max_tokens: 4, temperature: 0, ignore_eos: true, logit_bias: { [favourite]: 100 } },
    check: (r) => assert.equal(r.choices[0].text, favouriteText.prompt.repeat(4)) },
  { name: 'logit_bias -100 bans tokens', params: { max_tokens: N, temperature: 0, ignore_eos: true,
      logit_bias: Object.fromEntries((await tokenize({ prompt: baseText, add_special_tokens: false })).map((t) => [t, -100])) },
    check: (r) => assert.notEqual(r.choices[0].text, baseText) },
  { name: 'frequency_penalty', params: { max_tokens: N, temperature: 0, ignore_eos: true, logprobs: true, frequency_penalty: 2 },
    check: (r) => {
      assert.ok(repeats(r.choices[0].logprobs) <= repeats(baseLp), `${repeats(r.choices[0].logprobs)} repeats against ${repeats(baseLp)}`);
      if (repeats(baseLp) > 0) assert.notEqual(r.choices[0].text, baseText);
    } },
  { name: 'presence_penalty', params: { max_tokens: N, temperature: 0, ignore_eos: true, logprobs: true, presence_penalty: 2 },
    check: (r) => { if (repeats(baseLp) > 0) assert.notEqual(r.choices[0].text, baseText); } },
  { name: 'repetition_penalty', params: { max_tokens: N, temperature: 0, ignore_eos: true, logprobs: true, repetition_penalty: 3 },
    check: (r) => assert.ok(repeats(r.choices[0].logprobs) <= repeats(baseLp)) },
  { name: 'negative presence_penalty repeats', params: { max_tokens: N, temperature: 0, ignore_eos: true, logprobs: true, presence_penalty: -2, frequency_penalty: -2 },
    check: (r) => assert.ok(repeats(r.choices[0].logprobs) >= repeats(baseLp)) },
  { name: 'min_tokens', params: { max_tokens: 8, min_tokens: 8, temperature: 0 },
    check: (r) => assert.equal(r.usage.completion_tokens, 8) },
  { name: 'ignore_eos', params: { max_tokens: 10, temperature: 0, ignore_eos: true },
    check: (r) => assert.equal(r.usage.completion_tokens, 10) },
  { name: 'user', params: { max_tokens: N, temperature: 0, ignore_eos: true, user: 'someone' },
    check: (r) => assert.equal(r.choices[0].text, baseText) },
];

for (const c of cases) {
  const results = [await whole(c.params), await streamed(c.params), await overWs(c.params)];
  const names = ['whole', 'streamed', 'websocket'];
  for (let i = 0; i < 3; ++i) {
    try {
      await c.check(results[i]);
    } catch (e) {
      e.message = `${c.name} (${names[i]}): ${e.message}`;
      throw e;
    }
  }
  const strip = (r) => r.choices.map((x) => ({ text: x.text, finish_reason: x.finish_reason, logprobs: x.logprobs }));
  assert.deepEqual(strip(results[1]), strip(results[0]), `${c.name}: streamed differs from whole`);
  assert.deepEqual(strip(results[2]), strip(results[0]), `${c.name}: WebSocket differs from whole`);
  assert.deepEqual(results[1].usage.completion_tokens, results[0].usage.completion_tokens, c.name);
  assert.deepEqual(results[2].usage.completion_tokens, results[0].usage.completion_tokens, c.name);
}

// Completions take the same sampling parameters.
const comp = await client.completions.create({ model, prompt: 'The sea', max_tokens: 4, temperature: 0, ignore_eos: true, n: 2, logit_bias: { [favourite]: 100 } });
assert.equal(comp.choices.length, 2);
for (const c of comp.choices) assert.equal(c.text, favouriteText.prompt.repeat(4));

// No seed: two sampled answers differ (a fresh seed per request).
const free = await Promise.all([0, 1].map(() => whole({ max_tokens: 12, temperature: 1, ignore_eos: true })));
assert.notEqual(free[0].choices[0].text, free[1].choices[0].text);

// A tool round trip in the messages: an assistant turn of tool calls, then the tool's output.
const toolTurn = [
  ...user('What is the weather in Paris?'),
  { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }] },
  { role: 'tool', tool_call_id: 'call_1', content: '{"celsius": 21}' },
];
const tool = await client.chat.completions.create({ model, messages: toolTurn, max_tokens: 4, temperature: 0 });
assert.equal(tool.usage.prompt_tokens, (await tokenize({ messages: toolTurn })).length, 'the chat route and /tokenize render tool turns alike');
assert.ok(tool.usage.prompt_tokens > (await tokenize({ messages: user('What is the weather in Paris?') })).length + 10);

// Refused by name: over HTTP (error.param) and over the WebSocket (the message names it).
const refusals = [
  [{ frobnicate_level: 3 }, 'frobnicate_level'],
  [{ n: 0 }, 'n'],
  [{ n: 17 }, 'n'],
  [{ presence_penalty: 2.5 }, 'presence_penalty'],
  [{ frequency_penalty: -3 }, 'frequency_penalty'],
  [{ repetition_penalty: 0 }, 'repetition_penalty'],
  [{ min_p: 1.5 }, 'min_p'],
  [{ logit_bias: { abc: 1 } }, 'logit_bias'],
  [{ logit_bias: { 5: 500 } }, 'logit_bias'],
  [{ logit_bias: { 99999999: 1 } }, 'logit_bias'],
  [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: 'a' } } } }, 'response_format.json_schema.schema.pattern'],
  [{ tools: [{ type: 'function', function: { name: 'no spaces allowed', parameters: {} } }] }, 'tools[0].function.name'],
  [{ messages: [{ role: 'user', content: 'x', name: 'me' }] }, 'messages[0].name'],
  [{ messages: [{ role: 'assistant', content: 'text', tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{}' } }] }] }, 'messages[0].tool_calls'],
  [{ messages: [{ role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'f', arguments: {} } }] }] }, 'messages[0].tool_calls[0].function.arguments'],
];
for (const [extra, param] of refusals) {
  try {
    await client.chat.completions.create({ model, messages, max_tokens: 2, ...extra });
    assert.fail(`accepted ${JSON.stringify(extra)}`);
  } catch (e) {
    assert.equal(e.status, 400, `${JSON.stringify(extra)}: ${e.message}`);
    assert.equal(e.param, param, `${JSON.stringify(extra)}: ${e.message}`);
  }
  await assert.rejects(overWs({ max_tokens: 2, ...extra }), (e) => e.status === 400 && e.message.includes(param.split('[')[0]),
    `WebSocket: ${JSON.stringify(extra)}`);
}
try {
  await client.completions.create({ model, prompt: 'x', max_tokens: 2, best_of: 2 });
  assert.fail('accepted best_of');
} catch (e) {
  assert.equal(e.param, 'best_of');
}
ws.close();
console.log(`parameters: ${cases.length} cases three ways, ${refusals.length} refusals: all checks passed`);
