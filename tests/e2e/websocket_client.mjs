// The WebSocket chat protocol with node's `ws` client: several requests on one
// socket, cancel, ping/pong, garbage frames, and a client gone mid-stream.
// Usage: node websocket_client.mjs BASE_URL API_KEY
import assert from 'node:assert/strict';
import WebSocket from 'ws';

const [base, key] = process.argv.slice(2);
const wsUrl = base.replace('http://', 'ws://') + '/v1/chat/ws';

const open = (url, opts = {}) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url, opts);
  ws.once('open', () => resolve(ws));
  ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  ws.once('error', reject);
});
// Collects messages per id until each listed id is done or failed.
const collect = (ws, ids) => new Promise((resolve) => {
  const out = Object.fromEntries(ids.map((id) => [id, { text: '', done: null, error: null }]));
  let left = ids.length;
  const onMessage = (data) => {
    const m = JSON.parse(data.toString());
    const r = out[m.id];
    if (!r) return;
    if (m.type === 'delta') r.text += m.content;
    if (m.type === 'done') { r.done = m; --left; }
    if (m.type === 'error') { r.error = m; --left; }
    if (left === 0) { ws.off('message', onMessage); resolve(out); }
  };
  ws.on('message', onMessage);
});
const next = (ws, pred) => new Promise((resolve) => {
  const f = (data) => { const m = JSON.parse(data.toString()); if (pred(m)) { ws.off('message', f); resolve(m); } };
  ws.on('message', f);
});

await assert.rejects(open(wsUrl), /401/, 'no key, no socket');
const ws = await open(wsUrl, { headers: { authorization: `Bearer ${key}` } });
const msgs = (t) => [{ role: 'user', content: t }];

// Three requests multiplexed; one cancelled.
const done = collect(ws, ['a', 'b', 'c']);
ws.send(JSON.stringify({ type: 'chat', id: 'a', messages: msgs('Hello'), max_tokens: 10 }));
ws.send(JSON.stringify({ type: 'chat', id: 'b', messages: msgs('Tell me a story'), max_tokens: 400 }));
ws.send(JSON.stringify({ type: 'chat', id: 'c', messages: msgs('Hi'), max_tokens: 5, temperature: 0.8, seed: 3 }));
await next(ws, (m) => m.id === 'b' && m.type === 'delta');
ws.send(JSON.stringify({ type: 'cancel', id: 'b' }));
const r = await done;
assert.equal(r.a.done.finish_reason, 'length');
assert.equal(r.a.done.usage.completion_tokens, 10);
assert.ok(r.a.done.timings.ttft_ms > 0 && r.a.done.timings.tokens_per_s > 0);
assert.equal(r.b.done.finish_reason, 'cancelled');
assert.ok(r.b.done.usage.completion_tokens < 400);
assert.equal(r.c.done.usage.completion_tokens, 5);

// Ping, and garbage: each answered with an error, the socket stays usable.
ws.send(JSON.stringify({ type: 'ping', id: 'p' }));
assert.equal((await next(ws, (m) => m.type === 'pong')).id, 'p');
const errors = [
  'not json', '[1,2]', JSON.stringify({ type: 'dance', id: 'x' }), JSON.stringify({ type: 'chat', id: '' }),
  JSON.stringify({ type: 'chat', id: 'y', messages: [] }), JSON.stringify({ type: 'chat', id: 'z', messages: msgs('x'), max_tokens: -5 }),
  JSON.stringify({ type: 'cancel', id: 'nothing' }),
];
for (const e of errors) {
  ws.send(e);
  const m = await next(ws, (x) => x.type === 'error');
  assert.ok(m.status >= 400 && m.status < 500, `${e}: ${JSON.stringify(m)}`);
}
ws.send(Buffer.from([1, 2, 3]), { binary: true });
assert.equal((await next(ws, (x) => x.type === 'error')).status, 400);
const again = collect(ws, ['d']);
ws.send(JSON.stringify({ type: 'chat', id: 'd', messages: msgs('Still there?'), max_tokens: 3 }));
assert.equal((await again).d.done.usage.completion_tokens, 3);

