#!/usr/bin/env python3
"""Random-weight reference fixtures for the decoder architectures slm supports.

For each fixture this writes, into OUT/<name>/:
  config.json        the configuration as transformers saves it
  model.safetensors  float32 weights under transformers' own tensor names
  tokens.json        {"tokens": [...]}: 40 seeded random token ids, BOS-like id 1 first
  logits.npy         float32 [40, vocab_size]: logits of every position, computed by transformers
                     on the CPU with model.double() and attn_implementation="eager"
  meta.json          the traits the fixture exercises, init parameters, statistics, cross-checks

Each tiny model keeps the structural traits of a real model family (grouped-query attention
ratio, biases, QK-norm, head_dim independent of dim, RoPE base and scaling, tied or untied output,
sliding window) at vocab 512, dim 64-128, 2-3 layers.

Besides transformers' logits, the script runs an independent float64 NumPy forward pass that reads
only the files written (config.json, model.safetensors, tokens.json) and checks that it agrees
with transformers: the fixtures thereby pin down the semantics an engine must implement.

Needs torch, transformers (5.x), safetensors and numpy. Run:
  python3 tools/ref/make_fixtures.py --out tests/data/models
"""

import argparse
import inspect
import json
import math
import os
import platform
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file as load_safetensors

N_TOKENS = 40
BOS_ID = 1
EOS_ID = 2
VOCAB = 512

# Targets for peaky logits (std over the vocabulary, mean max softmax probability).
MIN_LOGIT_STD = 2.0
MIN_MAX_PROB = 0.3
# The tuner aims a little above the minimums.
AIM_LOGIT_STD = 2.5
AIM_MAX_PROB = 0.35
LM_SCALES = [3.0, 4.0, 5.0, 6.0, 8.0, 10.0]

FIXTURES = [
    {
        "name": "llama3",
        "like": "meta-llama/Llama-3.2-1B",
        "architecture": "LlamaForCausalLM",
        "seed": 1001,
        "dim": 128, "n_layers": 2, "n_heads": 8, "n_kv_heads": 2, "head_dim": 16,
        "intermediate": 192,
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        "max_position_embeddings": 131072,
        "tied": True, "rms_norm_eps": 1e-5,
        "traits": ["gqa_4to1", "rope_llama3_scaling", "tied_embeddings", "no_bias"],
    },
    {
        "name": "smollm2",
        "like": "HuggingFaceTB/SmolLM2-135M",
        "architecture": "LlamaForCausalLM",
        "seed": 1002,
        "dim": 96, "n_layers": 3, "n_heads": 6, "n_kv_heads": 2, "head_dim": 16,
        "intermediate": 192,
        "rope_theta": 100000.0, "rope_scaling": None,
        "max_position_embeddings": 8192,
        "tied": True, "rms_norm_eps": 1e-5,
        "traits": ["gqa_3to1", "rope_default", "tied_embeddings", "no_bias"],
    },
    {
        "name": "qwen2",
        "like": "Qwen/Qwen2.5-0.5B",
        "architecture": "Qwen2ForCausalLM",
        "seed": 1003,
        "dim": 112, "n_layers": 2, "n_heads": 14, "n_kv_heads": 2, "head_dim": 8,
        "intermediate": 224,
        "rope_theta": 1000000.0, "rope_scaling": None,
        "max_position_embeddings": 32768,
        "tied": True, "rms_norm_eps": 1e-6,
        "traits": ["gqa_7to1", "qkv_bias", "o_proj_no_bias", "rope_default", "tied_embeddings"],
    },
    {
        "name": "deepseek_r1_qwen",
        "like": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "architecture": "Qwen2ForCausalLM",
        "seed": 1004,
        "dim": 96, "n_layers": 2, "n_heads": 6, "n_kv_heads": 1, "head_dim": 16,
        "intermediate": 256,
        "rope_theta": 10000.0, "rope_scaling": None,
        "max_position_embeddings": 131072,
        "tied": False, "rms_norm_eps": 1e-6,
        "traits": ["gqa_6to1", "qkv_bias", "o_proj_no_bias", "rope_default", "untied_lm_head"],
    },
    {
        "name": "qwen3",
        "like": "Qwen/Qwen3-0.6B",
        "architecture": "Qwen3ForCausalLM",
        "seed": 1005,
        "dim": 64, "n_layers": 3, "n_heads": 4, "n_kv_heads": 2, "head_dim": 32,
        "intermediate": 192,
        "rope_theta": 1000000.0, "rope_scaling": None,
        "max_position_embeddings": 40960,
        "tied": True, "rms_norm_eps": 1e-6,
        "traits": ["gqa_2to1", "qk_norm_per_head", "head_dim_independent_of_dim", "no_bias",
                   "rope_default", "tied_embeddings"],
    },
    {
        "name": "mistral",
        "like": "mistralai/Mistral-7B-v0.1",
        "architecture": "MistralForCausalLM",
        "seed": 1006,
        "dim": 64, "n_layers": 3, "n_heads": 4, "n_kv_heads": 1, "head_dim": 16,
        "intermediate": 224,
        "rope_theta": 10000.0, "rope_scaling": None,
        "max_position_embeddings": 32768,
        "tied": False, "rms_norm_eps": 1e-5,
        "sliding_window": 8,
        "traits": ["gqa_4to1", "sliding_window_8", "rope_default", "untied_lm_head", "no_bias"],
    },
    {
        "name": "gemma3",
        "like": "google/gemma-3-1b-it (text tower; global-layer linear RoPE scaling as gemma-3-4b)",
        "architecture": "Gemma3ForCausalLM",
        "seed": 1007,
        "dim": 64, "n_layers": 3, "n_heads": 4, "n_kv_heads": 1, "head_dim": 32,
        "intermediate": 160,
        "rope_theta": 1000000.0,
        "rope_scaling": {"rope_type": "linear", "factor": 8.0},
        "rope_local_theta": 10000.0,
        "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
        "sliding_window": 8,
        "query_pre_attn_scalar": 24,
        "max_position_embeddings": 32768,
        "tied": True, "rms_norm_eps": 1e-6,
        "norm_centered": True,
        "traits": ["gqa_4to1", "local_global_layers", "sliding_window_8", "rope_local_10000",
                   "rope_global_linear_8", "qk_norm_per_head", "norm_one_plus_w", "pre_post_norms",
                   "gelu_tanh_gate", "embedding_scaled_sqrt_dim", "query_pre_attn_scalar_24",
                   "head_dim_independent_of_dim", "tied_embeddings"],
    },
    {
        "name": "phi3",
        "like": "microsoft/Phi-3.5-mini-instruct",
        "architecture": "Phi3ForCausalLM",
        "seed": 1008,
        "dim": 96, "n_layers": 2, "n_heads": 6, "n_kv_heads": 6, "head_dim": 16,
        "intermediate": 192,
        "rope_theta": 10000.0,
        "rope_scaling": {"rope_type": "longrope", "original_max_position_embeddings": 4096},
        "partial_rotary_factor": 1.0,
        "max_position_embeddings": 131072,
        "tied": False, "rms_norm_eps": 1e-5,
        "traits": ["no_gqa", "fused_qkv", "fused_gate_up", "longrope_short_factors",
                   "longrope_attention_factor", "untied_lm_head"],
    },
    {
        "name": "phi4_mini",
        "like": "microsoft/Phi-4-mini-instruct (original context shrunk to 32 so 40 tokens use the long factors)",
        "architecture": "Phi3ForCausalLM",
        "seed": 1009,
        "dim": 96, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "head_dim": 24,
        "intermediate": 192,
        "rope_theta": 10000.0,
        "rope_scaling": {"rope_type": "longrope", "original_max_position_embeddings": 32},
        "partial_rotary_factor": 0.75,
        "max_position_embeddings": 1024,
        "tied": True, "rms_norm_eps": 1e-5,
        "traits": ["gqa_2to1", "fused_qkv", "fused_gate_up", "partial_rotary_0.75",
                   "longrope_long_factors", "longrope_attention_factor", "tied_embeddings"],
    },
]


