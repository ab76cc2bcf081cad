#!/usr/bin/env python3
"""A scripted OpenAI-compatible upstream for the router tests. Python 3 standard library only.

    fake_upstream.py [--name NAME] [--max-seconds 300]

listens on 127.0.0.1 (ephemeral port), prints "READY <port>" once listening, and exits when
standard input closes or after --max-seconds, whichever comes first.

API (the parts of OpenAI's the router uses; HTTP/1.1 with keep-alive):
    POST /v1/chat/completions, /v1/completions   non-streaming JSON, or server-sent events with
        "stream": true (chunked transfer encoding; a usage chunk when stream_options.include_usage).
        The answer's text is "<NAME>: <the last user message>"; "logprobs": true adds one entry per
        word with the action's logprob.
    POST /v1/embeddings   a fixed 4-dimensional vector per input.
    GET  /v1/models

Each request consumes the next action of the script (then the default action):
    {"mode": "ok" | "status" | "cut" | "malformed" | "malformed_stream" | "hang",
     "delay": seconds before answering (default 0),
     "status": HTTP status for mode "status" (default 503),
     "cut_after": chunks sent before the connection is dropped, for mode "cut" (default 1),
     "logprob": the logprob of every token (default -0.1; -2.5 when the prompt contains "HARD"),
     "text": answer text instead of the default}
    "malformed": 200 with a body that is not JSON; "malformed_stream": one good chunk, then a chunk
    that is not JSON; "hang": never answers (until the client goes away).

Control:
    POST /_control/script   body: {"actions": [...], "default": {...}} replaces the script
    GET  /_control/stats    {"requests": n, "completed": n, "cancelled": n, "bodies": [...]}
    GET  /_control/reset    clears the script and the statistics
"""

import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"actions": [], "default": {"mode": "ok"}, "requests": 0, "completed": 0, "cancelled": 0, "bodies": []}
NAME = "fake"


def next_action():
    with LOCK:
        STATE["requests"] += 1
        if STATE["actions"]:
            return dict(STATE["actions"].pop(0))
        return dict(STATE["default"])


