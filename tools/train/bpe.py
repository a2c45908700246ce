"""Byte-level BPE in DeepSeek-V3's layout: its pre-tokenizer (the same three splits),
GPT-2's byte-to-character map, its special tokens and chat template; a vocabulary
trained on our corpus instead of its 128k tokens.

No Debian package trains a tokenizer.json (Hugging Face's `tokenizers` is not
packaged), so this is our own: counts over unique pre-token pieces, merges applied
incrementally to the pieces that hold the merged pair.
"""

import collections
import json

import regex

# DeepSeek-V3's pre-tokenizer: a Sequence of three Isolated splits, then ByteLevel.
SPLITS = [
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
]
_COMPILED = [regex.compile(p) for p in SPLITS]

BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
# Added after the BPE vocabulary, in DeepSeek-V3's order; `normalized` as there.
NAMED_SPECIALS = [
    ("<｜fim▁hole｜>", False), ("<｜fim▁begin｜>", False), ("<｜fim▁end｜>", False),
    ("<｜User｜>", False), ("<｜Assistant｜>", False), ("<|EOT|>", True),
    ("<｜tool▁calls▁begin｜>", False), ("<｜tool▁calls▁end｜>", False),
    ("<｜tool▁call▁begin｜>", False), ("<｜tool▁call▁end｜>", False),
    ("<｜tool▁outputs▁begin｜>", False), ("<｜tool▁outputs▁end｜>", False),
    ("<｜tool▁output▁begin｜>", False), ("<｜tool▁output▁end｜>", False),
    ("<｜tool▁sep｜>", False),
]


def bytes_to_unicode():
    """GPT-2's map of the 256 bytes to printable characters, in its order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [(b, chr(c)) for b, c in zip(bs, cs)]


BYTE_ORDER = bytes_to_unicode()
BYTE_CHAR = {b: c for b, c in BYTE_ORDER}


def pretokenize(text):
    pieces = [text]
    for rx in _COMPILED:
        out = []
        for p in pieces:
            pos = 0
            for m in rx.finditer(p):
                if m.start() > pos:
                    out.append(p[pos:m.start()])
                if m.end() > m.start():
                    out.append(m.group())
                pos = m.end()
            if pos < len(p):
                out.append(p[pos:])
        pieces = out
    return ["".join(BYTE_CHAR[b] for b in p.encode("utf-8")) for p in pieces]


def train(texts, vocab_size):
    """Returns (vocab: token -> id, merges: [(a, b)]) with vocab_size ids in all,
    the named specials included (they come after the BPE vocabulary)."""
    counts = collections.Counter()
    for t in texts:
        counts.update(pretokenize(t))
    words = [list(w) for w in counts]
    freq = [counts[w] for w in counts]
    pairs = collections.Counter()
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pairs[(a, b)] += freq[i]
            where[(a, b)].add(i)
    n_merges = vocab_size - 3 - 256 - len(NAMED_SPECIALS)
    merges = []
    while len(merges) < n_merges and pairs:
        # Most frequent; ties go to the smaller pair so a seed is not even needed.
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        a, b = best
        joined = a + b
        for i in list(where[best]):
            w = words[i]
            j = 0
            new = []
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    new.append(joined)
                    j += 2
                else:
                    new.append(w[j])
                    j += 1
            for p in zip(w, w[1:]):
                pairs[p] -= freq[i]
                if pairs[p] <= 0:
                    del pairs[p]
                where[p].discard(i)
            for p in zip(new, new[1:]):
                pairs[p] += freq[i]
                where[p].add(i)
            words[i] = new
        pairs.pop(best, None)
        where.pop(best, None)
    vocab = {BOS: 0, EOS: 1, PAD: 2}
    for _, c in BYTE_ORDER:
        vocab[c] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return vocab, merges


class Encoder:
    def __init__(self, vocab, merges):
        self.vocab = vocab
        self.ranks = {m: r for r, m in enumerate(merges)}
        self.cache = {}
        first = max(vocab.values()) + 1
        self.specials = {BOS: 0, EOS: 1, PAD: 2}
        for k, (s, _) in enumerate(NAMED_SPECIALS):
            self.specials[s] = first + k
        self.id_to_token = {i: t for t, i in vocab.items()}
        self._special_rx = regex.compile("|".join(regex.escape(s) for s in sorted(self.specials, key=len, reverse=True)))
        self._char_byte = {c: b for b, c in BYTE_ORDER}

    def vocab_size(self):
        return max(self.specials.values()) + 1

    def _bpe(self, piece):
        hit = self.cache.get(piece)
        if hit is not None:
            return hit
        w = list(piece)
        while len(w) > 1:
            best = min(range(len(w) - 1), key=lambda j: self.ranks.get((w[j], w[j + 1]), 1 << 30))
            if (w[best], w[best + 1]) not in self.ranks:
                break
            a, b = w[best], w[best + 1]
            new, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    new.append(a + b)
                    j += 2
                else:
                    new.append(w[j])
                    j += 1
            w = new
        ids = [self.vocab[t] for t in w]
        self.cache[piece] = ids
        return ids

    def encode(self, text):
        """Special tokens written in the text are recognized, as the serving tokenizer does."""
        out = []
        pos = 0
        for m in self._special_rx.finditer(text):
            out += self._encode_plain(text[pos:m.start()])
            out.append(self.specials[m.group()])
            pos = m.end()
        out += self._encode_plain(text[pos:])
        return out

    def _encode_plain(self, text):
        out = []
        for p in pretokenize(text):
            out += self._bpe(p)
        return out

    def decode(self, ids):
        inv = {i: s for s, i in self.specials.items()}
        data = bytearray()
        for i in ids:
            if i in inv:
                data += inv[i].encode("utf-8")
            else:
                data += bytes(self._char_byte[c] for c in self.id_to_token[i])
        return data.decode("utf-8", errors="replace")


def tokenizer_json(vocab, merges):
    first = max(vocab.values()) + 1
    added = [{"id": 0, "content": BOS, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
             {"id": 1, "content": EOS, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
             {"id": 2, "content": PAD, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}]
    for k, (s, normalized) in enumerate(NAMED_SPECIALS):
        added.append({"id": first + k, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": normalized, "special": not normalized})
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": []},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": p}, "behavior": "Isolated", "invert": False} for p in SPLITS
        ] + [{"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }


def tokenizer_config(chat_template):
    tok = lambda s: {"__type": "AddedToken", "content": s, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    return {"add_bos_token": True, "add_eos_token": False, "bos_token": tok(BOS), "eos_token": tok(EOS),
            "pad_token": tok(EOS), "clean_up_tokenization_spaces": False, "legacy": True,
            "model_max_length": 4096, "unk_token": None, "tokenizer_class": "LlamaTokenizerFast",
            "chat_template": chat_template}


def save(out_dir, vocab, merges, chat_template):
    with open(f"{out_dir}/tokenizer.json", "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(vocab, merges), f, ensure_ascii=False)
    with open(f"{out_dir}/tokenizer_config.json", "w", encoding="utf-8") as f:
        json.dump(tokenizer_config(chat_template), f, ensure_ascii=False, indent=1)


def load(tokenizer_dir):
    with open(f"{tokenizer_dir}/tokenizer.json", encoding="utf-8") as f:
        j = json.load(f)
    merges = [tuple(m.split(" ")) for m in j["model"]["merges"]]
    return Encoder(j["model"]["vocab"], merges)
