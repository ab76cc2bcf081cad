#!/usr/bin/env python3
"""Trains the demo model: a small Llama-architecture language model on the corpus that
prepare_corpus.sh builds, with the tokenizer that train_tokenizer.py builds.

  python3 tools/train/train.py --corpus .cache/corpus --tokenizer TOK_DIR --out OUT_DIR

Training samples: the tokenized documents are joined into one stream, each document preceded by
<|endoftext|> (id 0). A sample is 256 consecutive stream tokens t[0..255] at a random offset; the
model reads [BOS, t0, ..., t254] and is trained to predict t0..t255 (cross-entropy, mean over all
256 positions). AdamW, linear warm-up then cosine decay, bf16 autocast, float32 master weights.

Held-out perplexity (the number reported, and what `slm score` reproduces): heldout.txt is read as
UTF-8 and encoded whole, without special tokens. Its ids are cut into consecutive non-overlapping
chunks of 256 (the last one shorter). For each chunk c the model reads [BOS, c0, ..., c(n-2)] and
predicts c0..c(n-1): every held-out token is predicted exactly once, with only BOS and the earlier
tokens of its own chunk as context. perplexity = exp(sum of -ln p(token) / number of tokens),
natural log. The final figure is computed after saving, on the saved (float16) weights, in float32
arithmetic without TF32.

Writes to OUT_DIR: config.json, generation_config.json, model.safetensors (float16 by default),
tokenizer.json, tokenizer_config.json, samples.txt (greedy continuations), heldout_ppl.json.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import shutil
import tempfile
import time

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

DOC_SEPARATOR = "<|endoftext|>"
BOS_ID = 0
IM_END_ID = 2
PROMPTS = ["It is a truth universally acknowledged", "Call me Ishmael", "In the beginning"]
MAX_FILE_BYTES = 16 * 1024 * 1024


def log(msg: str) -> None:
    print(msg, flush=True)


def load_stream(corpus_dir: str, tok: Tokenizer) -> torch.Tensor:
    with open(os.path.join(corpus_dir, "train.txt"), encoding="utf-8") as f:
        docs = [d for d in f.read().split("\n" + DOC_SEPARATOR + "\n") if d.strip()]
    ids: list[int] = []
    for enc in tok.encode_batch(docs, add_special_tokens=False):
        ids.append(BOS_ID)
        ids.extend(enc.ids)
    log(f"train stream: {len(docs)} documents, {len(ids)} tokens")
    return torch.tensor(ids, dtype=torch.long)


def heldout_ids(path: str, tok: Tokenizer) -> list[int]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return tok.encode(text, add_special_tokens=False).ids


@torch.no_grad()
def heldout_nll(model, ids: list[int], device, chunk: int = 256, batch: int = 64,
                autocast: bool = False) -> tuple[float, int]:
    """Sum of -ln p over all held-out tokens and their count (method in the module docstring)."""
    was_training = model.training
    model.eval()
    chunks = [ids[i:i + chunk] for i in range(0, len(ids), chunk)]
    total, count = 0.0, 0
    for b in range(0, len(chunks), batch):
        group = chunks[b:b + batch]
        n = max(len(c) for c in group)
        x = torch.full((len(group), n), BOS_ID, dtype=torch.long)
        y = torch.full((len(group), n), -100, dtype=torch.long)
        for j, c in enumerate(group):
            x[j, 1:len(c)] = torch.tensor(c[:-1], dtype=torch.long)
            y[j, :len(c)] = torch.tensor(c, dtype=torch.long)
        x, y = x.to(device), y.to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=x).logits
        nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                              ignore_index=-100, reduction="sum")
        total += float(nll.double())
        count += int((y != -100).sum())
    model.train(was_training)
    return total, count


@torch.no_grad()
def greedy(model, prompt_ids: list[int], device, max_new: int) -> list[int]:
    """Greedy decoding without a cache: argmax of the last position, until EOS or max_new."""
    ids = list(prompt_ids)
    out = []
    for _ in range(max_new):
        logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, -1].float()
        nxt = int(torch.argmax(logits))
        if nxt in (BOS_ID, IM_END_ID):
            break
        ids.append(nxt)
        out.append(nxt)
    return out


def lr_at(step: int, total: int, warmup: int, peak: float, floor: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * min(1.0, t)))


def make_config(args, vocab: int) -> LlamaConfig:
    kw = dict(
        vocab_size=vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads, hidden_act="silu",
        max_position_embeddings=args.max_positions, rms_norm_eps=1e-5, initializer_range=0.02,
        tie_word_embeddings=True, attention_bias=False, mlp_bias=False,
        bos_token_id=BOS_ID, eos_token_id=BOS_ID, pad_token_id=BOS_ID,
    )
    try:
        cfg = LlamaConfig(rope_theta=args.rope_theta, **kw)
    except TypeError:
        cfg = LlamaConfig(rope_parameters={"rope_type": "default", "rope_theta": args.rope_theta}, **kw)
    return cfg


def finalize(model, args, tok: Tokenizer, held: list[int], held_path: str, device, out_dir: str,
             sample_tokens: int, info: dict) -> dict:
    """Saves the Hugging Face folder to out_dir, reloads it, measures held-out perplexity on the
    saved weights, writes greedy samples and heldout_ppl.json. Returns the report."""
    seq = args.seq_len
    # Save the Hugging Face folder (weights in the requested dtype; the output head is tied).
    save_dtype = getattr(torch, args.save_dtype)
    tmp = tempfile.mkdtemp(prefix="demo-model-")
    to_save = copy.deepcopy(model).to(save_dtype)
    try:
        gc = to_save.generation_config
        gc.bos_token_id, gc.eos_token_id, gc.pad_token_id = BOS_ID, [BOS_ID, IM_END_ID], BOS_ID
    except AttributeError:
        pass
    to_save.save_pretrained(tmp)
    del to_save
    cfg_path = os.path.join(tmp, "config.json")
    with open(cfg_path, encoding="utf-8") as f:
        saved_cfg = json.load(f)
    # Older readers look for rope_theta at the top level; newer transformers nests it.
    if "rope_theta" not in saved_cfg:
        saved_cfg["rope_theta"] = args.rope_theta
    saved_cfg["tie_word_embeddings"] = True
    with open(cfg_path, "w", encoding="utf-8") as f:
        json.dump(saved_cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    log(f"saved files: {sorted(os.listdir(tmp))}")
    os.makedirs(out_dir, exist_ok=True)
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        src = os.path.join(tmp, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(out_dir, name))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.tokenizer, name), os.path.join(out_dir, name))
    st_path = os.path.join(out_dir, "model.safetensors")
    st_size = os.path.getsize(st_path)
    try:
        from safetensors import safe_open
        with safe_open(st_path, framework="pt") as f:
            keys = sorted(f.keys())
            dtypes = sorted({str(f.get_tensor(k).dtype) for k in keys})
        log(f"model.safetensors: {st_size} bytes, {len(keys)} tensors, dtypes {dtypes}, "
            f"lm_head stored: {'lm_head.weight' in keys}")
    except Exception as e:  # noqa: BLE001 - informational only
        log(f"model.safetensors: {st_size} bytes (listing failed: {e})")
    if st_size >= MAX_FILE_BYTES:
        raise SystemExit(f"train: expected model.safetensors under 16 MiB, found {st_size} bytes")

    # Reload what was saved and measure it exactly: float32 arithmetic, no TF32.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    saved = LlamaForCausalLM.from_pretrained(out_dir).to(device=device, dtype=torch.float32)
    saved.eval()
    nll, cnt = heldout_nll(saved, held, device, chunk=seq, autocast=False)
    ppl = math.exp(nll / cnt)
    log(f"heldout (saved {args.save_dtype} weights, float32 compute): {cnt} tokens, "
        f"mean NLL {nll / cnt:.5f} nats, perplexity {ppl:.3f}")

    # Greedy samples and reference logits for end-to-end checks.
    samples, refs = [], []
    for prompt in PROMPTS:
        pids = [BOS_ID] + tok.encode(prompt, add_special_tokens=False).ids
        gen = greedy(saved, pids, device, sample_tokens)
        with torch.no_grad():
            last = saved(input_ids=torch.tensor([pids], device=device)).logits[0, -1].float().cpu()
        top = torch.topk(last, 10)
        refs.append({"prompt": prompt, "input_ids": pids,
                     "top10_ids": top.indices.tolist(),
                     "top10_logits": [round(v, 5) for v in top.values.tolist()],
                     "greedy_ids": gen[:32]})
        text = tok.decode(gen, skip_special_tokens=False)
        samples.append(f"### {prompt}\n{prompt}{text}\n")
        log(f"--- greedy: {prompt!r}\n{prompt}{text}\n")
    with open(os.path.join(out_dir, "samples.txt"), "w", encoding="utf-8") as f:
        f.write(f"Greedy decoding, [BOS] + prompt, up to {sample_tokens} new tokens, "
                f"stopping at <|endoftext|> or <|im_end|>; saved {args.save_dtype} weights, float32 compute.\n\n")
        f.write("\n".join(samples))

    with open(held_path, "rb") as f:
        held_bytes = f.read()
    report = {
        "heldout_file": "heldout.txt",
        "heldout_bytes": len(held_bytes),
        "heldout_sha256": hashlib.sha256(held_bytes).hexdigest(),
        "tokens": cnt,
        "chunk_tokens": seq,
        "chunks": math.ceil(cnt / seq),
        "nll_sum_nats": nll,
        "mean_nll_nats": nll / cnt,
        "perplexity": ppl,
        "method": ("heldout.txt encoded whole (UTF-8, no special tokens); ids cut into consecutive "
                   "non-overlapping chunks of 256 (last one shorter); each chunk c scored as "
                   "[BOS]+c: the model reads [BOS, c0..c(n-2)] and predicts c0..c(n-1); "
                   "perplexity = exp(sum(-ln p) / number of held-out tokens)"),
        "weights": f"saved {args.save_dtype}, computed in float32 without TF32",
        **info,
        "reference": refs,
        "model_safetensors_bytes": st_size,
    }
    with open(os.path.join(out_dir, "heldout_ppl.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")

    del saved
    torch.cuda.empty_cache()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    shutil.rmtree(tmp, ignore_errors=True)
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="folder with train.txt and heldout.txt")
    ap.add_argument("--tokenizer", required=True, help="folder with tokenizer.json and tokenizer_config.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=768)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--max-positions", type=int, default=512)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=float, default=16e6,
                    help="training tokens (targets); past ~16M (6-7 passes) held-out loss rises")
    ap.add_argument("--max-seconds", type=float, default=300.0, help="stop training after this long")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--save-dtype", choices=["float32", "float16", "bfloat16"], default="float16")
    ap.add_argument("--sample-tokens", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    if not torch.cuda.is_available():
        raise SystemExit("train: expected a CUDA device, found none")
    device = torch.device("cuda")
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    log(f"torch {torch.__version__}, device {torch.cuda.get_device_name(0)}")

    tok = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    vocab = tok.get_vocab_size()
    if tok.token_to_id(DOC_SEPARATOR) != BOS_ID:
        raise SystemExit(f"train: expected {DOC_SEPARATOR} at id {BOS_ID}")
    stream = load_stream(args.corpus, tok).to(device)
    held_path = os.path.join(args.corpus, "heldout.txt")
    held = heldout_ids(held_path, tok)
    log(f"heldout: {len(held)} tokens")

    cfg = make_config(args, vocab)
    model = LlamaForCausalLM(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    n_embed = model.get_input_embeddings().weight.numel()
    log(f"model: {n_params} parameters ({n_params - n_embed} without the tied embedding), "
        f"tied output: {model.get_output_embeddings().weight is model.get_input_embeddings().weight}")

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)

    # Dry run of everything that follows training, on the untrained model, so that a problem there
    # shows up before the training time is spent.
    dry = tempfile.mkdtemp(prefix="demo-dry-")
    finalize(model, args, tok, held[:600], held_path, device, dry, 4, {"dry_run": True})
    shutil.rmtree(dry, ignore_errors=True)
    log("dry run of save / reload / score / sample: ok")

    seq, bsz = args.seq_len, args.batch
    total_steps = int(args.tokens // (seq * bsz))
    log(f"training: {total_steps} steps of {bsz} x {seq} tokens = {total_steps * bsz * seq} tokens "
        f"({total_steps * bsz * seq / len(stream):.1f} passes over the stream), time cap {args.max_seconds:.0f} s")
    arange = torch.arange(seq, device=device)
    bos_col = torch.full((bsz, 1), BOS_ID, dtype=torch.long, device=device)

    curve = []
    model.train()
    t0 = time.time()
    running, running_n = 0.0, 0
    step = 0
    for step in range(total_steps):
        lr = lr_at(step, total_steps, args.warmup, args.lr, args.min_lr)
        for g in opt.param_groups:
            g["lr"] = lr
        offs = torch.randint(0, len(stream) - seq, (bsz, 1), device=device)
        y = stream[offs + arange]
        x = torch.cat([bos_col, y[:, :-1]], dim=1)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.float().reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running += float(loss.detach())
        running_n += 1
        last = step + 1 == total_steps
        timeout = time.time() - t0 > args.max_seconds
        if (step + 1) % args.eval_every == 0 or last or timeout or step == 0:
            nll, cnt = heldout_nll(model, held, device, chunk=seq, autocast=True)
            elapsed = time.time() - t0
            entry = {"step": step + 1, "tokens": (step + 1) * bsz * seq, "train_loss": running / running_n,
                     "heldout_loss": nll / cnt, "heldout_ppl": math.exp(nll / cnt), "lr": lr,
                     "seconds": round(elapsed, 1)}
            curve.append(entry)
            log(f"step {step + 1:5d}/{total_steps}  tokens {entry['tokens'] / 1e6:6.2f}M  "
                f"train loss {entry['train_loss']:.4f}  heldout loss {entry['heldout_loss']:.4f} "
                f"(ppl {entry['heldout_ppl']:.2f}, bf16)  lr {lr:.2e}  {elapsed:6.1f} s  "
                f"{entry['tokens'] / elapsed / 1e3:.0f}k tok/s")
            running, running_n = 0.0, 0
        if timeout:
            log(f"time cap reached after {step + 1} steps")
            break
    train_seconds = time.time() - t0
    steps_done = step + 1
    tokens_done = steps_done * bsz * seq

    report = finalize(model, args, tok, held, held_path, device, args.out, args.sample_tokens, {
        "parameters": n_params,
        "train_tokens": tokens_done,
        "train_steps": steps_done,
        "train_seconds": round(train_seconds, 1),
        "final_train_loss": curve[-1]["train_loss"] if curve else None,
        "curve": curve,
    })
    ppl = report["perplexity"]

    # How transformers' own tokenizer class reads the folder (informational).
    try:
        from transformers import AutoTokenizer
        hf_tok = AutoTokenizer.from_pretrained(args.out)
        enc = hf_tok("Call me Ishmael")["input_ids"]
        ref = [BOS_ID] + tok.encode("Call me Ishmael", add_special_tokens=False).ids
        log(f"AutoTokenizer: {type(hf_tok).__name__}, ids {enc}, matches [BOS]+encode: {enc == ref}")
        chat = hf_tok.apply_chat_template([{"role": "user", "content": "Hello"}], tokenize=False,
                                          add_generation_prompt=True)
        log(f"chat template renders: {chat!r}")
    except Exception as e:  # noqa: BLE001 - informational only
        log(f"AutoTokenizer check failed: {type(e).__name__}: {e}")

    log(f"done: {n_params} parameters, {tokens_done} tokens in {train_seconds:.1f} s, "
        f"final train loss {report['final_train_loss']:.4f}, heldout perplexity {ppl:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
