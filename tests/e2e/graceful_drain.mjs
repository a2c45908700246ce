// SIGTERM to the gateway while it streams: the stream runs to its end, while
// new generations (HTTP and WebSocket) get 503 and /readyz fails.
// Usage: node graceful_drain.mjs BASE_URL API_KEY GATEWAY_PID
import assert from 'node:assert/strict';
import WebSocket from 'ws';

const [base, key, pid] = process.argv.slice(2);
const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
const chat = (extra) => fetch(`${base}/v1/chat/completions`, {
  method: 'POST', headers, body: JSON.stringify({ messages: [{ role: 'user', content: 'Go on.' }], ...extra }),
});

const ws = await new Promise((resolve, reject) => {
  const s = new WebSocket(base.replace('http://', 'ws://') + '/v1/chat/ws', { headers: { authorization: `Bearer ${key}` } });
  s.once('open', () => resolve(s));
  s.once('error', reject);
});
const wsReply = (id) => new Promise((resolve) => {
  const f = (data) => { const m = JSON.parse(data.toString()); if (m.id === id && (m.type === 'done' || m.type === 'error')) { ws.off('message', f); resolve(m); } };
  ws.on('message', f);
});

assert.equal((await fetch(`${base}/readyz`)).status, 200);
// Long enough to be mid-stream when the signal lands.
const r = await chat({ max_tokens: 160, stream: true, stream_options: { include_usage: true } });
assert.equal(r.status, 200);
const reader = r.body.getReader();
const decoder = new TextDecoder();
let text = decoder.decode((await reader.read()).value, { stream: true });

process.kill(Number(pid), 'SIGTERM');
await new Promise((ok) => setTimeout(ok, 300));

const refused = await chat({ max_tokens: 4 });
assert.equal(refused.status, 503);
assert.match((await refused.json()).error.message, /shutting down/);
assert.equal((await fetch(`${base}/readyz`)).status, 503);
const wsRefused = wsReply('late');
ws.send(JSON.stringify({ type: 'chat', id: 'late', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 }));
const m = await wsRefused;
assert.equal(m.type, 'error');
assert.equal(m.status, 503);
ws.close();

// The stream accepted before the signal runs to its end.
for (;;) {
  const { value, done } = await reader.read();
  if (done) break;
  text += decoder.decode(value, { stream: true });
}
assert.ok(text.includes('data: [DONE]'), 'the stream ended with [DONE]');
const usage = text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6))).find((j) => j.usage);
assert.ok(usage, 'usage chunk');
assert.ok(usage.usage.completion_tokens > 0);
console.log(`drained: ${usage.usage.completion_tokens} tokens streamed after SIGTERM began`);
