// The gateway over TLS with the `openai` npm client and the WebSocket protocol
// (the test CA trusted through NODE_EXTRA_CA_CERTS): keys in clear and as
// digests work, wrong keys get 401, a key in the query string is taken on the
// WebSocket upgrade only, plain HTTP to the TLS port gets nowhere.
// Usage: NODE_EXTRA_CA_CERTS=ca.pem node tls_gateway.mjs https://127.0.0.1:PORT KEY DIGESTED_KEY
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import WebSocket from 'ws';

const [base, key, digested] = process.argv.slice(2);
assert.match(base, /^https:\/\//);
const client = (k) => new OpenAI({ baseURL: `${base}/v1`, apiKey: k, maxRetries: 0, timeout: 60000 });
const model = (await client(key).models.list()).data[0].id;
const messages = [{ role: 'user', content: 'Hello over TLS' }];

for (const k of [key, digested]) {
  const r = await client(k).chat.completions.create({ model, messages, max_tokens: 6, temperature: 0 });
  assert.equal(typeof r.choices[0].message.content, 'string');
  let text = '';
  for await (const c of await client(k).chat.completions.create({ model, messages, max_tokens: 6, temperature: 0, stream: true }))
    text += c.choices[0]?.delta?.content ?? '';
  assert.equal(text, r.choices[0].message.content, 'streamed over TLS as whole');
}
for (const wrong of ['sk-wrong', key.slice(0, -1), key + 'x', '']) {
  await assert.rejects(client(wrong).chat.completions.create({ model, messages, max_tokens: 2 }), (e) => e.status === 401, `key ${wrong}`);
}

// A key in the query string: refused on plain routes (proxies log URLs), taken on the upgrade.
const q = await fetch(`${base}/v1/models?api_key=${key}`);
assert.equal(q.status, 401);
assert.match((await q.json()).error.message, /query string/);
const ws = await new Promise((resolve, reject) => {
  const w = new WebSocket(`${base.replace('https://', 'wss://')}/v1/chat/ws?api_key=${encodeURIComponent(digested)}`);
  w.once('open', () => resolve(w));
  w.once('error', reject);
});
const done = await new Promise((resolve, reject) => {
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.type === 'done') resolve(m);
    if (m.type === 'error') reject(new Error(m.message));
  });
  ws.send(JSON.stringify({ type: 'chat', id: 't', messages, max_tokens: 4 }));
});
assert.ok(done.usage.completion_tokens >= 1);
ws.close();
await assert.rejects(new Promise((resolve, reject) => {
  const w = new WebSocket(`${base.replace('https://', 'wss://')}/v1/chat/ws?api_key=sk-wrong`);
  w.once('open', () => resolve(w));
  w.once('error', reject);
}), 'a wrong key in the query string is refused');

// Plain HTTP to the TLS port: no answer comes back.
await assert.rejects(fetch(`${base.replace('https://', 'http://')}/healthz`, { signal: AbortSignal.timeout(10000) }));
console.log('TLS gateway: all checks passed');
