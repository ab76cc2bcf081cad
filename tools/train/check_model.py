#!/usr/bin/env python3
"""Independent check of a saved demo model folder with NumPy alone (no torch, no transformers).

  python3 tools/train/check_model.py models/demo/hf models/demo/heldout_ppl.json [models/demo/heldout.txt]

Reads config.json and model.safetensors, runs a plain float64 Llama forward pass (RMSNorm, RoPE in
the Hugging Face half-split layout, grouped-query attention, SwiGLU, tied output head) on the
reference prompts recorded by train.py, and compares the last-position top-10 logits and the
first greedy tokens with the recorded ones. With a third argument it also encodes that text with
its own byte-level BPE (tokenizer.json's vocabulary and merges, GPT-2 pre-tokenization) and
recomputes the held-out perplexity by the method in train.py (a few minutes on two cores).
Exits non-zero on a mismatch.
"""

from __future__ import annotations

import json
import os
import struct
import sys

import numpy as np

try:
    import regex as _regex
    SPLIT = _regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
except ImportError:  # the same classes through `re`; exact for text whose letters and digits are ASCII
    import re as _regex
    SPLIT = _regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")

DTYPES = {"F16": np.float16, "BF16": None, "F32": np.float32, "F64": np.float64}


def load_safetensors(path: str) -> dict:
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).astype(np.float64)
    return out


class Llama:
    def __init__(self, folder: str):
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            self.cfg = json.load(f)
        self.w = load_safetensors(os.path.join(folder, "model.safetensors"))
        c = self.cfg
        self.h = c["num_attention_heads"]
        self.kv = c["num_key_value_heads"]
        self.hd = c.get("head_dim") or c["hidden_size"] // self.h
        theta = c.get("rope_theta") or c["rope_parameters"]["rope_theta"]
        self.inv_freq = 1.0 / theta ** (np.arange(0, self.hd, 2, dtype=np.float64) / self.hd)
        self.eps = c["rms_norm_eps"]
        emb = self.w["model.embed_tokens.weight"]
        self.out = self.w.get("lm_head.weight", emb)

    def norm(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):
        ang = pos[:, None] * self.inv_freq[None, :]
        cos = np.concatenate([np.cos(ang)] * 2, -1)
        sin = np.concatenate([np.sin(ang)] * 2, -1)
        half = self.hd // 2
        rot = np.concatenate([-x[..., half:], x[..., :half]], -1)
        return x * cos + rot * sin

    def logits(self, ids: list[int]) -> np.ndarray:
        w, n = self.w, len(ids)
        x = w["model.embed_tokens.weight"][ids]
        pos = np.arange(n, dtype=np.float64)
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            hn = self.norm(x, w[p + "input_layernorm.weight"])
            q = (hn @ w[p + "self_attn.q_proj.weight"].T).reshape(n, self.h, self.hd).transpose(1, 0, 2)
            k = (hn @ w[p + "self_attn.k_proj.weight"].T).reshape(n, self.kv, self.hd).transpose(1, 0, 2)
            v = (hn @ w[p + "self_attn.v_proj.weight"].T).reshape(n, self.kv, self.hd).transpose(1, 0, 2)
            q, k = self.rope(q, pos), self.rope(k, pos)
            rep = self.h // self.kv
            k, v = np.repeat(k, rep, 0), np.repeat(v, rep, 0)
            s = q @ k.transpose(0, 2, 1) / np.sqrt(self.hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(1, 0, 2).reshape(n, self.h * self.hd)
            x = x + a @ w[p + "self_attn.o_proj.weight"].T
            hn = self.norm(x, w[p + "post_attention_layernorm.weight"])
            g = hn @ w[p + "mlp.gate_proj.weight"].T
            u = hn @ w[p + "mlp.up_proj.weight"].T
            x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
        x = self.norm(x, w["model.norm.weight"])
        return x @ self.out.T


def byte_to_unicode() -> dict:
    """GPT-2's table that maps every byte to a printable character."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class ByteBpe:
    def __init__(self, tokenizer_json: str):
        with open(tokenizer_json, encoding="utf-8") as f:
            tj = json.load(f)
        self.vocab = tj["model"]["vocab"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in tj["model"]["merges"]]
        self.rank = {m: i for i, m in enumerate(merges)}
        self.b2u = byte_to_unicode()
        self.cache: dict = {}

    def word(self, piece: str) -> list[int]:
        if piece in self.cache:
            return self.cache[piece]
        parts = [self.b2u[b] for b in piece.encode("utf-8")]
        while len(parts) > 1:
            best = min(range(len(parts) - 1), key=lambda i: self.rank.get((parts[i], parts[i + 1]), 1 << 30))
            if (parts[best], parts[best + 1]) not in self.rank:
                break
            parts[best:best + 2] = [parts[best] + parts[best + 1]]
        ids = [self.vocab[p] for p in parts]
        self.cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        out = []
        for m in SPLIT.finditer(text):
            out.extend(self.word(m.group(0)))
        return out


def heldout_perplexity(model: Llama, ids: list[int], bos: int = 0, chunk: int = 256) -> tuple[float, int]:
    total = 0.0
    for i in range(0, len(ids), chunk):
        c = ids[i:i + chunk]
        z = model.logits([bos] + c[:-1])
        z = z - z.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        total -= float(logp[np.arange(len(c)), c].sum())
    return total, len(ids)


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__)
        return 2
    model = Llama(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        report = json.load(f)
    ok = True
    for ref in report["reference"]:
        last = model.logits(ref["input_ids"])[-1]
        top = list(np.argsort(-last)[:10])
        err = max(abs(last[i] - v) for i, v in zip(ref["top10_ids"], ref["top10_logits"]))
        ids = list(ref["input_ids"])
        greedy = []
        for _ in range(8):
            nxt = int(np.argmax(model.logits(ids)[-1]))
            greedy.append(nxt)
            ids.append(nxt)
        same_top = top[:3] == ref["top10_ids"][:3]
        same_greedy = greedy == ref["greedy_ids"][:8]
        print(f"{ref['prompt']!r}: max |logit diff| on recorded top-10 {err:.2e}, "
              f"top-3 match {same_top}, first 8 greedy tokens match {same_greedy}")
        ok &= err < 2e-3 and same_top and same_greedy
    if len(sys.argv) == 4:
        bpe = ByteBpe(os.path.join(sys.argv[1], "tokenizer.json"))
        for ref in report["reference"]:
            same = [0] + bpe.encode(ref["prompt"]) == ref["input_ids"]
            print(f"{ref['prompt']!r}: own BPE encoding matches the recorded ids: {same}")
            ok &= same
        with open(sys.argv[3], encoding="utf-8") as f:
            ids = bpe.encode(f.read())
        nll, n = heldout_perplexity(model, ids)
        ppl = float(np.exp(nll / n))
        print(f"held-out: {n} tokens (recorded {report['tokens']}), mean NLL {nll / n:.5f}, "
              f"perplexity {ppl:.4f} (recorded {report['perplexity']:.4f})")
        ok &= n == report["tokens"] and abs(ppl - report["perplexity"]) < 1e-3 * report["perplexity"]
    print("ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
