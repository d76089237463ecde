"""A local HTTP server on 127.0.0.1 for the fetch tests: static files, Hub-style headers, Range requests, and
transfers cut short on purpose. Nothing here reaches the internet."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.define
class Route:
    body: bytes
    headers: dict[str, str] = attrs.field(factory=dict)
    cut_after: int | None = None  # send only this many bytes of the body (once), then drop the connection
    ignore_range: bool = False


@attrs.define
class FixtureServer:
    """``routes`` maps a URL path to what it serves; ``requests`` logs (method, path, Range header)."""

    routes: dict[str, Route] = attrs.field(factory=dict)
    requests: list[tuple[str, str, str | None]] = attrs.field(factory=list)
    httpd: Any = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, body: bytes, **kwargs: Any) -> Route:
        self.routes[path] = route = Route(body, **kwargs)
        return route

    def add_hub_file(self, repo_id: str, revision: str, filename: str, body: bytes, *, etag: str | None = None,
                     **kwargs: Any) -> Route:
        """A dataset file as the Hub serves it at /datasets/REPO/resolve/REVISION/FILE: the commit in
        X-Repo-Commit, the LFS SHA-256 as the ETag (``etag`` overrides it, to serve a wrong one)."""
        digest = etag or hashlib.sha256(body).hexdigest()
        headers = {"X-Repo-Commit": revision, "ETag": f'"{digest}"'}
        return self.add(f"/datasets/{repo_id}/resolve/{revision}/{filename}", body, headers=headers, **kwargs)

    def hits(self, path: str) -> int:
        return sum(1 for _, p, _ in self.requests if p == path)


def start(server: FixtureServer) -> FixtureServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _serve(self, with_body: bool) -> None:
            path = self.path.split("?")[0]
            server.requests.append((self.command, path, self.headers.get("Range")))
            route = server.routes.get(path)
            if route is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body, start_at = route.body, 0
            wanted = self.headers.get("Range")
            if wanted and wanted.startswith("bytes=") and not route.ignore_range:
                start_at = int(wanted[len("bytes="):].split("-")[0] or 0)
                if start_at >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start_at}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            for key, value in route.headers.items():
                self.send_header(key, value)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body) - start_at))
            self.end_headers()
            if not with_body:
                return
            payload = body[start_at:]
            if route.cut_after is not None:
                payload, route.cut_after = payload[:route.cut_after], None
                self.wfile.write(payload)
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(payload)

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self._serve(with_body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(with_body=True)

    server.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.httpd.serve_forever, daemon=True).start()
    return server
