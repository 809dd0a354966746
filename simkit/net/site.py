"""A folder of pages served on 127.0.0.1, for pointing the kit's Chromium tabs at a front end.

``with StaticSite("examples/frontends") as site: site.url`` serves a built front end (plain
HTML and JavaScript, a ``next export``, a Vite ``dist/``) from a thread of its own, so a
notebook cell can then call ``simkit.run(..., runtime=simkit.Browser(page=site.url +
"/app.html?ws={ws}"))``, which blocks that cell's thread while the pages load. Loopback
only; stopped on exit, error or interrupt.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from typing import Self

from simkit.model.errors import ConfigError


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No line per request on the notebook's stderr (nbval compares stderr)."""


class StaticSite:
    """Serve ``folder`` on ``http://127.0.0.1:PORT`` (a free port unless ``port`` is given)."""

    def __init__(self, folder: str | Path, port: int = 0) -> None:
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise ConfigError(f"StaticSite: {str(folder)!r} is not a folder of pages")
        self.port = port
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        handler = functools.partial(_Quiet, directory=str(self.folder))
        try:
            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        except OSError as error:
            raise ConfigError(
                f"StaticSite: cannot listen on 127.0.0.1:{self.port} ({error})"
            ) from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="simkit-site", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
