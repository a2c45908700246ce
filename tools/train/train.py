"""Trains moemesh's demo model from scratch on this machine's CPU: a small
DeepSeek-V3 (MLA, DeepSeekMoE with the auxiliary-loss-free bias, dense first
layer, one MTP module trained with the MTP loss) on the King James Bible, with a
byte-level BPE vocabulary of our own. Deterministic for a seed and thread count.

  /usr/bin/python3 tools/train/train.py --preset smoke --out build/train/smoke
  /usr/bin/python3 tools/train/train.py --preset full --out build/train/full

Writes OUT/bf16 and OUT/fp8 (Hugging Face checkpoints moemesh serves as they are,
with the tokenizer files and reference.json: the PyTorch forward's greedy
continuations and held-out perplexity), OUT/loss.csv and OUT/loss.svg.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import checkpoint_io  # noqa: E402
import loss_plot  # noqa: E402
import reference  # noqa: E402
from model import DeepSeekV3  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def model_config(vocab, hidden, layers, experts, moe_inter, dense_inter, heads):
    return {
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
        "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": dense_inter,
        "moe_intermediate_size": moe_inter, "num_hidden_layers": layers, "num_nextn_predict_layers": 1,
        "first_k_dense_replace": 1, "num_attention_heads": heads, "num_key_value_heads": heads,
        "n_routed_experts": experts, "n_shared_experts": 1, "num_experts_per_tok": 4,
        "n_group": 4, "topk_group": 2, "topk_method": "noaux_tc", "scoring_func": "sigmoid",
        "routed_scaling_factor": 1.0, "norm_topk_prob": True,
        "q_lora_rank": hidden // 2, "kv_lora_rank": 64, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16,
        "v_head_dim": 32, "rope_theta": 10000.0, "rope_scaling": None, "rms_norm_eps": 1e-6,
        "max_position_embeddings": 4096, "bos_token_id": 0, "eos_token_id": 1,
        "hidden_act": "silu", "attention_bias": False, "tie_word_embeddings": False, "moe_layer_freq": 1,
    }


PRESETS = {
    # Checks the whole pipeline in minutes; its text is not yet English.
    "smoke": dict(vocab=2048, hidden=128, layers=3, experts=8, moe_inter=64, dense_inter=256, heads=4,
                  steps=120, batch=8, seq=128, lr=3e-3, warmup=20, eval_every=40),
    # The demo model.
    "full": dict(vocab=4096, hidden=256, layers=4, experts=16, moe_inter=96, dense_inter=384, heads=4,
                 steps=900, batch=16, seq=256, lr=2e-3, warmup=60, eval_every=100),
}

MTP_WEIGHT = 0.3        # the report's lambda for the first 10T tokens
BALANCE_ALPHA = 1e-4    # the complementary sequence-wise balance loss
BIAS_SPEED = 0.002      # the bias update speed (gamma)


def chat_text(user, assistant=None):
    s = bpe.BOS + "<｜User｜>" + user + "<｜Assistant｜>"
    return s if assistant is None else s + assistant + bpe.EOS


def windows(stream, starts, n, length, rng):
    pick = rng.integers(0, len(starts), n)
    return np.stack([stream[starts[p]:starts[p] + length] for p in pick])


def build_streams(enc, work):
    plain = []
    for ch in open(os.path.join(work, "train.txt"), encoding="utf-8").read().strip().split("\n\n"):
        plain += [0] + enc.encode(ch) + [1]
    chats = []
    chat_starts = []
    for line in open(os.path.join(work, "chats.jsonl"), encoding="utf-8"):
        c = json.loads(line)
        chat_starts.append(len(chats))
        chats += enc.encode(chat_text(c["user"], c["assistant"]))
    held = []
    for ch in open(os.path.join(work, "heldout.txt"), encoding="utf-8").read().strip().split("\n\n"):
        held += [0] + enc.encode(ch) + [1]
    return np.array(plain, np.int64), np.array(chats, np.int64), np.array(chat_starts, np.int64), np.array(held, np.int64)


def lr_at(step, p):
    if step < p["warmup"]:
        return p["lr"] * (step + 1) / p["warmup"]
    t = (step - p["warmup"]) / max(1, p["steps"] - p["warmup"])
    return p["lr"] * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def losses(model, x, train):
    logits, mtp_logits = model(x[:, :-1], mtp=True)
    V = logits.shape[-1]
    main = F.cross_entropy(logits.reshape(-1, V), x[:, 1:].reshape(-1))
    mtp = F.cross_entropy(mtp_logits.reshape(-1, V), x[:, 2:].reshape(-1))
    bal = sum(m.last_balance for m in model.moe_layers()) if train else torch.zeros(())
    return main, mtp, bal


def update_bias(model):
    with torch.no_grad():
        for m in model.moe_layers():
            load = m.last_load.float()
            m.gate.e_score_correction_bias += BIAS_SPEED * torch.sign(load.mean() - load)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="full")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, help="override the preset's step count")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--template", default=os.path.join(HERE, "..", "..", "node_modules", "@lenml",
                                                      "tokenizer-deepseek_v3", "models", "tokenizer_config.json"),
                    help="tokenizer_config.json whose chat_template (DeepSeek-V3's) the model is served with")
    a = ap.parse_args()
    p = dict(PRESETS[a.preset])
    if a.steps:
        p["steps"] = a.steps
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    work = os.path.join(a.out, "data")
    t0 = time.time()

    subprocess.run([sys.executable, os.path.join(HERE, "prepare_data.py"), "--work", work, "--seed", str(a.seed)], check=True)
    train_texts = open(os.path.join(work, "train.txt"), encoding="utf-8").read().strip().split("\n\n")
    chat_pairs = [json.loads(l) for l in open(os.path.join(work, "chats.jsonl"), encoding="utf-8")]
    vocab, merges = bpe.train(train_texts + [c["user"] + " " + c["assistant"] for c in chat_pairs], p["vocab"])
    enc = bpe.Encoder(vocab, merges)
    assert enc.vocab_size() == p["vocab"], (enc.vocab_size(), p["vocab"])
    plain, chats, chat_starts, held = build_streams(enc, work)
    print(f"train: tokenizer {enc.vocab_size()} tokens; {len(plain)} plain + {len(chats)} chat training tokens, "
          f"{len(held)} held out ({time.time() - t0:.0f} s)", flush=True)

    cfg = model_config(p["vocab"], p["hidden"], p["layers"], p["experts"], p["moe_inter"], p["dense_inter"], p["heads"])
    model = DeepSeekV3(cfg)
    n_params = sum(t.numel() for t in model.parameters())
    print(f"train: {n_params / 1e6:.2f} M parameters", flush=True)
    decay = [t for n, t in model.named_parameters() if t.dim() >= 2]
    no_decay = [t for n, t in model.named_parameters() if t.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=p["lr"], betas=(0.9, 0.95), eps=1e-8)
    L = p["seq"] + 1
    plain_starts = np.arange(0, len(plain) - L)
    chat_ok = chat_starts[chat_starts < len(chats) - L]
    eval_rng = np.random.default_rng(12345)
    held_eval = torch.from_numpy(windows(held, np.arange(0, len(held) - L), 32, L, eval_rng))
    n_chat = p["batch"] // 3

    log = []
    os.makedirs(a.out, exist_ok=True)
    t_train = time.time()
    for step in range(p["steps"]):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, p)
        x = torch.from_numpy(np.concatenate([windows(plain, plain_starts, p["batch"] - n_chat, L, rng),
                                             windows(chats, chat_ok, n_chat, L, rng)]))
        model.train()
        main_l, mtp_l, bal = losses(model, x, True)
        loss = main_l + MTP_WEIGHT * mtp_l + BALANCE_ALPHA * bal
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        update_bias(model)
        row = {"step": step + 1, "tokens": (step + 1) * p["batch"] * p["seq"], "main": main_l.item(),
               "mtp": mtp_l.item(), "held_main": None, "held_mtp": None}
        if (step + 1) % p["eval_every"] == 0 or step + 1 == p["steps"]:
            model.eval()
            with torch.no_grad():
                hm, ht, _ = losses(model, held_eval, False)
            row["held_main"], row["held_mtp"] = hm.item(), ht.item()
            rate = row["tokens"] / (time.time() - t_train)
            print(f"train: step {step + 1}/{p['steps']} loss {row['main']:.3f} mtp {row['mtp']:.3f} "
                  f"held-out {hm.item():.3f} / {ht.item():.3f} ({rate:.0f} tokens/s)", flush=True)
        log.append(row)

    with open(os.path.join(a.out, "loss.csv"), "w") as f:
        f.write("step,tokens,main,mtp,held_main,held_mtp\n")
        for r in log:
            f.write(",".join("" if r[k] is None else (f"{r[k]:.5f}" if isinstance(r[k], float) else str(r[k]))
                             for k in ("step", "tokens", "main", "mtp", "held_main", "held_mtp")) + "\n")
    loss_plot.write_svg(os.path.join(a.out, "loss.csv"), os.path.join(a.out, "loss.svg"),
                        f"{a.preset}: {n_params / 1e6:.1f} M parameters, {p['steps']} steps")

    state = {k: v.numpy() for k, v in model.hf_state().items()}
    template = json.load(open(a.template, encoding="utf-8"))["chat_template"]
    shutil.copy(os.path.join(work, "heldout.txt"), os.path.join(a.out, "heldout.txt"))
    for kind in ("bf16", "fp8"):
        d = os.path.join(a.out, kind)
        checkpoint_io.write_checkpoint(d, cfg, state, fp8=(kind == "fp8"))
        bpe.save(d, vocab, merges, template)
        reference.record(d, os.path.join(work, "heldout.txt"), p["seq"])
    print(f"train: done in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
