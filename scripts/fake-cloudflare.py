#!/usr/bin/env python3
"""A standalone local Cloudflare Pages API for scripts/bench-pages.sh (stdlib only).

Serves the routes of a direct upload under /client/v4 (reference cloudflare-pages.md section 13):
project, upload token (a JWT whose payload carries exp and max_file_count_allowed), check-missing,
upload, upsert-hashes, create deployment (multipart; every manifest hash must be stored), get and
list deployments. Content-addressed: only hashes and byte counts are kept, so memory stays small.
The deployment POST answers with a finished deployment (deploy/success).

Usage: fake-cloudflare.py PORT_FILE   (binds 127.0.0.1:0, writes the port to PORT_FILE)
       fake-cloudflare.py --reset URL (forget stored hashes, for a fresh first deploy)
"""
import base64
import hashlib
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STORE = {}  # hash -> content type
LAST_MANIFEST = {}
LAST_RAW = {"content_type": "", "body": b""}  # the last deployment POST, for parity checks
DEPLOYMENTS = []
COUNTS = {}
BROKEN = []


def split_multipart(body, boundary):
    """[(name, content_type or None, content)] of a multipart/form-data body."""
    out = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk[2:].partition(b"\r\n\r\n")
        content = content[:-2] if content.endswith(b"\r\n") else content
        name = re.search(rb'name="([^"]*)"', head)
        ctype = re.search(rb"(?i)content-type: *([^\r\n]*)", head)
        out.append((name.group(1).decode() if name else "", ctype.group(1).decode() if ctype else None, content))
    return out


def describe_parts(body, content_type):
    """The deployment POST without its random boundaries: each part's name, type and content
    digest; the Worker bundle's own parts likewise."""
    m = re.search(r"boundary=(.*)", content_type or "")
    if not m:
        return []
    parts = []
    for name, ctype, content in split_multipart(body, m.group(1).strip('"').encode()):
        p = {"name": name, "content_type": ctype, "sha256": hashlib.sha256(content).hexdigest()}
        if name == "manifest":
            p.pop("sha256")
        if name == "_worker.bundle":
            inner = content.split(b"\r\n", 1)[0][2:]
            p.pop("sha256")
            p["modules"] = [{"name": n, "content_type": t, "sha256": hashlib.sha256(c).hexdigest()}
                            for n, t, c in split_multipart(content, inner)]
        parts.append(p)
    return parts


def b64url(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def envelope(result, success=True, errors=()):
    return json.dumps({"success": success, "errors": list(errors), "messages": [], "result": result}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY the body waits for the client's
    # delayed ACK (~40 ms a request), a stall no real API server has.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def count(self, route):
        with LOCK:
            COUNTS[route] = COUNTS.get(route, 0) + 1

    def do_GET(self):
        path, _, query = self.path.partition("?")
        segs = [s for s in path.split("/") if s][2:]  # drop client/v4
        if path == "/last-deployment":
            with LOCK:
                types = {p: STORE.get(h) for p, h in LAST_MANIFEST.items()}
                parts = describe_parts(LAST_RAW["body"], LAST_RAW["content_type"])
                return self.send(200, json.dumps({"manifest": LAST_MANIFEST, "content_types": types, "parts": parts}, sort_keys=True, ensure_ascii=False, indent=1).encode())
        if path == "/last-deployment-raw":
            with LOCK:
                return self.send(200, LAST_RAW["body"], LAST_RAW["content_type"] or "application/octet-stream")
        if path == "/stats":
            with LOCK:
                return self.send(200, json.dumps({"counts": COUNTS, "stored": len(STORE), "broken": BROKEN[:10]}).encode())
        if len(segs) == 5 and segs[2] == "pages":
            self.count("project")
            name = segs[4]
            return self.send(200, envelope({
                "id": "p-1", "name": name, "subdomain": f"{name}.pages.dev", "production_branch": "main",
                "deployment_configs": {"production": {"compatibility_date": "2024-01-01", "compatibility_flags": []},
                                       "preview": {"compatibility_date": "2024-01-01", "compatibility_flags": []}},
                "domains": [], "source": None, "build_config": {}, "created_on": "2024-01-01T00:00:00Z",
                "latest_deployment": None, "canonical_deployment": None}))
        if len(segs) == 6 and segs[5] == "upload-token":
            self.count("upload-token")
            jwt = ".".join([b64url({"alg": "HS256"}), b64url({"exp": int(time.time()) + 600, "max_file_count_allowed": 100000}), "c2ln"])
            return self.send(200, envelope({"jwt": jwt}))
        if len(segs) == 7 and segs[5] == "deployments":
            with LOCK:
                for d in DEPLOYMENTS:
                    if d["id"] == segs[6]:
                        return self.send(200, envelope(d))
            return self.send(404, envelope(None, False, [{"code": 8000009, "message": "not found"}]))
        if len(segs) == 6 and segs[5] == "deployments":
            with LOCK:
                return self.send(200, envelope(list(reversed(DEPLOYMENTS))))
        self.send(404, envelope(None, False, [{"code": 7003, "message": "No route"}]))

    def do_POST(self):
        path = self.path.partition("?")[0]
        body = self.body()
        if path.endswith("/pages/assets/check-missing"):
            self.count("check-missing")
            hashes = json.loads(body)["hashes"]
            with LOCK:
                missing = [h for h in hashes if h not in STORE]
            return self.send(200, envelope(missing))
        if path.endswith("/pages/assets/upload"):
            self.count("upload")
            entries = json.loads(body)
            with LOCK:
                for e in entries:
                    STORE[e["key"]] = e["metadata"]["contentType"]
            return self.send(200, envelope(None))
        if path.endswith("/pages/assets/upsert-hashes"):
            self.count("upsert-hashes")
            return self.send(200, envelope(None))
        if path.endswith("/deployments"):
            self.count("deployment")
            m = re.search(rb'name="manifest"\r\n\r\n(.*?)\r\n--', body, re.S)
            manifest = json.loads(m.group(1)) if m else {}
            b = re.search(rb'name="branch"\r\n\r\n(.*?)\r\n--', body, re.S)
            branch = b.group(1).decode() if b else None
            with LOCK:
                LAST_RAW["content_type"] = self.headers.get("Content-Type", "")
                LAST_RAW["body"] = body
                BROKEN.extend(p for p, h in manifest.items() if h not in STORE)
                LAST_MANIFEST.clear()
                LAST_MANIFEST.update(manifest)
                n = len(DEPLOYMENTS) + 1
                short = f"{0xbe000000 + n:08x}"
                d = {"id": f"{short}-0000-4000-8000-{n:012d}", "short_id": short, "project_name": "bench",
                     "url": f"https://{short}.bench.pages.dev",
                     "environment": "production" if branch in (None, "main") else "preview",
                     "aliases": None, "latest_stage": {"name": "deploy", "status": "success"}, "stages": [],
                     "deployment_trigger": {"type": "ad_hoc", "metadata": {"branch": branch}}}
                DEPLOYMENTS.append(d)
            return self.send(200, envelope(d))
        if path == "/reset":
            with LOCK:
                STORE.clear()
                COUNTS.clear()
                BROKEN.clear()
            return self.send(200, envelope(None))
        self.send(404, envelope(None, False, [{"code": 7003, "message": "No route"}]))


def main():
    if sys.argv[1:2] == ["--reset"]:
        import urllib.request
        urllib.request.urlopen(urllib.request.Request(sys.argv[2] + "/reset", method="POST", data=b"")).read()
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
