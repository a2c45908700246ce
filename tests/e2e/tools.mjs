// Tool calls and reasoning through the `openai` npm client and the WebSocket
// protocol, on a model with random weights: tool_choice required and a named
// function must still give well-formed calls whose arguments validate against
// the function's schema, whole and streamed; none gives no call and no call
// markup; a call round trip completes; a scripted output (the `grammar`
// extension) checks that calls and think blocks are read out of free text.
// Usage: node tools.mjs BASE_URL API_KEY
import assert from 'node:assert/strict';
import Ajv from 'ajv';
import OpenAI from 'openai';
import WebSocket from 'ws';

const [base, key] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 120000 });
const model = (await client.models.list()).data[0].id;
const ajv = new Ajv({ strict: false });

const weather = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 24 }, unit: { enum: ['celsius', 'fahrenheit'] } },
  required: ['city', 'unit'],
  additionalProperties: false,
};
const search = { type: 'object', properties: { query: { type: 'string', minLength: 1, maxLength: 40 }, top: { type: 'integer' } }, required: ['query'] };
const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'Current weather in a city', parameters: weather } },
  { type: 'function', function: { name: 'web_search', description: 'Search the web', parameters: search } },
];
const schemas = { get_weather: ajv.compile(weather), web_search: ajv.compile(search) };
const messages = [{ role: 'user', content: 'What is the weather in Oslo? Search if you must.' }];
const markup = /<｜|```/;

function checkCalls(calls, where, only) {
  assert.ok(Array.isArray(calls) && calls.length >= 1, `${where}: at least one call`);
  for (const c of calls) {
    assert.match(c.id, /^call_[A-Za-z0-9]{24}$/, `${where}: call id`);
    assert.equal(c.type ?? 'function', 'function');
    assert.ok(schemas[c.function.name], `${where}: a function offered, not ${c.function.name}`);
    if (only) assert.equal(c.function.name, only, `${where}: the named function`);
    assert.doesNotMatch(c.function.arguments, markup, `${where}: no markup in the arguments`);
    const args = JSON.parse(c.function.arguments);
    assert.ok(schemas[c.function.name](args), `${where}: ${c.function.arguments} validates: ${ajv.errorsText(schemas[c.function.name].errors)}`);
  }
}

// A streamed chat gathered: content, reasoning, calls from their deltas.
async function streamed(params) {
  const s = await client.chat.completions.create({ model, messages, ...params, stream: true, stream_options: { include_usage: true } });
  const out = { content: '', reasoning: '', calls: [], finish: null, usage: null };
  for await (const chunk of s) {
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      const d = c.delta ?? {};
      if (d.content) out.content += d.content;
      if (d.reasoning_content) out.reasoning += d.reasoning_content;
      for (const t of d.tool_calls ?? []) {
        if (!out.calls[t.index]) {
          assert.ok(t.id && t.function?.name, 'a call streams its id and name first');
          out.calls[t.index] = { id: t.id, type: t.type, function: { name: t.function.name, arguments: '' } };
        } else {
          assert.ok(!t.id && !t.function?.name, 'the id and name come once');
        }
        out.calls[t.index].function.arguments += t.function?.arguments ?? '';
      }
      if (c.finish_reason) out.finish = c.finish_reason;
    }
  }
  return out;
}

// ---- tool_choice required: whole and streamed agree (greedy), calls validate ----
for (const parallel of [true, false]) {
  const params = { tools, tool_choice: 'required', parallel_tool_calls: parallel, temperature: 0, max_tokens: 200 };
  const whole = await client.chat.completions.create({ model, messages, ...params });
  const c = whole.choices[0];
  assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c));
  checkCalls(c.message.tool_calls, `required (parallel ${parallel})`);
  if (!parallel) assert.equal(c.message.tool_calls.length, 1, 'parallel_tool_calls false: one call');
  assert.ok(!c.message.content || !markup.test(c.message.content), 'no markup in content');
  const s = await streamed(params);
  assert.equal(s.finish, 'tool_calls');
  checkCalls(s.calls, 'required, streamed');
  assert.deepEqual(s.calls.map((x) => [x.function.name, x.function.arguments]),
    c.message.tool_calls.map((x) => [x.function.name, x.function.arguments]), 'streamed calls are the whole answer\'s');
  assert.doesNotMatch(s.content, markup);
  assert.equal(s.usage.completion_tokens, whole.usage.completion_tokens);
}

// ---- sampled, several seeds: always valid ----
for (let seed = 1; seed <= 4; ++seed) {
  const r = await client.chat.completions.create({ model, messages, tools, tool_choice: 'required', temperature: 1, seed, max_tokens: 200 });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  checkCalls(r.choices[0].message.tool_calls, `required, seed ${seed}`);
}

// ---- a named function ----
const named = { tools, tool_choice: { type: 'function', function: { name: 'web_search' } }, temperature: 0.7, seed: 5, max_tokens: 200 };
const n1 = await client.chat.completions.create({ model, messages, ...named });
checkCalls(n1.choices[0].message.tool_calls, 'named', 'web_search');
checkCalls((await streamed(named)).calls, 'named, streamed', 'web_search');

// ---- none: no call, no markup, even with the block's token pushed up ----
const tokenize = async (body) => {
  const r = await fetch(`${base}/tokenize`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(r.status, 200);
  return (await r.json()).tokens;
};
const [callsBegin] = await tokenize({ prompt: '<｜tool▁calls▁begin｜>', add_special_tokens: false });
const none = await client.chat.completions.create({ model, messages, tools, tool_choice: 'none', max_tokens: 24, temperature: 0, logit_bias: { [callsBegin]: 100 } });
assert.equal(none.choices[0].message.tool_calls, undefined);
assert.notEqual(none.choices[0].finish_reason, 'tool_calls');
assert.doesNotMatch(none.choices[0].message.content, /<｜tool/);

// ---- auto: calls are read out of free text (scripted with a grammar) ----
const lit = (s) => JSON.stringify(s);
const scriptedCall = 'Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n' +
  '{"city": "Oslo", "unit": "celsius"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>';
const auto = { tools, grammar: `root ::= ${lit(scriptedCall)}`, max_tokens: 120 };
const a1 = await client.chat.completions.create({ model, messages, ...auto });
assert.equal(a1.choices[0].finish_reason, 'tool_calls');
assert.equal(a1.choices[0].message.content, 'Let me check.');
assert.deepEqual(JSON.parse(a1.choices[0].message.tool_calls[0].function.arguments), { city: 'Oslo', unit: 'celsius' });
const a2 = await streamed(auto);
assert.equal(a2.content, 'Let me check.');
assert.equal(a2.calls[0].function.arguments, '{"city": "Oslo", "unit": "celsius"}');
// A call of a function not offered is text, finish "stop".
const bad = await client.chat.completions.create({ model, messages, tools, grammar: `root ::= ${lit(scriptedCall.replace('get_weather', 'rm_rf'))}`, max_tokens: 120 });
assert.equal(bad.choices[0].finish_reason, 'stop');
assert.equal(bad.choices[0].message.tool_calls, undefined);
assert.match(bad.choices[0].message.content, /rm_rf/);

// ---- a round trip: the call, the tool's answer, the next turn ----
const call = n1.choices[0].message.tool_calls[0];
const trip = [...messages, { role: 'assistant', content: null, tool_calls: [call] },
  { role: 'tool', tool_call_id: call.id, content: '{"results": ["sunny, 14 °C"]}' }];
const t1 = await client.chat.completions.create({ model, messages: trip, tools, max_tokens: 8, temperature: 0 });
assert.ok(['stop', 'length', 'tool_calls'].includes(t1.choices[0].finish_reason));
assert.equal(t1.usage.prompt_tokens, (await tokenize({ messages: trip, tools })).length, 'the prompt as /tokenize renders it, tools included');

// ---- reasoning: the think block apart, counted ----
const thought = { separate_reasoning: true, grammar: `root ::= ${lit('<think>\nI will greet.\n</think>\n\nHello there.')}`, max_tokens: 60 };
const r1 = await client.chat.completions.create({ model, messages, ...thought });
assert.equal(r1.choices[0].message.reasoning_content, '\nI will greet.\n');
assert.equal(r1.choices[0].message.content, 'Hello there.');
const rt = r1.usage.completion_tokens_details.reasoning_tokens;
assert.ok(rt > 0 && rt < r1.usage.completion_tokens, `reasoning tokens ${rt} of ${r1.usage.completion_tokens}`);
const r2 = await streamed(thought);
assert.equal(r2.reasoning, '\nI will greet.\n');
assert.equal(r2.content, 'Hello there.');
assert.equal(r2.usage.completion_tokens_details.reasoning_tokens, rt);
const plain = await client.chat.completions.create({ model, messages, ...thought, separate_reasoning: false });
assert.match(plain.choices[0].message.content, /^<think>/, 'without the split the block stays in the content');
// Earlier reasoning is taken back in a later turn.
await client.chat.completions.create({ model, max_tokens: 4, messages: [...messages,
  { role: 'assistant', content: 'Hello there.', reasoning_content: 'I will greet.' }, { role: 'user', content: 'And?' }] });

// ---- refusals by name ----
for (const [params, param] of [
  [{ tool_choice: 'required' }, 'tool_choice'],
  [{ tools, tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice.function.name'],
  [{ tools: [{ type: 'function', function: { name: 'bad name' } }] }, 'tools[0].function.name'],
  [{ tools, tool_choice: 'required', response_format: { type: 'json_object' } }, 'tool_choice'],
]) {
  await assert.rejects(client.chat.completions.create({ model, messages, max_tokens: 4, ...params }),
    (e) => e.status === 400 && e.param === param, JSON.stringify(params));
}

// ---- the WebSocket chat carries the same ----
const ws = await new Promise((resolve, reject) => {
  const w = new WebSocket(base.replace('http://', 'ws://') + '/v1/chat/ws', { headers: { authorization: `Bearer ${key}` } });
  w.once('open', () => resolve(w));
  w.once('error', reject);
});
function overWs(id, params) {
  return new Promise((resolve, reject) => {
    const out = { content: '', reasoning: '', calls: [], done: null };
    const onMessage = (data) => {
      const m = JSON.parse(data.toString());
      if (m.id !== id) return;
      if (m.type === 'delta') {
        out.content += m.content;
        out.reasoning += m.reasoning_content ?? '';
        for (const t of m.tool_calls ?? []) {
          out.calls[t.index] ??= { id: t.id, function: { name: t.function.name, arguments: '' } };
          out.calls[t.index].function.arguments += t.function.arguments;
        }
      }
      if (m.type === 'error') { ws.off('message', onMessage); reject(new Error(m.message)); }
      if (m.type === 'done') { ws.off('message', onMessage); out.done = m; resolve(out); }
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ type: 'chat', id, messages, ...params }));
  });
}
const w1 = await overWs('tools', { tools, tool_choice: 'required', temperature: 0, max_tokens: 200 });
assert.equal(w1.done.finish_reason, 'tool_calls');
checkCalls(w1.calls, 'WebSocket');
assert.deepEqual(w1.done.choices[0].tool_calls.map((c) => c.function.arguments), w1.calls.map((c) => c.function.arguments));
const w2 = await overWs('think', thought);
assert.equal(w2.reasoning, '\nI will greet.\n');
assert.equal(w2.content, 'Hello there.');
assert.equal(w2.done.usage.completion_tokens_details.reasoning_tokens, rt);
ws.close();
console.log('tool calls and reasoning: all checks passed');
