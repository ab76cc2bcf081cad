#!/usr/bin/env python3
"""The peer of `slm bench --device cuda`: PyTorch/transformers on the same GPU and weights.

usage: cuda_peer_transformers.py HF_FOLDER [-p 512] [-n 128] [-r 3] [--dtype bf16]

pp: one forward of p random tokens (no cache); tg: generate() of n new tokens, greedy, after a
one-token prompt (every token is generated, end-of-sequence ignored). One warm-up of each, then the
median of r runs. Prints one JSON object.
"""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-r", "--repetitions", type=int, default=3)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "f32"])
    args = ap.parse_args()
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[args.dtype]
    model = AutoModelForCausalLM.from_pretrained(args.folder, dtype=dtype).cuda().eval()
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(1234)

    def pp():
        ids = torch.randint(0, vocab, (1, args.n_prompt), generator=gen).cuda()
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            model(ids, use_cache=False)
        torch.cuda.synchronize()
        return args.n_prompt / (time.perf_counter() - start)

    def tg():
        ids = torch.randint(0, vocab, (1, 1), generator=gen).cuda()
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.n_gen,
                                 min_new_tokens=args.n_gen, do_sample=False, pad_token_id=0)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        if out.shape[1] != 1 + args.n_gen:
            raise RuntimeError(f"expected {args.n_gen} new tokens, found {out.shape[1] - 1}")
        return args.n_gen / seconds

    pp_runs, tg_runs = [], []
    for r in range(-1, args.repetitions):
        a, b = pp(), tg()
        if r >= 0:
            pp_runs.append(a)
            tg_runs.append(b)
    print(json.dumps({
        "peer": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}",
        "dtype": args.dtype, "gpu": torch.cuda.get_device_name(0),
        "pp": {"n": args.n_prompt, "tokens_per_s": statistics.median(pp_runs), "runs": pp_runs},
        "tg": {"n": args.n_gen, "tokens_per_s": statistics.median(tg_runs), "runs": tg_runs},
    }))


if __name__ == "__main__":
    main()
