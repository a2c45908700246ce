"""Hugging Face checkpoint files without the `safetensors` package (not in Debian
12): the format is an 8-byte little-endian header length, a JSON header, then the
raw tensors. bf16 by rounding to nearest even; fp8 E4M3 with one scale per
128x128 block (`weight_scale_inv`, DeepSeek-V3's layout), quantized in numpy
because torch 1.13 has no float8.
"""

import json
import os
import struct

import numpy as np

BLOCK = 128


def f32_to_bf16_bits(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def bf16_bits_to_f32(b):
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def _e4m3_table():
    """The 126 finite positive E4M3 (fn) values with their codes, ascending (0 included)."""
    vals = []
    for code in range(0x7F):  # 0x7F is NaN
        e, m = code >> 3, code & 7
        v = (m / 8.0) * 2.0 ** -6 if e == 0 else (1 + m / 8.0) * 2.0 ** (e - 7)
        vals.append(v)
    return np.array(vals, dtype=np.float64)


_E4M3 = _e4m3_table()


def f32_to_e4m3_bits(a):
    """Round to nearest, ties to even code; saturates at 448."""
    x = np.asarray(a, dtype=np.float64)
    mag = np.minimum(np.abs(x), 448.0)
    hi = np.clip(np.searchsorted(_E4M3, mag, side="left"), 0, len(_E4M3) - 1)
    lo = np.maximum(hi - 1, 0)
    d_hi, d_lo = np.abs(_E4M3[hi] - mag), np.abs(mag - _E4M3[lo])
    pick_lo = (d_lo < d_hi) | ((d_lo == d_hi) & (lo % 2 == 0))
    code = np.where(pick_lo, lo, hi).astype(np.uint8)
    return code | np.where(np.signbit(x) & (code != 0), np.uint8(0x80), np.uint8(0))


def e4m3_bits_to_f32(b):
    sign = np.where(b & 0x80, -1.0, 1.0)
    return (sign * _E4M3[b & 0x7F]).astype(np.float32)


def quantize_fp8(w):
    """w: [out, in] f32 -> (E4M3 codes [out, in], scale_inv f32 [ceil(out/128), ceil(in/128)])."""
    o, i = w.shape
    bo, bi = -(-o // BLOCK), -(-i // BLOCK)
    codes = np.zeros((o, i), dtype=np.uint8)
    scales = np.zeros((bo, bi), dtype=np.float32)
    for r in range(bo):
        for c in range(bi):
            blk = w[r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK]
            amax = float(np.abs(blk).max())
            s = np.float32(amax / 448.0) if amax > 0 else np.float32(1.0)
            scales[r, c] = s
            codes[r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK] = f32_to_e4m3_bits(blk / s)
    return codes, scales


def dequantize_fp8(codes, scales):
    w = e4m3_bits_to_f32(codes)
    o, i = w.shape
    return w * np.repeat(np.repeat(scales, BLOCK, 0), BLOCK, 1)[:o, :i]


def write_safetensors(path, tensors):
    """tensors: name -> (dtype name, numpy array of the stored bits)."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        dt, arr = tensors[name]
        data = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """name -> f32 numpy array (bf16 widened; fp8 left as codes with dtype F8_E4M3 noted)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        raw = f.read()
    out = {}
    np_types = {"F32": np.float32, "BF16": np.uint16, "F8_E4M3": np.uint8}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        s, e = meta["data_offsets"]
        a = np.frombuffer(raw[s:e], dtype=np_types[meta["dtype"]]).reshape(meta["shape"])
        out[name] = (meta["dtype"], a)
    return out


def load_f32(model_dir):
    """Every tensor of a checkpoint as f32, fp8 weights dequantized with their block scales."""
    t = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    out = {}
    for name, (dt, a) in t.items():
        if name.endswith(".weight_scale_inv"):
            continue
        if dt == "BF16":
            out[name] = bf16_bits_to_f32(a)
        elif dt == "F8_E4M3":
            out[name] = dequantize_fp8(a, t[name[:-len("weight")] + "weight_scale_inv"][1])
        else:
            out[name] = a.astype(np.float32)
    return out


# Which weights DeepSeek-V3 stores in fp8: the big linear layers, not embeddings,
# the head, norms, gates or the MTP module's eh_proj.
def fp8_eligible(name):
    if not name.endswith(".weight") or name.startswith("lm_head") or "embed_tokens" in name:
        return False
    if "norm" in name or name.endswith("mlp.gate.weight") or "eh_proj" in name or "shared_head" in name:
        return False
    return True


def write_checkpoint(out_dir, config, state, fp8):
    """state: name -> f32 numpy. Writes config.json and model.safetensors."""
    os.makedirs(out_dir, exist_ok=True)
    tensors = {}
    for name, w in state.items():
        if name.endswith("e_score_correction_bias"):
            tensors[name] = ("F32", w.astype(np.float32))
        elif fp8 and fp8_eligible(name):
            codes, scales = quantize_fp8(w)
            tensors[name] = ("F8_E4M3", codes)
            tensors[name[:-len("weight")] + "weight_scale_inv"] = ("F32", scales)
        else:
            tensors[name] = ("BF16", f32_to_bf16_bits(w))
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
    cfg = dict(config)
    cfg["torch_dtype"] = "bfloat16"
    if fp8:
        cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                      "weight_block_size": [BLOCK, BLOCK]}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