def last_user_text(body):
    if "messages" in body:
        text = ""
        for m in body.get("messages") or []:
            if isinstance(m, dict) and m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, str):
                    text = c
                elif isinstance(c, list):
                    text = " ".join(p.get("text", "") for p in c if isinstance(p, dict))
        return text
    p = body.get("prompt", "")
    return p if isinstance(p, str) else json.dumps(p)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, obj, raw=None):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_control/stats":
            with LOCK:
                self.send_json(200, {k: STATE[k] for k in ("requests", "completed", "cancelled", "bodies")})
        elif self.path == "/_control/reset":
            with LOCK:
                STATE.update(actions=[], default={"mode": "ok"}, requests=0, completed=0, cancelled=0, bodies=[])
            self.send_json(200, {"ok": True})
        elif self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": NAME, "object": "model"}]})
        else:
            self.send_json(404, {"error": {"message": "no route " + self.path}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self.send_json(400, {"error": {"message": "request body is not JSON", "type": "invalid_request_error"}})
            return
        if self.path == "/_control/script":
            with LOCK:
                STATE["actions"] = list(body.get("actions", []))
                if "default" in body:
                    STATE["default"] = body["default"]
            self.send_json(200, {"ok": True})
            return
        if self.path not in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
            self.send_json(404, {"error": {"message": "no route " + self.path}})
            return
        action = next_action()
        with LOCK:
            STATE["bodies"].append(body)
        delay = float(action.get("delay", 0))
        mode = action.get("mode", "ok")
        if mode == "hang":
            self.wait_for_close(3600)
            return
        if delay > 0 and self.wait_for_close(delay):
            return
        if mode == "status":
            status = int(action.get("status", 503))
            self.send_json(status, {"error": {"message": f"{NAME} scripted {status}", "type": "server_error"}})
            return
        if mode == "malformed":
            self.send_json(200, None, raw=b'{"id": "x", "choices": [ {"message": ')
            return
        if self.path == "/v1/embeddings":
            inputs = body.get("input")
            inputs = inputs if isinstance(inputs, list) else [inputs]
            data = [{"object": "embedding", "index": i, "embedding": [0.5, -0.25, 0.125, 1.0]} for i in range(len(inputs))]
            self.send_json(200, {"object": "list", "data": data, "model": NAME,
                                 "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})
            with LOCK:
                STATE["completed"] += 1
            return
        chat = self.path == "/v1/chat/completions"
        text = action.get("text", f"{NAME}: {last_user_text(body)}")
        words = text.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        logprob = float(action.get("logprob", -2.5 if "HARD" in last_user_text(body) else -0.1))
        usage = {"prompt_tokens": max(1, len(last_user_text(body).split())), "completion_tokens": len(pieces)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream"):
            self.stream(chat, pieces, usage, body, mode, int(action.get("cut_after", 1)))
            return
        choice = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        if body.get("logprobs"):
            if chat:
                choice["logprobs"] = {"content": [{"token": p, "logprob": logprob, "bytes": None, "top_logprobs": []} for p in pieces]}
            else:
                choice["logprobs"] = {"tokens": pieces, "token_logprobs": [logprob] * len(pieces)}
        answer = {"id": "cmpl-" + NAME, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
                  "model": NAME, "choices": [choice], "usage": usage}
        self.send_json(200, answer)
        with LOCK:
            STATE["completed"] += 1

    def wait_for_close(self, seconds):
        """Sleeps up to `seconds`; True when the client closed the connection meanwhile."""
        end = time.time() + seconds
        sock = self.connection
        while time.time() < end:
            try:
                sock.settimeout(0.02)
                data = sock.recv(1, socket.MSG_PEEK)
                if data == b"":
                    with LOCK:
                        STATE["cancelled"] += 1
                    self.close_connection = True
                    return True
            except socket.timeout:
                pass
            except OSError:
                with LOCK:
                    STATE["cancelled"] += 1
                self.close_connection = True
                return True
            finally:
                sock.settimeout(None)
        return False

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def stream(self, chat, pieces, usage, body, mode, cut_after):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        created = int(time.time())
        sent = 0
        try:
            for i, p in enumerate(pieces):
                if mode == "cut" and sent >= cut_after:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if mode == "malformed_stream" and sent == 1:
                    self.write_chunk(b'data: {"choices": [ {"delta": \n\n')
                    sent += 1
                    continue
                if chat:
                    delta = {"content": p}
                    if i == 0:
                        delta["role"] = "assistant"
                    choice = {"index": 0, "delta": delta, "finish_reason": None}
                else:
                    choice = {"index": 0, "text": p, "finish_reason": None}
                chunk = {"id": "cmpl-" + NAME, "object": "chat.completion.chunk" if chat else "text_completion",
                         "created": created, "model": NAME, "choices": [choice]}
                self.write_chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                sent += 1
                if mode == "slow_stream":
                    time.sleep(0.05)
            final = {"id": "cmpl-" + NAME, "object": "chat.completion.chunk" if chat else "text_completion", "created": created,
                     "model": NAME, "choices": [{"index": 0, "delta": {} if chat else None, "text": "" if not chat else None,
                                                 "finish_reason": "stop"}]}
            final["choices"][0] = {k: v for k, v in final["choices"][0].items() if v is not None}
            self.write_chunk(b"data: " + json.dumps(final).encode() + b"\n\n")
            if (body.get("stream_options") or {}).get("include_usage"):
                u = {"id": "cmpl-" + NAME, "object": "chat.completion.chunk", "created": created, "model": NAME, "choices": [],
                     "usage": usage}
                self.write_chunk(b"data: " + json.dumps(u).encode() + b"\n\n")
            self.write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            with LOCK:
                STATE["completed"] += 1
        except OSError:
            with LOCK:
                STATE["cancelled"] += 1
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that go away mid-answer are part of the tests


def main():
    global NAME
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="fake")
    ap.add_argument("--max-seconds", type=float, default=300)
    args = ap.parse_args()
    NAME = args.name
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)

    def watch_stdin():
        try:
            sys.stdin.read()
        except Exception:
            pass

    t = threading.Thread(target=watch_stdin, daemon=True)
    t.start()
    t.join(args.max_seconds)


if __name__ == "__main__":
    main()
