// Many streaming clients at once for a while: SSE and WebSocket, each client
// sending requests back to back. Prints JSON with counts and latency figures.
// Usage: node load_clients.mjs BASE_URL API_KEY CLIENTS SECONDS [sse|ws|mixed] [MAX_TOKENS]
import WebSocket from 'ws';

const [base, key, clientsArg, secondsArg, mode = 'mixed', maxTokensArg = '16'] = process.argv.slice(2);
const clients = Number(clientsArg), seconds = Number(secondsArg), maxTokens = Number(maxTokensArg);
const until = Date.now() + seconds * 1000;
const stats = { requests: 0, errors: 0, rate_limited: 0, tokens: 0, ttft: [], tpot: [], firstError: null };
const messages = [{ role: 'user', content: 'Tell me something.' }];
const fail = (e) => { stats.errors++; stats.firstError ??= String(e); };

async function sseClient() {
  while (Date.now() < until) {
    const t0 = performance.now();
    const r = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages, max_tokens: maxTokens, stream: true, stream_options: { include_usage: true } }),
    });
    if (r.status === 429) { stats.rate_limited++; await r.text(); continue; }
    if (r.status !== 200) { fail(`HTTP ${r.status}: ${await r.text()}`); continue; }
    let first = 0, last = 0, n = 0, buf = '', done = false;
    const decoder = new TextDecoder();
    for await (const chunk of r.body) {
      buf += decoder.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (event === 'data: [DONE]') { done = true; continue; }
        const j = JSON.parse(event.slice(6));
        if (j.error) fail(j.error.message);
        if (j.choices?.[0]?.delta?.content) { const t = performance.now(); if (!first) first = t; last = t; n++; }
        if (j.usage) stats.tokens += j.usage.completion_tokens;
      }
    }
    if (!done) { fail('stream ended without [DONE]'); continue; }
    stats.requests++;
    if (first) stats.ttft.push(first - t0);
    if (n > 1) stats.tpot.push((last - first) / (n - 1));
  }
}

function wsClient() {
  return new Promise((resolve) => {
    const ws = new WebSocket(base.replace('http://', 'ws://') + '/v1/chat/ws', { headers: { authorization: `Bearer ${key}` } });
    let id = 0, t0 = 0, first = 0, closing = false;
    const next = () => {
      if (Date.now() >= until) { closing = true; ws.close(); return; }
      t0 = performance.now();
      first = 0;
      ws.send(JSON.stringify({ type: 'chat', id: String(++id), messages, max_tokens: maxTokens }));
    };
    ws.on('open', next);
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === 'delta' && !first) first = performance.now();
      if (m.type === 'done') {
        stats.requests++;
        stats.tokens += m.usage.completion_tokens;
        stats.ttft.push(first ? first - t0 : m.timings.ttft_ms);
        if (m.timings.tokens_per_s > 0) stats.tpot.push(1000 / m.timings.tokens_per_s);
        next();
      }
      if (m.type === 'error') { if (m.status === 429) stats.rate_limited++; else fail(m.message); setTimeout(next, 50); }
    });
    ws.on('error', (e) => fail(e));
    ws.on('close', () => { if (!closing) fail('the server closed the socket'); resolve(); });
  });
}

const jobs = [];
for (let i = 0; i < clients; ++i) {
  const ws = mode === 'ws' || (mode === 'mixed' && i % 2 === 1);
  jobs.push((ws ? wsClient() : sseClient()).catch(fail));
}
await Promise.all(jobs);
const pct = (a, p) => { if (!a.length) return 0; const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
console.log(JSON.stringify({
  clients, seconds, mode, requests: stats.requests, errors: stats.errors, rate_limited: stats.rate_limited, tokens: stats.tokens,
  ttft_ms_p50: pct(stats.ttft, 0.5), ttft_ms_p99: pct(stats.ttft, 0.99), tpot_ms_p50: pct(stats.tpot, 0.5), tpot_ms_p99: pct(stats.tpot, 0.99),
  first_error: stats.firstError,
}));
process.exit(stats.errors ? 1 : 0);
