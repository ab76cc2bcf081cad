#!/usr/bin/env python3
"""A stand-in for the Hugging Face hub, for the store tests. Python 3 standard library only.

Two HTTP servers on 127.0.0.1 with ephemeral ports: the "hub" (model API, resolve endpoint,
control endpoint) and the "cdn" (large files, reached by a redirect to the other port, the way
the real hub redirects LFS downloads to its CDN).

    fake_hub.py --config CONFIG.json [--max-seconds 300]

prints "READY <hub_port> <cdn_port>" once listening, and exits when standard input closes or after
--max-seconds, whichever comes first.

CONFIG.json:
    {"token": "hf_...",                        # the token private repos accept
     "repos": {"owner/repo": {
         "private": false,
         "files": {"path/in/repo": {"file": "/local/path"} | {"text": "content"},
                   ...},                        # "lfs": true/false overrides: .gguf/.safetensors are LFS
         "extra_listing": ["../evil.gguf"]}}}  # names listed by the API but never served

API (as the real hub answers it):
    GET /api/models/{owner}/{repo}[/revision/{rev}][?blobs=true]
        {"id", "sha", "private", "siblings": [{"rfilename", "size", "blobId", "lfs": {"sha256", "size",
         "pointerSize"}}]}   (size and lfs only with blobs=true)
    GET /{owner}/{repo}/resolve/{rev}/{path}
        LFS files: 302 to http://127.0.0.1:{cdn_port}/blob/{sha256}, with X-Linked-Etag (the sha256),
        X-Linked-Size, X-Repo-Commit; other files: 307 to /api/resolve-cache/models/{owner}/{repo}/
        {sha}/{path} on the hub itself, with ETag (the git blob id).
    Private repos answer 401 without "Authorization: Bearer <token>".

Control (hub port):
    GET /_control/set?cut_after=N&cut_times=K&corrupt=1&ignore_range=1&throttle_ms=M
        cut_after: close the connection after N body bytes, for the next K bodies longer than N
        (default 1);
        corrupt: flip one byte in the middle of every file served; ignore_range: answer 200 with the
        whole file to Range requests; throttle_ms: sleep this long after every 16 KiB.
    GET /_control/stats   {"bytes": {"owner/repo/path": n}, "requests": [...]}
    GET /_control/reset   clears the modes and the statistics
"""

import argparse
import hashlib
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 16 * 1024


class State:
    def __init__(self, config):
        self.lock = threading.Lock()
        self.token = config.get("token", "")
        self.repos = {}
        self.blobs = {}  # sha256 -> (repo, path)
        for repo_id, repo in config.get("repos", {}).items():
            files = {}
            for path, spec in repo.get("files", {}).items():
                if "file" in spec:
                    with open(spec["file"], "rb") as f:
                        data = f.read()
                else:
                    data = spec.get("text", "").encode("utf-8")
                lfs = spec.get("lfs", path.endswith(".gguf") or path.endswith(".safetensors"))
                sha256 = hashlib.sha256(data).hexdigest()
                git_sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                files[path] = {"data": data, "lfs": lfs, "sha256": sha256, "git_sha1": git_sha1}
                if lfs:
                    self.blobs[sha256] = (repo_id, path)
            digest = hashlib.sha1(repo_id.encode())
            for path in sorted(files):
                digest.update(files[path]["sha256"].encode())
            self.repos[repo_id] = {
                "private": bool(repo.get("private", False)),
                "files": files,
                "extra": list(repo.get("extra_listing", [])),
                "sha": digest.hexdigest(),
            }
        self.reset()

    def reset(self):
        with self.lock:
            self.cut_after = None
            self.cut_times = 0
            self.corrupt = False
            self.ignore_range = False
            self.throttle_ms = 0
            self.bytes = {}
            self.requests = []


