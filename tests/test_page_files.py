"""The kit's browser page is two static files (``simkit/net/static/page.html`` and
``page.js``), checked as what they are: the JavaScript parses (``node --check``), the page
is assembled from both exactly, and the package ships them."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from simkit.model.errors import SimkitError
from simkit.net.page import PAGE, SCRIPT_MARK, PageMissing, assemble, static_text

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "simkit" / "net" / "static"


def node_required() -> bool:
    return os.environ.get("SIMKIT_REQUIRE_NODE", "").strip().lower() not in ("", "0", "false")


def test_the_page_is_its_html_with_its_script_inlined_once():
    html, script = static_text("page.html"), static_text("page.js")
    assert assemble(html, script) == PAGE
    assert PAGE.startswith("<!doctype html>") and PAGE.endswith("</script></body></html>\n")
    assert PAGE.count(script) == 1 and SCRIPT_MARK not in PAGE
    assert f"<script>\n{script}</script>" in PAGE  # inline: one response, no second request
    assert "window.simkitReport" in script and "pagehide" in script


def test_a_page_html_without_its_one_mark_is_refused():
    for html in ("<html></html>", SCRIPT_MARK * 2):
        with pytest.raises(PageMissing, match="exactly once") as error:
            assemble(html, "1;")
        assert isinstance(error.value, SimkitError)
    with pytest.raises(PageMissing, match=r"nothing\.js"):
        static_text("nothing.js")


def test_the_page_script_parses_with_node():
    node = shutil.which("node")
    if node is None:
        if node_required():
            pytest.fail("SIMKIT_REQUIRE_NODE is set but node is not on PATH", pytrace=False)
        pytest.skip("node is not installed: the page's JavaScript is not syntax-checked")
    checked = subprocess.run(
        [node, "--check", str(STATIC / "page.js")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    # and node --check can fail: a broken copy is refused
    broken = subprocess.run(
        [node, "--check", "--input-type=commonjs", "-"],
        input="(() => {",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert broken.returncode != 0


def test_every_static_file_is_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]["package-data"]["simkit"]
    shipped = sorted(p.relative_to(ROOT / "simkit").as_posix() for p in STATIC.iterdir())
    assert shipped == ["net/static/page.html", "net/static/page.js"]
    for name in shipped:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), (name, patterns)
