// Structured output with the `openai` npm client and the WebSocket chat, on a
// model with random weights: whatever it samples, every answer must parse and
// validate against its schema (checked with ajv), for 30 schemas and several
// seeds; unsupported keywords are refused by name.
// Usage: node structured_output.mjs BASE_URL API_KEY
import assert from 'node:assert/strict';
import Ajv from 'ajv';
import OpenAI from 'openai';
import WebSocket from 'ws';

const [base, key] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 120000 });
const model = (await client.models.list()).data[0].id;
const ajv = new Ajv({ strict: false });

const str = (extra = {}) => ({ type: 'string', maxLength: 12, ...extra });
const obj = (properties, required = Object.keys(properties)) => ({ type: 'object', properties, required, additionalProperties: false });
const schemas = [
  obj({ name: str() }),
  obj({ name: str(), age: { type: 'integer' } }),
  obj({ name: str(), age: { type: 'integer' } }, ['name']),
  obj({ price: { type: 'number' }, currency: { enum: ['EUR', 'USD', 'JPY'] } }),
  obj({ ok: { type: 'boolean' }, note: { type: ['string', 'null'], maxLength: 8 } }),
  obj({ tags: { type: 'array', items: str({ maxLength: 6 }), maxItems: 3 } }),
  obj({ tags: { type: 'array', items: str({ maxLength: 6 }), minItems: 2, maxItems: 4 } }),
  obj({ point: obj({ x: { type: 'number' }, y: { type: 'number' } }) }),
  obj({ user: obj({ id: { type: 'integer' }, email: str() }, ['id']), active: { type: 'boolean' } }),
  obj({ kind: { const: 'event' }, at: { type: 'integer' } }),
  obj({ value: { anyOf: [{ type: 'integer' }, str(), { type: 'null' }] } }),
  obj({ shape: { anyOf: [obj({ r: { type: 'number' } }), obj({ w: { type: 'number' }, h: { type: 'number' } })] } }),
  { type: 'array', items: { type: 'integer' }, maxItems: 5 },
  { type: 'array', items: obj({ k: str({ maxLength: 4 }), v: { type: 'integer' } }), minItems: 1, maxItems: 3 },
  { enum: ['red', 'green', 'blue', 42, null, true] },
  { type: 'string', minLength: 3, maxLength: 10 },
  { type: 'integer' },
  { type: 'number' },
  { type: 'boolean' },
  { anyOf: [{ type: 'string', maxLength: 5 }, { type: 'number' }] },
  obj({ matrix: { type: 'array', items: { type: 'array', items: { type: 'integer' }, maxItems: 3 }, maxItems: 3 } }),
  obj({ a: obj({ b: obj({ c: obj({ d: { type: 'boolean' } }) }) }) }),
  obj({ steps: { type: 'array', items: obj({ n: { type: 'integer' }, what: str() }), maxItems: 3 }, done: { type: 'boolean' } }),
  { $defs: { item: obj({ id: { type: 'integer' }, label: str() }) }, type: 'object',
    properties: { first: { $ref: '#/$defs/item' }, second: { $ref: '#/$defs/item' } }, required: ['first'], additionalProperties: false },
  { $defs: { node: { type: 'object', properties: { v: { type: 'integer' }, next: { anyOf: [{ $ref: '#/$defs/node' }, { type: 'null' }] } },
    required: ['v', 'next'], additionalProperties: false } }, $ref: '#/$defs/node' },
  { definitions: { leaf: { enum: ['x', 'y'] } }, type: 'array', items: { $ref: '#/definitions/leaf' }, maxItems: 4 },
  obj({ id: { type: 'integer' }, title: str(), body: str({ maxLength: 20 }), score: { type: 'number' }, flags: { type: 'array', items: { type: 'boolean' }, maxItems: 2 } }, ['id', 'title']),
  obj({ when: obj({ year: { type: 'integer' }, month: { enum: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] } }), where: { type: ['string', 'null'], maxLength: 10 } }),
  obj({ empty: { type: 'array', maxItems: 0 }, any: { type: 'object' } }),
  obj({ 'key with space': str(), 'quote"key': { type: 'integer' }, 'é': { type: 'boolean' } }),
];
assert.equal(schemas.length, 30);