// Stop strings over the WebSocket: the same greedy chat, cut before the stop string.
const plainRun = collect(ws, ['g1']);
ws.send(JSON.stringify({ type: 'chat', id: 'g1', messages: msgs('Count with me'), max_tokens: 16, temperature: 0 }));
const plainText = (await plainRun).g1.text;
const chars = Array.from(plainText);
assert.ok(chars.length >= 8, `a long enough answer: ${JSON.stringify(plainText)}`);
const stopString = chars.slice(4, 7).join('');
const stopRun = collect(ws, ['g2']);
ws.send(JSON.stringify({ type: 'chat', id: 'g2', messages: msgs('Count with me'), max_tokens: 16, temperature: 0, stop: [stopString] }));
const stopped = (await stopRun).g2;
assert.equal(stopped.text, plainText.slice(0, plainText.indexOf(stopString)), JSON.stringify([plainText, stopString]));
assert.equal(stopped.done.finish_reason, 'stop');
// The chat route's parameter checks, by name.
const refusedRun = next(ws, (m) => m.type === 'error' && m.id === 'u1');
ws.send(JSON.stringify({ type: 'chat', id: 'u1', messages: msgs('x'), frobnicate_level: 3 }));
assert.match((await refusedRun).message, /frobnicate_level/);

// Log-probabilities ride on the deltas, one entry per token, as on the HTTP route.
const lpEntries = [];
const onLp = (data) => {
  const m = JSON.parse(data.toString());
  if (m.id === 'lp' && m.type === 'delta' && m.logprobs) lpEntries.push(...m.logprobs.content);
};
ws.on('message', onLp);
const lpRun = collect(ws, ['lp']);
ws.send(JSON.stringify({ type: 'chat', id: 'lp', messages: msgs('Hello'), max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 1 }));
const lpDone = (await lpRun).lp.done;
ws.off('message', onLp);
assert.equal(lpEntries.length, lpDone.usage.completion_tokens);
for (const t of lpEntries) assert.deepEqual(t.top_logprobs[0].bytes, t.bytes, 'greedy: the chosen token is the most likely');

// A long system prompt that two chats share: the second is served from the prefix cache.
const system = { role: 'system', content: Array.from({ length: 30 }, (_, i) => `Rule ${i + 1}: answer plainly and name the rule.`).join(' ') };
const first = collect(ws, ['s1']);
ws.send(JSON.stringify({ type: 'chat', id: 's1', messages: [system, ...msgs('Rule 2?')], max_tokens: 2 }));
const u1 = (await first).s1.done.usage;
assert.equal(u1.prompt_tokens_details.cached_tokens, 0, JSON.stringify(u1));
const second = collect(ws, ['s2']);
ws.send(JSON.stringify({ type: 'chat', id: 's2', messages: [system, ...msgs('And rule 7, please?')], max_tokens: 2 }));
const u2 = (await second).s2.done.usage;
// Shared: everything but the first chat's user words and the assistant marker (under 10 tokens).
assert.ok(u2.prompt_tokens_details.cached_tokens >= 0.8 * (u1.prompt_tokens - 10), JSON.stringify([u1, u2]));
ws.close();

// Bytes that are not a WebSocket frame at all: the server closes with a protocol error.
const raw = await open(wsUrl, { headers: { authorization: `Bearer ${key}` } });
const closed = new Promise((resolve) => raw.once('close', (code) => resolve(code)));
raw._socket.write(Buffer.from([0x8f, 0x80, 1, 2, 3, 4]));  // a complete frame header with a reserved opcode
const code = await Promise.race([closed, new Promise((r) => setTimeout(() => r('timeout'), 10000))]);
assert.ok(code === 1002 || code === 1006 || code === 1009, `close code ${code}`);

// The key as a query parameter (browsers), and a client that vanishes mid-stream.
const q = await open(`${wsUrl}?api_key=${key}`);
q.send(JSON.stringify({ type: 'chat', id: 'gone', messages: msgs('Go on and on'), max_tokens: 500 }));
await next(q, (m) => m.type === 'delta');
q.terminate();

// Clients gone mid-stream (this one, and the SSE one of http_edges.mjs) free their
// generations and KV cache: the gauges go back to zero.
const gauge = (text, name, label) => {
  const line = text.split('\n').find((l) => l.startsWith(name) && (!label || l.includes(label)));
  return line ? Number(line.split(' ').pop()) : NaN;
};
let metrics = '';
for (let i = 0; i < 100; ++i) {
  metrics = await (await fetch(`${base}/metrics`)).text();
  if (gauge(metrics, 'moemesh_kv_cache_pages{', 'state="used"') === 0 && gauge(metrics, 'moemesh_generations_in_flight{') === 0) break;
  await new Promise((r) => setTimeout(r, 100));
}
assert.equal(gauge(metrics, 'moemesh_kv_cache_pages{', 'state="used"'), 0, metrics);
assert.equal(gauge(metrics, 'moemesh_generations_in_flight{'), 0, metrics);
assert.ok(gauge(metrics, 'moemesh_generated_tokens_total{') > 0);
console.log('websocket client: all checks passed');
process.exit(0);  // the refused handshake's request may keep the loop alive
