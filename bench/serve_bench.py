#!/usr/bin/env python3
"""Load test for OpenAI-compatible servers: S concurrent streamed /v1/completions requests, each
generating exactly T tokens (ignore_eos), against one or more servers in the same run.

    python3 bench/serve_bench.py NAME=URL [NAME=URL ...] [--streams 1,8,32] [--tokens 32]
                                 [--rounds 3] [--prompt-words 24] [--model NAME] [--json OUT]

For each round, each concurrency and each server in turn (the servers' order alternates between
rounds, so that a change in the machine's load falls on both), the S requests start together;
measured per run:
  - aggregate tokens/s: S * T / (wall time from the first request sent to the last stream ended);
  - time to first token: from a request sent to its first chunk with text (median over the S).
Reports the median over the rounds of each figure and, with two servers, the ratio first/second.
Prompts are distinct per stream and per run, from their first token (so that no prefix cache
serves them from an earlier run), and the same for every server. A URL ending in "#native" is sent llama.cpp's own POST /completion (n_predict, "content"
chunks) instead: llama-server runs even /v1/completions output through its chat-format parser,
which fails on the arbitrary text of random-weight models (even on /completion). A stream that
ends with an error event after it started counts the chunks it delivered (a lower bound of its
tokens) and is reported as failed; a request refused with an HTTP error stops the run. Standard library only.
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

WORDS = ("the sea was calm and the ship moved slowly toward the harbour while the crew "
         "watched the gulls circle over the grey water of the bay in the early light").split()


def prompt_for(i, n_words, tag):
    # Distinct from the first token on, per stream and per run (tag): no server may reuse the KV of
    # an earlier run's prompt, so time to first token includes the whole prefill.
    return f"[{tag}.{i}] " + " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(n_words))


def one_stream(url, model, prompt, tokens, out, index, start_barrier):
    native = url.endswith("#native")
    u = urllib.parse.urlparse(url.removesuffix("#native"))
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=600)
    body = {"prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True, "ignore_eos": True}
    if native:
        body = {"prompt": prompt, "n_predict": tokens, "temperature": 0, "stream": True, "ignore_eos": True}
    if model:
        body["model"] = model
    data = json.dumps(body)
    start_barrier.wait()
    t0 = time.perf_counter()
    first = None
    chunks = 0
    error = None
    try:
        conn.request("POST", "/completion" if native else "/v1/completions", body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            error = f"HTTP {r.status}: {r.read()[:200]!r}"
        else:
            buf = b""
            while True:
                piece = r.read1(65536) if hasattr(r, "read1") else r.read(1)
                if not piece:
                    break
                buf += piece
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    line = event.strip()
                    if not line.startswith(b"data: "):
                        continue
                    payload = line[6:]
                    if payload == b"[DONE]":
                        continue
                    msg = json.loads(payload)
                    if "error" in msg:
                        error = str(msg["error"])
                        continue
                    texts = [msg.get("content")] if native else [c.get("text") for c in msg.get("choices", [])]
                    for text in texts:
                        if text:
                            chunks += 1
                            if first is None:
                                first = time.perf_counter()
    except Exception as e:  # noqa: BLE001 - reported with the run
        error = repr(e)
    finally:
        conn.close()
    out[index] = {"start": t0, "first": first, "end": time.perf_counter(), "chunks": chunks, "error": error}


def run(url, model, streams, tokens, prompt_words, tag):
    out = [None] * streams
    barrier = threading.Barrier(streams)
    threads = [threading.Thread(target=one_stream, args=(url, model, prompt_for(i, prompt_words, tag), tokens, out, i, barrier))
               for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [o["error"] for o in out if o["error"] and o["error"].startswith("HTTP ")]
    if refused:
        raise RuntimeError(f"{url}: {len(refused)} of {streams} streams failed: {refused[0]}")
    failed = [o for o in out if o["error"]]
    wall = max(o["end"] for o in out) - min(o["start"] for o in out)
    firsts = [o["first"] - o["start"] for o in out if o["first"] is not None]
    ttft = statistics.median(firsts) if firsts else float("nan")
    generated = sum(o["chunks"] if o["error"] else tokens for o in out)
    return {"tok_s": generated / wall, "ttft_s": ttft, "wall_s": wall,
            "chunks": sum(o["chunks"] for o in out), "failed": len(failed)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("servers", nargs="+", help="NAME=URL, e.g. slm=http://127.0.0.1:8080")
    ap.add_argument("--streams", default="1,8,32")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompt-words", type=int, default=24)
    ap.add_argument("--model", default="", help='the "model" field (default: none, the server\'s first)')
    ap.add_argument("--warmup", type=int, default=1, help="single-stream warm-up requests per server")
    ap.add_argument("--json", default="", help="write every run's figures here")
    a = ap.parse_args()
    servers = []
    for s in a.servers:
        name, _, url = s.partition("=")
        if not url:
            ap.error(f"expected NAME=URL, found '{s}'")
        servers.append((name, url.rstrip("/")))
    levels = [int(x) for x in a.streams.split(",")]
    for name, url in servers:
        for _ in range(a.warmup):
            run(url, a.model, 1, 4, a.prompt_words, "w")
    results = {name: {s: [] for s in levels} for name, _ in servers}
    for rnd in range(a.rounds):
        order = servers if rnd % 2 == 0 else list(reversed(servers))
        for s in levels:
            for name, url in order:
                r = run(url, a.model, s, a.tokens, a.prompt_words, f"{rnd}.{s}")
                results[name][s].append(r)
                print(f"round {rnd + 1} streams {s:3d} {name:>14}: {r['tok_s']:8.1f} tok/s  "
                      f"ttft {r['ttft_s'] * 1000:8.1f} ms  wall {r['wall_s']:6.1f} s  chunks {r['chunks']}  failed {r['failed']}",
                      file=sys.stderr, flush=True)
    names = [n for n, _ in servers]
    header = "| streams | " + " | ".join(f"{n} tok/s | {n} TTFT ms" for n in names)
    if len(names) == 2:
        header += f" | tok/s {names[0]}/{names[1]} | TTFT {names[0]}/{names[1]}"
    print(header + " |")
    print("|" + "---|" * (1 + 2 * len(names) + (2 if len(names) == 2 else 0)))
    for s in levels:
        med = {n: (statistics.median(r["tok_s"] for r in results[n][s]),
                   statistics.median(r["ttft_s"] for r in results[n][s]) * 1000) for n in names}
        row = f"| {s} | " + " | ".join(f"{med[n][0]:.1f} | {med[n][1]:.0f}" for n in names)
        if len(names) == 2:
            row += f" | {med[names[0]][0] / med[names[1]][0]:.2f} | {med[names[0]][1] / med[names[1]][1]:.2f}"
        print(row + " |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"tokens": a.tokens, "rounds": a.rounds, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