def rotary_dim(fx):
    return int(fx["head_dim"] * fx.get("partial_rotary_factor", 1.0))


def longrope_factors(fx):
    """Seeded per-frequency factors (short near 1, long larger), as Phi-3 configs list them."""
    rng = np.random.default_rng(fx["seed"] + 17)
    half = rotary_dim(fx) // 2
    short = np.round(1.0 + 0.5 * rng.random(half), 4)
    long = np.round(np.sort(1.0 + 8.0 * rng.random(half)), 4)
    return [float(v) for v in short], [float(v) for v in long]

# Init parameters shared by all fixtures.
LINEAR_GAIN = 1.0      # linear weights ~ N(0, gain / sqrt(fan_in))
NORM_NOISE = 0.2       # norm weights ~ 1 + N(0, noise)
BIAS_STD = 0.3         # biases ~ N(0, std)
UNTIED_EMBED_STD = 1.0 # input embedding std when the output head is separate


def log(*args):
    print(*args, flush=True)


def versions():
    import safetensors
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }


# ----------------------------------------------------------------------------------------------
# Configuration and model construction


def config_class_fields(cls):
    fields = getattr(cls, "__dataclass_fields__", None)
    if fields:
        return set(fields)
    return set(inspect.signature(cls.__init__).parameters)