const messages = [{ role: 'user', content: 'Answer in JSON.' }];
const format = (schema, i) => ({ type: 'json_schema', json_schema: { name: `s${i}`, schema, strict: true } });
const check = (text, schema, what) => {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    assert.fail(`${what}: not JSON: ${JSON.stringify(text)}`);
  }
  const validate = ajv.compile(schema);
  assert.ok(validate(value), `${what}: ${JSON.stringify(text)} fails its schema: ${ajv.errorsText(validate.errors)}`);
};

// Whether `text` is the beginning of some JSON document (our own small checker:
// a truncated answer must still be on the grammar's track).
const isJsonPrefix = (t) => {
  const END = Symbol('end');
  let i = 0;
  const more = () => { if (i >= t.length) throw END; };
  const ws = () => { while (i < t.length && ' \t\n\r'.includes(t[i])) ++i; more(); };
  const lit = (w) => { for (const c of w) { more(); if (t[i++] !== c) throw new Error(`expected ${w}`); } };
  const str = () => {
    lit('"');
    for (;;) {
      more();
      const c = t[i++];
      if (c === '"') return;
      if (c < ' ') throw new Error('raw control character');
      if (c !== '\\') continue;
      more();
      const e = t[i++];
      if (e === 'u') for (let k = 0; k < 4; ++k) { more(); if (!/[0-9a-fA-F]/.test(t[i++])) throw new Error('bad \\u'); }
      else if (!'"\\/bfnrt'.includes(e)) throw new Error('bad escape');
    }
  };
  const num = () => {
    const run = /^[-+0-9.eE]*/.exec(t.slice(i))[0];
    i += run.length;
    const whole = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/;
    const partial = /^-?((0|[1-9][0-9]*)(\.[0-9]*)?([eE][-+]?[0-9]*)?)?$/;
    if (i >= t.length ? !partial.test(run) : !whole.test(run)) throw new Error(`bad number ${run}`);
  };
  const items = (close, item) => {
    ++i;
    ws();
    if (t[i] === close) { ++i; return; }
    for (;;) {
      item();
      ws();
      if (t[i] !== ',') return lit(close);
      ++i;
      ws();
    }
  };
  const value = () => {
    ws();
    const c = t[i];
    if (c === '{') return items('}', () => { str(); ws(); lit(':'); value(); });
    if (c === '[') return items(']', value);
    if (c === '"') return str();
    if (c === 't') return lit('true');
    if (c === 'f') return lit('false');
    if (c === 'n') return lit('null');
    return num();
  };
  try {
    value();
    while (i < t.length && ' \t\n\r'.includes(t[i])) ++i;
    return i === t.length;
  } catch (e) {
    if (e === END) return true;
    return false;
  }
};
assert.ok(isJsonPrefix('{"a": [1, 2.') && isJsonPrefix('{"k\\u00') && !isJsonPrefix('{"a" 1') && !isJsonPrefix('[1]]'));

// Every string of these schemas is bounded except in schema 28's free object:
// random weights can sample a free key or string that does not end before
// max_tokens (tokens that close a key are a handful of 129,280), so there a cut
// answer is accepted when it is exactly max_tokens long and still on track.
const free = new Set([28]);
const MAX = 3000;
let answers = 0;
for (const [i, schema] of schemas.entries()) {
  for (const seed of [1, 2]) {
    const r = await client.chat.completions.create({ model, messages, max_tokens: MAX, temperature: 1, seed, response_format: format(schema, i) });
    const what = `schema ${i} seed ${seed}`;
    if (free.has(i) && r.choices[0].finish_reason === 'length') {
      assert.equal(r.usage.completion_tokens, MAX, what);
      assert.ok(isJsonPrefix(r.choices[0].message.content), `${what}: cut off the grammar's track: ${JSON.stringify(r.choices[0])}`);
      continue;
    }
    assert.equal(r.choices[0].finish_reason, 'stop', `${what}: ${JSON.stringify(r.choices[0])}`);
    check(r.choices[0].message.content, schema, what);
    ++answers;
  }
}