STATE = None
PORTS = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    # -- helpers -----------------------------------------------------------------------------
    def role(self):
        return self.server.role

    def send_json(self, status, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_empty(self, status, headers):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def authorized(self, repo):
        if not repo["private"]:
            return True
        return self.headers.get("Authorization", "") == "Bearer " + STATE.token and STATE.token != ""

    def deny(self):
        self.send_json(401, {"error": "Invalid credentials in Authorization header"},
                       {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Invalid credentials in Authorization header"})

    def not_found(self, what):
        self.send_json(404, {"error": what + " not found"}, {"X-Error-Code": "EntryNotFound", "X-Error-Message": what + " not found"})

    def serve_bytes(self, key, data, etag):
        with STATE.lock:
            ignore_range = STATE.ignore_range
            corrupt = STATE.corrupt
            throttle = STATE.throttle_ms / 1000.0
        total = len(data)
        start, end = 0, total - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and not ignore_range:
            spec = rng.strip()
            if not spec.startswith("bytes=") or "," in spec:
                self.send_empty(416, {"Content-Range": "bytes */%d" % total})
                return
            first, _, last = spec[6:].partition("-")
            start = int(first) if first else 0
            end = int(last) if last else total - 1
            if start >= total:
                self.send_empty(416, {"Content-Range": "bytes */%d" % total})
                return
            end = min(end, total - 1)
            status = 206
        body = bytearray(data[start:end + 1])
        cut = None
        with STATE.lock:  # a cut is spent only on a body longer than it
            if STATE.cut_after is not None and STATE.cut_times > 0 and len(body) > STATE.cut_after:
                cut = STATE.cut_after
                STATE.cut_times -= 1
        if corrupt and total > 0:
            flip = total // 2
            if start <= flip <= end:
                body[flip - start] ^= 0xFF
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", '"%s"' % etag)
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, total))
        self.end_headers()
        sent = 0
        try:
            while sent < len(body):
                n = min(CHUNK, len(body) - sent)
                if cut is not None:
                    n = min(n, cut - sent)
                    if n <= 0:
                        break
                self.wfile.write(body[sent:sent + n])
                sent += n
                with STATE.lock:
                    STATE.bytes[key] = STATE.bytes.get(key, 0) + n
                if throttle:
                    self.wfile.flush()
                    time.sleep(throttle)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        if cut is not None and sent < len(body):
            self.wfile.flush()
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True

    def record(self):
        with STATE.lock:
            STATE.requests.append({
                "server": self.role(),
                "path": self.path,
                "range": self.headers.get("Range", ""),
                "auth": "Authorization" in self.headers,
            })

    # -- routes ------------------------------------------------------------------------------
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if not url.path.startswith("/_control/"):
            self.record()
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
        query = urllib.parse.parse_qs(url.query)
        if self.role() == "cdn":
            return self.cdn(parts)
        if parts[:1] == ["_control"]:
            return self.control(parts[1:], query)
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self.api_model(parts[2] + "/" + parts[3], parts[4:], query)
        if parts[:3] == ["api", "resolve-cache", "models"] and len(parts) >= 7:
            return self.resolve_cache(parts[3] + "/" + parts[4], "/".join(parts[6:]))
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve(parts[0] + "/" + parts[1], "/".join(parts[4:]))
        self.not_found("route")

    def control(self, parts, query):
        if parts == ["set"]:
            with STATE.lock:
                if "cut_after" in query:
                    STATE.cut_after = int(query["cut_after"][0])
                    STATE.cut_times = int(query.get("cut_times", ["1"])[0])
                if "corrupt" in query:
                    STATE.corrupt = query["corrupt"][0] == "1"
                if "ignore_range" in query:
                    STATE.ignore_range = query["ignore_range"][0] == "1"
                if "throttle_ms" in query:
                    STATE.throttle_ms = int(query["throttle_ms"][0])
            return self.send_json(200, {"ok": True})
        if parts == ["stats"]:
            with STATE.lock:
                return self.send_json(200, {"bytes": dict(STATE.bytes), "requests": list(STATE.requests)})
        if parts == ["reset"]:
            STATE.reset()
            return self.send_json(200, {"ok": True})
        self.not_found("control")

    def api_model(self, repo_id, rest, query):
        repo = STATE.repos.get(repo_id)
        if repo is None:
            return self.send_json(401 if not self.headers.get("Authorization") else 404,
                                  {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        if not self.authorized(repo):
            return self.deny()
        if rest and not (len(rest) == 2 and rest[0] == "revision"):
            return self.not_found("route")
        blobs = query.get("blobs", ["false"])[0] == "true"
        siblings = []
        for path in sorted(repo["files"]):
            f = repo["files"][path]
            s = {"rfilename": path}
            if blobs:
                s["size"] = len(f["data"])
                s["blobId"] = f["git_sha1"]
                if f["lfs"]:
                    s["lfs"] = {"sha256": f["sha256"], "size": len(f["data"]), "pointerSize": 134}
            siblings.append(s)
        for name in repo["extra"]:
            siblings.append({"rfilename": name, "size": 10} if blobs else {"rfilename": name})
        self.send_json(200, {"id": repo_id, "modelId": repo_id, "sha": repo["sha"], "private": repo["private"],
                             "siblings": siblings})

    def resolve(self, repo_id, path):
        repo = STATE.repos.get(repo_id)
        if repo is None:
            return self.send_json(401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        if not self.authorized(repo):
            return self.deny()
        f = repo["files"].get(path)
        if f is None:
            return self.not_found("file")
        if f["lfs"]:
            location = "http://127.0.0.1:%d/blob/%s" % (PORTS["cdn"], f["sha256"])
            return self.send_empty(302, {
                "Location": location,
                "X-Linked-Etag": '"%s"' % f["sha256"],
                "X-Linked-Size": str(len(f["data"])),
                "X-Repo-Commit": repo["sha"],
                "ETag": '"%s"' % f["sha256"],
            })
        location = "/api/resolve-cache/models/%s/%s/%s" % (repo_id, repo["sha"], urllib.parse.quote(path))
        self.send_empty(307, {"Location": location, "X-Repo-Commit": repo["sha"], "ETag": '"%s"' % f["git_sha1"]})

    def resolve_cache(self, repo_id, path):
        repo = STATE.repos.get(repo_id)
        if repo is None or path not in repo["files"]:
            return self.not_found("file")
        if not self.authorized(repo):
            return self.deny()
        f = repo["files"][path]
        self.serve_bytes(repo_id + "/" + path, f["data"], f["git_sha1"])

    def cdn(self, parts):
        if len(parts) != 2 or parts[0] != "blob" or parts[1] not in STATE.blobs:
            return self.not_found("blob")
        repo_id, path = STATE.blobs[parts[1]]
        f = STATE.repos[repo_id]["files"][path]
        self.serve_bytes(repo_id + "/" + path, f["data"], f["sha256"])


def main():
    global STATE
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args()
    with open(args.config) as f:
        STATE = State(json.load(f))
    servers = {}
    for role in ("hub", "cdn"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.role = role
        servers[role] = server
        PORTS[role] = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    # Bounded life: exit when the test closes our standard input, or at the deadline.
    timer = threading.Timer(args.max_seconds, lambda: os._exit(3))
    timer.daemon = True
    timer.start()
    print("READY %d %d" % (PORTS["hub"], PORTS["cdn"]), flush=True)
    try:
        sys.stdin.read()
    except Exception:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
