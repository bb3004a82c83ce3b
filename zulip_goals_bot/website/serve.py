"""A preview of a built site on localhost, with the standard library's HTTP server.

For people trying the bot and for the tests; a published site is served by any static host.  It
binds 127.0.0.1 only, so nothing outside the machine can reach it.
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from zulip_goals_bot.website.content import SiteError
from zulip_goals_bot.website.pages import INDEX

HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class _Handler(SimpleHTTPRequestHandler):
    """Serves files with the types a browser and a feed reader expect; logs nothing."""

    extensions_map = {  # noqa: RUF012  (the base class declares it as a plain dict)
        **SimpleHTTPRequestHandler.extensions_map,
        ".atom": "application/atom+xml",
        ".json": "application/json",
        ".svg": "image/svg+xml",
        ".css": "text/css",
        ".html": "text/html; charset=utf-8",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Preview:
    """A running preview server; ``url`` is where the index is."""

    def __init__(self, directory: Path, port: int = DEFAULT_PORT) -> None:
        self.directory = directory
        handler = functools.partial(_Handler, directory=str(directory))
        try:
            self.server = ThreadingHTTPServer((HOST, port), handler)
        except OSError as exc:
            raise SiteError(f"cannot serve on {HOST}:{port} ({exc.strerror or exc})") from exc
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/"

    def start(self) -> Preview:
        """Serve from a background thread (the sandbox keeps working meanwhile)."""
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="site-preview", daemon=True
        )
        self._thread.start()
        return self

    def serve(self) -> None:
        """Serve from this thread until interrupted."""
        self.server.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=2.0)
        self.server.server_close()


def serve_command(directory: Path, port: int) -> int:
    """``zulip-goals-bot site serve``: serve a built site until Ctrl-C."""
    if not (directory / INDEX).is_file():
        raise SiteError(
            f"{directory} holds no built site (no {INDEX}); run `zulip-goals-bot site build` first"
        )
    preview = Preview(directory, port)
    print(f"serving {directory} at {preview.url} (Ctrl-C stops)", flush=True)
    try:
        preview.serve()
    except KeyboardInterrupt:
        pass
    finally:
        preview.stop()
    return 0