// Streamed, greedy, and with n: the same guarantee.
const s = await client.chat.completions.create({ model, messages, max_tokens: 3000, temperature: 0, stream: true, response_format: format(schemas[8], 8) });
let text = '';
for await (const chunk of s) for (const c of chunk.choices) text += c.delta?.content ?? '';
check(text, schemas[8], 'streamed greedy');
const many = await client.chat.completions.create({ model, messages, max_tokens: 3000, temperature: 1, seed: 5, n: 3, response_format: format(schemas[13], 13) });
for (const c of many.choices) check(c.message.content, schemas[13], `n choice ${c.index}`);
// json_object: any object; completions take response_format too.
const jo = await client.chat.completions.create({ model, messages, max_tokens: MAX, temperature: 1, seed: 3, response_format: { type: 'json_object' } });
if (jo.choices[0].finish_reason === 'length') {
  assert.ok(jo.choices[0].message.content.startsWith('{') && isJsonPrefix(jo.choices[0].message.content), JSON.stringify(jo.choices[0]));
} else {
  assert.equal(typeof JSON.parse(jo.choices[0].message.content), 'object');
  assert.ok(!Array.isArray(JSON.parse(jo.choices[0].message.content)));
}
const comp = await client.completions.create({ model, prompt: 'JSON:', max_tokens: 3000, temperature: 1, seed: 4, response_format: format(schemas[1], 1) });
check(comp.choices[0].text, schemas[1], 'completions');
// max_tokens reached mid-object: finish_reason length, as OpenAI does.
const cut = await client.chat.completions.create({ model, messages, max_tokens: 3, temperature: 1, seed: 1, response_format: format(schemas[26], 26) });
assert.equal(cut.choices[0].finish_reason, 'length');

// The WebSocket chat: the same parameters, the same guarantee.
const ws = await new Promise((resolve, reject) => {
  const w = new WebSocket(base.replace('http://', 'ws://') + '/v1/chat/ws', { headers: { authorization: `Bearer ${key}` } });
  w.once('open', () => resolve(w));
  w.once('error', reject);
});
const overWs = (params) => new Promise((resolve) => {
  let out = '';
  ws.on('message', function f(data) {
    const m = JSON.parse(data.toString());
    if (m.id !== 'w') return;
    if (m.type === 'delta') out += m.content;
    if (m.type === 'done' || m.type === 'error') { ws.off('message', f); resolve({ text: out, end: m }); }
  });
  ws.send(JSON.stringify({ type: 'chat', id: 'w', messages, ...params }));
});
for (const i of [3, 24]) {
  const r = await overWs({ max_tokens: 3000, temperature: 1, seed: 9, response_format: format(schemas[i], i) });
  assert.equal(r.end.type, 'done', JSON.stringify(r.end));
  check(r.text, schemas[i], `WebSocket schema ${i}`);
}

// Refused by name: what the grammar compiler does not support is never dropped.
const refusals = [
  [{ type: 'string', pattern: '^a+$' }, 'response_format.json_schema.schema.pattern'],
  [obj({ d: { type: 'string', format: 'date' } }), 'response_format.json_schema.schema.properties.d.format'],
  [{ type: 'integer', minimum: 0 }, 'response_format.json_schema.schema.minimum'],
  [{ oneOf: [{ type: 'string' }] }, 'response_format.json_schema.schema.oneOf'],
  [{ type: 'object', properties: { a: {} }, additionalProperties: true }, 'response_format.json_schema.schema.additionalProperties'],
];
for (const [schema, param] of refusals) {
  try {
    await client.chat.completions.create({ model, messages, max_tokens: 4, response_format: format(schema, 0) });
    assert.fail(`accepted ${JSON.stringify(schema)}`);
  } catch (e) {
    assert.equal(e.status, 400, `${JSON.stringify(schema)}: ${e.message}`);
    assert.equal(e.param, param, e.message);
  }
}
for (const f of [{ type: 'xml' }, { type: 'json_schema' }, { type: 'json_object', extra: 1 }]) {
  await assert.rejects(client.chat.completions.create({ model, messages, max_tokens: 4, response_format: f }), (e) => e.status === 400);
}
const r = await overWs({ max_tokens: 4, response_format: format({ type: 'string', pattern: 'x' }, 0) });
assert.equal(r.end.type, 'error');
assert.match(r.end.message, /pattern/);
ws.close();
console.log(`structured output: ${answers} answers over ${schemas.length} schemas parse and validate; refusals by name: all checks passed`);