def make_config(fx, n_layers=None):
    config_name = {"Gemma3ForCausalLM": "Gemma3TextConfig"}.get(
        fx["architecture"], fx["architecture"].replace("ForCausalLM", "Config"))
    cls = getattr(transformers, config_name)
    fields = config_class_fields(cls)
    kw = dict(
        vocab_size=VOCAB,
        hidden_size=fx["dim"],
        intermediate_size=fx["intermediate"],
        num_hidden_layers=n_layers or fx["n_layers"],
        num_attention_heads=fx["n_heads"],
        num_key_value_heads=fx["n_kv_heads"],
        hidden_act="silu",
        max_position_embeddings=fx["max_position_embeddings"],
        rms_norm_eps=fx["rms_norm_eps"],
        tie_word_embeddings=fx["tied"],
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        attention_dropout=0.0,
    )
    if "head_dim" in fields:
        kw["head_dim"] = fx["head_dim"]
    elif fx["dim"] != fx["n_heads"] * fx["head_dim"]:
        raise RuntimeError(f"{cls.__name__} has no head_dim field but the fixture needs one")
    arch = fx["architecture"]
    if arch == "LlamaForCausalLM":
        kw.update(attention_bias=False, mlp_bias=False)
    if arch == "Qwen3ForCausalLM":
        kw.update(attention_bias=False)
    if arch in ("Qwen2ForCausalLM", "Qwen3ForCausalLM"):
        kw.update(use_sliding_window=False, max_window_layers=kw["num_hidden_layers"])
    if arch == "MistralForCausalLM":
        kw.update(sliding_window=fx["sliding_window"])
    if arch == "Gemma3ForCausalLM":
        kw.update(hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=fx["query_pre_attn_scalar"],
                  sliding_window=fx["sliding_window"], layer_types=list(fx["layer_types"]),
                  final_logit_softcapping=None, attn_logit_softcapping=None, attention_bias=False)
        kw.pop("hidden_act")
        full = dict(fx["rope_scaling"], rope_theta=fx["rope_theta"])
        local = {"rope_type": "default", "rope_theta": fx["rope_local_theta"]}
        if "rope_parameters" in fields:
            kw["rope_parameters"] = {"full_attention": full, "sliding_attention": local}
        else:
            kw.update(rope_theta=fx["rope_theta"], rope_local_base_freq=fx["rope_local_theta"],
                      rope_scaling={"rope_type": fx["rope_scaling"]["rope_type"],
                                    "factor": fx["rope_scaling"]["factor"]})
        kw = {k: v for k, v in kw.items() if k in fields}
        config = cls(**kw)
        assert list(config.layer_types) == fx["layer_types"], config.layer_types
        return config
    if arch == "Phi3ForCausalLM":
        short, long = longrope_factors(fx)
        orig = fx["rope_scaling"]["original_max_position_embeddings"]
        kw.update(original_max_position_embeddings=orig, partial_rotary_factor=fx["partial_rotary_factor"],
                  pad_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0)
        rp = {"rope_type": "longrope", "short_factor": short, "long_factor": long}
        if "rope_parameters" in fields:
            kw["rope_parameters"] = dict(rp, rope_theta=fx["rope_theta"],
                                         original_max_position_embeddings=orig,
                                         partial_rotary_factor=fx["partial_rotary_factor"])
        else:
            kw.update(rope_theta=fx["rope_theta"], rope_scaling=dict(rp, type="longrope"))
        kw = {k: v for k, v in kw.items() if k in fields}
        config = cls(**kw)
        assert config.num_key_value_heads == fx["n_kv_heads"]
        return config
    if "rope_parameters" in fields:
        rp = {"rope_type": "default", "rope_theta": fx["rope_theta"]}
        if fx["rope_scaling"]:
            rp = dict(fx["rope_scaling"], rope_theta=fx["rope_theta"])
        kw["rope_parameters"] = rp
    else:
        kw["rope_theta"] = fx["rope_theta"]
        kw["rope_scaling"] = dict(fx["rope_scaling"]) if fx["rope_scaling"] else None
    if hasattr(cls, "__dataclass_fields__"):
        dropped = sorted(k for k in kw if k not in fields)
        if dropped:
            log(f"  {cls.__name__} has no fields {dropped}: left out")
        kw = {k: v for k, v in kw.items() if k in fields}
    config = cls(**kw)
    for attr, want in (("tie_word_embeddings", fx["tied"]), ("num_key_value_heads", fx["n_kv_heads"]),
                       ("num_attention_heads", fx["n_heads"]), ("hidden_size", fx["dim"]),
                       ("rms_norm_eps", fx["rms_norm_eps"])):
        assert getattr(config, attr) == want, (attr, getattr(config, attr), want)
    if arch == "MistralForCausalLM":
        assert config.sliding_window == fx["sliding_window"], config.sliding_window
    return config


def build_model(config):
    from transformers import AutoModelForCausalLM
    try:
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    except TypeError:
        config._attn_implementation = "eager"
        model = AutoModelForCausalLM.from_config(config)
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    model = model.float().eval()
    return model


