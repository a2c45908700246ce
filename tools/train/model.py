"""DeepSeek-V3's architecture in PyTorch, written from the DeepSeek-V3 report, for
training and as an independent reference of moemesh's engine: MLA with q and kv
compression and decoupled RoPE (interleaved pairs), DeepSeekMoE with sigmoid
scores, group-limited top-k over bias-corrected scores (the auxiliary-loss-free
balancing bias), a shared expert, dense first layers, and one MTP module fed the
main model's final-normed hidden state and the next token's embedding.

Tensor names are those of Hugging Face DeepSeek-V3 checkpoints.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


def linear(i, o):
    return nn.Linear(i, o, bias=False)


def rope_tables(dim, theta, positions):
    inv = 1.0 / torch.pow(torch.tensor(float(theta)), torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    ang = positions.float()[:, None] * inv[None, :]
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x, cos, sin):
    """x: [..., T, heads, dim]; rotates the pairs (x[2i], x[2i+1])."""
    a, b = x[..., 0::2], x[..., 1::2]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.stack((a * c - b * s, a * s + b * c), dim=-1).flatten(-2)


class MLA(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        H, h = c["hidden_size"], c["num_attention_heads"]
        self.nope, self.rope, self.v, self.lora = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"], c["kv_lora_rank"]
        self.heads = h
        self.q_a_proj = linear(H, c["q_lora_rank"])
        self.q_a_layernorm = RMSNorm(c["q_lora_rank"], c["rms_norm_eps"])
        self.q_b_proj = linear(c["q_lora_rank"], h * (self.nope + self.rope))
        self.kv_a_proj_with_mqa = linear(H, self.lora + self.rope)
        self.kv_a_layernorm = RMSNorm(self.lora, c["rms_norm_eps"])
        self.kv_b_proj = linear(self.lora, h * (self.nope + self.v))
        self.o_proj = linear(h * self.v, H)
        self.scale = 1.0 / math.sqrt(self.nope + self.rope)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))).view(B, T, self.heads, self.nope + self.rope)
        q_nope, q_pe = q[..., :self.nope], apply_rope(q[..., self.nope:], cos, sin)
        kv = self.kv_a_proj_with_mqa(x)
        k_pe = apply_rope(kv[..., self.lora:].unsqueeze(2), cos, sin)  # one rope key for every head
        kvb = self.kv_b_proj(self.kv_a_layernorm(kv[..., :self.lora])).view(B, T, self.heads, self.nope + self.v)
        k_nope, v = kvb[..., :self.nope], kvb[..., self.nope:]
        s = torch.einsum("bthd,bshd->bhts", q_nope, k_nope) + torch.einsum("bthd,bsd->bhts", q_pe, k_pe[:, :, 0])
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        p = torch.softmax((s * self.scale).masked_fill(mask, float("-inf")), dim=-1)
        o = torch.einsum("bhts,bshd->bthd", p, v).reshape(B, T, self.heads * self.v)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, H, inter):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = linear(H, inter), linear(H, inter), linear(inter, H)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    def __init__(self, c):
        super().__init__()
        E = c["n_routed_experts"]
        self.weight = nn.Parameter(torch.empty(E, c["hidden_size"]))
        # Not trained by gradients: moved towards balance after each step.
        self.register_buffer("e_score_correction_bias", torch.zeros(E))
        self.k, self.groups, self.topk_groups = c["num_experts_per_tok"], c["n_group"], c["topk_group"]
        self.norm, self.scaling = c["norm_topk_prob"], c["routed_scaling_factor"]

    def forward(self, x):
        """x: [N, H] -> (experts [N, k], weights [N, k], scores [N, E])."""
        scores = torch.sigmoid(x @ self.weight.t())
        choice = scores.detach() + self.e_score_correction_bias
        N, E = choice.shape
        g = choice.view(N, self.groups, E // self.groups)
        group_score = g.topk(2, dim=-1).values.sum(-1)
        keep = torch.zeros(N, self.groups, dtype=torch.bool)
        keep.scatter_(1, group_score.topk(self.topk_groups, dim=-1).indices, True)
        masked = g.masked_fill(~keep[:, :, None], float("-inf")).view(N, E)
        idx = masked.topk(self.k, dim=-1).indices
        w = scores.gather(1, idx)
        if self.norm:
            w = w / w.sum(-1, keepdim=True)
        return idx, w * self.scaling, scores


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["hidden_size"]
        self.gate = Gate(c)
        self.experts = nn.ModuleList(MLP(H, c["moe_intermediate_size"]) for _ in range(c["n_routed_experts"]))
        self.shared_experts = MLP(H, c["moe_intermediate_size"] * c["n_shared_experts"])
        self.last_load = None  # tokens per expert in the last forward, for the bias update
        self.last_balance = None  # the sequence-wise balance loss of the last forward

    def forward(self, x):
        B, T, H = x.shape
        flat = x.reshape(-1, H)
        idx, w, scores = self.gate(flat)
        out = torch.zeros_like(flat)
        E = len(self.experts)
        load = torch.bincount(idx.flatten(), minlength=E)
        order = torch.argsort(idx.flatten(), stable=True)
        rows_sorted = order // idx.shape[1]
        starts = torch.cumsum(load, 0) - load
        for e in range(E):
            n = int(load[e])
            if n == 0:
                continue
            sel = order[starts[e]:starts[e] + n]
            rows = rows_sorted[starts[e]:starts[e] + n]
            out.index_add_(0, rows, self.experts[e](flat[rows]) * w.flatten()[sel, None])
        self.last_load = load
        if self.training:
            # DeepSeek-V3's complementary sequence-wise balance loss (its alpha is applied by the caller).
            k = idx.shape[1]
            s = scores.view(B, T, E)
            p = (s / s.sum(-1, keepdim=True)).mean(1)
            f = torch.zeros(B, T * k, E).scatter_(2, idx.view(B, T * k, 1), 1.0).sum(1) * (E / (k * T))
            self.last_balance = (f * p).sum(-1).mean()
        return out.view(B, T, H) + self.shared_experts(x)


class Block(nn.Module):
    def __init__(self, c, moe):
        super().__init__()
        H, eps = c["hidden_size"], c["rms_norm_eps"]
        self.input_layernorm = RMSNorm(H, eps)
        self.self_attn = MLA(c)
        self.post_attention_layernorm = RMSNorm(H, eps)
        self.mlp = MoE(c) if moe else MLP(H, c["intermediate_size"])

    def forward(self, x, cos, sin):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return h + self.mlp(self.post_attention_layernorm(h))


class MTP(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, eps = c["hidden_size"], c["rms_norm_eps"]
        self.enorm, self.hnorm = RMSNorm(H, eps), RMSNorm(H, eps)
        self.eh_proj = linear(2 * H, H)
        self.block = Block(c, moe=c["n_routed_experts"] > 0)
        self.head_norm = RMSNorm(H, eps)

    def forward(self, emb_next, h_normed, cos, sin):
        x = self.eh_proj(torch.cat([self.enorm(emb_next), self.hnorm(h_normed)], dim=-1))
        return self.head_norm(self.block(x, cos, sin))


class DeepSeekV3(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        H = c["hidden_size"]
        self.embed_tokens = nn.Embedding(c["vocab_size"], H)
        self.layers = nn.ModuleList(Block(c, moe=l >= c["first_k_dense_replace"]) for l in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(H, c["rms_norm_eps"])
        self.lm_head = linear(H, c["vocab_size"])
        self.mtp = MTP(c) if c["num_nextn_predict_layers"] > 0 else None
        self._init()

    def _init(self):
        g = 0.02
        out_scale = 1.0 / math.sqrt(2 * (self.c["num_hidden_layers"] + 1))
        for name, p in self.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                continue
            std = g * out_scale if (name.endswith("o_proj.weight") or name.endswith("down_proj.weight")) else g
            nn.init.normal_(p, 0.0, std)

    def moe_layers(self):
        mods = [l.mlp for l in self.layers] + ([self.mtp.block.mlp] if self.mtp else [])
        return [m for m in mods if isinstance(m, MoE)]

    def forward(self, tokens, mtp=False):
        """tokens: [B, T]. Returns main logits [B, T, V] and, with mtp, the MTP logits
        [B, T-1, V] where row i predicts token i+2 from hidden i and token i+1."""
        B, T = tokens.shape
        cos, sin = rope_tables(self.c["qk_rope_head_dim"], self.c["rope_theta"], torch.arange(T))
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin)
        h = self.norm(x)
        logits = self.lm_head(h)
        if not mtp:
            return logits, None
        m = self.mtp(self.embed_tokens(tokens[:, 1:]), h[:, :-1], cos[:-1], sin[:-1])
        return logits, self.lm_head(m)

    # ---- Hugging Face tensor names ----
    def hf_state(self):
        """name -> f32 tensor, as a DeepSeek-V3 checkpoint names them."""
        out = {}
        L = self.c["num_hidden_layers"]
        for k, v in self.state_dict().items():
            if k.startswith("mtp."):
                k = k[4:]
                k = (k.replace("block.", "").replace("head_norm.", "shared_head.norm."))
                k = f"model.layers.{L}.{k}"
            elif k.startswith("lm_head."):
                pass
            else:
                k = "model." + k
            out[k] = v.detach().float().contiguous()
        return out

    def load_hf_state(self, tensors):
        mine = {}
        L = self.c["num_hidden_layers"]
        for k in self.state_dict():
            if k.startswith("mtp."):
                sub = k[4:]
                hf = f"model.layers.{L}." + sub.replace("block.", "").replace("head_norm.", "shared_head.norm.")
            elif k.startswith("lm_head."):
                hf = k
            else:
                hf = "model." + k
            mine[k] = tensors[hf]
        self.load_state_dict(mine)
