"""What the PyTorch forward says of a written checkpoint, for moemesh's tests to
compare against: greedy continuations of fixed chat prompts (whole recompute at
every step, no cache) and the perplexity of a text in windows, scored as
llama.cpp's llama-perplexity does (each window starts with BOS; the second half
of each window is scored).

  /usr/bin/python3 tools/train/reference.py MODEL_DIR TEXT_FILE [--ctx 256]

Writes MODEL_DIR/reference.json.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import checkpoint_io  # noqa: E402
from model import DeepSeekV3  # noqa: E402

PROMPTS = ["And God said", "In the beginning", "Hello! Who are you?", "The LORD is my shepherd"]
MAX_NEW = 48


def load_model(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    model = DeepSeekV3(cfg)
    model.load_hf_state({k: torch.from_numpy(v.copy()) for k, v in checkpoint_io.load_f32(model_dir).items()})
    model.eval()
    return model, cfg


def greedy(model, ids, eos, max_new):
    out, margins = [], []
    with torch.no_grad():
        for _ in range(max_new):
            logits, _ = model(torch.tensor([ids + out]))
            last = logits[0, -1].double()
            top = torch.topk(last, 2)
            margins.append(float(top.values[0] - top.values[1]))
            t = int(top.indices[0])
            out.append(t)
            if t == eos:
                break
    return out, margins


def perplexity(model, tokens, ctx, bos):
    """Mean NLL over the scored positions of every full window of ctx tokens."""
    first = ctx // 2
    nll, n = 0.0, 0
    chunks = len(tokens) // ctx
    with torch.no_grad():
        for k in range(0, chunks, 8):
            batch = []
            for c in range(k, min(chunks, k + 8)):
                w = list(tokens[c * ctx:(c + 1) * ctx])
                w[0] = bos
                batch.append(w)
            x = torch.tensor(batch)
            logits, _ = model(x)
            logp = F.log_softmax(logits[:, first:ctx - 1].double(), dim=-1)
            tgt = x[:, first + 1:ctx]
            nll -= float(logp.gather(2, tgt[:, :, None]).sum())
            n += tgt.numel()
    return nll, n


def record(model_dir, text_file, ctx):
    model, cfg = load_model(model_dir)
    enc = bpe.load(model_dir)
    out = {"prompts": [], "note": "greedy continuations and perplexity by tools/train/reference.py (PyTorch, f32)"}
    for p in PROMPTS:
        ids = enc.encode(bpe.BOS + "<｜User｜>" + p + "<｜Assistant｜>")
        toks, margins = greedy(model, ids, cfg["eos_token_id"], MAX_NEW)
        out["prompts"].append({"user": p, "prompt_ids": ids, "tokens": toks, "text": enc.decode(toks),
                               "min_margin": min(margins)})
    tokens = enc.encode(open(text_file, encoding="utf-8").read())
    nll, n = perplexity(model, tokens, ctx, cfg["bos_token_id"])
    out["perplexity"] = {"file": os.path.basename(text_file), "ctx": ctx, "tokens": len(tokens), "scored": n,
                         "nll": nll / n, "ppl": math.exp(nll / n)}
    with open(os.path.join(model_dir, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print(f"reference: {model_dir}: held-out perplexity {out['perplexity']['ppl']:.3f} over {n} tokens; "
          + "; ".join(f"{q['user']!r} -> {q['text'][:60]!r}" for q in out["prompts"]), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("text_file")
    ap.add_argument("--ctx", type=int, default=256)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    record(a.model_dir, a.text_file, a.ctx)


if __name__ == "__main__":
    main()
