// Malformed and hostile HTTP requests get the right status and the gateway keeps
// serving. Usage: node http_edges.mjs BASE_URL API_KEY
import assert from 'node:assert/strict';
import net from 'node:net';

const [base, key] = process.argv.slice(2);
const url = new URL(base);
const auth = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
const post = (path, body, headers = auth) => fetch(`${base}${path}`, { method: 'POST', headers, body });
const chat = (obj) => post('/v1/chat/completions', JSON.stringify(obj));
const msgs = [{ role: 'user', content: 'hi' }];

const expect = async (status, responsePromise, what) => {
  const r = await responsePromise;
  const body = await r.text();
  assert.equal(r.status, status, `${what}: ${body}`);
  if (status >= 400 && r.headers.get('content-type')?.includes('json')) {
    const j = JSON.parse(body);
    assert.equal(typeof j.error.message, 'string', what);
  }
};

await expect(200, fetch(`${base}/healthz`), 'healthz');
await expect(200, fetch(`${base}/readyz`), 'readyz');
await expect(401, fetch(`${base}/v1/models`), 'no key');
await expect(400, post('/v1/chat/completions', '{"messages": ['), 'bad JSON');
await expect(400, post('/v1/chat/completions', '[1, 2]'), 'not an object');
await expect(400, chat({ messages: 'hi' }), 'messages of the wrong type');
await expect(400, chat({ messages: msgs, max_tokens: 10 ** 9 }), 'huge max_tokens');
await expect(400, chat({ messages: msgs, max_tokens: 0 }), 'zero max_tokens');
await expect(400, chat({ messages: msgs, top_p: 5 }), 'top_p out of range');
await expect(400, chat({ messages: Array.from({ length: 10000 }, () => msgs[0]) }), '10,000 messages');
await expect(400, chat({ messages: [{ role: 'user', content: 5 }] }), 'non-string content');
await expect(400, chat({ messages: msgs, stop: [1] }), 'bad stop');
await expect(400, post('/v1/chat/completions', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])), 'invalid UTF-8');
await expect(413, post('/v1/chat/completions', 'x'.repeat(2 << 20)), 'huge body');
await expect(404, fetch(`${base}/nope`, { headers: auth }), 'unknown path');
await expect(405, fetch(`${base}/v1/chat/completions`, { headers: auth }), 'GET on a POST route');

// A stop string ends the text before it.
const r = await (await chat({ messages: msgs, max_tokens: 16 })).json();
const full = r.choices[0].message.content;
if (full.length > 4) {
  const stop = full.slice(2, 4);
  const s = await (await chat({ messages: msgs, max_tokens: 16, stop })).json();
  assert.equal(s.choices[0].finish_reason, 'stop');
  assert.ok(!s.choices[0].message.content.includes(stop));
  assert.ok(full.startsWith(s.choices[0].message.content));
}

// Raw sockets: garbage, a half-closed request, a client gone mid-stream.
const raw = (bytes, halfClose) => new Promise((resolve) => {
  const s = net.connect(Number(url.port), url.hostname, () => {
    s.write(bytes);
    if (halfClose) s.end();
  });
  let out = '';
  s.on('data', (d) => { out += d; });
  s.on('close', () => resolve(out));
  s.on('error', () => resolve(out));
  setTimeout(() => s.destroy(), 3000);
});
await raw('GARBAGE\r\n\r\n', true);
await raw('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"messa', true);
const mid = net.connect(Number(url.port), url.hostname, () => {
  const body = JSON.stringify({ messages: msgs, max_tokens: 200, stream: true });
  mid.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
});
await new Promise((resolve) => mid.once('data', resolve));
mid.destroy();

// Per-key concurrency (3 in this test's config): a fourth concurrent generation gets
// 429. First wait until the client gone mid-stream above has been noticed and freed.
const inFlight = async () => {
  const t = await (await fetch(`${base}/metrics`)).text();
  return Number(t.split('\n').find((l) => l.startsWith('moemesh_generations_in_flight{')).split(' ').pop());
};
for (let i = 0; i < 100 && (await inFlight()) !== 0; ++i) await new Promise((r) => setTimeout(r, 100));
assert.equal(await inFlight(), 0);
const streams = await Promise.all([0, 1, 2].map(() => chat({ messages: msgs, max_tokens: 2000, stream: true })));
await expect(429, chat({ messages: msgs, max_tokens: 2 }), 'over the per-key limit');
await Promise.all(streams.map((s) => s.text()));

// The total timeout (3 s in this test's config) stops a generation: 504.
await expect(504, chat({ messages: msgs, max_tokens: 4000 }), 'over the total timeout');

// A client that hangs up on a whole-response request: its generation stops (checked
// through the gauges at the end of websocket_client.mjs).
const hang = net.connect(Number(url.port), url.hostname, () => {
  const body = JSON.stringify({ messages: msgs, max_tokens: 3000 });
  hang.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  setTimeout(() => hang.destroy(), 300);
});

// Still serving, with keep-alive.
for (let i = 0; i < 3; ++i) await expect(200, chat({ messages: msgs, max_tokens: 2 }), `after abuse ${i}`);
console.log('http edges: all checks passed');