def init_weights(model, fx, seed, lm_scale):
    """Seeded normal init; returns the std used for each kind of tensor."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    dim = fx["dim"]
    lm_std = lm_scale / math.sqrt(dim)
    embed_std = lm_std if fx["tied"] else UNTIED_EMBED_STD
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_((0.0 if fx.get("norm_centered") else 1.0) + NORM_NOISE * noise)
            elif name.endswith(".bias"):
                p.copy_(BIAS_STD * noise)
            elif name.endswith("embed_tokens.weight"):
                p.copy_(embed_std * noise)
            elif name.endswith("lm_head.weight"):
                p.copy_(lm_std * noise)
            elif p.dim() == 2:
                p.copy_(LINEAR_GAIN / math.sqrt(p.shape[1]) * noise)
            else:
                raise RuntimeError(f"no init rule for parameter {name} {tuple(p.shape)}")
    return {
        "seed": seed,
        "lm_scale": lm_scale,
        "lm_head_std": lm_std,
        "embed_std": embed_std,
        "linear_std": f"{LINEAR_GAIN} / sqrt(fan_in)",
        "norm_weight": f"1 + {NORM_NOISE} * N(0, 1)",
        "bias_std": BIAS_STD,
        "order": "model.named_parameters() order, one torch.Generator seeded with seed",
    }


def make_tokens(seed):
    gen = torch.Generator().manual_seed(seed + 7919)
    rest = torch.randint(3, VOCAB, (N_TOKENS - 1,), generator=gen)
    return [BOS_ID] + [int(t) for t in rest]


def forward_logits(model, tokens):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([tokens]), use_cache=False)
    return out.logits[0]


def logit_stats(logits):
    x = np.asarray(logits, dtype=np.float64)
    std = x.std(axis=1)
    z = x - x.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return {
        "logit_std_mean": float(std.mean()),
        "logit_std_min": float(std.min()),
        "max_prob_mean": float(p.max(axis=1).mean()),
        "max_prob_min": float(p.max(axis=1).min()),
        "logit_abs_max": float(np.abs(x).max()),
        "argmax_distinct": int(len(set(x.argmax(axis=1).tolist()))),
    }


# ----------------------------------------------------------------------------------------------
# Independent NumPy float64 forward pass, reading only the files written


def rope_params_from_config(cfg):
    """(theta, scaling dict or None) from either the new or the legacy config layout."""
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and "rope_theta" in rp:
        theta = float(rp["rope_theta"])
        scaling = None if rp.get("rope_type", "default") == "default" else rp
        return theta, scaling
    theta = float(cfg.get("rope_theta", 10000.0))
    scaling = cfg.get("rope_scaling")
    if scaling and scaling.get("rope_type", scaling.get("type")) == "default":
        scaling = None
    return theta, scaling


def np_inv_freq(theta, head_dim, scaling):
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    if scaling is None:
        return inv
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind != "llama3":
        raise RuntimeError(f"rope type {kind} not handled here")
    factor = float(scaling["factor"])
    low = float(scaling["low_freq_factor"])
    high = float(scaling["high_freq_factor"])
    old_ctx = float(scaling["original_max_position_embeddings"])
    wavelen = 2.0 * math.pi / inv
    out = np.empty_like(inv)
    for i, (f, w) in enumerate(zip(inv, wavelen)):
        if w < old_ctx / high:          # high frequency: kept
            out[i] = f
        elif w > old_ctx / low:         # low frequency: divided by factor
            out[i] = f / factor
        else:                           # in between: blend of the two
            s = (old_ctx / w - low) / (high - low)
            out[i] = (1.0 - s) * f / factor + s * f
    return out


def np_rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


def np_sliding_window(cfg):
    if cfg.get("model_type") == "mistral":
        return cfg.get("sliding_window")
    if cfg.get("use_sliding_window"):
        raise RuntimeError("per-layer sliding windows are not handled here")
    return None


def np_forward(folder):
    """Logits [T, vocab] in float64 from config.json, model.safetensors and tokens.json."""
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type") in ("gemma3_text", "gemma3"):
        return np_forward_gemma3(folder, cfg)
    if cfg.get("model_type") == "phi3":
        return np_forward_phi3(folder, cfg)
    with open(os.path.join(folder, "tokens.json")) as f:
        tokens = json.load(f)["tokens"]
    w = {k: v.astype(np.float64) for k, v in
         load_safetensors(os.path.join(folder, "model.safetensors")).items()}
    dim = cfg["hidden_size"]
    n_heads = cfg["num_attention_heads"]
    n_kv = cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or dim // n_heads
    eps = cfg["rms_norm_eps"]
    group = n_heads // n_kv
    theta, scaling = rope_params_from_config(cfg)
    inv = np_inv_freq(theta, head_dim, scaling)
    T = len(tokens)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]      # [T, head_dim/2]
    cos = np.cos(ang)[:, None, :]
    sin = np.sin(ang)[:, None, :]
    half = head_dim // 2

    def rope(t):  # t [T, heads, head_dim]; pairs (i, i + head_dim/2)
        a, b = t[..., :half], t[..., half:]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)

    window = np_sliding_window(cfg)
    i_idx = np.arange(T)[:, None]
    j_idx = np.arange(T)[None, :]
    allowed = j_idx <= i_idx
    if window is not None:
        allowed &= (i_idx - j_idx) < window

    def lin(x, prefix):
        y = x @ w[prefix + ".weight"].T
        if prefix + ".bias" in w:
            y = y + w[prefix + ".bias"]
        return y

    x = w["model.embed_tokens.weight"][tokens]                          # [T, dim]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        h = np_rms_norm(x, w[p + ".input_layernorm.weight"], eps)
        q = lin(h, p + ".self_attn.q_proj").reshape(T, n_heads, head_dim)
        k = lin(h, p + ".self_attn.k_proj").reshape(T, n_kv, head_dim)
        v = lin(h, p + ".self_attn.v_proj").reshape(T, n_kv, head_dim)
        if p + ".self_attn.q_norm.weight" in w:
            q = np_rms_norm(q, w[p + ".self_attn.q_norm.weight"], eps)
            k = np_rms_norm(k, w[p + ".self_attn.k_norm.weight"], eps)
        q, k = rope(q), rope(k)
        att = np.empty((T, n_heads, head_dim))
        for hd in range(n_heads):
            g = hd // group
            s = (q[:, hd, :] @ k[:, g, :].T) / math.sqrt(head_dim)       # [T, T]
            s = np.where(allowed, s, -np.inf)
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            att[:, hd, :] = s @ v[:, g, :]
        x = x + lin(att.reshape(T, n_heads * head_dim), p + ".self_attn.o_proj")
        h = np_rms_norm(x, w[p + ".post_attention_layernorm.weight"], eps)
        gate = lin(h, p + ".mlp.gate_proj")
        up = lin(h, p + ".mlp.up_proj")
        x = x + lin(gate / (1.0 + np.exp(-gate)) * up, p + ".mlp.down_proj")
    x = np_rms_norm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight")
    if head is None:
        if not cfg.get("tie_word_embeddings", False):
            raise RuntimeError("lm_head.weight missing but tie_word_embeddings is false")
        head = w["model.embed_tokens.weight"]
    return x @ head.T


def np_load(folder):
    with open(os.path.join(folder, "tokens.json")) as f:
        tokens = json.load(f)["tokens"]
    w = {k: v.astype(np.float64) for k, v in
         load_safetensors(os.path.join(folder, "model.safetensors")).items()}
    return tokens, w


def np_rope_tables(inv, T, attention_factor=1.0):
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    return (np.cos(ang) * attention_factor)[:, None, :], (np.sin(ang) * attention_factor)[:, None, :]


def np_rope_partial(t, cos, sin, rot):
    """rotate_half over the first `rot` dimensions of each head; the rest pass through."""
    half = rot // 2
    a, b, rest = t[..., :half], t[..., half:rot], t[..., rot:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin, rest], axis=-1)


def np_attention(q, k, v, allowed, scale):
    T, n_heads, head_dim = q.shape
    group = n_heads // k.shape[1]
    att = np.empty((T, n_heads, v.shape[2]))
    for hd in range(n_heads):
        g = hd // group
        s = (q[:, hd, :] @ k[:, g, :].T) * scale
        s = np.where(allowed, s, -np.inf)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        s /= s.sum(axis=1, keepdims=True)
        att[:, hd, :] = s @ v[:, g, :]
    return att.reshape(T, -1)


def np_gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def np_forward_gemma3(folder, cfg):
    tokens, w = np_load(folder)
    dim, n_heads, n_kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim, eps, T = cfg["head_dim"], cfg["rms_norm_eps"], len(tokens)
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and "full_attention" in rp:
        full, local = rp["full_attention"], rp["sliding_attention"]
    else:
        full = dict(cfg.get("rope_scaling") or {"rope_type": "default"}, rope_theta=cfg["rope_theta"])
        local = {"rope_type": "default", "rope_theta": cfg["rope_local_base_freq"]}
    tables = {}
    for kind, params in (("full_attention", full), ("sliding_attention", local)):
        inv = 1.0 / params["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
        if params.get("rope_type", "default") == "linear":
            inv = inv / float(params["factor"])
        elif params.get("rope_type", "default") != "default":
            raise RuntimeError(f"gemma3 rope type {params}")
        tables[kind] = np_rope_tables(inv, T)
    i_idx, j_idx = np.arange(T)[:, None], np.arange(T)[None, :]
    causal = j_idx <= i_idx
    window = cfg["sliding_window"]
    masks = {"full_attention": causal, "sliding_attention": causal & ((i_idx - j_idx) < window)}
    norm = lambda x, wt: np_rms_norm(x, 1.0 + wt, eps)
    scale = float(cfg["query_pre_attn_scalar"]) ** -0.5
    x = w["model.embed_tokens.weight"][tokens] * math.sqrt(dim)
    for layer, kind in enumerate(cfg["layer_types"]):
        p = f"model.layers.{layer}"
        h = norm(x, w[p + ".input_layernorm.weight"])
        q = (h @ w[p + ".self_attn.q_proj.weight"].T).reshape(T, n_heads, head_dim)
        k = (h @ w[p + ".self_attn.k_proj.weight"].T).reshape(T, n_kv, head_dim)
        v = (h @ w[p + ".self_attn.v_proj.weight"].T).reshape(T, n_kv, head_dim)
        q = norm(q, w[p + ".self_attn.q_norm.weight"])
        k = norm(k, w[p + ".self_attn.k_norm.weight"])
        cos, sin = tables[kind]
        q, k = np_rope_partial(q, cos, sin, head_dim), np_rope_partial(k, cos, sin, head_dim)
        a = np_attention(q, k, v, masks[kind], scale) @ w[p + ".self_attn.o_proj.weight"].T
        x = x + norm(a, w[p + ".post_attention_layernorm.weight"])
        h = norm(x, w[p + ".pre_feedforward_layernorm.weight"])
        m = np_gelu_tanh(h @ w[p + ".mlp.gate_proj.weight"].T) * (h @ w[p + ".mlp.up_proj.weight"].T)
        m = m @ w[p + ".mlp.down_proj.weight"].T
        x = x + norm(m, w[p + ".post_feedforward_layernorm.weight"])
    x = norm(x, w["model.norm.weight"])
    logits = x @ w["model.embed_tokens.weight"].T
    cap = cfg.get("final_logit_softcapping")
    if cap:
        logits = np.tanh(logits / cap) * cap
    return logits


def longrope_from_config(cfg):
    """(theta, short, long, original context, partial rotary factor, attention factor)."""
    rp = cfg.get("rope_parameters") or {}
    legacy = cfg.get("rope_scaling") or {}
    theta = float(rp.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    short = rp.get("short_factor", legacy.get("short_factor"))
    long = rp.get("long_factor", legacy.get("long_factor"))
    orig = rp.get("original_max_position_embeddings", cfg.get("original_max_position_embeddings"))
    partial = float(rp.get("partial_rotary_factor", cfg.get("partial_rotary_factor", 1.0)))
    factor = cfg["max_position_embeddings"] / orig
    att = rp.get("attention_factor", legacy.get("attention_factor"))
    if att is None:
        att = 1.0 if factor <= 1.0 else math.sqrt(1.0 + math.log(factor) / math.log(orig))
    return theta, short, long, orig, partial, float(att)


def np_forward_phi3(folder, cfg):
    tokens, w = np_load(folder)
    dim, n_heads, n_kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or dim // n_heads
    eps, T, ffn = cfg["rms_norm_eps"], len(tokens), cfg["intermediate_size"]
    theta, short, long, orig, partial, att_factor = longrope_from_config(cfg)
    rot = int(head_dim * partial)
    ext = np.asarray(long if T > orig else short, dtype=np.float64)
    inv = 1.0 / (ext * theta ** (np.arange(0, rot, 2, dtype=np.float64) / rot))
    cos, sin = np_rope_tables(inv, T, att_factor)
    i_idx, j_idx = np.arange(T)[:, None], np.arange(T)[None, :]
    causal = j_idx <= i_idx
    q_dim, kv_dim = n_heads * head_dim, n_kv * head_dim
    x = w["model.embed_tokens.weight"][tokens]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        h = np_rms_norm(x, w[p + ".input_layernorm.weight"], eps)
        qkv = h @ w[p + ".self_attn.qkv_proj.weight"].T
        q = qkv[:, :q_dim].reshape(T, n_heads, head_dim)
        k = qkv[:, q_dim:q_dim + kv_dim].reshape(T, n_kv, head_dim)
        v = qkv[:, q_dim + kv_dim:].reshape(T, n_kv, head_dim)
        q, k = np_rope_partial(q, cos, sin, rot), np_rope_partial(k, cos, sin, rot)
        x = x + np_attention(q, k, v, causal, 1.0 / math.sqrt(head_dim)) @ w[p + ".self_attn.o_proj.weight"].T
        h = np_rms_norm(x, w[p + ".post_attention_layernorm.weight"], eps)
        gu = h @ w[p + ".mlp.gate_up_proj.weight"].T
        gate, up = gu[:, :ffn], gu[:, ffn:]
        x = x + (gate / (1.0 + np.exp(-gate)) * up) @ w[p + ".mlp.down_proj.weight"].T
    x = np_rms_norm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight")
    if head is None:
        head = w["model.embed_tokens.weight"]
    return x @ head.T


def print_arch_sources():
    """The transformers code the gemma3 and phi3 fixtures depend on, for the log."""
    import transformers.modeling_rope_utils as ru
    for name in ("_compute_longrope_parameters", "_compute_linear_scaling_rope_parameters"):
        fn = getattr(ru, name, None)
        if fn is not None:
            log(f"# transformers.modeling_rope_utils.{name}")
            log(inspect.getsource(fn))
    try:
        from transformers.models.phi3 import modeling_phi3 as mp
        for i, line in enumerate(inspect.getsource(mp).splitlines()):
            if "rotary" in line or "long" in line or "chunk" in line or "partial" in line:
                log(f"  phi3 {i + 1}: {line}")
    except ImportError as e:
        log(f"no phi3: {e}")


# ----------------------------------------------------------------------------------------------
# Checks specific to one fixture


def check_llama3_rope(fx, model):
    """The llama3 scaling must change some frequencies at this head_dim and keep others."""
    scaled = model.model.rotary_emb.inv_freq.detach().double().numpy()
    plain_fx = dict(fx, rope_scaling=None)
    plain = build_model(make_config(plain_fx)).model.rotary_emb.inv_freq.detach().double().numpy()
    changed = [i for i in range(len(scaled)) if scaled[i] != plain[i]]
    kept = [i for i in range(len(scaled)) if scaled[i] == plain[i]]
    log(f"  llama3 rope: inv_freq unscaled {plain.tolist()}")
    log(f"  llama3 rope: inv_freq scaled   {scaled.tolist()}")
    log(f"  llama3 rope: changed indices {changed}, kept indices {kept}")
    assert changed and kept, "llama3 scaling must change some frequencies and keep others"
    mine = np_inv_freq(fx["rope_theta"], fx["head_dim"], fx["rope_scaling"])
    assert np.allclose(mine, scaled, rtol=1e-6, atol=0), (mine, scaled)
    blended = [i for i in changed
               if not np.isclose(scaled[i], plain[i] / fx["rope_scaling"]["factor"], rtol=1e-6)]
    return {"inv_freq_unscaled": plain.tolist(), "changed_indices": changed,
            "kept_indices": kept, "blended_indices": blended}


def print_sliding_window_source():
    try:
        import transformers.masking_utils as mu
    except ImportError as e:
        log(f"no transformers.masking_utils: {e}")
        return
    from transformers.models.mistral import modeling_mistral as mm
    log("---- transformers sliding-window masking source ----")
    for name in ("causal_mask_function", "sliding_window_overlay",
                 "sliding_window_causal_mask_function"):
        fn = getattr(mu, name, None)
        if fn is not None:
            log(f"# transformers.masking_utils.{name}")
            log(inspect.getsource(fn))
    log("# lines of modeling_mistral that mention the sliding window or the mask builder")
    for i, line in enumerate(inspect.getsource(mm).splitlines()):
        if "sliding" in line or "create_causal_mask" in line:
            log(f"  {i + 1}: {line}")
    log("---- end of source ----")


def probe_sliding_window(fx):
    """Which key positions a query sees, measured on a one-layer model by perturbing one token."""
    cfg = make_config(fx, n_layers=1)
    model = build_model(cfg)
    init_weights(model, fx, fx["seed"] + 1, 4.0)
    model = model.double()
    tokens = make_tokens(fx["seed"])
    base = forward_logits(model, tokens).numpy()
    seen = {}
    for p in (0, 5, 20, N_TOKENS - 9):
        t2 = list(tokens)
        t2[p] = 3 + (t2[p] - 3 + 100) % (VOCAB - 3)
        diff = np.abs(forward_logits(model, t2).numpy() - base).max(axis=1)
        seen[p] = [i for i in range(N_TOKENS) if diff[i] > 1e-12]
    W = fx["sliding_window"]
    for p, queries in seen.items():
        expected = [i for i in range(N_TOKENS) if 0 <= i - p <= W - 1]
        log(f"  key position {p} influences query positions {queries}")
        assert queries == expected, (p, queries, expected)
    return {
        "sliding_window": W,
        "rule": f"query at position i attends to key positions j with i - {W} < j <= i, "
                f"that is max(0, i - {W - 1}) <= j <= i: {W} keys including itself",
        "transformers_rule": "causal (kv_idx <= q_idx) and sliding_window_overlay "
                             "(kv_idx > q_idx - sliding_window)",
        "probe": {str(p): q for p, q in seen.items()},
        "applies_to": "every layer",
    }


# ----------------------------------------------------------------------------------------------


def folder_size(folder):
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


def make_fixture(fx, out_root, vers):
    name = fx["name"]
    log(f"==== {name} (like {fx['like']}) ====")
    folder = os.path.join(out_root, name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    tokens = make_tokens(fx["seed"])

    cfg = make_config(fx)
    chosen = None
    for scale in LM_SCALES:
        model = build_model(cfg)
        init = init_weights(model, fx, fx["seed"], scale)
        st = logit_stats(forward_logits(model, tokens).numpy())
        log(f"  lm_scale {scale}: logit std {st['logit_std_mean']:.3f}, "
            f"max prob {st['max_prob_mean']:.3f}")
        chosen = (model, init)
        if st["logit_std_mean"] >= AIM_LOGIT_STD and st["max_prob_mean"] >= AIM_MAX_PROB:
            break
    model, init = chosen
    logits32_mem = forward_logits(model, tokens).numpy()

    model.save_pretrained(folder)
    for extra in os.listdir(folder):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(folder, extra))
    with open(os.path.join(folder, "tokens.json"), "w") as f:
        json.dump({"tokens": tokens}, f)

    from transformers import AutoModelForCausalLM
    loaded = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    loaded = loaded.float().eval()
    assert loaded.config._attn_implementation == "eager"
    if fx["tied"]:
        assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr() or \
            torch.equal(loaded.lm_head.weight, loaded.model.embed_tokens.weight)
    logits32 = forward_logits(loaded, tokens).numpy()
    assert np.array_equal(logits32, logits32_mem), "saved model differs from the one in memory"
    ref = forward_logits(loaded.double(), tokens).numpy()                 # float64
    assert ref.dtype == np.float64 and ref.shape == (N_TOKENS, VOCAB)
    np.save(os.path.join(folder, "logits.npy"), ref.astype(np.float32))

    mine = np_forward(folder)
    diff_np = float(np.abs(mine - ref).max())
    diff_32 = float(np.abs(logits32.astype(np.float64) - ref).max())
    rel_l2_np = float(np.linalg.norm(mine - ref) / np.linalg.norm(ref))
    rel_l2_32 = float(np.linalg.norm(logits32 - ref) / np.linalg.norm(ref))
    log(f"  numpy f64 vs transformers f64: max abs {diff_np:.3e}, rel L2 {rel_l2_np:.3e}")
    log(f"  transformers f32 vs f64:        max abs {diff_32:.3e}, rel L2 {rel_l2_32:.3e}")
    assert rel_l2_np < 1e-5, "independent NumPy forward disagrees with transformers"

    st = logit_stats(ref)
    log(f"  stats: {json.dumps(st)}")
    assert st["logit_std_mean"] >= MIN_LOGIT_STD, st
    assert st["max_prob_mean"] >= MIN_MAX_PROB, st

    tensors = {k: list(v.shape) for k, v in
               sorted(load_safetensors(os.path.join(folder, "model.safetensors")).items())}
    rope = {
        "theta": fx["rope_theta"],
        "scaling": fx["rope_scaling"],
        "layout": "rotate_half: element i pairs with i + rotary_dim/2",
    }
    if fx["architecture"] in ("Gemma3ForCausalLM", "Phi3ForCausalLM"):
        rope["buffers"] = {name: b.detach().double().numpy().tolist()
                           for name, b in loaded.model.named_buffers() if "inv_freq" in name}
        rope["attention_scaling"] = {name: float(getattr(m, "attention_scaling", 1.0))
                                     for name, m in loaded.model.named_modules() if "rotary" in name}
        if fx["architecture"] == "Phi3ForCausalLM":
            rope["short_factor"], rope["long_factor"] = longrope_factors(fx)
            rope["rotary_dim"] = rotary_dim(fx)
    else:
        rope["inv_freq"] = loaded.model.rotary_emb.inv_freq.detach().double().numpy().tolist()
        rope["attention_scaling"] = float(getattr(loaded.model.rotary_emb, "attention_scaling", 1.0))
        mine_inv = np_inv_freq(fx["rope_theta"], fx["head_dim"], fx["rope_scaling"])
        assert np.allclose(mine_inv, rope["inv_freq"], rtol=1e-6, atol=0), (mine_inv, rope["inv_freq"])
        if fx["rope_scaling"]:
            rope.update(check_llama3_rope(fx, loaded))
    meta = {
        "name": name,
        "like": fx["like"],
        "architecture": fx["architecture"],
        "traits": fx["traits"],
        "dims": {
            "vocab_size": VOCAB, "dim": fx["dim"], "n_layers": fx["n_layers"],
            "n_heads": fx["n_heads"], "n_kv_heads": fx["n_kv_heads"],
            "head_dim": fx["head_dim"], "intermediate": fx["intermediate"],
            "rms_norm_eps": fx["rms_norm_eps"], "tied_embeddings": fx["tied"],
        },
        "rope": rope,
        "attention": {"sliding_window": None,
                      "rule": "causal: query at position i attends to key positions j <= i",
                      "scale": "1 / sqrt(head_dim)"},
        "tokens": {"count": N_TOKENS, "bos_token_id": BOS_ID,
                   "seed": fx["seed"] + 7919, "range": [3, VOCAB - 1]},
        "init": init,
        "tensors": tensors,
        "stats": st,
        "reference": {
            "logits": "transformers, CPU, model.double(), attn_implementation=eager, "
                      "all positions, no KV cache; saved as float32",
            "transformers_f32_max_abs_diff": diff_32,
            "transformers_f32_rel_l2": rel_l2_32,
            "numpy_f64_max_abs_diff": diff_np,
            "numpy_f64_rel_l2": rel_l2_np,
            "numpy_f64_note": "an independent float64 forward over config.json, "
                              "model.safetensors and tokens.json (tools/ref/make_fixtures.py)",
        },
        "versions": vers,
    }
    if fx["architecture"] == "MistralForCausalLM":
        meta["attention"] = dict(probe_sliding_window(fx), scale="1 / sqrt(head_dim)")
    if fx["architecture"] == "Gemma3ForCausalLM":
        meta["attention"] = {"layer_types": fx["layer_types"], "sliding_window": fx["sliding_window"],
                             "rule": "sliding layers: i - W < j <= i; full layers: j <= i",
                             "scale": "query_pre_attn_scalar ** -0.5"}
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    size = folder_size(folder)
    log(f"  folder {folder}: {size} bytes")
    assert size < 1_600_000, f"{name} is {size} bytes"
    return {"name": name, "bytes": size, **st, "lm_scale": init["lm_scale"],
            "f32_rel_l2": rel_l2_32, "numpy_rel_l2": rel_l2_np}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder that receives one folder per fixture")
    ap.add_argument("--only", nargs="*", help="fixture names to make (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    vers = versions()
    log("versions:", json.dumps(vers))
    print_sliding_window_source()
    print_arch_sources()
    os.makedirs(args.out, exist_ok=True)
    summary = []
    for fx in FIXTURES:
        if args.only and fx["name"] not in args.only:
            continue
        summary.append(make_fixture(fx, args.out, vers))
    log("==== summary ====")
    for s in summary:
        log(f"  {s['name']:18s} {s['bytes']:8d} B  lm_scale {s['lm_scale']:4.1f}  "
            f"logit std {s['logit_std_mean']:.2f}  max prob {s['max_prob_mean']:.3f}  "
            f"argmax distinct {s['argmax_distinct']:2d}  f32 rel L2 {s['f32_rel_l2']:.1e}  "
            f"numpy rel L2 {s['numpy_rel_l2']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
