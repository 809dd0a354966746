"""StaticSite serves a folder on loopback and stops on exit."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from simkit.model.errors import ConfigError
from simkit.net.site import StaticSite


def test_a_folder_is_served_and_the_port_is_freed(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<p>hello</p>")
    with StaticSite(tmp_path) as site:
        assert site.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(site.url + "/page.html", timeout=5) as answer:
            assert answer.read() == b"<p>hello</p>"
        port = site.port
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))  # nothing listens there any more


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        StaticSite(tmp_path / "nope")
