"""A minimal Hugging Face Hub-compatible file server for tests, on 127.0.0.1.

It answers HEAD and GET on ``/{repo_id}/resolve/{revision}/{filename}`` with
the headers ``huggingface_hub.hf_hub_download`` reads (``ETag``,
``X-Repo-Commit``, ``Content-Length``) and the ``X-Error-Code`` header the
Hub sends for a missing repo, revision or file.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote


class HubServer:
    """Serves folders as Hub repos. ``repos`` maps a repo id to a folder; every repo has one commit."""

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = {repo: Path(folder) for repo, folder in repos.items()}
        self.commits = {repo: hashlib.sha1(repo.encode()).hexdigest() for repo in self.repos}
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
                server._answer(self, with_body=False)

            def do_GET(self) -> None:  # noqa: N802
                server._answer(self, with_body=True)

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "HubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _error(self, handler: BaseHTTPRequestHandler, code: str) -> None:
        handler.send_response(404)
        handler.send_header("X-Error-Code", code)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _answer(self, handler: BaseHTTPRequestHandler, with_body: bool) -> None:
        self.requests.append((handler.command, handler.path))
        path = unquote(handler.path.split("?", 1)[0]).lstrip("/")
        if "/resolve/" not in path:
            return self._error(handler, "EntryNotFound")
        repo, rest = path.split("/resolve/", 1)
        if repo not in self.repos:
            return self._error(handler, "RepoNotFound")
        revision, _, filename = rest.partition("/")
        if revision not in ("main", self.commits[repo]):
            return self._error(handler, "RevisionNotFound")
        file = self.repos[repo] / filename
        if not filename or not file.is_file():
            return self._error(handler, "EntryNotFound")
        data = file.read_bytes()
        handler.send_response(200)
        handler.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        handler.send_header("X-Repo-Commit", self.commits[repo])
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Content-Type", "application/octet-stream")
        handler.end_headers()
        if with_body:
            handler.wfile.write(data)
