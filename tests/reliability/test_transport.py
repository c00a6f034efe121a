"""Malformed HTTP against a real uvicorn server on 127.0.0.1, over raw sockets: every answer is a
4xx (or a closed connection for garbage that is not HTTP), never a 5xx, and the server stays ready.

Also: no request can make the server read a file (static-mount traversal, path-like fields).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.live_server import Server
from tests.reliability.conftest import server_errors

CAP = 64 * 1024  # the shared server's DCGAN_MAX_BODY_BYTES


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    head = {"Host": "127.0.0.1", "Connection": "close"} | (headers or {})
    if "Transfer-Encoding" not in head and "Content-Length" not in head and body:
        head["Content-Length"] = str(len(body))
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def exchange(port: int, pieces: Iterator[bytes] | list[bytes], timeout: float = 5.0) -> int | None:
    """Send ``pieces`` (stopping early if the server answers or closes), return the status code, or None
    when the server closed (or, for an incomplete request, kept waiting) without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for piece in pieces:
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered (e.g. 413) and closed while we were still sending
        # no half-close: uvicorn takes EOF for a client that left and drops the response
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
                if b"\r\n" in data:
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    if not data.startswith(b"HTTP/1."):
        return None
    return int(data.split(b" ", 2)[1])


def chunked(total: int, piece: int = 8192) -> Iterator[bytes]:
    """A JSON body of ``total`` bytes as HTTP/1.1 chunks, after the request head."""
    yield request("POST", "/generate", headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    body = b'{"seeds": [' + b"1," * (total // 2) + b"1]}"
    for i in range(0, len(body), piece):
        part = body[i : i + piece]
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


JSON = {"Content-Type": "application/json"}
BIG = b'{"seeds": [' + b"1," * CAP + b"1]}"  # ~2x the cap
CASES: dict[str, list[bytes] | Iterator[bytes]] = {}


def cases() -> dict[str, list[bytes]]:
    over = BIG
    return {
        "invalid JSON": [request("POST", "/generate", b'{"seeds": [1, 2', JSON)],
        "JSON that is not an object": [request("POST", "/interpolate", b"[1, 2, 3]", JSON)],
        "NaN literal": [request("POST", "/generate", b'{"latents": [[NaN]]}', JSON)],
        "huge number": [request("POST", "/generate", b'{"seeds": [1' + b"0" * 5000 + b"]}", JSON)],
        "deep nesting": [request("POST", "/arithmetic", b'{"terms": ' + b"[" * 20000 + b"]" * 20000 + b"}", JSON)],
        "invalid UTF-8": [request("POST", "/generate", b'{"seeds": [1], "\xff\xfe": 1}', JSON)],
        "wrong content type": [
            request("POST", "/interpolate", b'{"seed_a": 1, "seed_b": 2}', {"Content-Type": "text/plain"})
        ],
        "form content type": [
            request("POST", "/interpolate", b"seed_a=1&seed_b=2", {"Content-Type": "application/x-www-form-urlencoded"})
        ],
        "multipart without boundary": [
            request("POST", "/arithmetic", b"--x\r\n", {"Content-Type": "multipart/form-data"})
        ],
        "no content type": [request("POST", "/interpolate", b'{"seed_a": 1, "seed_b": 2}')],
        "over cap with Content-Length": [request("POST", "/generate", over, JSON)],
        "over cap, Content-Length only (body never sent)": [
            request("POST", "/generate", headers=JSON | {"Content-Length": str(10 * CAP)})
        ],
        "absurd Content-Length": [request("POST", "/generate", b"{}", JSON | {"Content-Length": "9" * 30})],
        "negative Content-Length": [request("POST", "/generate", b"{}", JSON | {"Content-Length": "-1"})],
        "short body for its Content-Length": [
            request("POST", "/generate", b'{"seeds"', JSON | {"Content-Length": "100"})
        ],
        "bad chunk size": [
            request("POST", "/generate", headers=JSON | {"Transfer-Encoding": "chunked"}) + b"zz\r\n{}\r\n0\r\n\r\n"
        ],
        "not HTTP": [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(200))],  # a TLS ClientHello
        "bad request line": [b"GET\r\n\r\n"],
        "header of 16 KiB": [request("GET", "/healthz", headers={"X-Big": "a" * 16_000})],
        "header of 4 MiB": [request("GET", "/healthz", headers={"X-Big": "a" * (4 << 20)})],
        "bad header name": [b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n"],
        "percent-garbage path": [request("GET", "/latents?seeds=%ff%fe%00")],
        "NUL in query": [request("GET", "/latents?seeds=1%002")],
        "unknown method": [request("BREW", "/generate")],
    }


@pytest.mark.slow
def test_malformed_requests_are_4xx_and_the_server_stays_ready(shared_server: Server) -> None:
    before = server_errors(shared_server)
    answers: dict[str, int | None] = {}
    for name, pieces in cases().items():
        short = name.startswith("short body")  # the server waits for the rest of it: do not wait long
        answers[name] = exchange(shared_server.port, pieces, timeout=1.5 if short else 5.0)
    answers["chunked over cap"] = exchange(shared_server.port, chunked(4 * CAP))
    print("\n" + "\n".join(f"{k}: {v}" for k, v in answers.items()))
    for name, status in answers.items():
        if name == "short body for its Content-Length":  # the server is still waiting for the rest: no answer
            assert status is None
        elif name == "header of 16 KiB":  # a valid request: h11 refuses it (431/400), httptools serves it
            assert status in (200, 400, 431), status
        else:
            assert status is not None and 400 <= status < 500, f"{name}: {status}"
    assert answers["over cap with Content-Length"] == 413
    assert answers["chunked over cap"] == 413
    assert answers["invalid UTF-8"] == 400
    assert answers["invalid JSON"] == 422
    assert answers["header of 4 MiB"] in (400, 431)  # bounded, whichever parser uvicorn uses
    assert server_errors(shared_server) == before
    assert httpx.get(f"{shared_server.base}/readyz", timeout=5).status_code == 200
    ok = httpx.post(f"{shared_server.base}/generate", params={"n": 2, "seed": 5}, timeout=10)
    assert ok.status_code == 200


def test_a_slow_client_does_not_block_others(shared_server: Server) -> None:
    """A client that sends half a body and stalls holds only its own connection."""
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=10) as stalled:
        stalled.sendall(request("POST", "/generate", b'{"seeds": [', JSON | {"Content-Length": "1000"}))
        start = time.monotonic()
        r = httpx.post(f"{shared_server.base}/generate", params={"n": 1, "seed": 1}, timeout=10)
        assert r.status_code == 200 and time.monotonic() - start < 5


TRAVERSALS = [
    "/static/../../etc/passwd",
    "/static/..%2f..%2fetc%2fpasswd",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/%252e%252e/%252e%252e/etc/passwd",
    "/static/..%5c..%5cetc%5cpasswd",
    "/static/....//....//etc/passwd",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/../app/service.py",
    "/static/..%2fservice.py",
    "/static/%2e%2e%2fservice.py",
    "/static/..%c0%afservice.py",
    "/static/index.html%00.js",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_static_mount_does_not_traverse(shared_server: Server, path: str) -> None:
    # raw request line: no client-side normalisation of ../ or percent-escapes
    status = exchange(shared_server.port, [request("GET", path)])
    assert status in (400, 404), f"{path}: {status}"


def test_static_mount_serves_only_its_files(shared_server: Server) -> None:
    assert httpx.get(f"{shared_server.base}/static/app.js", timeout=5).status_code == 200


PATHS = ["/etc/passwd", "file:///etc/passwd", "../../etc/passwd", "http://127.0.0.1:1/x", "~/.ssh/id_rsa"]


@pytest.mark.parametrize("path", PATHS)
def test_no_field_takes_a_path_or_url(shared_server: Server, path: str) -> None:
    """Seeds, latents and names are numbers or labels: a path is a 422 (or, as a name, just a label)."""
    base = shared_server.base
    bodies = [
        ("/generate", {"seeds": [path]}),
        ("/generate", {"latents": path}),
        ("/generate", {"checkpoint": path, "seeds": [1]}),
        ("/interpolate", {"seed_a": path, "seed_b": 1}),
        ("/interpolate", {"seed_a": 1, "seed_b": 2, "format": path}),
        ("/arithmetic", {"terms": [{"name": "x", "weight": 1, "seeds": [path]}]}),
    ]
    for route, body in bodies:
        assert httpx.post(f"{base}{route}", json=body, timeout=10).status_code == 422, (route, body)
    assert httpx.get(f"{base}/latents", params={"seeds": path}, timeout=10).status_code == 422
    assert httpx.post(f"{base}/generate", params={"n": 1, "format": path}, timeout=10).status_code == 422
    named = httpx.post(
        f"{base}/arithmetic",
        json={"terms": [{"name": path[:64], "weight": 1, "seeds": [1]}], "format": "json"},
        timeout=10,
    )
    assert named.status_code == 200 and named.json()["terms"][0]["name"] == path[:64]  # a label, echoed, never opened


def test_no_operation_takes_a_file_or_path(shared_server: Server) -> None:
    """The OpenAPI schema: no parameter or body field is a path, file or URL, and the one binary upload is
    POST /invert's photo (read into memory under a byte cap, never written anywhere: tests/app/test_invert*)."""
    spec = httpx.get(f"{shared_server.base}/openapi.json", timeout=5).json()
    uploads = [(path, method) for path, ops in spec["paths"].items() for method, op in ops.items()
               if "multipart/form-data" in op.get("requestBody", {}).get("content", {})]  # fmt: skip
    assert uploads == [("/invert", "post")], uploads
    invert = spec["paths"].pop("/invert")["post"]  # checked here, then left out of the text search below
    form = invert["requestBody"]["content"]["multipart/form-data"]["schema"]
    if "$ref" in form:
        form = spec["components"]["schemas"].pop(form["$ref"].rsplit("/", 1)[1])
    assert set(form["properties"]) == {"image", "mode", "steps", "align"}, form
    spec["components"]["schemas"].pop("InvertOut", None)
    text = str(spec).lower()
    for word in ("'format': 'binary'", "'format': 'uri'", "multipart/form-data", "uploadfile"):
        assert word not in text, word
    names: set[str] = set()
    for ops in spec["paths"].values():
        for op in ops.values():
            names |= {p["name"] for p in op.get("parameters", [])}
    for schema in spec["components"]["schemas"].values():
        names |= set(schema.get("properties", {}))
    risky = {"path", "paths", "file", "files", "filename", "url", "uri", "dir", "directory", "folder", "checkpoint"}
    named = {n for n in names if risky & set(re.split(r"[^a-z]+", n.lower()))}  # by word: "direction" is fine
    assert named - {"file"} == set(), named  # ModelOut.file: the served export's file name, output only
